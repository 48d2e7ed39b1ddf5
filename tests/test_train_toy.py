"""train_toy.py: a tiny training run, resume, the threaded step, the command line and its bad input; bench.py, seeds.py."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import rdmini
import bench
import seeds
import think
import task
import train_toy as tt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--width", "16", "--heads", "2", "--batch", "16", "--mean-r", "3", "--k", "2", "--max-r", "6",
        "--eval-problems", "40", "--log-every", "5", "--save-every", "5", "--n-ops", "3"]   # short: a quick report


def run(args, tmp_path, name="run"):
    out = str(tmp_path / name)
    tt.main(TINY + ["--out", out] + args)
    return out


def test_tiny_run_learns(tmp_path):
    """A short run on 1-operation problems: the loss falls and the model beats chance (one digit in 10)."""
    out = run(["--steps", "200", "--n-ops", "1", "--lr", "1e-2", "--warmup", "10", "--batch", "64",
               "--log-every", "10"], tmp_path)
    res = json.load(open(os.path.join(out, "results.json")))
    assert res["log"][-1]["loss"] < 0.7 * res["log"][0]["loss"]
    # the value after one operation (a 300-entry table to learn) is right far more often than a guess
    assert res["position_accuracy_by_r"]["3"][1] > 0.4
    assert set(res["accuracy_by_r"]) == {str(r) for r in task.R_VALUES}


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    straight = run(["--steps", "12"], tmp_path, "straight")
    split = run(["--steps", "12", "--stop-at", "6"], tmp_path, "split")
    assert rdmini.load_checkpoint(os.path.join(split, "checkpoint.npz"))[2]["step"] == 6
    run(["--steps", "12", "--resume"], tmp_path, "split")
    a, _, sa = rdmini.load_checkpoint(os.path.join(straight, "checkpoint.npz"))
    b, _, sb = rdmini.load_checkpoint(os.path.join(split, "checkpoint.npz"))
    assert sa["step"] == sb["step"] == 12
    for name in a:
        assert np.array_equal(a[name], b[name]), name
        assert np.array_equal(sa["adam_v"][name], sb["adam_v"][name]), name


def test_frontier_loss_scores_each_problem_up_to_its_first_wrong_answer():
    targets = np.array([[3, 8, 6, 9], [1, 2, 3, 0], [5, 5, 5, 5], [0, 4, 4, 4]])
    guess = np.array([[3, 8, 6, 9],     # all right: every answer scored
                      [1, 7, 3, 0],     # first wrong at 1: scored 0 and 1, not the lucky 3 and 0 after it
                      [4, 5, 5, 5],     # wrong at once: only position 0
                      [9, 4, 1, 4]])    # position 0 holds no answer (mask): its wrong guess does not count
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=bool)
    logits = np.eye(10)[guess]                                                  # (4,4,10): argmax = guess
    expected = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=bool)
    assert np.array_equal(tt.frontier_mask(logits, targets, mask), expected)


@pytest.mark.parametrize("frontier", [False, True])
def test_threads_split_the_batch_without_changing_loss_or_gradients(frontier):
    """--threads cuts each batch into slices; in float64 their sum must be the whole batch's loss and
    gradient, for slices of unequal size (5 problems in 2 and 3 threads) and answer counts too, and with the
    frontier loss, whose scored answers depend on every slice's forward."""
    cfg = rdmini.Config(vocab_size=len(task.VOCAB), width=8, n_heads=2, mlp_hidden=8, n_core=1, dtype="float64")
    params = rdmini.init_params(cfg, 0)
    rng = np.random.default_rng(0)
    batch = task.encode(task.random_problems(rng, 3, 1) + task.random_problems(rng, 2, 3))   # padded: masks differ
    state0 = rdmini.initial_state(cfg, batch[0].shape + (cfg.width,), rng)
    loss1, grads1 = tt.loss_and_grads(params, cfg, batch, 3, 2, state0, frontier=frontier)
    logits, cache = rdmini.forward(params, cfg, batch[0], 3, 2, state0=state0)
    mask = tt.frontier_mask(logits, batch[1], batch[2]) if frontier else batch[2]
    assert frontier == (mask.sum() < batch[2].sum())         # an untrained model: the frontier drops answers
    assert loss1 == rdmini.cross_entropy(logits, batch[1], mask)[0]
    for threads in (2, 3):
        loss, grads = tt.loss_and_grads_threaded(params, cfg, batch, 3, 2, state0, threads, frontier)
        assert abs(loss - loss1) < 1e-12
        for name in grads1:
            assert np.allclose(grads[name], grads1[name], rtol=1e-10, atol=1e-13), (threads, name)


