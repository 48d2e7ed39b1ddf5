"""train_toy.py: watch a recurrent-depth model learn to think longer, on a laptop CPU, in minutes.

The task: running arithmetic mod 10. A problem such as 3+5*2-7 is evaluated left to right, keeping only
the last digit, and the model writes the running value under every operation. The model reads the first
operand, then one token per operation ("*2" is one token: times 2):

    position   0   1   2   3
    x          3  +5  *2  -7          the problem, one token per operation
    targets    3   8   6   9          3, 3+5 = 8, 8*2 = 16 -> 6, 6-7 = -1 -> 9
    mask       1   1   1   1          every position holds an answer

Operations do not commute, so the value at position j needs every operation before it: this is state
tracking, and a fixed stack of layers falls behind as the chain grows. Each iteration of the core lets
the answer travel about one operation further, so the accuracy on long chains should climb with r.

    python train_toy.py                  # train (about 7 minutes on 2 cores), then accuracy for every r
    python train_toy.py --mean-r 1 --k 1 # the same network without recurrence, the baseline
    python train_toy.py --lab            # the classroom lab's recipe: about two minutes
    python train_toy.py --lab --seeds 0-4 --compare docs/lab_reference.json   # a variant over 5 seeds
    python train_toy.py --help           # every option
Beside it: think.py (watch a trained model think; the KV cache, adaptive exit) and bench.py (speed, memory).

Where things are: the task itself (problems, their truth, tokens, batches, evaluation) is task.py; the model
is rdmini.py. Here: the final report (final_report), one training step (loss_and_grads: forward, loss,
backward; train_step: a batch, that, the update), the loop (train), and the command line (make_parser,
parse_args, main). seeds.py runs --seeds and --compare.
"""
import ctypes
import math
import os
import signal
import sys
import tempfile
import time
import tracemalloc

# This script uses both cores with threads of its own (--threads), each running single-threaded numpy.
# BLAS threads on top would fight them for the same cores, so BLAS gets one thread, unless you say otherwise.
# (It must be set before numpy is imported; when numpy came first, as under pytest, it has no effect.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import rdmini  # noqa: E402
import seeds  # noqa: E402
from task import (EVAL_SEED, LONG_R_VALUES, R_VALUES, TASKS, VOCAB, cli, enough_r, eval_lengths,  # noqa: E402
                  evaluate, layout, make_batch, parallel_map, print_table, problem_tokens, random_problems, save_json,
                  Parser)


# ============================================================================================
# The final report: accuracy by r and by problem size, on held-out problems
# ============================================================================================

