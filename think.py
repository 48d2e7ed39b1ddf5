"""think.py: watch a trained model think, and measure its inference: the KV cache, adaptive exit.

    python think.py 3+5*2-7            # the running values decoded after every core step, then streamed
    python think.py --trajectories     # the latent state's path: fixed point, orbit or slider (--plot: PNGs in --out)
    python think.py --report           # the cache, its sharing and adaptive exit over held-out problems
    python think.py --long 1200        # a problem 100x longer than trained, streamed in a cache of fixed size

It reads the checkpoint in --out (default runs/toy, what `python train_toy.py` writes).
"""
import argparse
import os
import sys
import time

# One BLAS thread, as train_toy.py sets it: the model's matrices are too small for BLAS threads to pay.
# (It must be set before numpy is imported.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import rdmini  # noqa: E402
from task import (EVAL_SEED, LONG_R_VALUES, MAX_R, Parser, answer_text, check_problem, cli, encode,  # noqa: E402
                  evaluate, layout, problem_tokens, random_problems, running_values, save_json)


def load_model(args):
    """The checkpoint in --out, for inference only: (params, cfg, the number of operations it trained on).
    It must be a running-task model."""
    path = os.path.join(args.out, "checkpoint.npz")
    if not os.path.exists(path):
        raise ValueError(f"checkpoint {path} does not exist: train one first (python train_toy.py writes "
                         "runs/toy; python train_toy.py --lab writes runs/lab, then give --out runs/lab)")
    params, cfg, state = rdmini.load_checkpoint(path)
    if "run" not in state:
        raise ValueError(f"{path} is an rdmini checkpoint but not one written by train_toy.py")
    if state["run"]["task"] != "running":
        raise ValueError(f"{path} was trained on the {state['run']['task']} task; this view needs the running task")
    return params, cfg, state["run"]["n_ops"]


def stream_cache(cfg, B, T, r, m=None, read="latest"):
    """The KV cache stream() feeds T tokens through: full attention keeps every position; a window keeps
    a ring of its last positions, the same size at any T."""
    return rdmini.new_cache(cfg, B, r, m, capacity=T if cfg.window is None else None, read=read)


def stream(params, cfg, problems, r, m=None, threshold=None, criterion="kl", continuous=False, seed=0,
           read="latest"):
    """Equal-length problems fed one token at a time through the KV cache, as if typed: each
    answer is read as soon as its token arrives. -> (answers, core steps per token (B,T)).
    s_0 is one draw (B,T,h) from default_rng(seed), given token by token, so with m = None and threshold
    None the answers are evaluate()'s (same s_0 for up to 500 problems): the cache changes nothing."""
    for problem in problems:
        check_problem(problem, cfg)
    if len({len(p) for p in problems}) != 1:
        raise ValueError("stream() needs problems of one length")
    tokens, _, mask = encode(problems)
    B, T = tokens.shape
    state0 = rdmini.initial_state(cfg, (B, T, cfg.width), np.random.default_rng(seed))
    cache = stream_cache(cfg, B, T, r, m, read)
    logits, steps = [], []
    for t in range(T):
        lg, st = rdmini.feed(params, cfg, cache, tokens[:, t:t + 1], state0[:, t:t + 1], threshold, criterion,
                             continuous)
        logits.append(lg)
        steps.append(st)
    guess = np.concatenate(logits, axis=1).argmax(-1)                         # (B,T)
    return [answer_text(g[mask[0]]) for g in guess], np.concatenate(steps, axis=1)


def spaced(cells, width=4):
    """One row of the thinking display: a column of `width` characters per token of the problem."""
    return "".join(f"{c:>{width}}" for c in cells)