def test_cross_entropy_count_must_cover_the_mask(batch, make_cfg):
    cfg = make_cfg()
    _, targets, mask = batch(cfg)
    logits = np.zeros(targets.shape + (cfg.vocab_size,))
    with pytest.raises(ValueError, match="count=1 must be a whole number >= 1 and at least"):
        rdmini.cross_entropy(logits, targets, mask, count=1)
    with pytest.raises(ValueError, match="whole number"):
        rdmini.cross_entropy(logits, targets, mask, count=mask.sum() + 0.5)
    # an empty slice of a batch is fine when the batch's count is given: it adds nothing
    loss, dlogits = rdmini.cross_entropy(logits, targets, np.zeros_like(mask), count=5)
    assert loss == 0 and not dlogits.any()


def test_resume_of_a_checkpoint_from_before_threads_loss_and_window(tmp_path, capsys):
    """Checkpoints written before --threads, --loss, --window and --final-lr-ratio existed have none of
    these settings; they ran in one thread, scored every answer, attended over the whole prefix and decayed
    the learning rate to a tenth."""
    old = ["--threads", "1", "--loss", "all", "--window", "0", "--final-lr-ratio", "0.1"]
    out = run(["--steps", "6", "--stop-at", "3", *old], tmp_path)
    path = os.path.join(out, "checkpoint.npz")
    params, cfg, state = rdmini.load_checkpoint(path)
    for key in ("threads", "loss", "window", "final_lr_ratio"):
        del state["run"][key]
    rdmini.save_checkpoint(path, params, cfg, **state)
    # two threads, the frontier loss, a window, a decay to zero: each would make it another run
    for other, differ in ((old[2:], "--threads 1 there, 2 now"), (old[:2] + old[4:], "--loss all there, frontier now"),
                          (old[:4] + old[6:], "--window 0 there, 2 now"),
                          (old[:6], "--final-lr-ratio 0.1 there, 0.0 now")):
        with pytest.raises(SystemExit) as err:
            run(["--steps", "6", "--resume", *other], tmp_path)
        lines = capsys.readouterr().err.strip().splitlines()
        assert err.value.code == 2 and len(lines) == 1 and f"different settings ({differ})" in lines[0]
    run(["--steps", "6", "--resume", *old], tmp_path)
    assert rdmini.load_checkpoint(path)[2]["step"] == 6


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    run(["--steps", "6"], tmp_path)
    with pytest.raises(SystemExit) as err:
        run(["--steps", "12", "--resume", "--lr", "0.5"], tmp_path)
    assert err.value.code == 2
    assert "different settings (--lr 0.003 there, 0.5 now)" in capsys.readouterr().err


def test_eval_only_at_another_size_keeps_the_runs_results(tmp_path, capsys):
    out = run(["--steps", "4", "--n-ops", "7"], tmp_path)
    trained = json.load(open(os.path.join(out, "results.json")))
    capsys.readouterr()
    tt.main(TINY + ["--out", out, "--eval-only", "--n-ops", "2"])
    printed = capsys.readouterr().out
    assert json.load(open(os.path.join(out, "results.json"))) == trained
    other = json.load(open(os.path.join(out, "results_2.json")))
    assert (trained["n_ops"], other["n_ops"]) == (7, 2) and other["step"] == 4
    assert sorted(other["longer"], key=int) == [str(n) for n in task.eval_lengths(2, "running")]
    # the labels name the size the run trained on, not the size measured: 2 + 4 = 6 is not longer than 7
    assert (trained["trained_n_ops"], other["trained_n_ops"]) == (7, 7)
    assert "trained on 7 operations" in printed and "trained on 2" not in printed
    assert "\n10 problems with 6 operations" in printed and "Longer than trained" not in printed


