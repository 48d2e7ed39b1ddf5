"""train_toy.py: watch a recurrent-depth model learn to think longer, on a laptop CPU, in minutes.

The task: running arithmetic mod 10. A problem such as 3+5*2-7 is evaluated left to right, keeping only
the last digit, and the model writes the running value under every operand:

    position   0  1  2  3  4  5  6
    x          3  +  5  *  2  -  7        the problem, one token per character
    targets    3  .  8  .  6  .  9        3, 3+5 = 8, 8*2 = 16 -> 6, 6-7 = -1 -> 9
    mask       1  0  1  0  1  0  1        only operand positions count in the loss

Operations do not commute, so the value at operand j needs every operation before it: this is state
tracking, and a fixed stack of layers falls behind as the chain grows. Each iteration of the core lets
the answer travel about one operation further, so the accuracy on long chains should climb with r.

    python train_toy.py                  # train (a few minutes), then print accuracy for every r
    python train_toy.py --mean-r 1 --k 1 # the same network without recurrence, the baseline
    python train_toy.py --help           # every option
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np

import rdmini

VOCAB = "0123456789+-*=."              # '.' pads problems shorter than the batch's longest
PAD = VOCAB.index(".")
TOKEN = {c: i for i, c in enumerate(VOCAB)}
EVAL_SEED = 2025                       # held-out problems come from their own stream, the same in every run
R_VALUES = (1, 2, 3, 4, 6, 8, 16, 32, 64)


# ============================================================================================
# The task: ground truth in plain Python, then batches of tokens / targets / mask
# ============================================================================================

def running_values(problem):
    """The truth, by hand: running_values("3+5*2-7") == "3869"."""
    value = int(problem[0])
    out = [value]
    for op, digit in zip(problem[1::2], problem[2::2]):
        value = {"+": value + int(digit), "-": value - int(digit), "*": value * int(digit)}[op] % 10
        out.append(value)
    return "".join(str(v) for v in out)


def random_problems(rng, count, n_ops):
    """count problems of exactly n_ops operations each, e.g. '3+5*2-7' for n_ops = 3."""
    digits = rng.integers(0, 10, size=(count, n_ops + 1))
    ops = rng.integers(0, 3, size=(count, n_ops))
    return ["".join(str(d) + "+-*"[o] for d, o in zip(ds, os_)) + str(ds[-1]) for ds, os_ in zip(digits, ops)]


def encode(problems, T=None):
    """Problems -> tokens (B,T), targets (B,T), mask (B,T): the answer under every operand, padded to T."""
    T = T or max(len(p) for p in problems)
    tokens = np.full((len(problems), T), PAD, dtype=np.int64)
    targets = np.zeros((len(problems), T), dtype=np.int64)
    mask = np.zeros((len(problems), T), dtype=bool)
    for b, p in enumerate(problems):
        tokens[b, :len(p)] = [TOKEN[c] for c in p]
        targets[b, 0:len(p):2] = [int(v) for v in running_values(p)]
        mask[b, 0:len(p):2] = True
    return tokens, targets, mask


def make_batch(rng, batch_size, n_ops):
    """A training batch: each problem has between 1 and n_ops operations, so short chains are learnt
    alongside long ones. -> tokens, targets, mask, each (B, 2 * n_ops + 1)."""
    lengths = rng.integers(1, n_ops + 1, size=batch_size)
    problems = [random_problems(rng, 1, int(n))[0] for n in lengths]
    return encode(problems, T=2 * n_ops + 1)


def check_problem(problem, cfg):
    """A clear error for a problem the model cannot read, instead of a traceback deep in numpy."""
    if not problem:
        raise ValueError("the problem is empty; write one like 3+5*2-7")
    bad = sorted(set(problem) - set("0123456789+-*"))
    if bad:
        raise ValueError(f"the problem {problem!r} has characters {bad} the model does not know; "
                         "use single digits 0-9 and the operators + - *")
    if len(problem) % 2 == 0 or not problem[0::2].isdigit() or any(c.isdigit() for c in problem[1::2]):
        raise ValueError(f"the problem {problem!r} must alternate digit, operator, digit, ... "
                         "(single digits, e.g. 3+5*2-7)")
    if len(problem) > cfg.max_seq_len:
        raise ValueError(f"the problem has {len(problem)} characters; this model reads at most {cfg.max_seq_len}")


def predict(params, cfg, problem, r, rng=None):
    """The model's running values for one problem after r iterations, e.g. '3869'."""
    check_problem(problem, cfg)
    tokens, _, mask = encode([problem])
    logits, _ = rdmini.forward(params, cfg, tokens, r, rng=rng)
    return "".join(str(d) for d in logits[0].argmax(-1)[mask[0]])


# ============================================================================================
# Evaluation: accuracy for every r, from one pass that decodes the state at each r on its way
# ============================================================================================