def think(args):
    """Print the running values decoded from s_i at every step i = 1..r, then stream the problem through
    the KV cache with adaptive exit and print the steps each token used. A long problem (over 12 tokens)
    gets one character per position, so that a 48-operation chain still fits on a line."""
    params, cfg, _ = load_model(args)
    problem, r = args.think, args.r
    check_problem(problem, cfg)
    truth = running_values(problem)
    tokens, _, mask = encode([problem])
    width = 4 if len(truth) <= 12 else 1
    header = layout(problem)[0] if width > 1 else [str(j % 10) for j in range(len(truth))]    # long: a ruler
    by_r = rdmini.logits_by_r(params, cfg, tokens, set(range(1, r + 1)), rng=np.random.default_rng(0))
    print(f"{problem} evaluated left to right mod 10 has running values {truth}. Row i decodes s_i, the state "
          f"after i core steps\n(the digit when right, '.' when wrong), the frontier of right values moves right:\n")
    print("        " + spaced(header, width) + ("   (position mod 10)" if width == 1 else ""))
    print("truth   " + spaced(truth, width))
    for i in range(1, r + 1):
        guess = answer_text(by_r[i][0].argmax(-1)[mask[0]])
        marks = [g if g == t else "." for g, t in zip(guess, truth)]
        right = sum(g == t for g, t in zip(guess, truth))
        print(f"step {i:2d} " + spaced(marks, width) + f"   {right}/{len(truth)} right"
              + (f", model says {guess}" if width > 1 else ""))
    m, read = args.cache_budget, args.read_rule
    answer, steps = stream(params, cfg, [problem], r, m, args.exit_threshold, args.exit_criterion, args.continuous_cot,
                           read=read)
    crit = "KL(p_i-1 || p_i)" if args.exit_criterion == "kl" else "||s_i - s_i-1|| / ||s_i||"
    cache = ("1 core slot: a token reads the last entry of each earlier one it attends to" if m == 1 else
             f"{'no sharing' if m is None else f'{m} core slots'}, read rule {read}")
    print(f"\nStreamed one token at a time through the KV cache ({cache}"
          f"{', continuous chain of thought' if args.continuous_cot else ''});\na token stops when {crit} < "
          f"{args.exit_threshold:g}, at most r = {r}:\n")
    if width > 1:
        print("        " + spaced(layout(problem)[0]))
        print("steps   " + spaced(steps[0]))
        print("answer  " + spaced(answer[0]) + f"   {sum(a == t for a, t in zip(answer[0], truth))}/{len(truth)} "
              f"right; mean {steps[0].mean():.1f} steps per token")
    else:
        print("steps   " + (spaced(steps[0], 1) if steps.max() < 10 else " ".join(str(x) for x in steps[0])))
        print("answer  " + spaced(answer[0], 1) + f"   {sum(a == t for a, t in zip(answer[0], truth))}/{len(truth)} "
              f"right; mean {steps[0].mean():.1f} steps per token")


def elided(text, keep=24):
    """A long string with its middle left out: the first and last `keep` characters."""
    return text if len(text) <= 2 * keep + 5 else f"{text[:keep]} ... {text[-keep:]}"


def stream_and_score(params, cfg, problems, r, m, threshold, criterion="kl", continuous=False):
    """stream() timed and scored: -> answers, right (B,T) bool, core steps (B,T), seconds."""
    t = time.perf_counter()
    answers, steps = stream(params, cfg, problems, r, m, threshold, criterion, continuous)
    spent = time.perf_counter() - t
    right = np.array([[a == b for a, b in zip(x, running_values(p))] for x, p in zip(answers, problems)])
    return answers, right, steps, spent


LONG_SETTINGS = (("fixed r = 4", 4, None), ("fixed r = 8", 8, None), ("KL < 5e-4", 8, 5e-4), ("KL < 1e-5", 8, 1e-5))


