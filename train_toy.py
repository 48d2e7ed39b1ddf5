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

    python train_toy.py                  # train (the README gives its time), then accuracy for every r
    python train_toy.py --mean-r 1 --k 1 # the same network without recurrence, the baseline
    python train_toy.py --lab            # the classroom lab's recipe: a shorter run
    python train_toy.py --lab --seeds 0-4 --compare docs/lab_reference.json   # a variant over 5 seeds
    python train_toy.py --help           # every option
Beside it: think.py (watch a trained model think; the KV cache, adaptive exit) and bench.py (speed, memory).

Where things are: the task itself (problems, their truth, tokens, batches, evaluation) is task.py; the model
is rdmini.py. Here: the final report (final_report), one training step (loss_and_grads: forward, loss,
backward; train_step: a batch, that, the update), the loop (train), and the command line (make_parser,
parse_args, main). seeds.py runs --seeds and --compare.
"""
import argparse
import math
import os
import signal
import sys
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
from task import (EVAL_SEED, LONG_R_VALUES, MAX_EVAL_PROBLEMS, MAX_R, R_VALUES, TASKS, VOCAB, Parser,  # noqa: E402
                  attention_bytes, check_memory, check_out_folder, cli, enough_r, eval_lengths, evaluate,
                  keep_freed_memory, layout, make_batch, parallel_map, print_table, problem_tokens,
                  random_problems, remove_empty, save_json)


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


def make_config(args):
    """The model a recipe trains, long enough for the final report's longest problems (6 x --n-ops)."""
    return rdmini.Config(vocab_size=len(VOCAB), width=args.width, n_heads=args.heads,
                         mlp_hidden=2 * args.width, n_prelude=1, n_core=args.core, n_coda=1,
                         max_seq_len=max(64, 3 * args.n_ops + 15, 6 * args.n_ops + 1), mean_r=args.mean_r,
                         backprop_k=args.k, injection=args.injection, window=args.window)


def save(path, params, cfg, opt, step, rngs, args, seconds, log):
    """The checkpoint: the model, Adam's moments, the step, the random streams, the recipe, and the training
    time and progress lines so far (a resumed run reports the whole run's)."""
    rdmini.save_checkpoint(path, params, cfg, adam_m=opt["m"], adam_v=opt["v"], adam_t=opt["t"], step=step,
                           rngs={n: g.bit_generator.state for n, g in rngs.items()},
                           run={k: getattr(args, k) for k in RUN_KEYS}, train_seconds=round(seconds, 1), log=log)


# what a resumed run must share with the run it continues, or its numbers would mean something else
RUN_KEYS = ("task", "steps", "n_ops", "injection", "mean_r", "k", "width", "heads", "core", "seed", "batch", "lr",
            "warmup", "final_lr_ratio", "max_r", "weight_decay", "threads", "loss", "window")
BEFORE = {"threads": 1, "loss": "all", "window": None, "final_lr_ratio": 0.1}   # checkpoints from before these


def load(path):
    """The checkpoint train_toy.py wrote at path -> params, cfg, opt, state; state["run"] holds every one
    of RUN_KEYS (a checkpoint from before an option has the value runs had then)."""
    params, cfg, state = rdmini.load_checkpoint(path)
    if "run" not in state:
        raise ValueError(f"{path} is an rdmini checkpoint but not one written by train_toy.py")
    state["run"] = {k: state["run"].get(k, BEFORE.get(k)) for k in RUN_KEYS}
    opt = {"m": state["adam_m"], "v": state["adam_v"], "t": state["adam_t"]}
    return params, cfg, opt, state


def new_rngs(seed):
    """The run's random streams, one per use, so that a change to one leaves the others' draws alone."""
    return {"data": np.random.default_rng([seed, 0]),     # problems
            "r": np.random.default_rng([seed, 1]),        # recurrences per batch
            "noise": np.random.default_rng([seed, 2])}    # the initial state s_0


def start_run(args, checkpoint):
    """A new run, or the saved one (checkpoint, on --resume and --eval-only).
    -> params, cfg, opt, step, rngs, the saved state (None for a new run)."""
    rngs = new_rngs(args.seed)
    if checkpoint is None:
        cfg = make_config(args)
        params = rdmini.init_params(cfg, args.seed)
        return params, cfg, rdmini.adamw_init(params), 0, rngs, None
    params, cfg, opt, state = checkpoint
    for n, g in rngs.items():
        g.bit_generator.state = state["rngs"][n]
    print(f"Loaded {os.path.join(args.out, 'checkpoint.npz')} at step {state['step']}")
    return params, cfg, opt, state["step"], rngs, state