def evaluate(params, cfg, problems, rs, chunk=500):
    """-> {r: (all-right accuracy, accuracy per operand position, predictions)} on equal-length problems."""
    tokens, targets, mask = encode(problems)
    right = {r: [] for r in rs}
    preds = {r: [] for r in rs}
    for i in range(0, len(problems), chunk):
        sl = slice(i, i + chunk)
        # a fixed noise stream per chunk: evaluation is reproducible and the same for every r
        logits = rdmini.logits_by_r(params, cfg, tokens[sl], set(rs), rng=np.random.default_rng(i))
        for r in rs:
            guess = logits[r].argmax(-1)
            right[r].append((guess == targets[sl])[:, mask[0]])            # (chunk, n_ops + 1)
            preds[r] += ["".join(map(str, g[mask[0]])) for g in guess]
    out = {}
    for r in rs:
        ok = np.concatenate(right[r])
        out[r] = (float(ok.all(axis=1).mean()), [float(a) for a in ok.mean(axis=0)], preds[r])
    return out


def print_table(title, result):
    n_pos = len(next(iter(result.values()))[1])
    print(f"\n{title}")
    print("   r | all right | " + " ".join(f"op{j:<2d}" for j in range(n_pos)))
    for r, (acc, pos, _) in result.items():
        print(f"{r:4d} |   {acc:6.3f}  | " + " ".join(f"{a:4.2f}" for a in pos))