def long_over_runs(args):
    """--long N --runs A B ...: the same --problems held-out problems of N operations streamed through
    each run's checkpoint in every LONG_SETTINGS (r: the fixed steps, or the most with exit; 1 core slot).
    Prints a row per run, then the floor and the median over the runs."""
    problems = random_problems(np.random.default_rng(EVAL_SEED), args.problems, args.long)
    n = len(problems)
    print(f"{n} held-out problems of {args.long:,} operations streamed one token at a time, 1 core slot; a cell: "
          f"problems all right, answers right, core steps a token (exit: at most r = 8)")
    print(f"{'run':28s} | " + " | ".join(f"{name:>24s}" for name, _, _ in LONG_SETTINGS) + " | seconds")
    table = []
    for folder in args.runs:
        params, cfg, _ = load_model(argparse.Namespace(out=folder))
        cells, spent = [], 0.0
        for _, r, threshold in LONG_SETTINGS:
            _, right, steps, seconds = stream_and_score(params, cfg, problems, r, 1, threshold)
            cells.append((int(right.all(axis=1).sum()), float(right.mean()), float(steps.mean())))
            spent += seconds
        table.append(cells)
        print(f"{folder[-28:]:28s} | " + " | ".join(f"{a}/{n} {b:8.2%} {c:5.2f}".rjust(24) for a, b, c in cells)
              + f" | {spent:7.1f}", flush=True)
    columns = [np.array([row[j] for row in table]) for j in range(len(LONG_SETTINGS))]   # (runs, 3) each
    print((f"{'floor':28s} | " + " | ".join(f"{c[:, 0].min():g}/{n} {c[:, 1].min():8.2%}      ".rjust(24)
                                          for c in columns)).rstrip())
    print(f"{'median':28s} | " + " | ".join(f"{np.median(c[:, 0]):g}/{n} {np.median(c[:, 1]):8.2%} "
                                           f"{np.median(c[:, 2]):5.2f}".rjust(24) for c in columns))
    return table


def long_problems(args):
    """Stream --problems held-out problems of --long operations one token at a time through the KV cache
    (with a window: a ring of fixed size), with the exit of --exit-threshold (0: every token runs --r steps)
    and --cache-budget; print the answers right, the core steps and the time a token, and the cache's
    bytes. --frontier R also runs them the frontier way, all positions at once for R core steps."""
    if args.runs:
        return long_over_runs(args)
    params, cfg, trained = load_model(args)
    n_ops, n, r, m = args.long, args.problems, args.r, args.cache_budget
    problems = random_problems(np.random.default_rng(EVAL_SEED), n, n_ops)
    threshold = args.exit_threshold or None                   # 0 never exits: the fixed r, without the KL's coda
    answers, right, steps, spent = stream_and_score(params, cfg, problems, r, m, threshold, args.exit_criterion,
                                                    args.continuous_cot)
    truths = [running_values(p) for p in problems]
    T = n_ops + 1
    exit_rule = (f"every token runs r = {r} core steps" if threshold is None else
                 f"a token stops when {'KL(p_i-1 || p_i)' if args.exit_criterion == 'kl' else 'its state change'}"
                 f" < {threshold:g}, at most r = {r}")
    print(f"{n} held-out problem{'s' if n > 1 else ''} of {n_ops:,} operations ({n_ops / trained:g}x the {trained} "
          f"the model trained on), streamed one token at a time;\n{exit_rule}, "
          f"{'1 core slot' if m == 1 else 'no sharing' if m is None else f'{m} core slots'}:")
    print(f"problem  {elided(problems[0])}  ({len(problems[0]):,} characters)")
    print(f"truth    {elided(truths[0])}")
    print(f"answer   {elided(answers[0])}  {right[0].sum():,} of {T:,} right")
    per = "a token" if n == 1 else f"a position (the {n} problems' tokens in one batch)"
    print(f"{right.sum():,} of {right.size:,} answers right ({right.mean():.2%}), {right.all(axis=1).sum()} of {n} "
          f"problems all right; {steps.mean():.2f} core steps a token, {1e3 * spent / T:.2f} ms {per}, "
          f"{spent:.1f} s in all")
    held = rdmini.cache_bytes(stream_cache(cfg, n, T, r, m))
    if cfg.window is None:
        print(f"KV cache {held:,} bytes: every position, so it grows with the length")
    else:
        at_10 = rdmini.cache_bytes(stream_cache(cfg, n, 10, r, m))
        every = rdmini.cache_bytes(rdmini.new_cache(cfg, n, r, m, capacity=T))
        print(f"KV cache {held:,} bytes, a ring of the last {cfg.window} positions: {at_10:,} at 10 tokens, "
              f"{held:,} at {T:,} (a cache of every position: {every:,})")
    out = {"answers": float(right.mean()), "all_right": int(right.all(axis=1).sum()), "problems": n,
           "steps": float(steps.mean()), "seconds": spent, "cache_bytes": held}
    if args.frontier:
        t = time.perf_counter()
        acc, by_position, _ = evaluate(params, cfg, problems, [args.frontier])[args.frontier]
        spent = time.perf_counter() - t
        print(f"the frontier way, all {T:,} positions at once for r = {args.frontier} core steps: answers right "
              f"{np.mean(by_position):.2%}, problems all right {round(acc * n)} of {n}, {spent:.1f} s "
              f"({1e3 * spent / T:.2f} ms a position)")
        out["frontier"] = {"answers": float(np.mean(by_position)), "all_right": round(acc * n), "seconds": spent}
    return out


