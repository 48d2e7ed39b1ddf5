"""seeds.py: one recipe over several seeds, and a verdict against a reference, measure by measure.
train_toy.py runs it for --seeds (and --compare); it imports nothing from train_toy, whose runs it starts
as processes of their own.

    python train_toy.py --lab --seeds 0-4 --compare docs/lab_reference.json --out runs/ex

Each run's results.json holds its measures (run_measures); the summary holds them per seed, the recipe,
and the model and training sources as they were (record_sources). compare() pairs seed i with the
reference's seed i and gives each judged measure a mean difference, a 95% interval and one word, with
Holm's correction across the measures so that an unchanged model gets a word at most 1 time in 20.
"""
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ALPHA = 0.05                   # the chance, over all judged measures at once, that an unchanged model gets a word
LEARN_LEVEL = 0.95             # (d): the held-out accuracy on the progress line that counts as "learnt"
THINK_LEVEL = 0.99             # (c): the share of trained-length problems right that counts as "thought through"
TIMES = 2                      # (b): extrapolation to this many times the trained length (final_report measures 2, 4, 6);
                               # why 2 and not 4: docs/notes.md, "2026-12-07 (issue 27, landed)"
SOURCES = ("rdmini.py", "train_toy.py", "task.py", "seeds.py")     # what makes a run what it is, besides its flags

# The measures, in the printed order: key, what it is, +1 if more is better, -1 if less is better.
# "{n}" is the trained length; cost comes last. ms a step is printed but not judged (other machines).
MEASURES = (("trained", "(a) {n} operations (trained), all right at r = {r}, %", +1),
            ("extrapolation", "(b) {n4} operations ({times}x), all right at the best r, %", +1),
            ("thinking_r", "(c) thinking speed: fewest r with 99% of {n}-operation problems right", -1),
            ("learning_step", "(d) learning speed: first step at 95% held-out right", -1),
            ("params", "(e) cost: parameters", -1),
            ("gflops", "(e) cost: matmul GFLOPs per step (counted)", -1),
            ("peak_mib", "(e) cost: peak memory of a step, MiB (measured)", -1))
NOT_JUDGED = (("ms_per_step", "ms a step (not judged: timed on other machines)"),)
# Costs are the same on every seed of a recipe, so a difference in them is exact. The other measures vary
# from seed to seed: when every pair happens to differ by the same amount (a whole number of r, say), there
# is no spread to judge by, and the sign test says how surprising that is.
EXACT = ("params", "gflops", "peak_mib")
# A measure's resolution: tracemalloc's peak moves a little from seed to seed (Python's own objects), which
# a paired test would call a difference; memory is judged to 1/64 MiB (16 KiB).
RESOLUTION = {"peak_mib": 1 / 64}


def resolved(key, value):
    step = RESOLUTION.get(key)
    return value if step is None or value is None else round(value / step) * step


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
    if reference:                       # refuse a reference these runs cannot be judged against before training
        planned = {"settings": {k: getattr(args, k) for k in run_keys}, "eval_problems": args.eval_problems,
                   "measures": {key: None for key, _, _ in MEASURES}}
        check_comparable(planned, reference, args.compare)
    sources = record_sources(os.path.dirname(os.path.abspath(script)))      # the code these runs start with
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
    summary = summarise(args, {s: results[s] for s in sorted(seeds)}, run_keys, sources)
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
    m = res["measures"]
    print(f"  seed {seed}: (a) {100 * m['trained']:.2f}% (b) {100 * m['extrapolation']:.1f}% (c) r {m['thinking_r']} "
          f"(d) step {m['learning_step']}; {res['train_seconds']:.0f} s of training, {m['ms_per_step']:.0f} ms a step",
          flush=True)
    return res


# ============================================================================================
# The measures of one run, and what was run
# ============================================================================================

def expected_r(mean_r, max_r, k, draws=200_000):
    """E[r] and E[min(r, k)] of the r a training step draws (rdmini.sample_r capped at max_r), from a fixed
    stream of draws: the same numbers for every seed of a recipe."""
    if mean_r == 1:
        return 1.0, 1.0
    rng, sigma = np.random.default_rng(0), 0.5
    tau = rng.normal(math.log(mean_r - 1) - sigma ** 2 / 2, sigma, size=draws)
    r = np.minimum(rng.poisson(np.exp(tau)) + 1, max_r)
    return float(r.mean()), float(np.minimum(r, k).mean())