def final_report(params, cfg, args, out_dir, extra):
    """Accuracy by r on 2,000 held-out problems, longer problems, wrong answers; printed and saved."""
    rng = np.random.default_rng(EVAL_SEED)
    problems = random_problems(rng, args.eval_problems, args.n_ops)
    longer_ops = args.n_ops + 4
    longer_problems = random_problems(rng, args.eval_problems // 4, longer_ops)
    if 2 * longer_ops + 1 > cfg.max_seq_len:
        longer_problems = []
    main = evaluate(params, cfg, problems, R_VALUES)
    print_table(f"Held-out accuracy, {len(problems)} problems with {args.n_ops} operations "
                "(all right = every running value right; opJ = the value under operand J)", main)
    results = {"n_ops": args.n_ops, **extra,
               "accuracy_by_r": {str(r): v[0] for r, v in main.items()},
               "position_accuracy_by_r": {str(r): v[1] for r, v in main.items()}}
    if longer_problems:
        longer = evaluate(params, cfg, longer_problems, R_VALUES)
        print_table(f"Longer than trained: {len(longer_problems)} problems with {longer_ops} operations", longer)
        results["longer"] = {"n_ops": longer_ops,
                             "accuracy_by_r": {str(r): v[0] for r, v in longer.items()},
                             "position_accuracy_by_r": {str(r): v[1] for r, v in longer.items()}}
    r_show = 8 if 8 in main else max(main)
    wrong = [(p, running_values(p), g) for p, g in zip(problems, main[r_show][2]) if g != running_values(p)]
    print(f"\nWrong answers at r = {r_show}: {len(wrong)} of {len(problems)}")
    for p, truth, guess in wrong[:5]:
        print(f"  problem {p}   truth {truth}   prediction {guess}")
    results["wrong_examples"] = [{"r": r_show, "problem": p, "truth": t, "prediction": g} for p, t, g in wrong[:10]]
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nSaved {os.path.join(out_dir, 'results.json')}")
    return results


# ============================================================================================
# Training
# ============================================================================================

def make_config(args):
    return rdmini.Config(vocab_size=len(VOCAB), width=args.width, n_heads=args.heads,
                         mlp_hidden=2 * args.width, n_prelude=1, n_core=args.core, n_coda=1,
                         max_seq_len=max(64, 2 * args.n_ops + 9), mean_r=args.mean_r, backprop_k=args.k)


def save(path, params, cfg, opt, step, rngs, args):
    rdmini.save_checkpoint(path, params, cfg, adam_m=opt["m"], adam_v=opt["v"], adam_t=opt["t"], step=step,
                           rngs={n: g.bit_generator.state for n, g in rngs.items()},
                           run={k: getattr(args, k) for k in RUN_KEYS})


# what a resumed run must share with the run it continues, or its numbers would mean something else
RUN_KEYS = ("steps", "n_ops", "mean_r", "k", "width", "heads", "core", "seed", "batch", "lr", "warmup",
            "max_r", "weight_decay")


def load(path, args):
    params, cfg, state = rdmini.load_checkpoint(path)
    if "run" not in state:
        raise ValueError(f"{path} is an rdmini checkpoint but not one written by train_toy.py")
    if not args.eval_only:
        differ = [k for k in RUN_KEYS if k != "steps" and state["run"].get(k) != getattr(args, k)]
        if differ:
            raise ValueError(f"{path} was trained with different settings ({', '.join(differ)}); "
                             "resume with the same options, or train into a new --out folder")
    opt = {"m": state["adam_m"], "v": state["adam_v"], "t": state["adam_t"]}
    return params, cfg, opt, state


def train(args):
    out_dir = args.out
    path = os.path.join(out_dir, "checkpoint.npz")
    rngs = {"data": np.random.default_rng([args.seed, 0]),     # problems
            "r": np.random.default_rng([args.seed, 1]),        # recurrences per batch
            "noise": np.random.default_rng([args.seed, 2])}    # the initial state s_0
    if args.resume or args.eval_only:
        params, cfg, opt, state = load(path, args)
        step = state["step"]
        for n, g in rngs.items():
            g.bit_generator.state = state["rngs"][n]
        print(f"Loaded {path} at step {step}")
    else:
        cfg = make_config(args)
        params = rdmini.init_params(cfg, args.seed)
        opt, step = rdmini.adamw_init(params), 0
    n_params = sum(w.size for w in params.values())
    if args.eval_only:
        return final_report(params, cfg, args, out_dir, {"step": step})
    total = args.steps
    print(f"Training {n_params:,} parameters: {cfg.n_prelude} prelude + {cfg.n_core} core x r + {cfg.n_coda} "
          f"coda blocks, width {cfg.width}; r ~ mean {args.mean_r} (at most {args.max_r}), k = {args.k}; "
          f"{total} steps of {args.batch} problems with up to {args.n_ops} operations")

    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))     # finish the step, save, exit
    quick = random_problems(np.random.default_rng(EVAL_SEED + 1), 256, args.n_ops)
    t0, tokens_seen, step_in_run, last_good = time.time(), 0, 0, None
    while step < total and not stop["now"]:
        if args.minutes and time.time() - t0 > 60 * args.minutes:
            print(f"Time budget of {args.minutes} minutes reached at step {step}")
            break
        r = min(rdmini.sample_r(rngs["r"], args.mean_r), args.max_r)
        tokens, targets, mask = make_batch(rngs["data"], args.batch, args.n_ops)
        logits, cache = rdmini.forward(params, cfg, tokens, r, args.k, rng=rngs["noise"])
        loss, dlogits = rdmini.cross_entropy(logits, targets, mask)
        grads = rdmini.backward(cache, dlogits)
        lr = rdmini.learning_rate(step, total, args.lr, args.warmup)
        norm = rdmini.adamw_update(params, grads, opt, lr, betas=(0.9, 0.98), weight_decay=args.weight_decay)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            print(f"error: the loss became non-finite at step {step} (loss {loss}, gradient norm {norm}). "
                  f"The checkpoint in {path} is the last good one{'' if last_good is not None else ' (none yet)'}; "
                  "try a smaller --lr.", file=sys.stderr)
            sys.exit(1)
        step += 1
        step_in_run += 1
        tokens_seen += tokens.size
        if step % args.log_every == 0 or step == total:
            acc = evaluate(params, cfg, quick, [args.r])[args.r][0]
            el = time.time() - t0
            left = el / step_in_run * (total - step)
            print(f"step {step:5d}/{total} | loss {loss:.4f} | r {r:2d} | held-out all right {acc:.3f} at r={args.r}"
                  f" | {tokens_seen / el:6.0f} tok/s | {el:4.0f}s elapsed, {left:4.0f}s left", flush=True)
        if step % args.save_every == 0 or step == total or stop["now"]:
            save(path, params, cfg, opt, step, rngs, args)
            last_good = step
    if stop["now"]:
        save(path, params, cfg, opt, step, rngs, args)
        print(f"Interrupted: saved step {step} to {path}; continue with --resume")
        return None
    wall = time.time() - t0
    print(f"Trained {step} steps in {wall:.0f} s")
    save(path, params, cfg, opt, step, rngs, args)
    return final_report(params, cfg, args, out_dir, {"step": step, "train_seconds": round(wall, 1),
                                                     "params": n_params})


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="total training steps (a resumed run stops here too)")
    p.add_argument("--minutes", type=float, default=None, help="also stop after this many minutes")
    p.add_argument("--n-ops", type=int, default=8, help="most operations per training problem")
    p.add_argument("--mean-r", type=float, default=8.0, help="mean recurrences per step (1 = no recurrence)")
    p.add_argument("--max-r", type=int, default=32, help="cap on the r drawn per step")
    p.add_argument("--k", type=int, default=4, help="backprop through the last k iterations")
    p.add_argument("--width", type=int, default=64, help="model width h")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--core", type=int, default=2, help="transformer blocks in the core")
    p.add_argument("--batch", type=int, default=128, help="problems per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    p.add_argument("--r", type=int, default=8, help="test-time r for the progress line")
    p.add_argument("--out", default=os.path.join("runs", "toy"), help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint in --out")
    p.add_argument("--log-every", type=int, default=100, help="steps between progress lines")
    p.add_argument("--save-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--eval-problems", type=int, default=2000, help="held-out problems in the final table")
    args = p.parse_args(argv)
    for name, low in (("steps", 1), ("n_ops", 1), ("mean_r", 1), ("max_r", 1), ("k", 1), ("width", 2),
                      ("heads", 1), ("core", 1), ("batch", 1), ("r", 1), ("log_every", 1), ("save_every", 1),
                      ("eval_problems", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if args.lr <= 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except ValueError as err:          # bad checkpoints and bad settings: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
