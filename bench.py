"""bench.py: how fast is a training step on this machine, and how much memory does it take?

    python bench.py                   # the default recipe's step: ms, tokens/s, MFU, where the time goes, memory
    python bench.py --width 128       # any recipe flag of train_toy.py sets the step that is measured
    python bench.py --n-ops 6         # the lab's step (a run's flags, --lab, --seeds, --resume, are refused)

Speed is measured against this machine's own matrix-multiply rate, in turns, because a virtual machine's
speed drifts; the methodology and past measurements are in docs/notes.md. It writes bench.json in --out.
"""
import argparse
import itertools
import os
import sys
import time
import tracemalloc

# One BLAS thread, as train_toy.py sets it, so that the step measured is the step training runs.
# (It must be set before numpy is imported.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import rdmini  # noqa: E402
import train_toy  # noqa: E402
from task import (check_memory, check_out_folder, cli, keep_freed_memory, make_batch, parallel_map,  # noqa: E402
                  problem_tokens, save_json)
from seeds import count_flops  # noqa: E402  (the count the lab's summaries judge)
from train_toy import loss_and_grads, make_config  # noqa: E402


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
    gave different MFUs for the same code within minutes: docs/notes.md). In turns, a drift touches every figure
    alike, instead of the step's and the matmul's being measured on two different machines."""
    got = {name: [] for name in timers}
    for _ in range(rounds):
        for name, (measure, count) in timers.items():
            got[name] += [measure() for _ in range(count)]
    return got


TINY_PER_ROUND = 5              # tiny steps take a few milliseconds: each round's figure is a median of 5


def time_in_turns(timers, threads, rounds):
    """The timed figures of bench.py from measure_in_turns: medians over the rounds, except the large
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
        self.wrap(train_toy, "make_batch", "data")
        return self

    def __exit__(self, *exc):
        for (module, name), fn in self.saved.items():
            setattr(module, name, fn)


def peak_memory(params, cfg, args, r, k):
    """Peak bytes numpy allocates during one forward + backward (tracemalloc sees numpy's buffers)."""
    tokens, targets, mask = make_batch(np.random.default_rng(0), args.batch, args.n_ops, args.task)
    tracemalloc.start()
    logits, cache = rdmini.forward(params, cfg, tokens, r, k, rng=np.random.default_rng(0))
    grads = rdmini.backward(cache, rdmini.cross_entropy(logits, targets, mask)[1])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del grads, cache
    return peak


def stepper(args, r, **change):
    """The training step train_toy.py runs (train_step), at a fixed r, for the recipe args with `change`
    applied, on a model, optimizer and random streams of its own. -> (step: a function of no argument, params,
    cfg)."""
    recipe = argparse.Namespace(**{**vars(args), **change})
    cfg = make_config(recipe)
    params = rdmini.init_params(cfg, recipe.seed)
    opt, rngs, count = rdmini.adamw_init(params), train_toy.new_rngs(recipe.seed), itertools.count()
    return (lambda: train_toy.train_step(params, cfg, opt, rngs, recipe, next(count), r)), params, cfg


def overhead_timers(args, r):
    """Timers of Python's overhead, for time_in_turns: the training step on a tiny model."""
    # Python overhead: the same step on a model so small that numpy's arithmetic is nearly free; what
    # remains is the interpreter and numpy's per-call cost, paid the same at any size. Counted two ways:
    # in one thread, the tiny step and its other slices one after the other (only one thread can run
    # Python at a time, so the slices' overheads add up); and the tiny step run by the threads, as a real
    # step runs, which also pays for handing the interpreter from one thread to the other.
    tiny = {"width": 8, "heads": 2, "n_ops": 1}
    tiny_step, _, tiny_cfg = stepper(args, r, **tiny, batch=1, threads=1)          # one problem, one thread
    tiny_threads, _, _ = stepper(args, r, **tiny, batch=args.threads, threads=args.threads)   # one each
    tiny_params = rdmini.init_params(tiny_cfg, 0)
    tiny_batch = make_batch(np.random.default_rng(0), 1, 1, args.task)
    tiny_s0 = rdmini.initial_state(tiny_cfg, tiny_batch[0].shape + (tiny_cfg.width,), np.random.default_rng(0))

    def tiny_slice():                                               # one slice: forward, loss, backward
        loss_and_grads(tiny_params, tiny_cfg, tiny_batch, r, args.k, tiny_s0, args.loss == "frontier")
    return {"tiny": (lambda: seconds(tiny_step), TINY_PER_ROUND),
            "tiny_slice": (lambda: seconds(tiny_slice), TINY_PER_ROUND),
            "tiny_threads": (lambda: seconds(tiny_threads), TINY_PER_ROUND)}


def bench(args):
    """Time the recipe's training step; compare with the machine's matmul rate; memory vs r and k.
    The timings are taken in turns (time_in_turns); the profile split and the memory come after."""
    r, k, B, T = min(int(round(args.mean_r)), args.max_r), args.k, args.batch, problem_tokens(args.n_ops, args.task)
    step, params, cfg = stepper(args, r)                                  # the recipe's step, in its threads
    one_thread, _, _ = stepper(args, r, threads=1)                     # the same step in one thread
    shape = (B * T // args.threads, cfg.width, 2 * cfg.mlp_hidden)       # the MLP's up-projection, one slice
    timers = {"step": (lambda: seconds(step), 1),
              "one_thread": (lambda: seconds(one_thread), 1),
              **overhead_timers(args, r),
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
            one_thread()
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


def main(argv=None):
    p = train_toy.make_parser("bench.py: time a training step of the recipe these flags set, and its memory",
                              run=False)
    p.add_argument("--out", default=os.path.join("runs", "bench"), help="folder for bench.json")
    p.add_argument("--bench-steps", type=int, default=20,
                   help="rounds of timing, each one training step and the other figures in turn "
                        "(and half as many steps, at least 3, for the profile split)")
    args = train_toy.parse_args(sys.argv[1:] if argv is None else argv, p)
    if args.bench_steps < 1:
        p.error(f"--bench-steps must be >= 1, got {args.bench_steps}")
    return cli(run, args)


def run(args):
    # the largest step measured: the memory table's r = 64, k = 16
    largest = argparse.Namespace(**{**vars(args), "k": max(args.k, 16), "max_r": max(args.max_r, 64)})
    check_memory([(train_toy.step_memory(largest), "the memory table's step at r = 64, k = 16")])
    keep_freed_memory()
    check_out_folder(args.out)
    return bench(args)


if __name__ == "__main__":
    main()