def test_a_resumed_run_reports_the_whole_runs_time_and_log(tmp_path, capsys):
    short = ["--steps", "12", "--n-ops", "2"]                     # short problems: a quick final report
    straight = json.load(open(os.path.join(run(short, tmp_path, "straight"), "results.json")))
    split = run([*short, "--stop-at", "7"], tmp_path, "split")
    path = os.path.join(split, "checkpoint.npz")
    params, cfg, state = rdmini.load_checkpoint(path)
    assert [x["step"] for x in state["log"]] == [5] and state["train_seconds"] < 1000
    rdmini.save_checkpoint(path, params, cfg, **{**state, "train_seconds": 1000.0})   # as if 1000 s went before
    capsys.readouterr()
    run([*short, "--resume"], tmp_path, "split")
    printed = capsys.readouterr().out
    resumed = json.load(open(os.path.join(split, "results.json")))
    assert [x["step"] for x in resumed["log"]] == [x["step"] for x in straight["log"]] == [5, 10, 12]
    assert resumed["log"] == straight["log"]                        # the same run: the same progress lines
    assert 1000 <= resumed["train_seconds"] < 1000 + 600
    total = re.search(r"Trained 12 steps in (\d+) s \(1000 s of them before --resume\)", printed)
    assert total and abs(int(total.group(1)) - resumed["train_seconds"]) <= 1