def final_report(params, cfg, args, out_dir, extra, name="results.json", trained=None):
    """Accuracy by r on held-out problems of size args.n_ops and longer ones, wrong answers; printed, and
    saved to name in the run folder (results["longer"][str(n)] per longer size n). trained: the size the
    run trained on, when --eval-only measures another (args.n_ops otherwise)."""
    task, trained = args.task, trained or args.n_ops
    rng = np.random.default_rng(EVAL_SEED)
    problems = random_problems(rng, args.eval_problems, args.n_ops, task)
    label, unit = ("op", "operations") if task == "running" else ("d", "digits per number")
    r_show = enough_r(args.n_ops)
    every = evaluate(params, cfg, problems, sorted(set(R_VALUES) | set(range(1, r_show + 1))), task,
                     threads=args.threads)                  # every r up to enough, for the thinking speed
    main = {r: every[r] for r in R_VALUES}
    print_table(f"Held-out accuracy, {len(problems)} problems with {args.n_ops} {unit} (all right = every "
                f"answer right; {label}J = the answer at position J)", main, label)
    results = {"task": task, "n_ops": args.n_ops, "trained_n_ops": trained, **extra,
               "enough_r": r_show, "accuracy_by_r": {str(r): v[0] for r, v in main.items()},
               "accuracy_by_every_r": {str(r): v[0] for r, v in every.items()},
               "position_accuracy_by_r": {str(r): v[1] for r, v in main.items()}, "longer": {}}
    for n in eval_lengths(args.n_ops, task):
        longer_problems = random_problems(rng, max(1, args.eval_problems // 4), n, task)
        if len(layout(longer_problems[0], task)[0]) > cfg.max_seq_len:
            continue
        longer = evaluate(params, cfg, longer_problems, LONG_R_VALUES, task, threads=args.threads)
        results["longer"][str(n)] = {"problems": len(longer_problems),
                                     "accuracy_by_r": {str(r): v[0] for r, v in longer.items()}}
        if n == args.n_ops + 4:           # the per-position table once; beyond it, one line per size
            print_table(("Longer than trained: " if n > trained else "")
                        + f"{len(longer_problems)} problems with {n} {unit}", longer, label)
            results["longer"][str(n)]["position_accuracy_by_r"] = {str(r): v[1] for r, v in longer.items()}
    if len(results["longer"]) > 1:
        print(f"\nAll right by problem size (trained on {trained} {unit}; "
              f"{max(1, args.eval_problems // 4)} problems each):")
        print(f"{'size':>5} | " + " ".join(f"r={r:<4d}" for r in LONG_R_VALUES))
        sizes = {str(args.n_ops): results["accuracy_by_r"],
                 **{n: v["accuracy_by_r"] for n, v in results["longer"].items()}}
        for n, acc in sizes.items():
            print(f"{n:>5} | " + " ".join(f"{acc[str(r)]:6.3f}" if str(r) in acc else f"{'-':>6}"
                                          for r in LONG_R_VALUES))
    truths = [layout(p, task)[1] for p in problems]
    wrong = [(p, t, g) for p, t, g in zip(problems, truths, main[r_show][2]) if g != t]
    print(f"\nWrong answers at r = {r_show}: {len(wrong)} of {len(problems)}")
    for p, truth, guess in wrong[:5]:
        print(f"  problem {p}   truth {truth}   prediction {guess}")
    results["wrong_examples"] = [{"r": r_show, "problem": p, "truth": t, "prediction": g} for p, t, g in wrong[:10]]
    if "log" in extra:                               # a trained run: the measures seeds.py judges
        results["measures"] = seeds.run_measures(results)
    print(f"\nSaved {save_json(results, out_dir, name)}")
    return results



# ============================================================================================
# Training
# ============================================================================================

def keep_freed_memory():
    """Each step frees and allocates again the same 0.1-1 MB activation arrays; glibc's malloc maps them fresh
    from the system (or gives freed memory back), so every step pays a page fault per page again (a quarter
    of a step, by bench.py: docs/notes.md). Keep what is freed: arrays up to
    32 MiB come from the heap, and up to 1 GiB of it is kept (setting only the second is slower: any setting
    turns off glibc's automatic threshold). Numbers are unchanged; resident memory is higher by what glibc
    keeps. Linux with glibc only; anywhere else it does nothing and returns False."""
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                     # from glibc's <malloc.h>
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and mallopt(M_TRIM_THRESHOLD, 2**30))


def frontier_mask(logits, targets, mask):
    """The frontier loss: each problem is scored up to and including its first wrong answer, not after it.
    logits (B,T,V), targets (B,T), mask (B,T) bool -> a smaller mask (B,T).
    Once the model's own running value is wrong, the values after it cannot be worked out from it; scoring
    them rewards guessing from the whole problem, a shortcut that competes with the rule (previous value, one
    operation). As it learns, more answers are scored. Measured against --loss all in docs/notes.md."""
    wrong = (logits.argmax(axis=-1) != targets) & mask                                # (B,T)
    # (B,): each problem's first wrong position; T when none is wrong, so that every answer is scored
    first = np.where(wrong.any(axis=1), wrong.argmax(axis=1), mask.shape[1])
    return mask & (np.arange(mask.shape[1]) <= first[:, None])                        # (B,T)


def loss_and_grads(params, cfg, batch, r, k, state0, frontier=False):
    """One training step's forward, loss and backward, as plainly as it can be written: -> (loss, grads).
    frontier: score each problem only up to its first wrong answer (frontier_mask)."""
    tokens, targets, mask = batch
    logits, cache = rdmini.forward(params, cfg, tokens, r, k, state0=state0)        # forward: logits (B,T,V)
    if frontier:
        mask = frontier_mask(logits, targets, mask)                                 # (B,T): fewer answers scored
    loss, dlogits = rdmini.cross_entropy(logits, targets, mask)                     # loss: a mean over the mask
    grads = rdmini.backward(cache, dlogits)                                         # backward: {name: gradient}
    return loss, grads


def loss_and_grads_threaded(params, cfg, batch, r, k, state0, threads, frontier=False):
    """loss_and_grads with the batch cut into `threads` slices computed side by side (numpy's elementwise
    work, most of a step here, runs on one core and lets other threads run). The loss is a mean over the
    whole batch's scored answers, so each slice divides by that count (all forwards run before any
    backward), and the slices' losses and gradients add up in a fixed order: the same sums, reordered."""
    if threads == 1:
        return loss_and_grads(params, cfg, batch, r, k, state0, frontier)
    tokens, targets, mask = batch
    slices = np.array_split(np.arange(len(tokens)), threads)    # row numbers: `threads` runs of ~B/threads
    outs = parallel_map(lambda rows: rdmini.forward(params, cfg, tokens[rows], r, k, state0=state0[rows]),
                        slices, threads)                        # per slice: logits (B/threads,T,V), cache
    if frontier:
        mask = frontier_mask(np.concatenate([logits for logits, _ in outs]), targets, mask)
    count = int(mask.sum())

    def loss_and_backward(i):           # loss and backward of one slice of the batch
        (logits, cache), rows = outs[i], slices[i]
        loss, dlogits = rdmini.cross_entropy(logits, targets[rows], mask[rows], count)
        return loss, rdmini.backward(cache, dlogits)
    results = parallel_map(loss_and_backward, range(threads), threads)
    grads = results[0][1]
    for _, g in results[1:]:
        for name in grads:
            grads[name] += g[name]
    return sum(loss for loss, _ in results), grads


def default_n_ops(args):
    """--n-ops when not given: 12 operations (running) or 6 digits per number (addition)."""
    return args.n_ops or (12 if args.task == "running" else 6)


def make_config(args):
    args.n_ops = default_n_ops(args)
    return rdmini.Config(vocab_size=len(VOCAB), width=args.width, n_heads=args.heads,
                         mlp_hidden=2 * args.width, n_prelude=1, n_core=args.core, n_coda=1,
                         max_seq_len=max(64, 3 * args.n_ops + 15, 6 * args.n_ops + 1), mean_r=args.mean_r,
                         backprop_k=args.k, injection=args.injection, window=args.window)


def save(path, params, cfg, opt, step, rngs, args):
    rdmini.save_checkpoint(path, params, cfg, adam_m=opt["m"], adam_v=opt["v"], adam_t=opt["t"], step=step,
                           rngs={n: g.bit_generator.state for n, g in rngs.items()},
                           run={k: getattr(args, k) for k in RUN_KEYS})


# what a resumed run must share with the run it continues, or its numbers would mean something else
RUN_KEYS = ("task", "steps", "n_ops", "injection", "mean_r", "k", "width", "heads", "core", "seed", "batch", "lr",
            "warmup", "final_lr_ratio", "max_r", "weight_decay", "threads", "loss", "window")


def load(path, args):
    params, cfg, state = rdmini.load_checkpoint(path)
    if "run" not in state:
        raise ValueError(f"{path} is an rdmini checkpoint but not one written by train_toy.py")
    if args.eval_only:                  # evaluate what was trained, unless told another size
        args.task = state["run"]["task"]
        args.n_ops = args.n_ops or state["run"]["n_ops"]
    else:
        args.n_ops = args.n_ops or state["run"]["n_ops"]
        args.steps = args.steps or state["run"]["steps"]    # no --steps: the total the run was started with
        # what checkpoints from before these options used
        before = {"threads": 1, "loss": "all", "window": None, "final_lr_ratio": 0.1}
        saved = {k: state["run"].get(k, before.get(k)) for k in RUN_KEYS}
        shown = lambda k, v: 0 if k == "window" and v is None else v                  # as the flag writes it
        differ = [f"--{k.replace('_', '-')} {shown(k, saved[k])} there, {shown(k, getattr(args, k))} now"
                  for k in RUN_KEYS if k != "steps" and saved[k] != getattr(args, k)]
        if differ:
            raise ValueError(f"{path} was trained with different settings ({'; '.join(differ)}); "
                             "resume with the same options, or train into a new --out folder")
    opt = {"m": state["adam_m"], "v": state["adam_v"], "t": state["adam_t"]}
    return params, cfg, opt, state


def start_run(args, path):
    """A new run, or the saved one (--resume, --eval-only). -> params, cfg, opt, step, rngs, the saved state."""
    rngs = {"data": np.random.default_rng([args.seed, 0]),     # problems
            "r": np.random.default_rng([args.seed, 1]),        # recurrences per batch
            "noise": np.random.default_rng([args.seed, 2])}    # the initial state s_0
    if not (args.resume or args.eval_only):
        cfg = make_config(args)
        params = rdmini.init_params(cfg, args.seed)
        return params, cfg, rdmini.adamw_init(params), 0, rngs, None
    params, cfg, opt, state = load(path, args)
    for n, g in rngs.items():
        g.bit_generator.state = state["rngs"][n]
    print(f"Loaded {path} at step {state['step']}")
    return params, cfg, opt, state["step"], rngs, state


def describe(cfg, args, n_params):
    """The run's first line: what is trained, on what."""
    return (f"Training {n_params:,} parameters: {cfg.n_prelude} prelude + {cfg.n_core} core x r + {cfg.n_coda} "
            f"coda blocks, width {cfg.width}" + (f", attention window {cfg.window}" if cfg.window else "")
            + f"; r ~ mean {args.mean_r} (at most {args.max_r}), k = {args.k}; "
            f"{args.steps} steps of {args.batch} {args.task} problems of size {args.n_ops} (and their prefixes); "
            + ("each scored up to its first wrong answer (--loss frontier)" if args.loss == "frontier"
               else "every answer scored (--loss all)"))


def train_step(params, cfg, opt, rngs, args, step):
    """One step of training: a batch, forward, loss, backward, update. -> loss, gradient norm, r, tokens."""
    r = min(rdmini.sample_r(rngs["r"], args.mean_r), args.max_r)
    batch = make_batch(rngs["data"], args.batch, args.n_ops, args.task)
    tokens = batch[0]
    state0 = rdmini.initial_state(cfg, tokens.shape + (cfg.width,), rngs["noise"])   # s_0: (B,T,h)
    frontier = args.loss == "frontier"
    if args.threads == 1:                                            # forward, loss, backward
        loss, grads = loss_and_grads(params, cfg, batch, r, args.k, state0, frontier)
    else:                                                            # the same, in slices side by side
        loss, grads = loss_and_grads_threaded(params, cfg, batch, r, args.k, state0, args.threads, frontier)
    lr = rdmini.learning_rate(step, args.steps, args.lr, args.warmup, args.final_lr_ratio)
    norm = rdmini.adamw_update(params, grads, opt, lr, betas=(0.9, 0.98), weight_decay=args.weight_decay)  # update
    return loss, norm, r, tokens.size


def step_peak_bytes(params, cfg, args):
    """Peak bytes numpy allocates in one training step's forward, loss and backward (tracemalloc sees numpy's
    buffers), in one thread, at r = the recipe's mean r rounded, on a batch of its own: the same for every seed."""
    rng = np.random.default_rng(0)
    batch = make_batch(rng, args.batch, args.n_ops, args.task)
    state0 = rdmini.initial_state(cfg, batch[0].shape + (cfg.width,), rng)
    tracemalloc.start()
    loss_and_grads(params, cfg, batch, max(1, round(args.mean_r)), args.k, state0, args.loss == "frontier")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def train(args):
    path = os.path.join(args.out, "checkpoint.npz")
    params, cfg, opt, step, rngs, state = start_run(args, path)
    n_params = sum(w.size for w in params.values())
    if args.eval_only:               # at another size than trained: its own file, the run's results.json kept
        other = args.n_ops != state["run"]["n_ops"]
        return final_report(params, cfg, args, args.out, {"step": step},
                            f"results_{args.n_ops}.json" if other else "results.json", state["run"]["n_ops"])
    print(describe(cfg, args, n_params))

    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))     # finish the step, save, exit
    quick = random_problems(np.random.default_rng(EVAL_SEED + 1), 256, args.n_ops, args.task)
    r_eval = args.r or enough_r(args.n_ops)                            # the progress line's r
    t0, tokens_seen, step_in_run, last_good, log = time.time(), 0, 0, None, []
    while step < args.steps and not stop["now"]:
        if args.stop_at is not None and step >= args.stop_at:
            stop["now"] = True                  # as if interrupted here: the resume test uses this
            break
        if args.minutes and time.time() - t0 > 60 * args.minutes:
            print(f"Time budget of {args.minutes} minutes reached at step {step}")
            break
        loss, norm, r, n_tokens = train_step(params, cfg, opt, rngs, args, step)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            print(f"error: the loss became non-finite at step {step} (loss {loss}, gradient norm {norm}). "
                  f"The checkpoint in {path} is the last good one{'' if last_good is not None else ' (none yet)'}; "
                  "try a smaller --lr.", file=sys.stderr)
            sys.exit(1)
        step, step_in_run, tokens_seen = step + 1, step_in_run + 1, tokens_seen + n_tokens
        if step % args.log_every == 0 or step == args.steps:
            acc = evaluate(params, cfg, quick, [r_eval], args.task)[r_eval][0]
            log.append({"step": step, "loss": round(loss, 4), "r": r, "accuracy": acc})
            el = time.time() - t0
            left = el / step_in_run * (args.steps - step)
            print(f"step {step:5d}/{args.steps} | loss {loss:.4f} | r {r:2d} | held-out all right {acc:.3f} at "
                  f"r={r_eval} | {tokens_seen / el:6.0f} tok/s | {el:4.0f}s elapsed, {left:4.0f}s left", flush=True)
        if step % args.save_every == 0:
            save(path, params, cfg, opt, step, rngs, args)
            last_good = step
    if stop["now"]:
        save(path, params, cfg, opt, step, rngs, args)
        print(f"Interrupted: saved step {step} to {path}; continue with --resume")
        return None
    wall = time.time() - t0
    print(f"Trained {step} steps in {wall:.0f} s")
    save(path, params, cfg, opt, step, rngs, args)
    mean_r, mean_k = seeds.expected_r(args.mean_r, args.max_r, args.k)      # the cost: counted and measured
    flops = seeds.count_flops(cfg, args.batch, problem_tokens(args.n_ops, args.task), mean_r, mean_k)["total"]
    return final_report(params, cfg, args, args.out, {"step": step, "loss": args.loss, "train_seconds": round(wall, 1),
                                                      "params": n_params, "flops_per_step": flops,
                                                      "peak_step_bytes": step_peak_bytes(params, cfg, args),
                                                      "log": log})