def classify_trajectory(traj, window=16, still=0.01, drift=0.5):
    """A state trajectory (steps, h) -> 'fixed point', 'slider' or 'orbit'. The numbers:
    fixed point: over the last `window` steps the path length is under `still` (1%) of the state's mean norm;
    otherwise, over the last half of the trajectory (at least `window` steps):
    slider: the net displacement is at least `drift` (half) of the path length: it keeps going one way;
    orbit:  it keeps moving, but nets less than half its path: it comes back near where it was.
    (An orbit slower than the window looks like a slider: a longer trajectory tells them apart.)"""
    traj = np.asarray(traj, dtype=np.float64)
    if traj.ndim != 2 or len(traj) < window + 1:
        raise ValueError(f"a trajectory must be (steps, h) with at least {window + 1} steps, got shape {traj.shape}")
    moves = np.linalg.norm(np.diff(traj, axis=0), axis=1)                     # (steps-1,): length of each step
    if moves[-window:].sum() < still * np.linalg.norm(traj[-window:], axis=1).mean():
        return "fixed point"
    n = max(window, len(moves) // 2)
    net = np.linalg.norm(traj[-1] - traj[-1 - n])
    return "slider" if net >= drift * moves[-n:].sum() else "orbit"


KINDS = ("fixed point", "orbit", "slider")


def trajectories(params, cfg, problems, steps):
    """Run `steps` core steps on equal-length problems; PCA of every token's normalised state over steps
    1..steps; each token classified. -> dict of arrays and labels (what --trajectories prints and plots)."""
    tokens = encode(problems)[0]
    states = rdmini.trace_states(params, cfg, tokens, steps, rng=np.random.default_rng(0))[1:]   # (r,B,T,h)
    states = states / np.sqrt(np.mean(states * states, axis=-1, keepdims=True))   # unit RMS: shape, not size
    traj = states.transpose(1, 2, 0, 3).reshape(-1, steps, cfg.width).astype(np.float64)   # (B*T, r, h)
    flat = traj.reshape(-1, cfg.width)                                                      # (B*T*r, h)
    _, sv, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
    proj = (traj - traj.mean(axis=1, keepdims=True)) @ vt[:6].T   # each token centred on its own mean: (B*T, r, 6)
    dist = np.linalg.norm(traj - traj[:, -1:], axis=-1) / np.linalg.norm(traj[:, -1:], axis=-1)   # (B*T, r): to s*
    where = [(p, t, tok) for p in problems for t, tok in enumerate(layout(p)[0])]     # (problem, position, token)
    return {"kinds": [classify_trajectory(x) for x in traj], "where": where, "proj": proj, "dist": dist,
            "explained": sv[:6] ** 2 / np.sum(sv ** 2)}


def trajectory_plots(out):
    """What plot_trajectories draws, computed without matplotlib. -> (panels, heat).
    panels: a row per token picked (the first two of each kind), (index, title, [(x, y) of the principal
    components 1-2, 3-4, 5-6 over the steps]); heat: log10 ||s_i - s*|| / ||s*|| per token (rows) and step
    (columns), the last step left out: it is s* itself, at distance 0."""
    picks = [i for kind in KINDS for i in [j for j, k in enumerate(out["kinds"]) if k == kind][:2]]
    panels = []
    for i in picks:
        problem, t, tok = out["where"][i]
        pairs = [(out["proj"][i, :, 2 * col], out["proj"][i, :, 2 * col + 1]) for col in range(3)]
        panels.append((i, f"{out['kinds'][i]}: '{tok}' at {t} of {problem}", pairs))
    return panels, np.log10(out["dist"][:, :-1] + 1e-12)


def plot_trajectories(out, folder):
    """PNG figures of trajectories(): PCA component pairs of a few tokens of each kind, and convergence."""
    import matplotlib                    # imported here only: nothing else needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels, heat = trajectory_plots(out)
    os.makedirs(folder, exist_ok=True)
    fig, axes = plt.subplots(len(panels), 3, figsize=(10, 3 * len(panels)), squeeze=False)
    for row, (_, title, pairs) in enumerate(panels):
        for col, (x, y) in enumerate(pairs):
            ax = axes[row, col]
            ax.plot(x, y, "-", lw=0.8)
            ax.scatter(x, y, c=np.arange(len(x)), s=8, cmap="viridis")     # colour: step, dark = early
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(f"PC{2 * col + 1}")
            ax.set_ylabel(f"PC{2 * col + 2}")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "trajectories_pca.png"), dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 6))
    im = ax.imshow(heat, aspect="auto", cmap="magma",
                   extent=(0.5, heat.shape[1] + 0.5, heat.shape[0] - 0.5, -0.5))     # x: step 1, 2, ...
    ax.set_xlabel("core step i")
    ax.set_ylabel("token (problems one after another)")
    ax.set_title("log10 ||s_i - s*|| / ||s*||, s* = the state at the last step")
    fig.colorbar(im)
    fig.savefig(os.path.join(folder, "convergence.png"), dpi=100)
    plt.close(fig)
    return [os.path.join(folder, n) for n in ("trajectories_pca.png", "convergence.png")]