def count_flops(cfg, B, T, r, k):
    """Matrix-multiply FLOPs of one training step (2 per multiply-add), counted from the shapes.
    Forward: prelude, r core iterations, coda. Backward: twice the forward of what it walks back through
    (the input's and the weight's gradient), i.e. prelude, the last min(k, r) iterations and coda.
    r and min(k, r) may be means over the steps (expected_r). Elementwise work (norms, softmax, RoPE) is
    left out: it is not what a matmul unit measures."""
    N, h, F, H, d, V = B * T, cfg.width, cfg.mlp_hidden, cfg.n_heads, cfg.head_dim, cfg.vocab_size
    block = 2 * N * h * 3 * h + 2 * N * h * h + 2 * N * h * 2 * F + 2 * N * F * h   # qkv, proj, up, down
    block += 2 * (2 * B * H * T * T * d)                                               # q k^T and att v
    adapter = 2 * N * 2 * h * h if cfg.injection == "concat" else 0
    step = cfg.n_core * block + adapter
    outside = (cfg.n_prelude + cfg.n_coda) * block + 2 * N * h * V                    # + unembedding
    forward = outside + r * step
    backward = 2 * (outside + min(k, r) * step) if k > 0 else 0              # k = 0: inference
    return {"forward": forward, "backward": backward, "total": forward + backward}


def run_measures(res):
    """A trained run's results.json -> its measures (MEASURES, NOT_JUDGED), plain numbers:
    trained: all right on trained-length problems at enough r; extrapolation: on TIMES x that length at the best r;
    thinking_r: the fewest r (every r up to enough r evaluated, then 32, 64) with THINK_LEVEL of them right
    (never: twice the largest r evaluated); learning_step: the first progress line at LEARN_LEVEL or more
    (never: one progress line past the end); cost: parameters, counted matmul FLOPs, measured peak memory."""
    acc = {int(r): a for r, a in res["accuracy_by_every_r"].items()}
    longer = res["longer"].get(str(TIMES * res["n_ops"]))
    thinking = [r for r in sorted(acc) if acc[r] >= THINK_LEVEL]
    log = res["log"]
    learnt = [e["step"] for e in log if e["accuracy"] >= LEARN_LEVEL]
    every = log[0]["step"] if log else res["step"]
    return {"trained": acc[res["enough_r"]],
            "extrapolation": max(longer["accuracy_by_r"].values()) if longer else None,
            "thinking_r": thinking[0] if thinking else 2 * max(acc),
            "learning_step": learnt[0] if learnt else res["step"] + every,
            "params": res["params"], "gflops": res["flops_per_step"] / 1e9,
            "peak_mib": resolved("peak_mib", res["peak_step_bytes"] / 2 ** 20), "ms_per_step": 1000 * res["train_seconds"] / res["step"]}


def record_sources(folder):
    """The model and training sources in folder as they are now: the git commit, and per file its sha256 and
    its diff against that commit (an untracked file: the whole file as added). No git: hashes only."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=folder, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
    head = git("rev-parse", "HEAD")
    commit = head.stdout.strip() if head and head.returncode == 0 else None
    files = {}
    for name in SOURCES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            entry = {"sha256": hashlib.sha256(f.read()).hexdigest(), "diff": None}
        if commit:
            tracked = git("ls-files", "--error-unmatch", name).returncode == 0
            entry["diff"] = (git("diff", "HEAD", "--", name) if tracked
                             else git("diff", "--no-index", "--", os.devnull, name)).stdout
        files[name] = entry
    return {"commit": commit, "files": files}


# ============================================================================================
# A set of seeds: the summary
# ============================================================================================

def spread(values):
    return {"mean": float(np.mean(values)), "median": float(np.median(values)),
            "min": float(np.min(values)), "max": float(np.max(values))}


def summarise(args, results, run_keys, sources=None):
    """One JSON for a set of seeds: the recipe, the sources, each seed's measures and accuracy by r (and
    longer problems'), and mean, median, min and max over the seeds."""
    first = next(iter(results.values()))
    sizes = [n for n in first.get("longer", {}) if all(n in r.get("longer", {}) for r in results.values())]
    names = [key for key, _, _ in MEASURES] + [key for key, _ in NOT_JUDGED]
    return {"settings": {k: getattr(args, k) for k in run_keys if k != "seed"},
            "eval_problems": args.eval_problems, "seeds": list(results),
            "enough_r": first["enough_r"], "sources": sources,
            "runs": {str(s): {"measures": r["measures"], "accuracy_by_r": r["accuracy_by_r"],
                              "train_seconds": r["train_seconds"],
                              "longer": {n: r["longer"][n]["accuracy_by_r"] for n in sizes}}
                     for s, r in results.items()},
            "measures": {m: spread([r["measures"][m] for r in results.values()]) for m in names
                         if all(r["measures"].get(m) is not None for r in results.values())},
            "accuracy_by_r": {rr: spread([r["accuracy_by_r"][rr] for r in results.values()])
                              for rr in first["accuracy_by_r"]},
            "longer": {n: {rr: spread([r["longer"][n]["accuracy_by_r"][rr] for r in results.values()])
                           for rr in first["longer"][n]["accuracy_by_r"]} for n in sizes}}