# The lab recipe (--lab): a run of about two minutes with one thread, two side by side on 2 cores, where
# the recurrence is needed and its reference (docs/lab_reference.json, seeds 0-9) is tight where a change
# shows: the trained length and 4x it. Half the default batch learns the rule in about as many steps, so
# in half the time; one thread per run, always, so that any machine reproduces the reference seed by seed
# (why these: docs/notes.md, 2026-12-07). Flags given beside --lab override these, except --threads.
LAB = {"n_ops": 6, "batch": 64, "steps": 4000, "threads": 1, "out": os.path.join("runs", "lab")}
STEPS = 6000                           # the default run's training steps (on 12 operations)


def make_parser(description=None):
    """The recipe's and the run's flags; bench.py adds its own to this parser."""
    p = Parser(description or __doc__.split("\n\n")[0])
    p.add_argument("--lab", action="store_true",
                   help="the classroom lab's recipe: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in LAB.items())
                        + "; any of these flags given beside it wins")
    p.add_argument("--steps", type=int, default=None,
                   help=f"total training steps (default {STEPS}; with --resume, the total the run was started with)")
    p.add_argument("--minutes", type=float, default=None, help="also stop after this many minutes")
    p.add_argument("--task", choices=TASKS, default="running",
                   help="running: running values of a chain mod 10; addition: forward-order sums")
    p.add_argument("--n-ops", type=int, default=None,
                   help="most operations per problem (running, default 12) or digits per number (addition, default 6)")
    p.add_argument("--mean-r", type=float, default=10.0, help="mean recurrences per step (1 = no recurrence)")
    p.add_argument("--max-r", type=int, default=32, help="cap on the r drawn per step")
    p.add_argument("--k", type=int, default=4, help="backprop through the last k iterations")
    p.add_argument("--width", type=int, default=64, help="model width h")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--core", type=int, default=1, help="transformer blocks in the core")
    p.add_argument("--injection", choices=("concat", "add"), default="concat",
                   help="how e enters each iteration: concat adapter [s, e] @ W, or s + e")
    p.add_argument("--window", type=int, default=None,
                   help="attention window: each position sees itself and the window - 1 positions before it; "
                        "0: the whole prefix, as Huginn (default: 2 for running, 0 for addition, whose answers "
                        "need digits far back)")
    p.add_argument("--batch", type=int, default=128, help="problems per step")
    p.add_argument("--threads", type=int, default=2,
                   help="threads that share each batch (one per core is fastest); part of the run: the same "
                        "seed with other --threads gives another run, so keep 2 to reproduce the README")
    p.add_argument("--loss", choices=("frontier", "all"), default=None,
                   help="frontier: score each problem up to its first wrong answer (default for running); "
                        "all: score every answer (default for addition, where an answer digit does not follow "
                        "from the one before it, so a wrong one says nothing about the next)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="warmup steps")
    p.add_argument("--final-lr-ratio", type=float, default=0.0,
                   help="the cosine decay ends at --lr times this at the last step (0: at zero)")
    p.add_argument("--weight-decay", type=float, default=0.3, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    p.add_argument("--r", type=int, default=None,
                   help=f"test-time r for the progress line (default: the first of {', '.join(map(str, R_VALUES))} "
                        "at least --n-ops + 2: 8 for --lab, 16 for the default)")
    p.add_argument("--out", default=os.path.join("runs", "toy"), help="run folder")
    p.add_argument("--seeds", default=None,
                   help="train once per seed, e.g. 0-4 or 0,3,7, each into OUT/seed<N>, and summarise them in "
                        "OUT/summary.json: mean and min-max per r")
    p.add_argument("--jobs", type=int, default=None,
                   help="--seeds: runs at once (default: the cores divided by --threads)")
    p.add_argument("--compare", metavar="REFERENCE", default=None,
                   help="--seeds: compare with the summary.json in REFERENCE (a folder or the file; "
                        "docs/lab_reference.json is --lab's over seeds 0-9)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--stop-at", type=int, default=None, help="stop and save at this step, as Ctrl-C would")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate the checkpoint in --out; with another --n-ops than trained, into results_N.json")
    p.add_argument("--log-every", type=int, default=100, help="steps between progress lines")
    p.add_argument("--save-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--eval-problems", type=int, default=2000, help="held-out problems in the final table")
    return p


def parse_args(argv, p=None):
    p = p or make_parser()
    args = p.parse_args(argv)
    if args.lab:                       # the lab's defaults, then the command line again: what it names wins
        p.set_defaults(**LAB)
        args = p.parse_args(argv)
    return check_args(p, args)


def check_args(p, args):
    """Refuse bad settings up front, each with one line that names the flag (argparse's error: exit 2)."""
    if args.steps is None and not args.resume:
        args.steps = STEPS
    for name, low in (("steps", 1), ("mean_r", 1), ("max_r", 1), ("k", 1), ("width", 2),
                      ("heads", 1), ("core", 1), ("window", 0), ("jobs", 1), ("batch", 1), ("threads", 1), ("r", 1),
                      ("log_every", 1), ("save_every", 1), ("eval_problems", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    args.loss = args.loss or ("frontier" if args.task == "running" else "all")
    if args.window is None:                               # running: the rule needs the previous position only
        args.window = 2 if args.task == "running" else 0
    args.window = args.window or None                     # 0: no window (Config's None)
    if args.n_ops is not None and args.n_ops < 1:
        p.error(f"--n-ops must be >= 1, got {args.n_ops}")
    if args.lab and args.threads != 1:
        p.error(f"--lab trains one thread per run (--threads 1), so that any machine reproduces its reference seed "
                f"by seed; got --threads {args.threads}. Run seeds side by side instead: --seeds 0-4 --jobs 2")
    if args.threads > args.batch:
        p.error(f"--threads ({args.threads}) cannot exceed --batch ({args.batch}): "
                "each thread takes a slice of the batch")
    for name, value in vars(args).items():           # nan compares False with everything: refuse it by name
        if isinstance(value, float) and not math.isfinite(value):
            p.error(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if args.lr <= 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.final_lr_ratio <= 1:
        p.error(f"--final-lr-ratio must be between 0 and 1, got {args.final_lr_ratio}")
    if args.compare and args.seeds is None:
        p.error("--compare goes with --seeds: run the variant over several seeds to compare it")
    if args.seeds is not None and (args.resume or args.eval_only or args.stop_at is not None):
        p.error("--seeds trains new runs to the end: it does not go with --resume, --eval-only or --stop-at")
    return args


def check_out_folder(folder):
    """Make the run folder and try writing in it now, so that a folder that cannot be written (a read-only
    or virtual file system, a path through a file) is refused before training, not after it."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"cannot write the run folder --out {folder} ({err.strerror or err}); "
                         "choose another folder") from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    keep_freed_memory()
    return cli(run, args, argv)


def run(args, argv):
    """A run, or (--seeds) several, each this script as a process of its own."""
    if not args.eval_only:
        check_out_folder(args.out)
    if args.seeds is not None:
        args.n_ops = default_n_ops(args)
        return seeds.run_seeds(args, argv, os.path.abspath(__file__), RUN_KEYS)
    return train(args)


if __name__ == "__main__":
    main()
