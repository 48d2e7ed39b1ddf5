"""task.py: the toy task, on its own: what train_toy.py trains on, and what think.py and bench.py read.

The running task (train_toy.py's docstring shows it): a chain such as 3+5*2-7 evaluated left to right mod
10, the model writing the running value under every operation. The addition task: forward-order sums.

Where things are: the vocabulary; the truth in plain Python (running_values, sum_digits); problems and
their tokens (random_problems, layout, encode, make_batch); reading a problem the model is given
(check_problem, predict); evaluation at every r (evaluate, print_table, eval_lengths, enough_r); and what
the three scripts share: parallel_map, save_json, the run folder's check, glibc's freed memory kept, the
memory check, and their command lines' error handling (Parser, cli).
"""
import argparse
import concurrent.futures
import ctypes
import json
import os
import sys
import tempfile

import numpy as np

import rdmini

# Tokens: the digits; '+-*=?.' ('+' and '=' for the addition task, '?' marks where an answer goes, '.' pads;
# '-' and '*' are left from the one-per-character layout); and one token per operation of the running task,
# "+0" to "*9". Why operation tokens rather than one per character (3 + 5 ...): the previous answer is always
# one position back, and a problem of n operations takes n + 1 tokens instead of 2n + 1, so a step is
# shorter. The two layouts are compared in docs/notes.md.
VOCAB = [str(d) for d in range(10)] + list("+-*=?.") + [op + str(d) for op in "+-*" for d in range(10)]
PAD = VOCAB.index(".")
TOKEN = {c: i for i, c in enumerate(VOCAB)}
TASKS = ("running", "addition")
EVAL_SEED = 2025                       # held-out problems come from their own stream, the same in every run
R_VALUES = (1, 2, 3, 4, 6, 8, 16, 32, 64)
LONG_R_VALUES = R_VALUES + (128,)      # longer problems: the frontier needs about one iteration per operation
MAX_R = 2 * max(LONG_R_VALUES)        # the largest r a flag takes: twice what any evaluation measures
MAX_EVAL_PROBLEMS = 100_000           # the most held-out problems a flag takes

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
    """encode() of the problems' strings, built in numpy from the draws, as every training step needs one
    (the Python loop of encode() is slower; a test checks the two agree).
    digits (B, n+1), ops (B, n) -> tokens, targets, mask, each (B, n+1)."""
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
    if cfg.window is None and length > cfg.max_seq_len:          # a window reads any length
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
    """The longer problem sizes final_report measures, in order: n_ops + 4 (16 for the default), and for the
    running task 2x, 4x and 6x the trained size, which a fixed stack of layers could not reach."""
    return sorted({n_ops + 4} | ({2 * n_ops, 4 * n_ops, 6 * n_ops} if task == "running" else set()) - {n_ops})


def enough_r(n_ops):
    """The first r of R_VALUES at least n_ops + 2 (8 for the lab, 16 for the default): enough for the
    frontier, about one operation per iteration, to cross the problem. The progress line's r and the final
    report's wrong answers use it."""
    return next((r for r in R_VALUES if r >= n_ops + 2), R_VALUES[-1])


# ============================================================================================
# What the scripts share: threads, files, memory, and their command lines' errors
# ============================================================================================

def parallel_map(fn, items, threads):
    """list(map(fn, items)), spread over `threads` threads when threads > 1; results stay in order.
    A new pool per call: starting two threads is cheap beside a training step (bench.py measures the
    overhead), and nothing is left running between steps."""
    if threads <= 1:
        return list(map(fn, items))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def save_json(obj, folder, name):
    """Write obj to folder/name as JSON (the folder made if need be); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def check_out_folder(folder):
    """Make the run folder and try writing in it now, so that a folder that cannot be written (a read-only
    or virtual file system, a path through a file) is refused before training, not after it; a folder
    made here for a run that is refused is removed again."""
    made, parent = [], os.path.abspath(folder)
    while not os.path.exists(parent):             # the folders this call makes, deepest first
        made.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        remove_empty(made)
        raise ValueError(f"cannot write the run folder --out {folder} ({err.strerror or err}); "
                         "choose another folder") from None
    return made


def remove_empty(folders):
    for path in folders:                           # deepest first; a folder with anything in it stays
        try:
            os.rmdir(path)
        except OSError:
            pass


def keep_freed_memory():
    """Each step frees and allocates again the same activation arrays, too large for glibc's heap by default:
    malloc maps them fresh from the system (or gives freed memory back), so every step pays a page fault per
    page again (bench.py measured what that costs: docs/notes.md). Keep what is freed: arrays up to 32 MiB
    come from the heap, and up to 1 GiB of it is kept (both are set: setting either one turns off glibc's
    automatic threshold). Numbers are unchanged; resident memory is higher by what glibc
    keeps. Linux with glibc only; anywhere else it does nothing and returns False."""
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                     # from glibc's <malloc.h>
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 2**20) and mallopt(M_TRIM_THRESHOLD, 2**30))


def attention_bytes(cfg, B, T):
    """Bytes of one (B,H,T,T) attention array."""
    return B * cfg.n_heads * T * T * np.dtype(cfg.dtype).itemsize


def available_memory():
    """Bytes this machine can still give (Linux's MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def check_memory(needs):
    """Refuse, before anything is written, what cannot fit in this machine's free memory.
    needs: [(bytes, what)], as memory_needed gives."""
    free = available_memory()
    need, what = max(needs)
    if free is not None and need > free:
        raise ValueError(f"{what} needs at least {need / 2**30:.1f} GiB and this machine has {free / 2**30:.1f} GiB "
                         "free: use a smaller --n-ops, --batch, --k or --eval-problems")


class Parser(argparse.ArgumentParser):
    """argparse's parser with the defaults in --help, and errors on one line (argparse's own print the usage
    first): "train_toy.py: error: --lr must be > 0, got -1.0 (--help lists the options)", then exit 2."""

    def __init__(self, description):
        super().__init__(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")


def cli(work, *args):
    """work(*args) for a script's main(): a ValueError it raises (a bad checkpoint, problem or setting found
    as it runs) ends the script with one line on stderr, "error: ...", and exit 2, never a traceback."""
    try:
        return work(*args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