def trajectory_problems(cfg):
    """A few held-out problems of 8 operations (fewer if the model reads less)."""
    n_ops = min(8, cfg.max_seq_len - 1)
    return random_problems(np.random.default_rng(EVAL_SEED), 6, n_ops)


def show_trajectories(args):
    params, cfg, _ = load_model(args)
    problems = trajectory_problems(cfg)
    out = trajectories(params, cfg, problems, args.traj_steps)
    print(f"{len(out['kinds'])} tokens ({len(problems)} problems), {args.traj_steps} core steps each. "
          f"PCA of the normalised states: the first 6 components explain "
          + ", ".join(f"{100 * e:.1f}%" for e in out["explained"]))
    print("Distance to s* (the last state), relative, mean over tokens: "
          + ", ".join(f"step {i}: {out['dist'][:, i - 1].mean():.2g}" for i in (1, 2, 4, 8, 16, 32, 64)
                      if i <= args.traj_steps))
    for kind in KINDS:
        ids = [i for i, k in enumerate(out["kinds"]) if k == kind]
        examples = ", ".join(f"'{tok}' at {t} of {p}" for p, t, tok in (out["where"][i] for i in ids[:3]))
        print(f"  {kind:12s} {len(ids):4d} tokens{'  e.g. ' + examples if ids else ''}")
    if args.plot:
        try:
            files = plot_trajectories(out, args.out if args.figures is None else args.figures)
        except ImportError:
            print("error: --plot needs matplotlib, which is not installed: pip install matplotlib "
                  "(the numbers above do not need it)", file=sys.stderr)
            sys.exit(2)
        print("Wrote " + ", ".join(files))
    return out