def describe(cfg, args, n_params):
    """The run's first line: what is trained, on what."""
    return (f"Training {n_params:,} parameters: {cfg.n_prelude} prelude + {cfg.n_core} core x r + {cfg.n_coda} "
            f"coda blocks, width {cfg.width}" + (f", attention window {cfg.window}" if cfg.window else "")
            + f"; r ~ mean {args.mean_r} (at most {args.max_r}), k = {args.k}; "
            f"{args.steps} steps of {args.batch} {args.task} problems of size {args.n_ops} (and their prefixes); "
            + ("each scored up to its first wrong answer (--loss frontier)" if args.loss == "frontier"
               else "every answer scored (--loss all)"))


def train_step(params, cfg, opt, rngs, args, step, r=None):
    """One step of training: a batch, forward, loss, backward, update. -> loss, gradient norm, r, tokens.
    r: the recurrences, drawn when not given (bench.py gives one, to time the same step every time)."""
    if r is None:
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


def train(args, checkpoint=None):
    """Train the recipe args (from the start, or from checkpoint: --resume), then the final report; with
    --eval-only, only the report."""
    path = os.path.join(args.out, "checkpoint.npz")
    params, cfg, opt, step, rngs, state = start_run(args, checkpoint)
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
    before = state.get("train_seconds", 0.0) if state else 0.0         # trained before a --resume
    log = list(state.get("log", [])) if state else []
    t0, tokens_seen, step_in_run, last_good = time.time(), 0, 0, None
    seconds = lambda: before + time.time() - t0                        # the whole run's training time
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
                  f"r={r_eval} | {tokens_seen / el:6.0f} tok/s | {before + el:4.0f}s elapsed, {left:4.0f}s left",
                  flush=True)
        if step % args.save_every == 0:
            save(path, params, cfg, opt, step, rngs, args, seconds(), log)
            last_good = step
    wall = seconds()
    save(path, params, cfg, opt, step, rngs, args, wall, log)
    if stop["now"]:
        print(f"Interrupted: saved step {step} to {path}; continue with --resume")
        return None
    print(f"Trained {step} steps in {wall:.0f} s" + (f" ({before:.0f} s of them before --resume)" if before else ""))
    mean_r, mean_k = seeds.expected_r(args.mean_r, args.max_r, args.k)      # the cost: counted and measured
    flops = seeds.count_flops(cfg, args.batch, problem_tokens(args.n_ops, args.task), mean_r, mean_k)["total"]
    return final_report(params, cfg, args, args.out, {"step": step, "loss": args.loss, "train_seconds": round(wall, 1),
                                                      "params": n_params, "flops_per_step": flops,
                                                      "peak_step_bytes": step_peak_bytes(params, cfg, args),
                                                      "log": log})


# The lab recipe (--lab): a short run with one thread, so that two go side by side on 2 cores, where
# the recurrence is needed and its reference (docs/lab_reference.json, seeds 0-9) is tight where a change
# shows: the trained length and twice it. Half the default batch learns the rule in about as many steps, so
# in half the time; one thread per run, always, so that no thread split changes the sums from the reference's
# (why these: docs/notes.md, "2026-12-07 (issue 27)"). Flags given beside --lab override these, except --threads.
LAB = {"n_ops": 6, "batch": 64, "steps": 4000, "threads": 1, "out": os.path.join("runs", "lab")}
STEPS = 6000                           # the default run's training steps (on 12 operations)


def make_parser(description=None, run=True):
    """The recipe's flags and, with run, the run's (where, how long, how often it reports, --lab, --seeds,
    --resume). bench.py times one step: it takes the recipe's flags only, and adds its own."""
    p = Parser(description or __doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None,
                   help=f"total training steps (default {STEPS}; with --resume, the total the run was started with)")
    p.add_argument("--task", choices=TASKS, default="running",
                   help="running: running values of a chain mod 10; addition: forward-order sums")
    p.add_argument("--n-ops", type=int, default=None,
                   help="most operations per problem (running, default 12) or digits per number (addition, default 6)")
    p.add_argument("--mean-r", type=float, default=10.0, help="mean recurrences per step (1 = no recurrence)")
    p.add_argument("--max-r", type=int, default=32, help=f"cap on the r drawn per step (at most {MAX_R})")
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
    if not run:
        return p
    p.add_argument("--lab", action="store_true",
                   help="the classroom lab's recipe: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in LAB.items())
                        + "; any of these flags given beside it wins")
    p.add_argument("--minutes", type=float, default=None, help="also stop after this many minutes")
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
    p.add_argument("--eval-problems", type=int, default=2000,
                   help=f"held-out problems in the final table (at most {MAX_EVAL_PROBLEMS:,})")
    return p


