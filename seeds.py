"""seeds.py: one recipe over several seeds, and a comparison with a reference: is a change larger than
the seeds' spread? train_toy.py runs it for --seeds (and --compare); it imports nothing from train_toy,
whose runs it starts as processes of their own.

    python train_toy.py --lab --threads 1 --seeds 0-4 --compare docs/lab_reference.json --out runs/ex
"""
import json
import os
import subprocess
import sys
import time

import numpy as np



def parse_seeds(text):
    """'0-4' -> [0, 1, 2, 3, 4]; '0,3,7' -> [0, 3, 7]; '0-2,5' -> [0, 1, 2, 5]."""
    seeds = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            seeds += list(range(int(a), int(b) + 1)) if b else [int(a)]
    except ValueError:
        raise ValueError(f"--seeds takes numbers and ranges like 0-4 or 0,3,7, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name each seed (>= 0) once, got {text!r}")
    return seeds


def without_options(argv, names):
    """argv without the options `names` and their values (both --out X and --out=X)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in names:
            skip = True
        elif not any(word.startswith(n + "=") for n in names):
            out.append(word)
    return out


def run_seeds(args, argv, script, run_keys):
    """Train the same recipe once per seed, each run a process of its own (`script` with argv) writing into
    OUT/seed<N>/ (its progress in train.log there), as many at once as --jobs says; then summarise them in
    OUT/summary.json and print the spread, and the comparison with --compare's reference if given.
    run_keys: the settings that make a run what it is, recorded in the summary."""
    seeds = parse_seeds(args.seeds)
    reference = load_summary(args.compare) if args.compare else None
    base = without_options(argv, ("--seeds", "--compare", "--out", "--seed", "--jobs"))
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // args.threads)
    print(f"{len(seeds)} runs (seeds {args.seeds}), {jobs} at a time, into {args.out}/seed<N>/", flush=True)
    running, waiting, results = {}, list(seeds), {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                seed = waiting.pop(0)
                running[seed] = start_run(script, base, seed, os.path.join(args.out, f"seed{seed}"))
            time.sleep(0.5)
            for seed in [s for s, (proc, _, _) in running.items() if proc.poll() is not None]:
                results[seed] = finish_run(seed, *running.pop(seed))
    except (KeyboardInterrupt, ValueError) as err:
        for proc, log, _ in running.values():
            proc.terminate()
            proc.wait()
            log.close()
        if isinstance(err, KeyboardInterrupt):      # one line, as for any other stop, not a traceback
            raise ValueError(f"interrupted: the unfinished runs were stopped; finished ones are in "
                             f"{args.out}") from None
        raise
    summary = summarise(args, {s: results[s] for s in seeds}, run_keys)
    print_summary(summary)
    if reference:
        compare(summary, reference, args.compare)
    path = os.path.join(args.out, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nSaved {path}")
    return summary


def start_run(script, base, seed, folder):
    """One seed's run as a process of its own: the script with the same options. -> (process, log, folder)."""
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "results.json")):
        os.remove(os.path.join(folder, "results.json"))          # never summarise an earlier run's results
    log = open(os.path.join(folder, "train.log"), "w")
    cmd = [sys.executable, script, *base, "--seed", str(seed), "--out", folder]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, folder


def finish_run(seed, proc, log, folder):
    """The results of a finished run, with its line printed; a run that failed is a clear error."""
    log.close()
    path = os.path.join(folder, "results.json")
    if proc.returncode != 0 or not os.path.exists(path):
        raise ValueError(f"the run of seed {seed} failed (exit {proc.returncode}): see {folder}/train.log")
    with open(path) as f:
        res = json.load(f)
    print(f"  seed {seed}: all right {res['accuracy_by_r']['1']:.3f} at r = 1, {res['accuracy_by_r']['8']:.4f} at "
          f"r = 8; {res['train_seconds']:.0f} s of training, {1000 * res['train_seconds'] / res['step']:.0f} ms a step",
          flush=True)
    return res


