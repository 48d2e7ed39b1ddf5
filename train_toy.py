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

    python train_toy.py                  # train (about 8 minutes on 2 cores), then accuracy for every r
    python train_toy.py --mean-r 1 --k 1 # the same network without recurrence, the baseline
    python train_toy.py --help           # every option
"""
import argparse
import concurrent.futures
import ctypes
import json
import math
import os
import signal
import subprocess
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

import rdmini

# Tokens: the digits; '+-*=?.' ('+' and '=' for the addition task, '?' marks where an answer goes, '.' pads;
# '-' and '*' are left from the one-per-character layout); and one token per operation of the running task,
# "+0" to "*9". Why operation tokens rather than one per character (3 + 5 ...): the previous answer is always
# one position back, and a problem takes 9 tokens instead of 17, so a step takes about a third less time
# (148 against 228 ms, before --threads). Per step, neither layout trained better on every seed
# (tutorial, section 3.3).
VOCAB = [str(d) for d in range(10)] + list("+-*=?.") + [op + str(d) for op in "+-*" for d in range(10)]
PAD = VOCAB.index(".")
TOKEN = {c: i for i, c in enumerate(VOCAB)}
TASKS = ("running", "addition")
EVAL_SEED = 2025                       # held-out problems come from their own stream, the same in every run
R_VALUES = (1, 2, 3, 4, 6, 8, 16, 32, 64)
LONG_R_VALUES = R_VALUES + (128,)      # longer problems: the frontier needs about one iteration per operation


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


def sum_digits(problem):
    """The second task's truth: "583104+090217" -> "0673321", the sum with one more digit, most significant first."""
    a, b = problem.split("+")
    return str(int(a) + int(b)).zfill(len(a) + 1)


def random_problems(rng, count, n_ops, task="running"):
    """running: count problems of exactly n_ops operations, e.g. '3+5*2-7' for n_ops = 3.
    addition: count sums of two n_ops-digit numbers; half of them with a planted carry chain (digits that
    sum to 9 below a pair that carries), which uniform digits almost never produce."""
    if task == "addition":
        a, b = rng.integers(0, 10, size=(2, count, n_ops))
        for i in np.flatnonzero(rng.random(count) < 0.5):
            lo, hi = sorted(rng.choice(n_ops + 1, size=2, replace=False))
            if hi - lo >= 2:               # digits lo..hi-2 sum to 9 and pass on the carry made at hi-1
                a[i, lo:hi] = rng.integers(0, 10, size=hi - lo)
                b[i, lo:hi] = 9 - a[i, lo:hi]
                a[i, hi - 1], b[i, hi - 1] = rng.integers(5, 10), rng.integers(5, 10)
        return ["".join(map(str, x)) + "+" + "".join(map(str, y)) for x, y in zip(a, b)]
    digits, ops = running_draws(rng, count, n_ops)
    return ["".join(str(d) + "+-*"[o] for d, o in zip(ds, os_)) + str(ds[-1]) for ds, os_ in zip(digits, ops)]


def running_draws(rng, count, n_ops):
    """The random numbers behind count running problems: digits (count, n_ops + 1), operations
    (count, n_ops) as 0 '+', 1 '-', 2 '*'. The strings and the training batches both come from these."""
    digits = rng.integers(0, 10, size=(count, n_ops + 1))
    ops = rng.integers(0, 3, size=(count, n_ops))
    return digits, ops


def layout(problem, task="running"):
    """What the model reads and where its answers go: (input tokens, answer string, answer positions).
    running: the first operand, then one token per operation ("+5"), each with its answer under it.
    addition: one token per character; after '=', one '?' per answer digit."""
    if task == "addition":
        answer = sum_digits(problem)
        text = problem + "=" + "?" * len(answer)
        return text, answer, range(len(text) - len(answer), len(text))
    tokens = [problem[0]] + [problem[i:i + 2] for i in range(1, len(problem), 2)]     # "3+5" -> 3, +5
    return tokens, running_values(problem), range(len(tokens))


def problem_tokens(n_ops, task="running"):
    """Tokens in one problem of size n_ops, as layout() reads it (running: n_ops + 1)."""
    return len(layout(random_problems(np.random.default_rng(0), 1, n_ops, task)[0], task)[0])


def encode(problems, T=None, task="running"):
    """Problems -> tokens (B,T), targets (B,T), mask (B,T): the answers at their positions, padded to T."""
    laid = [layout(p, task) for p in problems]
    T = T or max(len(text) for text, _, _ in laid)
    tokens = np.full((len(problems), T), PAD, dtype=np.int64)
    targets = np.zeros((len(problems), T), dtype=np.int64)
    mask = np.zeros((len(problems), T), dtype=bool)
    for b, (text, answer, where) in enumerate(laid):
        tokens[b, :len(text)] = [TOKEN[c] for c in text]
        targets[b, list(where)] = [int(v) for v in answer]
        mask[b, list(where)] = True
    return tokens, targets, mask


def answer_text(ids):
    """Token ids guessed at the answer positions -> one character each; a guess that is no digit shows as '?'."""
    return "".join(VOCAB[t] if t < 10 else "?" for t in ids)


def make_batch(rng, batch_size, n_ops, task="running"):
    """A training batch -> tokens, targets, mask, each (B, T). Every running problem has n_ops operations:
    its prefixes are the shorter problems, and causal attention cannot see past a prefix, so one long
    problem trains every length from 1 to n_ops at once, with no padding to pay for."""
    if task == "addition":
        return encode(random_problems(rng, batch_size, n_ops, task), task=task)
    return running_batch(*running_draws(rng, batch_size, n_ops))