def parse_args(argv, p=None):
    """The command line -> the recipe, resolved (read_recipe without the checkpoint)."""
    return read_recipe(argv, p)[0]


def read_recipe(argv, p=None):
    """The one place the recipe is made: the flags, --lab's defaults under them, checked (check_args), then
    resolved with the checkpoint's settings on --resume or --eval-only (resolve). Nothing changes it after.
    -> (the recipe, the checkpoint as load() gives it, or None for a new run)."""
    p = p or make_parser()
    given = p.parse_args(argv)
    if vars(given).get("lab"):         # the lab's defaults, then the command line again: what it names wins
        p.set_defaults(**LAB)
        given = p.parse_args(argv)
    check_args(p, given)
    resumed = vars(given).get("resume") or vars(given).get("eval_only")
    checkpoint = load(os.path.join(given.out, "checkpoint.npz")) if resumed else None
    return resolve(given, checkpoint and checkpoint[3]["run"]), checkpoint


def resolve(given, saved=None):
    """The recipe from the checked flags `given` and, on --resume or --eval-only, the settings `saved` with the
    checkpoint -> a new namespace. Flags left out take the task's defaults: --n-ops 12 (running) or 6
    (addition), --loss frontier or all, --window 2 or 0 (0: the whole prefix, Config's None), --steps 6000.
    A resumed run keeps its size and total steps unless told, and is refused if told other settings;
    --eval-only measures the model as trained (its saved recipe), at --n-ops if given."""
    got = dict(vars(given))
    if saved and given.eval_only:
        got.update({k: saved[k] for k in RUN_KEYS if k not in ("n_ops", "threads")})
    else:
        got["loss"] = given.loss or ("frontier" if given.task == "running" else "all")
        window = given.window if given.window is not None else 2 if given.task == "running" else 0
        got["window"] = window or None
        got["steps"] = given.steps or (saved["steps"] if saved else STEPS)
    got["n_ops"] = given.n_ops or (saved["n_ops"] if saved else 12 if got["task"] == "running" else 6)
    args = argparse.Namespace(**got)
    if saved and not given.eval_only:
        shown = lambda k, v: 0 if k == "window" and v is None else v                  # as the flag writes it
        differ = [f"--{k.replace('_', '-')} {shown(k, saved[k])} there, {shown(k, got[k])} now"
                  for k in RUN_KEYS if k != "steps" and saved[k] != got[k]]
        if differ:
            raise ValueError(f"{os.path.join(given.out, 'checkpoint.npz')} was trained with different settings "
                             f"({'; '.join(differ)}); resume with the same options, or train into a new --out folder")
    return args


# (flag, lowest value, highest value or None) of every number a flag takes
LIMITS = (("steps", 1, None), ("n_ops", 1, None), ("mean_r", 1, None), ("max_r", 1, MAX_R), ("k", 1, None),
          ("width", 2, None), ("heads", 1, None), ("core", 1, None), ("window", 0, None), ("batch", 1, None),
          ("threads", 1, None), ("warmup", 0, None), ("weight_decay", 0, None), ("seed", 0, None),
          ("minutes", 0, None), ("r", 1, MAX_R), ("jobs", 1, None), ("stop_at", 0, None), ("log_every", 1, None),
          ("save_every", 1, None), ("eval_problems", 1, MAX_EVAL_PROBLEMS))