def test_resume_without_steps_keeps_the_runs_total(tmp_path):
    """--steps defaults to 6000 for a new run; a resumed run without --steps keeps the total it began with,
    so an interrupted run of another length neither stops early nor changes its learning-rate schedule."""
    straight = run(["--steps", "8"], tmp_path, "straight")
    split = run(["--steps", "8", "--stop-at", "4"], tmp_path, "split")
    run(["--resume"], tmp_path, "split")
    a, _, sa = rdmini.load_checkpoint(os.path.join(straight, "checkpoint.npz"))
    b, _, sb = rdmini.load_checkpoint(os.path.join(split, "checkpoint.npz"))
    assert sa["step"] == sb["step"] == 8 and sb["run"]["steps"] == 8
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train_toy.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_corrupt_checkpoint_is_refused_with_one_line(tmp_path):
    ckpt = tmp_path / "checkpoint.npz"
    ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    for mode in ("--resume", "--eval-only"):
        done = cli(mode, "--out", str(tmp_path))
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and str(ckpt) in lines[0] and "Traceback" not in done.stderr
    assert ckpt.read_bytes() == b"PK\x03\x04 this is not a checkpoint"       # nothing was overwritten


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    done = cli("--eval-only", "--out", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--r", "0"], "--r must be >= 1"),
    (["--k", "-1"], "--k must be >= 1"),
    (["--n-ops", "0"], "--n-ops must be >= 1"),
    (["--mean-r", "0.5"], "--mean-r must be >= 1"),
    (["--task", "sorting"], "invalid choice: 'sorting'"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--threads", "3", "--batch", "2"], "--threads (3) cannot exceed --batch (2)"),
    (["--loss", "some"], "invalid choice: 'some'"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number"),
    (["--final-lr-ratio", "2"], "--final-lr-ratio must be between 0 and 1, got 2.0"),
    (["--final-lr-ratio", "-0.1"], "--final-lr-ratio must be between 0 and 1"),
    (["--window", "-1"], "--window must be >= 0"),
    (["--compare", "runs/x"], "--compare goes with --seeds"),
    (["--minutes", "-1"], "--minutes must be > 0, got -1.0"),
    (["--minutes", "0"], "--minutes must be > 0"),
    (["--stop-at", "-1"], "--stop-at must be >= 0, got -1"),
    (["--warmup", "-5"], "--warmup must be >= 0, got -5"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--max-r", "100000"], "--max-r must be <= 256, got 100,000: the evaluation measures r up to 128"),
    (["--r", "100000"], "--r must be <= 256"),
    (["--mean-r", "40"], "--mean-r (40) cannot exceed --max-r (32)"),
    (["--eval-problems", "1e8"], "--eval-problems: invalid int value: '1e8'"),
    (["--eval-problems", "100000000"], "--eval-problems must be <= 100,000, got 100,000,000: 100,000 problems "
                                       "already measure an accuracy of 50% to within 0.3 points (95%)"),
])
def test_bad_command_line_values_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as err:
        tt.parse_args(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and message in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--n-ops", "1000", "--steps", "1"], "the final report's evaluation (problems of up to 6000 operations) needs "
                                          "at least 1878.2 GiB and this machine has"),
    (["--n-ops", "30", "--batch", "1000000"], "a training step needs at least"),
])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_its_folder_is_made(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        tt.main([*args, "--out", str(tmp_path / "new" / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "new").exists()


def test_a_run_refused_after_its_folder_was_made_removes_it(tmp_path, capsys):
    # --compare's reference is read once the run folder exists: the refusal takes the empty folders back
    with pytest.raises(SystemExit) as err:
        tt.main(["--seeds", "0", "--compare", str(tmp_path / "nothing"), "--out", str(tmp_path / "new" / "run"),
                 *TINY_RUN])
    assert err.value.code == 2 and "no summary of several seeds" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_recipe_is_read_not_rewritten(tmp_path):
    p = tt.make_parser()
    given = p.parse_args(["--task", "addition"])                  # the flags as parsed: n_ops, loss, window None
    parsed = dict(vars(given))
    tt.check_args(p, given)
    assert vars(given) == parsed
    args = tt.parse_args(["--lab", "--task", "addition"])
    before = dict(vars(args))
    tt.make_config(args)
    tt.memory_needed(args)
    tt.describe(tt.make_config(args), args, 1)
    assert vars(args) == before and (args.n_ops, args.loss, args.window, args.steps) == (6, "all", None, 4000)


@pytest.mark.parametrize("args, message", [
    (["3+5", "--read-rule", "first"], "invalid choice: 'first'"),
    (["3+5", "--cache-budget", "-1"], "--cache-budget must be >= 0"),
    (["--trajectories", "--traj-steps", "5"], "--traj-steps must be between 17 and 256, got 5: the classifier"),
    ([], "give one of"),
    (["3+5", "--report"], "give one of"),
    (["3+5", "--r", "100000"], "--r must be between 1 and 256, got 100,000: the evaluation measures r up to 128"),
    (["--trajectories", "--traj-steps", "100000"], "--traj-steps must be between 17 and 256"),
    (["--report", "--eval-problems", "1000"], "--eval-problems must be between 1 and 300, got 1,000"),
])
def test_think_s_bad_command_line_values_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as err:
        think.parse_args(args)
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_lab_sets_its_recipe_and_a_flag_beside_it_wins():
    plain, lab = tt.parse_args([]), tt.parse_args(["--lab"])
    assert (plain.n_ops, plain.window, plain.steps, plain.final_lr_ratio, plain.out, plain.loss) == \
           (12, 2, 6000, 0.0, os.path.join("runs", "toy"), "frontier")
    assert (lab.n_ops, lab.window, lab.steps, lab.batch, lab.final_lr_ratio, lab.threads, lab.out) == \
           (6, 2, 4000, 64, 0.0, 1, os.path.join("runs", "lab"))
    assert tt.LAB == {"n_ops": 6, "batch": 64, "steps": 4000, "threads": 1, "out": os.path.join("runs", "lab")}
    with pytest.raises(SystemExit):                     # one thread per run, always: the reference's runs
        tt.parse_args(["--lab", "--threads", "2"])
    assert (task.enough_r(6), task.enough_r(12), task.enough_r(100)) == (8, 16, 64)   # the progress line's r
    # the window's default follows the task: addition's answers need digits far back
    assert tt.parse_args(["--task", "addition"]).window is None and tt.parse_args(["--window", "0"]).window is None
    norec = tt.parse_args(["--lab", "--mean-r", "1", "--k", "1", "--steps", "3000", "--window", "0"])
    assert (norec.mean_r, norec.k, norec.steps, norec.window, norec.n_ops) == (1, 1, 3000, None, 6)
    assert tt.parse_args(["--n-ops", "5", "--lab"]).n_ops == 5             # before or after --lab alike
    assert {k: getattr(lab, k) for k in ("lr", "mean_r", "k", "width")} == \
           {k: getattr(plain, k) for k in ("lr", "mean_r", "k", "width")}


def test_a_run_folder_that_cannot_be_written_is_refused_up_front(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    for out in (tmp_path / "a_file" / "run", "/proc/rdmini-run"):      # through a file; a virtual file system
        with pytest.raises(SystemExit) as err:
            tt.main(["--out", str(out), "--steps", "1"])
        lines = capsys.readouterr()
        assert err.value.code == 2 and "Training" not in lines.out
        assert len(lines.err.strip().splitlines()) == 1 and "cannot write the run folder" in lines.err


def test_flop_count_by_hand():
    """One block, one head, no MLP weirdness: every product counted by hand."""
    cfg = rdmini.Config(vocab_size=5, width=4, n_heads=1, mlp_hidden=6, n_prelude=1, n_core=1, n_coda=1)
    B, T, N = 2, 3, 6
    block = (2 * N * 4 * 12        # qkv: (6x4) @ (4x12)
             + 2 * N * 4 * 4       # proj
             + 2 * N * 4 * 12      # up: gate and value, (6x4) @ (4x6) twice
             + 2 * N * 6 * 4       # down
             + 2 * 2 * B * 3 * 3 * 4)  # q k^T and att v: B x (3x4) @ (4x3), B x (3x3) @ (3x4)
    adapter, unembed = 2 * N * 8 * 4, 2 * N * 4 * 5
    f = bench.count_flops(cfg, B, T, r=5, k=2)
    assert f["forward"] == 2 * block + unembed + 5 * (block + adapter)
    assert f["backward"] == 2 * (2 * block + unembed + 2 * (block + adapter))
    assert f["total"] == f["forward"] + f["backward"]


def test_bench_measures_in_turns():
    # each round takes every timer's measurements before the next round starts: figures taken side by side
    calls = []
    tasks = {"a": (lambda: calls.append("a") or 1.0, 1), "b": (lambda: calls.append("b") or 2.0, 2)}
    got = bench.measure_in_turns(tasks, rounds=3)
    assert calls == ["a", "b", "b"] * 3
    assert got == {"a": [1.0] * 3, "b": [2.0] * 6}


def test_bench_times_the_training_step_of_the_recipe(tmp_path, monkeypatch):
    """The benchmark runs end to end on a tiny model (no timing assertions), and what it times is
    train_toy.train_step at r = --mean-r, on the recipe's batch and problems."""
    calls = []
    real = tt.train_step
    monkeypatch.setattr(tt, "train_step", lambda *a: calls.append((a[4], a[6])) or real(*a))
    flags = ["--width", "8", "--heads", "2", "--batch", "2", "--n-ops", "2", "--mean-r", "5", "--task", "addition"]
    bench.main(["--bench-steps", "2", *flags, "--out", str(tmp_path)])
    saved = json.load(open(tmp_path / "bench.json"))
    recipe = tt.parse_args(flags)
    T = task.problem_tokens(2, "addition")
    assert saved["config"]["T"] == T == 9 and saved["config"]["r"] == 5         # "12+34=???": a token a character
    assert saved["flops_per_step"] == bench.count_flops(tt.make_config(recipe), 2, T, r=5, k=4)
    assert calls and all(r == 5 and a.task == "addition" for a, r in calls)    # every step timed is train_step
    assert {(a.n_ops, a.batch, a.threads) for a, _ in calls} == {(2, 2, 2), (2, 2, 1), (1, 1, 1), (1, 2, 2)}
    assert {"data", "optimizer", "attention"} <= set(saved["time_share"])        # the profile saw the real step
    assert saved["rounds"] == 3 and len(saved["per_round"]["step"]) == 3
    assert len(saved["per_round"]["tiny"]) == len(saved["per_round"]["tiny_threads"]) == 15
    big = saved["per_round"]["big"]
    assert (saved["matmul_gflops_2048"], saved["matmul_gflops_2048_best"]) == (np.median(big), max(big))


@pytest.mark.parametrize("flag", [["--lab"], ["--seeds", "0-4"], ["--resume"], ["--eval-problems", "10"]])
def test_bench_refuses_the_flags_of_a_run(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main([*flag, "--out", str(tmp_path / "b")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and f"unrecognized arguments: {' '.join(flag)}" in lines[0]
    assert not (tmp_path / "b").exists()


TINY_RUN = ["--steps", "4", "--width", "8", "--heads", "2", "--n-ops", "2", "--eval-problems", "20", "--threads", "1"]


def test_seeds_train_one_run_per_seed_and_summarise(tmp_path, capsys):
    out = tmp_path / "ref"
    tt.main(["--seeds", "0-1", "--out", str(out), *TINY_RUN])
    summary = json.load(open(out / "summary.json"))
    assert summary["seeds"] == [0, 1] and summary["settings"]["n_ops"] == 2
    for seed in (0, 1):                 # each seed is the same run as its own command line would give
        alone = tt.main(["--seed", str(seed), "--out", str(tmp_path / f"alone{seed}"), *TINY_RUN])
        assert summary["runs"][str(seed)]["accuracy_by_r"] == alone["accuracy_by_r"]
    acc = [summary["runs"][s]["accuracy_by_r"]["8"] for s in ("0", "1")]
    assert summary["accuracy_by_r"]["8"] == {"mean": np.mean(acc), "median": np.median(acc), "min": min(acc),
                                             "max": max(acc)}

    capsys.readouterr()
    tt.main(["--seeds", "2,3", "--out", str(tmp_path / "variant"), "--compare", str(out), "--injection", "add",
             *TINY_RUN])
    printed = capsys.readouterr().out
    assert "what differs: --injection concat -> add" in printed and "7 measures judged at once" in printed
    assert "Unpaired: the reference lacks seeds 2, 3" in printed
    variant = json.load(open(tmp_path / "variant" / "summary.json"))
    assert variant["seeds"] == [2, 3] and set(variant["runs"]["2"]["measures"]) >= {"trained", "peak_mib", "gflops"}
    assert "rdmini.py" in variant["sources"]["files"]         # what was run: the sources, with their diffs


def test_compare_refuses_another_task_size_or_folder(tmp_path, capsys):
    out = tmp_path / "ref"
    tt.main(["--seeds", "0", "--out", str(out), *TINY_RUN])
    bigger = [*TINY_RUN, "--n-ops", "3"]                          # the last --n-ops counts
    for argv, message in ((["--seeds", "1", *bigger, "--compare", str(out)], "another task or size (n_ops 2 there, 3 "),
                          (["--seeds", "1", *TINY_RUN, "--compare", str(tmp_path)], "no summary of several seeds")):
        with pytest.raises(SystemExit) as err:
            tt.main([*argv, "--out", str(tmp_path / "variant")])
        assert err.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("text, numbers", [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]), ("0-2,5", [0, 1, 2, 5])])
def test_parse_seeds(text, numbers):
    assert seeds.parse_seeds(text) == numbers


@pytest.mark.parametrize("text", ["a-b", "3,3", "", "-1"])
def test_parse_seeds_refuses_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="--seeds"):
        seeds.parse_seeds(text)


def test_seeds_refuse_options_that_do_not_finish_a_run(capsys):
    with pytest.raises(SystemExit) as err:
        tt.parse_args(["--seeds", "0-1", "--stop-at", "3"])
    assert err.value.code == 2 and "--seeds trains new runs to the end" in capsys.readouterr().err


def test_resume_names_the_window_as_the_flag_writes_it(tmp_path, capsys):
    run(["--steps", "6"], tmp_path)
    with pytest.raises(SystemExit):
        run(["--steps", "12", "--resume", "--window", "4"], tmp_path)
    assert "--window 2 there, 4 now" in capsys.readouterr().err


def test_problems_six_times_the_trained_length_encode_and_evaluate():
    args = tt.parse_args(["--width", "8", "--heads", "2"])
    cfg = tt.make_config(args)                                   # the default task: 12 operations
    assert args.n_ops == 12 and task.eval_lengths(12, "running") == [16, 24, 48, 72]
    problems = task.random_problems(np.random.default_rng(0), 3, 72)
    tokens, targets, mask = task.encode(problems)
    assert tokens.shape == (3, 73) and cfg.max_seq_len >= 73 and mask.all()
    assert ["".join(map(str, t)) for t in targets] == [task.running_values(p) for p in problems]
    result = task.evaluate(rdmini.init_params(cfg, 0), cfg, problems, [1, 64])
    assert len(result[64][1]) == 73 and all(len(guess) == 73 for guess in result[64][2])


def test_ctrl_c_during_seeds_is_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr(seeds, "start_run", interrupted)
    with pytest.raises(SystemExit) as err:
        tt.main(["--seeds", "0-1", "--out", str(tmp_path), *TINY_RUN])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and "interrupted" in lines[0]


def test_the_shipped_lab_reference_is_the_lab_recipe_over_ten_seeds():
    """docs/lab_reference.json is what `--compare` reads in class: the summary of `--lab --seeds 0-9`, made by
    summarise() from committed code, with the settings a student's `--lab` run has and every judged measure."""
    ref = seeds.load_summary(os.path.join(ROOT, "docs", "lab_reference.json"))
    lab = tt.parse_args(["--lab"])
    assert ref["settings"] == {k: getattr(lab, k) for k in tt.RUN_KEYS if k != "seed"}
    assert ref["seeds"] == list(range(10)) and ref["eval_problems"] == 2000
    assert set(ref["accuracy_by_r"]) == {str(r) for r in task.R_VALUES}
    for key, _, _ in seeds.MEASURES:
        assert all(run["measures"][key] is not None for run in ref["runs"].values()), key
    assert ref["sources"]["commit"] and all(f["diff"] == "" for f in ref["sources"]["files"].values())
    per_seed = [ref["runs"][str(s)]["measures"]["extrapolation"] for s in range(10)]
    assert ref["measures"]["extrapolation"]["min"] == min(per_seed)