def label(summary, key):
    n = summary["settings"]["n_ops"]
    text = dict((k, t) for k, t, _ in MEASURES) | dict(NOT_JUDGED)
    return text[key].format(n=n, n4=TIMES * n, times=TIMES, r=summary["enough_r"])


def shown(key, value):
    """A measure as printed: accuracies in %, the rest as they are."""
    if key in ("trained", "extrapolation"):
        return f"{100 * value:.2f}"
    if key == "thinking_r" and value >= 128:
        return "never"
    if key == "gflops":
        return f"{value:.3f}"
    return f"{value:,.0f}" if key in ("params", "learning_step") else f"{value:.3g}"


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
    print(f"\nThe measures over {len(seeds)} seeds: median [worst, best]; per seed {' '.join(map(str, seeds))}")
    for key, _, sign in MEASURES:
        if key in summary["measures"]:
            x = summary["measures"][key]
            worst, best = (x["min"], x["max"]) if sign > 0 else (x["max"], x["min"])
            print(f"  {label(summary, key)}: {shown(key, x['median'])} [{shown(key, worst)}, {shown(key, best)}]; "
                  + " ".join(shown(key, summary["runs"][str(s)]["measures"][key]) for s in seeds))
    for key, _ in NOT_JUDGED:
        x = summary["measures"][key]
        print(f"  {label(summary, key)}: {x['median']:.0f} [{x['min']:.0f}, {x['max']:.0f}]")


def load_summary(path):
    """A summary.json, or the folder holding one; refused with a clear message if it is neither."""
    file = os.path.join(path, "summary.json") if os.path.isdir(path) else path
    try:
        with open(file) as f:
            summary = json.load(f)
        summary["accuracy_by_r"], summary["settings"]["task"], summary["settings"]["n_ops"], summary["runs"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--compare {path}: no summary of several seeds there ({type(err).__name__}); "
                         "make one with --seeds ... --out FOLDER, or name a folder that has summary.json") from None
    return summary


# ============================================================================================
# The verdict: a paired difference per measure, an interval, Holm's correction across measures
# ============================================================================================

def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz's method)."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    if x > (a + 1) / (a + b + 2):                        # the fraction converges fast on this side only
        return 1 - betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        num = 1.0 if i == 0 else (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)) if i % 2 == 0
                                  else -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)))
        d = 1 + num * d
        d = 1 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1 + num / (c if abs(c) > 1e-300 else 1e-300)
        f *= c * d
        if abs(1 - c * d) < 1e-14:
            break
    return front * (f - 1)


def t_sf2(t, df):
    """P(|T| >= |t|) for Student's t with df degrees of freedom: a two-sided p-value."""
    return betainc(df / 2, 0.5, df / (df + t * t))


def t_quantile(p, df):
    """The t with P(|T| >= t) = p (two-sided), by bisection."""
    lo, hi = 0.0, 1e4                                    # df 1 at p = 0.05 / 7 / 10: about 900
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_sf2(mid, df) > p else (lo, mid)
    return (lo + hi) / 2


def difference(mine, ref):
    """mine, ref: {seed: value}. The mean difference (mine - ref), its standard error and degrees of freedom,
    and how it was made. Paired (seed i with seed i) when the reference has every seed here, and there are
    two or more; otherwise unpaired (Welch); one seed alone is held against the reference's spread (as if it
    varied as the reference's seeds do). se 0: both sides are the same for every seed (a cost), so the
    difference is exact; se None: one seed on each side, which cannot tell."""
    x, y = np.array(list(mine.values()), float), np.array(list(ref.values()), float)
    if len(x) >= 2 and all(s in ref for s in mine):
        d = np.array([mine[s] - ref[s] for s in mine])
        return {"how": "paired", "diff": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d))),
                "df": len(d) - 1}
    diff, how = float(x.mean() - y.mean()), "unpaired"
    vx, vy = (v.var(ddof=1) if len(v) > 1 else None for v in (x, y))
    if vx is None and vy is None:
        return {"how": "one seed each", "diff": diff, "se": None, "df": None}
    if vx is None or vy is None:                         # one seed on one side: the other side's spread for both
        v, n = (vy, len(y)) if vx is None else (vx, len(x))
        return {"how": "one seed", "diff": diff, "se": float(math.sqrt(v * (1 + 1 / n))), "df": n - 1}
    a, b = vx / len(x), vy / len(y)
    if a + b == 0:
        return {"how": how, "diff": diff, "se": 0.0, "df": None}
    df = (a + b) ** 2 / (a ** 2 / (len(x) - 1) + b ** 2 / (len(y) - 1))         # Welch-Satterthwaite
    return {"how": how, "diff": diff, "se": float(math.sqrt(a + b)), "df": float(df)}