EXITS = (None, ("kl", 5e-4), ("kl", 1e-4), ("state", 1e-2), ("state", 1e-3))   # None: every token runs r steps


def exit_name(ex):
    return "none" if ex is None else f"{ex[0]} < {ex[1]:g}"


def inference_grid(params, cfg, problems, r, progress=None):
    """Stream the problems through the KV cache in every setting: cache budget m in {r, 4, 2, 1}, read rule,
    exit criterion (EXITS), continuous chain of thought off and on. -> rows of dicts, one per setting, with
    the fraction of problems all right and the mean core steps per token. (With m = 1 the two read rules
    read the same entries, so m = 1 is run once, under the name "latest".)"""
    truths = [running_values(p) for p in problems]
    settings = [(m, read, ex, cot) for ex in EXITS for cot in (False, True) for m in (r, 4, 2, 1)
                for read in rdmini.READ_RULES if not (m == 1 and read != "latest")]
    rows = []
    for n, (m, read, ex, cot) in enumerate(settings):
        threshold, criterion = (None, "kl") if ex is None else (ex[1], ex[0])
        answers, steps = stream(params, cfg, problems, r, m, threshold, criterion, cot, read=read)
        rows.append({"m": m, "read": read, "exit": exit_name(ex), "continuous_cot": cot,
                     "accuracy": float(np.mean([a == t for a, t in zip(answers, truths)])),
                     "mean_steps": float(steps.mean()), "steps_by_position": [float(x) for x in steps.mean(axis=0)]})
        if progress and ((n + 1) % 10 == 0 or n + 1 == len(settings)):        # a line every 10 settings
            progress(n + 1, len(settings))
    return rows


KEEP = 0.995                 # --report's best setting keeps this share of the fixed-r accuracy


def best_setting(rows, keep=KEEP):
    """The setting with exit that keeps at least `keep` of the fixed-r accuracy (m = r, latest, no exit, no
    CoT) at the fewest mean steps per token; ties go to the smaller cache. -> (row, the fixed row)."""
    fixed = next(x for x in rows if x["exit"] == "none" and x["read"] == "latest" and not x["continuous_cot"]
                 and x["m"] == max(y["m"] for y in rows))
    kept = [x for x in rows if x["exit"] != "none" and x["accuracy"] >= keep * fixed["accuracy"]]
    return (min(kept, key=lambda x: (x["mean_steps"], x["m"])) if kept else None), fixed


def print_grid(rows, r, n_ops):
    cols = sorted({(x["m"], x["read"]) for x in rows}, key=lambda c: (-c[0], rdmini.READ_RULES.index(c[1])))
    names = [f"m={m} {read}" if m > 1 else "m=1 (either)" for m, read in cols]
    print(f"\n{n_ops} operations, r = {r}: all right / mean core steps per token")
    print(f"{'exit':13s} {'CoT':3s} | " + " | ".join(f"{n:>16s}" for n in names))
    for ex in EXITS:
        for cot in (False, True):
            cells = {(x["m"], x["read"]): x for x in rows if x["exit"] == exit_name(ex) and x["continuous_cot"] == cot}
            print(f"{exit_name(ex):13s} {'on' if cot else 'off':3s} | " + " | ".join(
                f"{cells[c]['accuracy']:.3f} {cells[c]['mean_steps']:5.2f}".rjust(16) for c in cols))