def check_args(p, args):
    """Refuse bad flags up front, each with one line that names the flag (the parser's error: exit 2).
    It only reads args."""
    if vars(args).get("lab") and args.threads != 1:
        p.error(f"--lab trains one thread per run (--threads 1), so that its sums are the reference's, seed by "
                f"seed; got --threads {args.threads}. Run seeds side by side instead: --seeds 0-4 --jobs 2")
    for name, value in vars(args).items():           # nan compares False with everything: refuse it by name
        if isinstance(value, float) and not math.isfinite(value):
            p.error(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    for name, low, high in LIMITS:
        value, flag = vars(args).get(name), "--" + name.replace("_", "-")
        if value is None:
            continue
        if value < low or (name == "minutes" and value == 0):
            p.error(f"{flag} must be {'>' if name == 'minutes' else '>='} {low}, got {value}")
        if high is not None and value > high:
            p.error(f"{flag} must be <= {high:,}, got {value:,}: " + LIMIT_WHY[name])
    if args.mean_r > args.max_r:
        p.error(f"--mean-r ({args.mean_r:g}) cannot exceed --max-r ({args.max_r}): draws above --max-r are cut "
                "to it, so the mean r would not be --mean-r")
    if args.threads > args.batch:
        p.error(f"--threads ({args.threads}) cannot exceed --batch ({args.batch}): "
                "each thread takes a slice of the batch")
    if args.lr <= 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.final_lr_ratio <= 1:
        p.error(f"--final-lr-ratio must be between 0 and 1, got {args.final_lr_ratio}")
    if vars(args).get("compare") and args.seeds is None:
        p.error("--compare goes with --seeds: run the variant over several seeds to compare it")
    if vars(args).get("seeds") is not None and (args.resume or args.eval_only or args.stop_at is not None):
        p.error("--seeds trains new runs to the end: it does not go with --resume, --eval-only or --stop-at")


LIMIT_WHY = {
    "max_r": f"the evaluation measures r up to {max(LONG_R_VALUES)}, and a step's time grows with r",
    "r": f"the evaluation measures r up to {max(LONG_R_VALUES)}, and the progress line's time grows with r",
    "eval_problems": (f"{MAX_EVAL_PROBLEMS:,} problems already measure an accuracy of 50% to within "
                      f"{100 * 1.96 * math.sqrt(0.25 / MAX_EVAL_PROBLEMS):.1f} points (95%), and the time grows "
                      "with the count")}


# Memory: numpy's attention arrays (B,H,T,T) grow with the square of the problem's length, and are what
# runs out first on long problems. The counts of them below were checked with tracemalloc (docs/notes.md).

def step_memory(args):
    """At least how many bytes a training step of the recipe takes: the parameters, their gradients and
    Adam's two moments; per thread, two attention arrays for each block the backward walks through and two
    more while it runs. A lower estimate: it leaves out the smaller arrays."""
    cfg = make_config(args)
    weights = sum(math.prod(shape) for shape in rdmini.param_shapes(cfg).values()) * np.dtype(cfg.dtype).itemsize
    kept = cfg.n_prelude + cfg.n_coda + min(args.k, args.max_r) * cfg.n_core
    per_thread = attention_bytes(cfg, -(-args.batch // args.threads), problem_tokens(args.n_ops, args.task))
    return 4 * weights + args.threads * per_thread * (2 * kept + 2)


def memory_needed(args):
    """The largest computations of a run -> [(at least how many bytes, what)]: a training step, the progress
    line's evaluation, the final report's (evaluate: seven (B,H,T,T) arrays for the problems in flight)."""
    cfg = make_config(args)
    sizes = [(args.n_ops, args.eval_problems)] + [(n, max(1, args.eval_problems // 4))
                                                  for n in eval_lengths(args.n_ops, args.task)]
    sizes = [(n, count) for n, count in sizes if problem_tokens(n, args.task) <= cfg.max_seq_len]
    final = max(7 * attention_bytes(cfg, min(count, 500 * args.threads), problem_tokens(n, args.task))
                for n, count in sizes)
    longest = max(n for n, _ in sizes)
    unit = "operations" if args.task == "running" else "digits per number"
    out = [(final, f"the final report's evaluation (problems of up to {longest} {unit})")]
    if not args.eval_only:
        out += [(step_memory(args), "a training step"),
                (7 * attention_bytes(cfg, 256, problem_tokens(args.n_ops, args.task)),
                 "the progress line's evaluation")]
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    return cli(run, argv)


def run(argv):
    """A run, or (--seeds) several, each this script as a process of its own. Every refusal comes before
    the run folder is made, or removes it if this made it and it is still empty."""
    args, checkpoint = read_recipe(argv)
    check_memory(memory_needed(args))
    keep_freed_memory()
    made = [] if args.eval_only else check_out_folder(args.out)
    try:
        if args.seeds is not None:
            return seeds.run_seeds(args, argv, os.path.abspath(__file__), RUN_KEYS)
        return train(args, checkpoint)
    except ValueError:
        remove_empty(made)
        raise


if __name__ == "__main__":
    main()