def judge(mine, ref, keys, alpha=ALPHA):
    """mine, ref: {key: {seed: value}}; keys: [(key, sign)], sign +1 if more is better. -> {key: verdict}, each
    with the difference, a 95% interval, p, the word (Holm across the keys: the chance that any of them gets
    a word when nothing changed is at most alpha) and the smallest difference the seeds could call."""
    out = {}
    for key, sign in keys:
        v = difference(mine[key], ref[key])
        se, diff = v["se"], v["diff"]
        if se is not None and se <= 1e-9 * max(1.0, abs(diff)):     # rounding: the same on every seed
            se = v["se"] = 0.0
        if se is None:
            v.update(p=1.0, low=None, high=None, detectable=None)
        elif se == 0 and key not in EXACT and v["how"] == "paired":  # every pair moved alike: the sign test
            v.update(p=1.0 if diff == 0 else min(1.0, 2 * 0.5 ** (v["df"] + 1)), low=None, high=None,
                     detectable=None, alike=True)
        elif se == 0:
            v.update(p=0.0 if diff != 0 else 1.0, low=diff, high=diff, detectable=0.0)
        else:
            half = t_quantile(0.05, v["df"]) * se
            v.update(p=t_sf2(diff / se, v["df"]), low=diff - half, high=diff + half,
                     detectable=t_quantile(alpha / len(keys), v["df"]) * se)
        v["sign"] = sign
        out[key] = v
    order = sorted(out, key=lambda k: out[k]["p"])
    called = True
    for i, key in enumerate(order):                      # Holm: the i-th smallest p against alpha / (m - i)
        called = called and out[key]["p"] <= alpha / (len(order) - i)
        v = out[key]
        v["word"] = ("better" if v["diff"] * v["sign"] > 0 else "worse") if called else "no difference detected"
    return out