def inference_report(args):
    """Measure the cache, its sharing, its read rule and adaptive exit on held-out problems of the trained
    length and a longer one; print and save inference.json."""
    params, cfg, trained = load_model(args)
    t_start = time.time()
    n_ops = min(trained, cfg.max_seq_len - 1)                 # the trained length, then 4 operations more
    T, n = problem_tokens(n_ops), args.eval_problems
    res = {"problems": n, "n_ops": n_ops, "cache_bytes": {}, "grid": {}}
    print(f"KV cache for one problem of {T} tokens (batch 1, {cfg.dtype}), bytes:")
    print("    r | no sharing | m = 4 shared | m = 1")
    for r in (4, 16, 64):
        full, shared, one = (rdmini.cache_bytes(rdmini.new_cache(cfg, 1, r, m, capacity=T)) for m in (None, 4, 1))
        res["cache_bytes"][str(r)] = {"unshared": full, "m4": shared, "m1": one}
        print(f"{r:5d} | {full:10,d} | {shared:12,d} | {one:8,d}")
    r = 16
    for size in sorted({n_ops, min(n_ops + 4, cfg.max_seq_len - 1)}):
        problems = random_problems(np.random.default_rng(EVAL_SEED), n, size)
        print(f"\nStreaming {n} held-out problems of {size} operations token by token, every setting:", flush=True)
        rows = inference_grid(params, cfg, problems, r, progress=lambda done, total: print(
            f"  {done} of {total} settings, {time.time() - t_start:.0f} s", flush=True))
        print_grid(rows, r, size)
        best, fixed = best_setting(rows, KEEP)
        res["grid"][str(size)] = {"r": r, "rows": rows, "keep": KEEP,
                                  "best": best, "fixed_accuracy": fixed["accuracy"]}
        if best is None:
            print(f"No setting with exit keeps {100 * KEEP:g}% of the fixed r = {r} accuracy ({fixed['accuracy']:.3f}).")
        else:
            print(f"Fewest steps that keep {100 * KEEP:g}% of the fixed r = {r} accuracy ({fixed['accuracy']:.3f}): "
                  f"m = {best['m']}, {best['read']}, exit {best['exit']}, "
                  f"CoT {'on' if best['continuous_cot'] else 'off'}: "
                  f"{best['accuracy']:.3f} all right, {best['mean_steps']:.2f} steps per token; by position "
                  + " ".join(f"{x:.1f}" for x in best["steps_by_position"]))
    out = trajectories(params, cfg, trajectory_problems(cfg), 128)
    res["trajectories"] = {kind: out["kinds"].count(kind) for kind in KINDS}
    print(f"\nTrajectories over 128 steps of {len(out['kinds'])} tokens: "
          + ", ".join(f"{c} {kind}s" for kind, c in res["trajectories"].items()))
    res["seconds"] = round(time.time() - t_start, 1)
    print(f"\nSaved {save_json(res, args.out, 'inference.json')} ({res['seconds']} s)")
    return res


EXIT = 5e-4           # the paper's KL threshold
LONG_EXIT = 1e-5      # on problems 100x the trained length the paper's loses answers (docs/notes.md, 2026-12-07)

# (flag, lowest, highest, why) of the numbers think.py takes
LIMITS = (("r", 1, MAX_R, f"the evaluation measures r up to {max(LONG_R_VALUES)}, and the display has a line per step"),
          ("traj_steps", 17, MAX_R, "the classifier looks at the last 16 steps; the states of every step are kept"),
          ("eval_problems", 1, 300, "--report streams every problem in each of its settings, one token at a time"),
          ("frontier", 0, MAX_R, "the frontier way runs every position for R steps (0: not at all)"))