def running_batch(digits, ops):
    """The same arrays as encode() of the problems' strings, built in numpy from the draws themselves:
    0.3 ms instead of 5 to 6 ms for a batch of 128, time that a step spent in Python before its threads
    start (a test checks the two against each other). digits (B, n+1), ops (B, n) -> tokens, targets,
    mask, each (B, n+1)."""
    first_op = TOKEN["+0"]                                   # the ids run "+0".."+9", "-0".."-9", "*0".."*9"
    tokens = np.concatenate([digits[:, :1], first_op + 10 * ops + digits[:, 1:]], axis=1)    # (B, n+1)
    values = [digits[:, 0]]
    for j in range(ops.shape[1]):            # one operation at a time: each value needs the one before it
        v, d = values[-1], digits[:, j + 1]
        values.append(np.choose(ops[:, j], [v + d, v - d, v * d]) % 10)      # pick by operation: + - *
    return tokens, np.stack(values, axis=1), np.ones(tokens.shape, dtype=bool)             # (B, n+1) each


def check_problem(problem, cfg, task="running"):
    """A clear error for a problem the model cannot read, instead of a traceback deep in numpy."""
    if not problem:
        raise ValueError("the problem is empty; write one like 3+5*2-7")
    allowed = "0123456789+" if task == "addition" else "0123456789+-*"
    bad = sorted(set(problem) - set(allowed))
    if bad:
        raise ValueError(f"the problem {problem!r} has characters {bad} the model does not know; "
                         f"use the characters {allowed}")
    if task == "addition":
        parts = problem.split("+")
        if len(parts) != 2 or not parts[0] or len(parts[0]) != len(parts[1]):
            raise ValueError(f"the problem {problem!r} must be two numbers of equal width, e.g. 583104+090217")
    elif len(problem) % 2 == 0 or not problem[0::2].isdigit() or any(c.isdigit() for c in problem[1::2]):
        raise ValueError(f"the problem {problem!r} must alternate digit, operator, digit, ... "
                         "(single digits, e.g. 3+5*2-7)")
    length = len(layout(problem, task)[0])
    if length > cfg.max_seq_len:
        raise ValueError(f"the problem takes {length} tokens; this model reads at most {cfg.max_seq_len}")


def predict(params, cfg, problem, r, rng=None, task="running"):
    """The model's answer for one problem after r iterations: the running values, e.g. '3869'."""
    check_problem(problem, cfg, task)
    tokens, _, mask = encode([problem], task=task)
    logits, _ = rdmini.forward(params, cfg, tokens, r, rng=rng)
    return answer_text(logits[0].argmax(-1)[mask[0]])


# ============================================================================================
# Evaluation: accuracy for every r, from one pass that decodes the state at each r on its way
# ============================================================================================

def evaluate(params, cfg, problems, rs, task="running", chunk=500, threads=1):
    """-> {r: (all-right accuracy, accuracy per answer position, predictions)} on equal-length problems."""
    tokens, targets, mask = encode(problems, task=task)
    right = {r: [] for r in rs}
    preds = {r: [] for r in rs}
    starts = range(0, len(problems), chunk)
    # a fixed noise stream per chunk: evaluation is reproducible, the same for every r and any threads
    by_chunk = parallel_map(lambda i: rdmini.logits_by_r(params, cfg, tokens[i:i + chunk], set(rs),
                                                         rng=np.random.default_rng(i)), starts, threads)
    for i, logits in zip(starts, by_chunk):
        sl = slice(i, i + chunk)
        for r in rs:
            guess = logits[r].argmax(-1)
            right[r].append((guess == targets[sl])[:, mask[0]])            # (chunk, n_ops + 1)
            preds[r] += [answer_text(g[mask[0]]) for g in guess]
    out = {}
    for r in rs:
        ok = np.concatenate(right[r])
        out[r] = (float(ok.all(axis=1).mean()), [float(a) for a in ok.mean(axis=0)], preds[r])
    return out


def print_table(title, result, label="op"):
    n_pos = len(next(iter(result.values()))[1])
    print(f"\n{title}")
    print("   r | all right | " + " ".join(f"{label}{j:<2d}" for j in range(n_pos)))
    for r, (acc, pos, _) in result.items():
        print(f"{r:4d} |   {acc:6.3f}  | " + " ".join(f"{a:4.2f}" for a in pos))


def eval_lengths(n_ops, task):
    """The longer problem sizes final_report measures, in order: n_ops + 4 (12 for the default), and for the
    running task 2x, 4x and 6x the trained size, which a fixed stack of layers could not reach."""
    return sorted({n_ops + 4} | ({2 * n_ops, 4 * n_ops, 6 * n_ops} if task == "running" else set()) - {n_ops})