def what_differs(summary, reference):
    """The flags that differ, and the source files whose edits (against each one's commit) differ."""
    mine, ref = summary["settings"], reference["settings"]
    flag = lambda k, v: 0 if k == "window" and v is None else v                     # as the flag writes it
    flags = [f"--{k.replace('_', '-')} {flag(k, ref[k])} -> {flag(k, mine[k])}" for k in mine
             if k in ref and mine[k] != ref[k]]
    here, there = (s.get("sources") or {} for s in (summary, reference))
    files, hf, tf = [], here.get("files", {}), there.get("files", {})
    for name in sorted(set(hf) | set(tf)):
        a, b = hf.get(name, {}).get("diff"), tf.get(name, {}).get("diff")
        if (a or "") != (b or ""):
            changed = sum(1 for line in (a or "").splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
            files.append(f"{name} (edited: {changed} lines of diff here)" if a else f"{name} (edited in the reference)")
    note = None
    if here.get("commit") != there.get("commit"):
        moved = [n for n in sorted(set(hf) & set(tf)) if hf[n]["sha256"] != tf[n]["sha256"]
                 and (hf[n]["diff"] or "") == (tf[n]["diff"] or "")]
        ref_commit = str(there.get('commit'))[:10]
        note = (f"the reference was made at commit {ref_commit}, these runs at {str(here.get('commit'))[:10]}"
                + (f"; committed since: {', '.join(moved)} (git diff {ref_commit} -- {' '.join(moved)} shows how)"
                   if moved else ""))
    return flags, files, note


def check_comparable(summary, reference, name):
    """Refuse a reference whose measures mean something else, or that lacks them: one clear line."""
    mine, ref = summary["settings"], reference["settings"]
    for key in ("task", "n_ops"):
        if mine[key] != ref.get(key):
            raise ValueError(f"--compare {name} measured another task or size ({key} {ref.get(key)} there, "
                             f"{mine[key]} here): compare runs of the same task and size")
    if summary["eval_problems"] != reference.get("eval_problems"):
        raise ValueError(f"--compare {name} was evaluated on {reference.get('eval_problems')} problems, these "
                         f"runs on {summary['eval_problems']}: use the same --eval-problems")
    missing = [key for key, _, _ in MEASURES if key in summary["measures"] and not all(
        run.get("measures", {}).get(key) is not None for run in reference["runs"].values())]
    if missing:
        raise ValueError(f"--compare {name} lacks the measures {', '.join(missing)} (made by an older seeds.py, or "
                         "its runs had no such problems): make the reference again with --seeds ... --out FOLDER")


def compare(summary, reference, name, alpha=ALPHA):
    """Print the verdict of this set of seeds against the reference, measure by measure; return it."""
    check_comparable(summary, reference, name)
    flags, files, note = what_differs(summary, reference)
    seeds, ref_seeds = summary["seeds"], [int(s) for s in reference["runs"]]
    keys = [(key, sign) for key, _, sign in MEASURES if key in summary["measures"]]
    per = lambda s, key: {int(k): resolved(key, r["measures"][key]) for k, r in s["runs"].items()}
    verdict = judge({k: per(summary, k) for k, _ in keys}, {k: per(reference, k) for k, _ in keys}, keys, alpha)
    print(f"\nAgainst {name} ({len(ref_seeds)} seeds); what differs: {', '.join(flags + files) or 'nothing'}")
    if note:
        print(f"  ({note})")
    lacking = [s for s in seeds if s not in ref_seeds]
    if len(seeds) == 1:
        print(f"One seed: held against the reference's spread, unpaired (it assumes this seed varies as those do).")
    elif lacking:
        print(f"Unpaired: the reference lacks seed{'s' * (len(lacking) > 1)} {', '.join(map(str, lacking))}, so "
              "these seeds are compared as a group with its seeds (Welch), which needs larger differences.")
    else:
        print(f"Paired: seed i here against seed i there ({len(seeds)} pairs): they share their problems and s_0 draws.")
    for key, sign in keys:
        v, x, y = verdict[key], summary["measures"][key], reference["measures"][key]
        cols = [f"{shown(key, s['median'])} [{shown(key, s['min'])}, {shown(key, s['max'])}]" for s in (x, y)]
        d, lo, hi, det = (None if v[f] is None else v[f] * (100 if key in ("trained", "extrapolation") else 1)
                          for f in ("diff", "low", "high", "detectable"))
        unit = " points" if key in ("trained", "extrapolation") else ""
        places = {"peak_mib": 2, "gflops": 3}.get(key, 1)
        num = lambda z: f"{z:+,.0f}" if key in ("params", "learning_step") else f"{z:+.{places}f}"
        alike = v.get("alike")
        interval = (f"[{num(lo)}, {num(hi)}]" if lo is not None else
                    "[every pair the same: no spread for an interval]" if alike else "[one seed each: no interval]")
        could = ("exact: the same on every seed" if det == 0 else f"could detect about ±{num(det)[1:]}{unit}"
                 if det is not None else f"the sign test over {len(seeds)} pairs" if alike else "cannot tell")
        word = v["word"].upper() if v["word"] != "no difference detected" else v["word"]
        print(f"{label(summary, key)}\n    here {cols[0]} | reference {cols[1]} | difference {num(d)}{unit} "
              f"{interval}: {word}; {could}")
    for key, text in NOT_JUDGED:
        x, y = summary["measures"][key], reference["measures"].get(key)
        there = f"{y['median']:.0f} [{y['min']:.0f}, {y['max']:.0f}]" if y else "-"
        print(f"{label(summary, key)}\n    here {x['median']:.0f} [{x['min']:.0f}, {x['max']:.0f}] | reference {there}")
    print(f"{len(keys)} measures judged at once (Holm's correction): if nothing changed, the chance that any of "
          f"them gets \"better\" or \"worse\" is at most {100 * alpha:.0f}% (1 in {round(1 / alpha)}). The interval "
          "is each measure's own 95%; \"could detect\" is the difference its seeds would call at the strictest level.")
    return verdict


def main(argv=None):
    """python seeds.py SUMMARY REFERENCE: the verdict of runs already summarised, without training again."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python seeds.py SUMMARY REFERENCE   (each a summary.json or the folder holding one)",
              file=sys.stderr)
        return 2
    try:
        summary, reference = load_summary(argv[0]), load_summary(argv[1])
        if "measures" not in summary:
            raise ValueError(f"{argv[0]} has no measures (made by an older seeds.py): make it again with --seeds")
        print_summary(summary)
        compare(summary, reference, argv[1])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