def parse_args(argv):
    p = Parser(__doc__.split("\n\n")[0])
    p.add_argument("think", nargs="?", metavar="PROBLEM", default=None,
                   help="show the model thinking about PROBLEM (e.g. 3+5*2-7), step 1..--r, then streamed token "
                        "by token through the KV cache with adaptive exit")
    p.add_argument("--out", default=os.path.join("runs", "toy"), help="the run folder with checkpoint.npz")
    p.add_argument("--r", type=int, default=8, help="core steps to show")
    p.add_argument("--exit-threshold", type=float, default=None,
                   help=f"adaptive exit: a token stops below this (--report measures several); default {EXIT:g} "
                        f"(the paper's), with --long {LONG_EXIT:g}")
    p.add_argument("--exit-criterion", choices=("kl", "state"), default="kl",
                   help="adaptive exit: KL between consecutive steps' predictions, or relative state change")
    p.add_argument("--cache-budget", type=int, default=1,
                   help="core KV-cache slots m; with 1 every token reads the last entry of each earlier one it "
                        "attends to (tutorial, section 4.3); 0: m = r, a slot per step")
    p.add_argument("--read-rule", choices=rdmini.READ_RULES, default="latest",
                   help="which entry of an earlier token a token reads at step i: the one in slot i %% m "
                        "(latest), or the deepest it has (always-last)")
    p.add_argument("--continuous-cot", action="store_true",
                   help="start each token's s_0 from the previous token's final state")
    p.add_argument("--trajectories", action="store_true",
                   help="classify the latent state trajectories (fixed point, orbit, slider) of a few problems")
    p.add_argument("--traj-steps", type=int, default=128, help="--trajectories: core steps to run")
    p.add_argument("--plot", action="store_true", help="--trajectories: write PNG figures (needs matplotlib)")
    p.add_argument("--figures", default=None,
                   help="folder for --plot's figures (default: the run's --out folder; the repo's own are in figures/)")
    p.add_argument("--report", action="store_true",
                   help="measure the KV cache, its sharing and adaptive exit; writes inference.json in --out")
    p.add_argument("--eval-problems", type=int, default=300, help="--report: held-out problems (at most 300)")
    p.add_argument("--long", type=int, default=0, metavar="N_OPS",
                   help="stream held-out problems of N_OPS operations through the KV cache (with the exit of "
                        "--exit-threshold, 0 for a fixed --r); a window keeps the cache's size fixed")
    p.add_argument("--problems", type=int, default=1, help="--long: how many problems")
    p.add_argument("--runs", nargs="+", metavar="FOLDER",
                   help="--long: stream the problems through each of these runs' checkpoints in four settings "
                        "(fixed r = 4 and 8, exit at KL < 5e-4 and 1e-5); a row per run, the floor and the median")
    p.add_argument("--frontier", type=int, default=0, metavar="R",
                   help="--long: also run the problems the frontier way, all positions at once for R core steps "
                        "(its cost grows as N_OPS^2 * R: feasible at tens of times the trained length, not at 100x)")
    args = p.parse_args(argv)
    if (args.think is not None) + args.trajectories + args.report + (args.long != 0) != 1:
        p.error("give one of: a PROBLEM (e.g. 3+5*2-7), --trajectories, --report or --long N_OPS")
    for name, low, high, why in LIMITS:
        value = getattr(args, name)
        if not low <= value <= high:
            p.error(f"--{name.replace('_', '-')} must be between {low} and {high}, got {value:,}: {why}")
    for name in ("long", "problems"):
        if getattr(args, name) < (name == "problems"):
            p.error(f"--{name} must be >= {int(name == 'problems')}, got {getattr(args, name)}")
    if not args.long and (args.runs or args.frontier or args.problems != 1):
        p.error("--problems, --runs and --frontier go with --long N_OPS")
    if args.runs and args.frontier:
        p.error("--frontier runs with one run (--out), not with --runs")
    if args.exit_threshold is None:
        args.exit_threshold = LONG_EXIT if args.long else EXIT
    if not args.exit_threshold >= 0:
        p.error(f"--exit-threshold must be >= 0, got {args.exit_threshold}")
    if args.cache_budget < 0:
        p.error(f"--cache-budget must be >= 0 (0: a slot per step), got {args.cache_budget}")
    args.cache_budget = args.cache_budget or None
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = (show_trajectories if args.trajectories else inference_report if args.report else
            long_problems if args.long else think)
    return cli(work, args)


if __name__ == "__main__":
    main()