def final_report(params, cfg, args, out_dir, extra):
    """Accuracy by r on held-out problems of the trained size and longer ones, wrong answers;
    printed, and saved to results.json in the run folder (results["longer"][str(n)] per longer size n)."""
    task = args.task
    rng = np.random.default_rng(EVAL_SEED)
    problems = random_problems(rng, args.eval_problems, args.n_ops, task)
    label, unit = ("op", "operations") if task == "running" else ("d", "digits per number")
    main = evaluate(params, cfg, problems, R_VALUES, task, threads=args.threads)
    print_table(f"Held-out accuracy, {len(problems)} problems with {args.n_ops} {unit} (all right = every "
                f"answer right; {label}J = the answer at position J)", main, label)
    results = {"task": task, "n_ops": args.n_ops, **extra,
               "accuracy_by_r": {str(r): v[0] for r, v in main.items()},
               "position_accuracy_by_r": {str(r): v[1] for r, v in main.items()}, "longer": {}}
    for n in eval_lengths(args.n_ops, task):
        longer_problems = random_problems(rng, max(1, args.eval_problems // 4), n, task)
        if len(layout(longer_problems[0], task)[0]) > cfg.max_seq_len:
            continue
        longer = evaluate(params, cfg, longer_problems, LONG_R_VALUES, task, threads=args.threads)
        results["longer"][str(n)] = {"problems": len(longer_problems),
                                     "accuracy_by_r": {str(r): v[0] for r, v in longer.items()}}
        if n == args.n_ops + 4:           # the per-position table once; beyond it, one line per size
            print_table(f"Longer than trained: {len(longer_problems)} problems with {n} {unit}", longer, label)
            results["longer"][str(n)]["position_accuracy_by_r"] = {str(r): v[1] for r, v in longer.items()}
    if len(results["longer"]) > 1:
        print(f"\nAll right by problem size (trained on {args.n_ops} {unit}; "
              f"{max(1, args.eval_problems // 4)} problems each):")
        print(f"{'size':>5} | " + " ".join(f"r={r:<4d}" for r in LONG_R_VALUES))
        sizes = {str(args.n_ops): results["accuracy_by_r"],
                 **{n: v["accuracy_by_r"] for n, v in results["longer"].items()}}
        for n, acc in sizes.items():
            print(f"{n:>5} | " + " ".join(f"{acc[str(r)]:6.3f}" if str(r) in acc else f"{'-':>6}"
                                          for r in LONG_R_VALUES))
    r_show = 8
    truths = [layout(p, task)[1] for p in problems]
    wrong = [(p, t, g) for p, t, g in zip(problems, truths, main[r_show][2]) if g != t]
    print(f"\nWrong answers at r = {r_show}: {len(wrong)} of {len(problems)}")
    for p, truth, guess in wrong[:5]:
        print(f"  problem {p}   truth {truth}   prediction {guess}")
    results["wrong_examples"] = [{"r": r_show, "problem": p, "truth": t, "prediction": g} for p, t, g in wrong[:10]]
    print(f"\nSaved {save_json(results, out_dir, 'results.json')}")
    return results


def save_json(obj, folder, name):
    """Write obj to folder/name as JSON (the folder made if need be); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


# ============================================================================================
# Benchmark (--bench): the step's speed against this machine's own matmul rate, memory against r and k
# ============================================================================================

def count_flops(cfg, B, T, r, k):
    """Matrix-multiply FLOPs of one training step (2 per multiply-add), counted from the shapes.
    Forward: prelude, r core iterations, coda. Backward: twice the forward of what it walks back through
    (the input's and the weight's gradient), i.e. prelude, the last min(k, r) iterations and coda.
    Elementwise work (norms, softmax, RoPE) is left out: it is not what a matmul unit measures."""
    N, h, F, H, d, V = B * T, cfg.width, cfg.mlp_hidden, cfg.n_heads, cfg.head_dim, cfg.vocab_size
    block = 2 * N * h * 3 * h + 2 * N * h * h + 2 * N * h * 2 * F + 2 * N * F * h   # qkv, proj, up, down
    block += 2 * (2 * B * H * T * T * d)                                               # q k^T and att v
    adapter = 2 * N * 2 * h * h if cfg.injection == "concat" else 0
    step = cfg.n_core * block + adapter
    outside = (cfg.n_prelude + cfg.n_coda) * block + 2 * N * h * V                    # + unembedding
    forward = outside + r * step
    backward = 2 * (outside + min(k, r) * step) if k > 0 else 0              # k = 0: inference
    return {"forward": forward, "backward": backward, "total": forward + backward}


def seconds(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_rate(m, n, p, repeats, threads=1):
    """GFLOP/s of float32 (m, n) @ (n, p) products: `threads` threads at once (the cores a training step
    uses), each running `repeats` products back to back."""
    a = np.random.default_rng(0).standard_normal((m, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, p)).astype(np.float32)

    def products(_):
        for _ in range(repeats):
            a @ b
    spent = seconds(lambda: parallel_map(products, range(threads), threads))
    return threads * repeats * 2 * m * n * p / spent / 1e9


def measure_in_turns(timers, rounds):
    """timers {name: (measure, count)} -> {name: its rounds * count measurements, round after round}.
    Each round takes every timer's `count` measurements in turn. Why turns: this machine's speed drifts
    (a virtual machine on shared hardware; the earlier --bench, which measured one figure after another,
    gave MFUs from 20% to 28% for the same code within minutes). In turns, a drift touches every figure
    alike, instead of the step's and the matmul's being measured on two different machines."""
    got = {name: [] for name in timers}
    for _ in range(rounds):
        for name, (measure, count) in timers.items():
            got[name] += [measure() for _ in range(count)]
    return got


TINY_PER_ROUND = 5              # tiny steps take a few milliseconds: each round's figure is a median of 5


def time_in_turns(timers, threads, rounds):
    """The timed figures of --bench from measure_in_turns: medians over the rounds, except the large
    matmul's best round, a maximum. The Python overhead, per round: a tiny step (its batch, s_0 and
    update, and one slice) and threads - 1 more tiny slices, one after the other; and, as a real step
    runs, the tiny step in `threads` threads. Its shares of the step are medians of the rounds' shares.
    The per-round figures are returned too: the caller turns them into MFUs with the step's FLOPs."""
    for measure, _ in timers.values():
        measure()                                                   # warm-up
    got = measure_in_turns(timers, rounds)

    def per_round(name):                                            # the median of each round's measurements
        return np.median(np.reshape(got[name], (rounds, TINY_PER_ROUND)), axis=1)
    step_s, big = np.array(got["step"]), np.array(got["big"])
    one_thread = per_round("tiny") + ((threads - 1) * per_round("tiny_slice") if threads > 1 else 0)
    in_threads = per_round("tiny_threads") if threads > 1 else one_thread
    return {"seconds_per_step": float(np.median(step_s)),
            "seconds_per_step_one_thread": float(np.median(got.get("one_thread", step_s))),
            "matmul_gflops_2048": float(np.median(big)), "matmul_gflops_2048_best": float(big.max()),
            "matmul_gflops_model_shape": float(np.median(got["own"])),
            "python_overhead_seconds": float(np.median(one_thread)),
            "python_overhead_share": float(np.median(one_thread / step_s)),
            "python_overhead_in_threads_seconds": float(np.median(in_threads)),
            "python_overhead_in_threads_share": float(np.median(in_threads / step_s)),
            "per_round": {name: got[name] for name in timers}}


class SectionTimer:
    """Wraps some of rdmini's functions from outside and adds up the time spent in each, exclusive of the
    wrapped functions it calls, so the model code carries no timing code."""
    SECTIONS = {"attention": ["attention_forward", "attention_backward"],
                "MLP": ["swiglu_forward", "swiglu_backward"],
                "norms": ["rmsnorm_forward", "rmsnorm_backward"],
                "adapter (injection)": ["recurrence_step", "recurrence_step_backward"],
                "block residuals, gradient sums": ["block_forward", "block_backward", "stack_forward",
                                                   "stack_backward"],
                "embedding, unembedding, loss": ["embedding_forward", "embedding_backward", "coda_forward",
                                                 "cross_entropy", "backward", "forward", "start"],
                "optimizer": ["adamw_update"]}

    def __init__(self):
        self.total, self.stack, self.saved = {}, [], {}

    def wrap(self, module, name, section):
        fn = getattr(module, name)
        self.saved[(module, name)] = fn

        def timed(*a, **kw):
            t = time.perf_counter()
            self.stack.append(0.0)
            try:
                return fn(*a, **kw)
            finally:
                spent = time.perf_counter() - t
                inner = self.stack.pop()
                self.total[section] = self.total.get(section, 0.0) + spent - inner
                if self.stack:
                    self.stack[-1] += spent
        setattr(module, name, timed)

    def __enter__(self):
        for section, names in self.SECTIONS.items():
            for name in names:
                self.wrap(rdmini, name, section)
        self.wrap(sys.modules[__name__], "make_batch", "data")
        return self

    def __exit__(self, *exc):
        for (module, name), fn in self.saved.items():
            setattr(module, name, fn)


def peak_memory(params, cfg, args, r, k):
    """Peak bytes numpy allocates during one forward + backward (tracemalloc sees numpy's buffers)."""
    tokens, targets, mask = make_batch(np.random.default_rng(0), args.batch, args.n_ops)
    tracemalloc.start()
    logits, cache = rdmini.forward(params, cfg, tokens, r, k, rng=np.random.default_rng(0))
    grads = rdmini.backward(cache, rdmini.cross_entropy(logits, targets, mask)[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del grads, cache
    return peak


def bench(args):
    """Time the default training step; compare with the machine's matmul rate; memory vs r and k.
    The timings are taken in turns (time_in_turns); the profile split and the memory come after."""
    cfg = make_config(args)
    params = rdmini.init_params(cfg, args.seed)
    opt = rdmini.adamw_init(params)
    rng = np.random.default_rng(args.seed)
    r, k, B, T = int(round(args.mean_r)), args.k, args.batch, problem_tokens(args.n_ops)

    def step(threads=args.threads, params=params, cfg=cfg, opt=opt, B=B, n_ops=args.n_ops):
        batch = make_batch(rng, B, n_ops)
        state0 = rdmini.initial_state(cfg, batch[0].shape + (cfg.width,), rng)
        loss, grads = loss_and_grads(params, cfg, batch, r, k, state0, threads, args.loss == "frontier")
        rdmini.adamw_update(params, grads, opt, 1e-4)
    # Python overhead: the same step on a model so small that numpy's arithmetic is nearly free; what
    # remains is the interpreter and numpy's per-call cost, paid the same at any size. Counted two ways:
    # in one thread, the tiny step and its other slices one after the other (only one thread can run
    # Python at a time, so the slices' overheads add up); and the tiny step run by the threads, as a real
    # step runs, which also pays for handing the interpreter from one thread to the other.
    tiny = argparse.Namespace(**{**vars(args), "width": 8, "heads": 2, "n_ops": 1})
    tiny_cfg = make_config(tiny)
    tiny_params = rdmini.init_params(tiny_cfg, 0)
    tiny_opt = rdmini.adamw_init(tiny_params)
    tiny_batch = make_batch(np.random.default_rng(0), 1, 1)
    tiny_s0 = rdmini.initial_state(tiny_cfg, tiny_batch[0].shape + (tiny_cfg.width,), np.random.default_rng(0))

    def tiny_step(threads=1):                                       # one slice of one problem per thread
        step(threads=threads, params=tiny_params, cfg=tiny_cfg, opt=tiny_opt, B=threads, n_ops=1)

    def tiny_slice():
        loss_and_grads(tiny_params, tiny_cfg, tiny_batch, r, k, tiny_s0, 1, args.loss == "frontier")
    shape = (B * T // args.threads, cfg.width, 2 * cfg.mlp_hidden)       # the MLP's up-projection, one slice
    timers = {"step": (lambda: seconds(step), 1),
              "one_thread": (lambda: seconds(lambda: step(threads=1)), 1),
              "tiny": (lambda: seconds(tiny_step), TINY_PER_ROUND),
              "tiny_slice": (lambda: seconds(tiny_slice), TINY_PER_ROUND),
              "tiny_threads": (lambda: seconds(lambda: tiny_step(args.threads)), TINY_PER_ROUND),
              "big": (lambda: matmul_rate(2048, 2048, 2048, 1, args.threads), 1),     # GFLOP/s, not seconds
              "own": (lambda: matmul_rate(*shape, 100, args.threads), 1)}
    if args.threads == 1:                           # one slice: "step" is one thread, and the tiny step has it all
        del timers["one_thread"], timers["tiny_slice"], timers["tiny_threads"]
    rounds = max(3, args.bench_steps)
    timed = time_in_turns(timers, args.threads, rounds)
    flops = count_flops(cfg, B, T, r, k)
    per_round = timed["per_round"]
    achieved = flops["total"] / np.array(per_round["step"]) / 1e9                     # GFLOP/s, per round
    with SectionTimer() as timer:     # where the time goes; in one thread, as the timer's stack is not shared
        for _ in range(max(3, args.bench_steps // 2)):
            step(threads=1)
    memory = {"r_at_k": {str(rr): peak_memory(params, cfg, args, rr, 4) for rr in (4, 16, 64)},
              "k_at_r16": {str(kk): peak_memory(params, cfg, args, 16, kk) for kk in (1, 4, 16)}}
    total_timed = sum(timer.total.values())
    result = {
        "machine": {"cpus": os.cpu_count(), "numpy": np.__version__,
                    "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")},
        "config": {"batch": B, "T": T, "r": r, "k": k, "width": cfg.width, "n_core": cfg.n_core,
                   "threads": args.threads},
        "rounds": rounds, **timed, "tokens_per_second": B * T / timed["seconds_per_step"],
        "flops_per_step": flops, "achieved_gflops": float(np.median(achieved)), "model_shape": list(shape),
        "mfu_vs_2048": float(np.median(achieved / np.array(per_round["big"]))),
        "mfu_vs_2048_best": float(np.median(achieved)) / timed["matmul_gflops_2048_best"],
        "mfu_vs_model_shape": float(np.median(achieved / np.array(per_round["own"]))),
        "time_share": {s: t / total_timed for s, t in sorted(timer.total.items(), key=lambda x: -x[1])},
        "peak_memory_bytes": memory, "memory_method": "tracemalloc peak of one forward + backward",
    }
    print_bench(result)
    print(f"Saved {save_json(result, args.out, 'bench.json')}")
    return result


def print_bench(result):
    """The figures of bench() as text; the same figures are in bench.json."""
    c, flops, memory = result["config"], result["flops_per_step"], result["peak_memory_bytes"]
    shape, step = result["model_shape"], result["seconds_per_step"]
    big, own = result["matmul_gflops_2048"], result["matmul_gflops_model_shape"]
    print(f"Medians of {result['rounds']} rounds; each round times, in turn, one training step, one in one "
          f"thread, {TINY_PER_ROUND} each of a tiny model's step, slice and step in threads, and products of each "
          "matmul size")
    print(f"Training step, batch {c['batch']} x T {c['T']}, r = {c['r']}, k = {c['k']}, width {c['width']}: "
          f"{step * 1000:.1f} ms, {result['tokens_per_second']:,.0f} tokens/s, {c['threads']} thread(s); "
          f"one thread: {result['seconds_per_step_one_thread'] * 1000:.1f} ms")
    print(f"Model FLOPs per step (matmuls): {flops['total'] / 1e9:.2f} G (forward {flops['forward'] / 1e9:.2f} G, "
          f"backward {flops['backward'] / 1e9:.2f} G) -> {result['achieved_gflops']:.1f} GFLOP/s")
    print(f"This machine's float32 matmul, {c['threads']} at once: {big:.1f} GFLOP/s at 2048^3 (best round "
          f"{result['matmul_gflops_2048_best']:.1f}), {own:.1f} GFLOP/s at the model's shape "
          f"{shape[0]}x{shape[1]} @ {shape[1]}x{shape[2]} (one thread's slice)")
    print(f"MFU: {100 * result['mfu_vs_2048_best']:.1f}% of the large matmul's best round, "
          f"{100 * result['mfu_vs_2048']:.1f}% of the large matmul timed in the same round, "
          f"{100 * result['mfu_vs_model_shape']:.1f}% of the model-shape matmul")
    print(f"Python overhead (the same step on a tiny model; shares of the step, round by round): its {c['threads']} "
          f"slice(s) one after the other in one thread {result['python_overhead_seconds'] * 1000:.1f} ms, "
          f"{100 * result['python_overhead_share']:.1f}%; run by {c['threads']} thread(s) as a real step runs "
          f"{result['python_overhead_in_threads_seconds'] * 1000:.1f} ms, "
          f"{100 * result['python_overhead_in_threads_share']:.1f}%")
    print("Where a one-thread step's time goes (exclusive time in rdmini's functions, wrapped from outside):")
    for section, share in result["time_share"].items():
        print(f"  {section:30s} {100 * share:5.1f}%")
    print("Peak memory of one training step (tracemalloc):")
    for rr, b in memory["r_at_k"].items():
        print(f"  r = {rr:>2}, k = 4 : {b / 2**20:7.1f} MiB")
    for kk, b in memory["k_at_r16"].items():
        print(f"  r = 16, k = {kk:>2}: {b / 2**20:7.1f} MiB")


# ============================================================================================
# Training
# ============================================================================================

def keep_freed_memory():
    """Every step frees and allocates again the same activation arrays, from 0.1 to 1 MB each. glibc's
    malloc serves such sizes with fresh pages from the operating system (mmap) or hands freed memory back
    (trim), so the next step pays a page fault for every page again: by the earlier --bench, 112-124 ms a
    step without this and 85-94 ms with it (two threads). Ask glibc to keep what is freed: arrays up to 32 MiB come
    from its heap, and up to 1 GiB of freed heap is kept for reuse. Setting only the second makes steps
    slower: any setting turns off glibc's automatic mmap threshold. Numbers are unchanged, and so is the
    peak that tracemalloc sees; the process's resident memory is higher, by what glibc keeps. Linux with
    glibc only; anywhere else it does nothing and returns False."""
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                     # from glibc's <malloc.h>
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and mallopt(M_TRIM_THRESHOLD, 2**30))


def parallel_map(fn, items, threads):
    """list(map(fn, items)), spread over `threads` threads when threads > 1; results stay in order.
    A new pool per call: starting two threads costs well under a millisecond, against ~90 ms of a step,
    and nothing is left running between steps."""
    if threads <= 1:
        return list(map(fn, items))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def frontier_mask(logits, targets, mask):
    """The frontier loss: each problem is scored up to and including its first wrong answer, not after it.
    logits (B,T,V), targets (B,T), mask (B,T) bool -> a smaller mask (B,T).
    The idea: once the model's own running value is wrong at some position, it cannot work out the values
    after it from that. Scoring them anyway rewards guessing them from the problem as a whole, a shortcut
    that, we think, competes with the rule (read the previous value, apply one operation). Scored only up to
    its first mistake, the model is asked for the next step of the chain from a right previous value, never
    for a guess; as it learns, more answers are scored. Measured in the tutorial, sections 3.2 and 3.3."""
    wrong = (logits.argmax(axis=-1) != targets) & mask                                # (B,T)
    # (B,): each problem's first wrong position; T when none is wrong, so that every answer is scored
    first = np.where(wrong.any(axis=1), wrong.argmax(axis=1), mask.shape[1])
    return mask & (np.arange(mask.shape[1]) <= first[:, None])                        # (B,T)


def loss_and_grads(params, cfg, batch, r, k, state0, threads=1, frontier=False):
    """One step's mean loss and gradients, the batch cut into `threads` slices computed side by side.
    Why threads: numpy runs elementwise work (norms, softmax, gates: most of a step here) on one core,
    and lets other threads run meanwhile. The loss is a mean over all scored answer positions of the batch,
    so each slice divides by the whole batch's count, and the slices' losses and gradients simply add up.
    They are added in a fixed order: a seed gives the same run for the same --threads.
    frontier: score each problem only up to its first wrong answer (frontier_mask). A problem's mask needs
    only its own forward, but `count`, the number of scored answers in the whole batch that every slice
    divides by, needs all of them: so all forwards run before any backward."""
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
    """--n-ops when not given: 8 operations (running) or 6 digits per number (addition)."""
    return args.n_ops or (8 if args.task == "running" else 6)


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
            "warmup", "max_r", "weight_decay", "threads", "loss", "window")


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
        before = {"threads": 1, "loss": "all", "window": None}    # what checkpoints from before these options used
        saved = {k: state["run"].get(k, before.get(k)) for k in RUN_KEYS}
        shown = lambda k, v: 0 if k == "window" and v is None else v                  # as the flag writes it
        differ = [f"--{k.replace('_', '-')} {shown(k, saved[k])} there, {shown(k, getattr(args, k))} now"
                  for k in RUN_KEYS if k != "steps" and saved[k] != getattr(args, k)]
        if differ:
            raise ValueError(f"{path} was trained with different settings ({'; '.join(differ)}); "
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
          f"{total} steps of {args.batch} {args.task} problems of size {args.n_ops} (and their prefixes); "
          + ("each scored up to its first wrong answer (--loss frontier)" if args.loss == "frontier"
             else "every answer scored (--loss all)"))

    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))     # finish the step, save, exit
    quick = random_problems(np.random.default_rng(EVAL_SEED + 1), 256, args.n_ops, args.task)
    t0, tokens_seen, step_in_run, last_good, log = time.time(), 0, 0, None, []
    while step < total and not stop["now"]:
        if args.stop_at is not None and step >= args.stop_at:
            stop["now"] = True                  # as if interrupted here: the resume test uses this
            break
        if args.minutes and time.time() - t0 > 60 * args.minutes:
            print(f"Time budget of {args.minutes} minutes reached at step {step}")
            break
        r = min(rdmini.sample_r(rngs["r"], args.mean_r), args.max_r)
        batch = make_batch(rngs["data"], args.batch, args.n_ops, args.task)
        tokens = batch[0]
        state0 = rdmini.initial_state(cfg, tokens.shape + (cfg.width,), rngs["noise"])   # s_0: (B,T,h)
        loss, grads = loss_and_grads(params, cfg, batch, r, args.k, state0, args.threads, args.loss == "frontier")
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
            acc = evaluate(params, cfg, quick, [args.r], args.task)[args.r][0]
            log.append({"step": step, "loss": round(loss, 4), "r": r, "accuracy": acc})
            el = time.time() - t0
            left = el / step_in_run * (total - step)
            print(f"step {step:5d}/{total} | loss {loss:.4f} | r {r:2d} | held-out all right {acc:.3f} at r={args.r}"
                  f" | {tokens_seen / el:6.0f} tok/s | {el:4.0f}s elapsed, {left:4.0f}s left", flush=True)
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
    return final_report(params, cfg, args, out_dir, {"step": step, "loss": args.loss, "train_seconds": round(wall, 1),
                                                     "params": n_params, "log": log})


# ============================================================================================
# Several seeds in one command (--seeds), and a comparison with a reference (--compare)
# ============================================================================================

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


def run_seeds(args, argv):
    """Train the same recipe once per seed, each run a process of its own writing into OUT/seed<N>/
    (its progress in train.log there), as many at once as --jobs says; then summarise them in
    OUT/summary.json and print the spread, and the comparison with --compare's reference if given."""
    seeds = parse_seeds(args.seeds)
    args.n_ops = default_n_ops(args)
    reference = load_summary(args.compare) if args.compare else None
    base = without_options(argv, ("--seeds", "--compare", "--out", "--seed", "--jobs"))
    jobs = args.jobs or max(1, (os.cpu_count() or 1) // args.threads)
    print(f"{len(seeds)} runs (seeds {args.seeds}), {jobs} at a time, into {args.out}/seed<N>/", flush=True)
    running, waiting, results = {}, list(seeds), {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                seed = waiting.pop(0)
                running[seed] = start_run(base, seed, os.path.join(args.out, f"seed{seed}"))
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
    summary = summarise(args, {s: results[s] for s in seeds})
    print_summary(summary)
    if reference:
        compare(summary, reference, args.compare)
    print(f"\nSaved {save_json(summary, args.out, 'summary.json')}")
    return summary


def start_run(base, seed, folder):
    """One seed's run as a process of its own: this script with the same options. -> (process, log, folder)."""
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "results.json")):
        os.remove(os.path.join(folder, "results.json"))          # never summarise an earlier run's results
    log = open(os.path.join(folder, "train.log"), "w")
    cmd = [sys.executable, os.path.abspath(__file__), *base, "--seed", str(seed), "--out", folder]
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


def summarise(args, results):
    """One JSON for a set of seeds: the recipe, each seed's accuracy by r (and longer problems'), the
    mean, min and max over the seeds."""
    first = next(iter(results.values()))
    sizes = [n for n in first.get("longer", {}) if all(n in r.get("longer", {}) for r in results.values())]
    return {"settings": {k: getattr(args, k) for k in RUN_KEYS if k != "seed"},
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


# ============================================================================================
# Inference (--think, --trajectories, --inference-report): the KV cache, adaptive exit, inside the loop
# ============================================================================================

def load_model(args):
    """The checkpoint in --out, for inference only: (params, cfg). It must be a running-task model."""
    path = os.path.join(args.out, "checkpoint.npz")
    params, cfg, state = rdmini.load_checkpoint(path)
    if "run" not in state:
        raise ValueError(f"{path} is an rdmini checkpoint but not one written by train_toy.py")
    if state["run"]["task"] != "running":
        raise ValueError(f"{path} was trained on the {state['run']['task']} task; this view needs the running task")
    return params, cfg


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
    cache = rdmini.new_cache(cfg, B, r, m, capacity=T, read=read)
    logits, steps = [], []
    for t in range(T):
        lg, st = rdmini.feed(params, cfg, cache, tokens[:, t:t + 1], state0[:, t:t + 1], threshold, criterion,
                             continuous)
        logits.append(lg)
        steps.append(st)
    guess = np.concatenate(logits, axis=1).argmax(-1)                         # (B,T)
    return [answer_text(g[mask[0]]) for g in guess], np.concatenate(steps, axis=1)


def spaced(cells, width=4):
    """One row of the --think display: a column of `width` characters per token of the problem."""
    return "".join(f"{c:>{width}}" for c in cells)


def think(args):
    """Print the running values decoded from s_i at every step i = 1..r, then stream the problem through
    the KV cache with adaptive exit and print the steps each token used. A long problem (over 12 tokens)
    gets one character per position, so that a 48-operation chain still fits on a line."""
    params, cfg = load_model(args)
    problem, r = args.think, args.r
    check_problem(problem, cfg)
    truth = running_values(problem)
    tokens, _, mask = encode([problem])
    width = 4 if len(truth) <= 12 else 1
    header = layout(problem)[0] if width > 1 else [str(j % 10) for j in range(len(truth))]    # long: a ruler
    by_r = rdmini.logits_by_r(params, cfg, tokens, set(range(1, r + 1)), rng=np.random.default_rng(0))
    print(f"{problem} evaluated left to right mod 10 has running values {truth}. Decoded from the state s_i after "
          f"each core step i\n(the digit when right, '.' when wrong), the frontier of right values moves right:\n")
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
    cache = ("1 core slot: a token reads the last entry of every earlier one" if m == 1 else
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


def plot_trajectories(out, folder):
    """PNG figures of trajectories(): PCA component pairs of a few tokens of each kind, and convergence."""
    import matplotlib                    # imported here only: nothing else needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    picks = [i for kind in KINDS for i in [j for j, k in enumerate(out["kinds"]) if k == kind][:2]]
    fig, axes = plt.subplots(len(picks), 3, figsize=(10, 3 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        problem, t, tok = out["where"][i]
        for col in range(3):
            x, y = out["proj"][i, :, 2 * col], out["proj"][i, :, 2 * col + 1]
            ax = axes[row, col]
            ax.plot(x, y, "-", lw=0.8)
            ax.scatter(x, y, c=np.arange(len(x)), s=8, cmap="viridis")     # colour: step, dark = early
            ax.set_title(f"{out['kinds'][i]}: '{tok}' at {t} of {problem}", fontsize=8)
            ax.set_xlabel(f"PC{2 * col + 1}")
            ax.set_ylabel(f"PC{2 * col + 2}")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "trajectories_pca.png"), dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 6))
    dist = out["dist"][:, :-1]                   # the last step is s* itself: distance 0
    im = ax.imshow(np.log10(dist + 1e-12), aspect="auto", cmap="magma",
                   extent=(0.5, dist.shape[1] + 0.5, dist.shape[0] - 0.5, -0.5))     # x: step 1, 2, ...
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
    params, cfg = load_model(args)
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
            files = plot_trajectories(out, args.figures)
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


def best_setting(rows, keep=0.995):
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
    params, cfg = load_model(args)
    t_start = time.time()
    n_ops = min(8, cfg.max_seq_len - 1)
    T, n = problem_tokens(n_ops), min(300, args.eval_problems)
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
        best, fixed = best_setting(rows)
        res["grid"][str(size)] = {"r": r, "rows": rows,
                                  "best": best, "fixed_accuracy": fixed["accuracy"]}
        if best is None:
            print(f"No setting with exit keeps 99.5% of the fixed r = {r} accuracy ({fixed['accuracy']:.3f}).")
        else:
            print(f"Fewest steps that keep 99.5% of the fixed r = {r} accuracy ({fixed['accuracy']:.3f}): "
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


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=None,
                   help="total training steps (default 5000; with --resume, the total the run was started with)")
    p.add_argument("--minutes", type=float, default=None, help="also stop after this many minutes")
    p.add_argument("--task", choices=TASKS, default="running",
                   help="running: running values of a chain mod 10; addition: forward-order sums")
    p.add_argument("--n-ops", type=int, default=None,
                   help="most operations per problem (running, default 8) or digits per number (addition, default 6)")
    p.add_argument("--mean-r", type=float, default=10.0, help="mean recurrences per step (1 = no recurrence)")
    p.add_argument("--max-r", type=int, default=32, help="cap on the r drawn per step")
    p.add_argument("--k", type=int, default=4, help="backprop through the last k iterations")
    p.add_argument("--width", type=int, default=64, help="model width h")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--core", type=int, default=1, help="transformer blocks in the core")
    p.add_argument("--injection", choices=("concat", "add"), default="concat",
                   help="how e enters each iteration: concat adapter [s, e] @ W, or s + e")
    p.add_argument("--window", type=int, default=0,
                   help="attention window: each position sees itself and the window - 1 positions before it "
                        "(try 4 for problems longer than trained); 0: the whole prefix, as Huginn")
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
    p.add_argument("--weight-decay", type=float, default=0.3, help="AdamW weight decay")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    p.add_argument("--r", type=int, default=8, help="test-time r for the progress line")
    p.add_argument("--out", default=os.path.join("runs", "toy"), help="run folder")
    p.add_argument("--seeds", default=None,
                   help="train once per seed, e.g. 0-4 or 0,3,7, each into OUT/seed<N>, and summarise them in "
                        "OUT/summary.json: mean and min-max per r")
    p.add_argument("--jobs", type=int, default=None,
                   help="--seeds: runs at once (default: the cores divided by --threads)")
    p.add_argument("--compare", metavar="REFERENCE", default=None,
                   help="--seeds: compare with the summary.json in REFERENCE (a folder or the file)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--stop-at", type=int, default=None, help="stop and save at this step, as Ctrl-C would")
    p.add_argument("--eval-only", action="store_true", help="evaluate the checkpoint in --out")
    p.add_argument("--log-every", type=int, default=100, help="steps between progress lines")
    p.add_argument("--save-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--eval-problems", type=int, default=2000,
                   help="held-out problems in the final table (--inference-report: at most 300)")
    p.add_argument("--bench", action="store_true", help="measure speed and memory instead of training")
    p.add_argument("--bench-steps", type=int, default=20,
                   help="--bench: rounds of timing, each one training step and the other figures in turn "
                        "(and half as many steps, at least 3, for the profile split)")
    p.add_argument("--think", metavar="PROBLEM", default=None,
                   help="load the checkpoint in --out and show it thinking about PROBLEM, step 1..--r, then "
                        "streamed token by token through the KV cache with adaptive exit")
    p.add_argument("--exit-threshold", type=float, default=5e-4,
                   help="--think's adaptive exit: a token stops below this (--inference-report measures several)")
    p.add_argument("--exit-criterion", choices=("kl", "state"), default="kl",
                   help="--think's adaptive exit: KL between consecutive steps' predictions, or relative state change")
    p.add_argument("--cache-budget", type=int, default=1,
                   help="--think: core KV-cache slots m; with 1 every token reads the last entry of every earlier "
                        "one (tutorial, section 4.3); 0: m = r, a slot per step")
    p.add_argument("--read-rule", choices=rdmini.READ_RULES, default="latest",
                   help="--think: which entry of an earlier token a token reads at step i: the one in slot i %% m "
                        "(latest), or the deepest it has (always-last)")
    p.add_argument("--continuous-cot", action="store_true",
                   help="--think: start each token's s_0 from the previous token's final state")
    p.add_argument("--trajectories", action="store_true",
                   help="classify the latent state trajectories (fixed point, orbit, slider) of a few problems")
    p.add_argument("--traj-steps", type=int, default=128, help="--trajectories: core steps to run")
    p.add_argument("--plot", action="store_true", help="--trajectories: write PNG figures (needs matplotlib)")
    p.add_argument("--figures", default="figures", help="folder for --plot's figures")
    p.add_argument("--inference-report", action="store_true",
                   help="measure the KV cache, its sharing and adaptive exit; writes inference.json in --out")
    args = p.parse_args(argv)
    if args.steps is None and not args.resume:
        args.steps = 5000
    for name, low in (("steps", 1), ("mean_r", 1), ("max_r", 1), ("k", 1), ("width", 2),
                      ("heads", 1), ("core", 1), ("window", 0), ("jobs", 1), ("batch", 1), ("threads", 1), ("r", 1),
                      ("log_every", 1), ("save_every", 1), ("eval_problems", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    args.loss = args.loss or ("frontier" if args.task == "running" else "all")
    args.window = args.window or None                     # 0: no window (Config's None)
    if args.n_ops is not None and args.n_ops < 1:
        p.error(f"--n-ops must be >= 1, got {args.n_ops}")
    if args.threads > args.batch:
        p.error(f"--threads ({args.threads}) cannot exceed --batch ({args.batch}): "
                "each thread takes a slice of the batch")
    for name, value in vars(args).items():           # nan compares False with everything: refuse it by name
        if isinstance(value, float) and not math.isfinite(value) and name != "exit_threshold":
            p.error(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if args.lr <= 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if not args.exit_threshold >= 0:
        p.error(f"--exit-threshold must be >= 0, got {args.exit_threshold}")
    if args.cache_budget < 0:
        p.error(f"--cache-budget must be >= 0 (0: a slot per step), got {args.cache_budget}")
    args.cache_budget = args.cache_budget or None
    if args.compare and args.seeds is None:
        p.error("--compare goes with --seeds: run the variant over several seeds to compare it")
    if args.seeds is not None and (args.resume or args.eval_only or args.stop_at is not None or args.bench
                                   or args.think or args.trajectories or args.inference_report):
        p.error("--seeds trains new runs to the end: it does not go with --resume, --eval-only, --stop-at, "
                "--bench or the inference views")
    if args.traj_steps < 17:
        p.error(f"--traj-steps must be >= 17 (the classifier looks at the last 16 steps), got {args.traj_steps}")
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
    try:
        if args.bench or not (args.think or args.trajectories or args.inference_report or args.eval_only):
            check_out_folder(args.out)
        if args.seeds is not None:
            return run_seeds(args, argv)
        if args.bench:
            return bench(args)
        if args.think is not None:
            return think(args)
        if args.trajectories:
            return show_trajectories(args)
        if args.inference_report:
            return inference_report(args)
        return train(args)
    except ValueError as err:          # bad checkpoints and bad settings: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