def spread(values):
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def summarise(args, results, run_keys):
    """One JSON for a set of seeds: the recipe, each seed's accuracy by r (and longer problems'), the
    mean, min and max over the seeds."""
    first = next(iter(results.values()))
    sizes = [n for n in first.get("longer", {}) if all(n in r.get("longer", {}) for r in results.values())]
    return {"settings": {k: getattr(args, k) for k in run_keys if k != "seed"},
            "eval_problems": args.eval_problems, "seeds": list(results),
            "runs": {str(s): {"accuracy_by_r": r["accuracy_by_r"], "train_seconds": r["train_seconds"],
                              "ms_per_step": 1000 * r["train_seconds"] / r["step"],
                              "longer": {n: r["longer"][n]["accuracy_by_r"] for n in sizes}}
                     for s, r in results.items()},
            "accuracy_by_r": {rr: spread([r["accuracy_by_r"][rr] for r in results.values()])
                              for rr in first["accuracy_by_r"]},
            "longer": {n: {rr: spread([r["longer"][n]["accuracy_by_r"][rr] for r in results.values()])
                           for rr in first["longer"][n]["accuracy_by_r"]} for n in sizes}}


def print_summary(summary):
    seeds, unit = summary["seeds"], "operations" if summary["settings"]["task"] == "running" else "digits"
    print(f"\nAll right over {len(seeds)} seeds ({summary['settings']['n_ops']} {unit}, "
          f"{summary['eval_problems']} problems each): mean [min, max]")
    for rr, x in summary["accuracy_by_r"].items():
        print(f"  r = {rr:>2}: {x['mean']:.4f} [{x['min']:.4f}, {x['max']:.4f}]   per seed: "
              + " ".join(f"{summary['runs'][str(s)]['accuracy_by_r'][rr]:.3f}" for s in seeds))
    for n, by_r in summary["longer"].items():
        best = [max(summary["runs"][str(s)]["longer"][n].values()) for s in seeds]
        print(f"  {n} {unit}, best r: mean {np.mean(best):.3f} [{min(best):.3f}, {max(best):.3f}]")


def load_summary(path):
    """A summary.json, or the folder holding one; refused with a clear message if it is neither."""
    file = os.path.join(path, "summary.json") if os.path.isdir(path) else path
    try:
        with open(file) as f:
            summary = json.load(f)
        summary["accuracy_by_r"], summary["settings"]["task"], summary["settings"]["n_ops"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--compare {path}: no summary of several seeds there ({type(err).__name__}); "
                         "make one with --seeds ... --out FOLDER, or name a folder that has summary.json") from None
    return summary


def compare(summary, reference, name):
    """Print this set of seeds beside the reference's, r by r, and one verdict: is the difference at r = 8
    larger than the seeds' spread (do the two min-max ranges not overlap)?"""
    mine, ref = summary["settings"], reference["settings"]
    for key in ("task", "n_ops"):
        if mine[key] != ref[key]:
            raise ValueError(f"--compare {name} measured another task or size ({key} {ref[key]} there, {mine[key]} "
                             "here): compare runs of the same task and size")
    if summary["eval_problems"] != reference["eval_problems"]:
        raise ValueError(f"--compare {name} was evaluated on {reference['eval_problems']} problems, these runs on "
                         f"{summary['eval_problems']}: use the same --eval-problems")
    differ = [f"--{k.replace('_', '-')} {ref[k]} -> {mine[k]}" for k in mine if k in ref and mine[k] != ref[k]]
    print(f"\nAgainst {name} ({len(reference['seeds'])} seeds); what differs: {', '.join(differ) or 'nothing'}")
    print("   r | this variant: mean [min, max]  | reference: mean [min, max]    | difference")
    for rr, x in summary["accuracy_by_r"].items():
        y = reference["accuracy_by_r"].get(rr)
        if y:
            print(f"{rr:>4} | {x['mean']:.4f} [{x['min']:.4f}, {x['max']:.4f}] | {y['mean']:.4f} [{y['min']:.4f}, "
                  f"{y['max']:.4f}] | {100 * (x['mean'] - y['mean']):+.1f} points")
    x, y = summary["accuracy_by_r"]["8"], reference["accuracy_by_r"]["8"]
    if x["min"] > y["max"] or x["max"] < y["min"]:
        word = "better" if x["mean"] > y["mean"] else "worse"
        print(f"Verdict: at r = 8 this variant is {word} by {100 * abs(x['mean'] - y['mean']):.1f} points, more than "
              "the seeds' spread: every seed of one is above every seed of the other.")
    else:
        print(f"Verdict: at r = 8 the difference ({100 * (x['mean'] - y['mean']):+.1f} points) is within the seeds' "
              "spread: the two ranges overlap, so these seeds cannot tell the two apart.")
