"""The lab's instrument (seeds.py) on made-up summaries: the verdict per measure, paired and unpaired, Holm's
correction, what was run, and the references it refuses. No training here: the summaries are written by hand."""
import json
import os
import subprocess

import numpy as np
import pytest

import seeds

KEYS = [key for key, _, _ in seeds.MEASURES]
BASE = {"trained": 0.998, "extrapolation": 0.97, "thinking_r": 8, "learning_step": 900,
        "params": 103_000, "gflops": 1.5, "peak_mib": 40.0, "ms_per_step": 50.0}
NOISE = {"trained": 0.002, "extrapolation": 0.02, "thinking_r": 1, "learning_step": 100}   # the rest: a cost, fixed


def made_up(seed_list, shift=None, rng_seed=0, n_ops=8, sources=None):
    """A summary as run_seeds writes it, of runs whose measures are BASE + NOISE * (a + b / 4) (+ shift), a and b
    standard normal: a is seed s's own (its problems and draws, shared by the pair), b is rng_seed's."""
    runs = {}
    for s in seed_list:
        shared, own = np.random.default_rng([0, s]), np.random.default_rng([1, rng_seed, s])
        m = {k: v + NOISE.get(k, 0) * (shared.standard_normal() + own.standard_normal() / 4)
             + (shift or {}).get(k, 0) for k, v in BASE.items()}
        runs[str(s)] = {"measures": m}
    return {"settings": {"task": "running", "n_ops": n_ops, "steps": 2000, "window": 2}, "eval_problems": 2000,
            "seeds": list(seed_list), "enough_r": 16, "sources": sources, "runs": runs,
            "accuracy_by_r": {}, "longer": {},
            "measures": {k: seeds.spread([r["measures"][k] for r in runs.values()]) for k in BASE}}


def words(verdict):
    return {k: v["word"] for k, v in verdict.items()}


def test_the_unchanged_model_gets_no_word_and_a_worse_extrapolation_gets_worse(capsys):
    ref = made_up(range(10))
    same = seeds.compare(made_up(range(5), rng_seed=1), ref, "ref")
    assert set(words(same).values()) == {"no difference detected"}
    worse = seeds.compare(made_up(range(5), shift={"extrapolation": -0.3}, rng_seed=1), ref, "ref")
    assert words(worse) == {k: "worse" if k == "extrapolation" else "no difference detected" for k in KEYS}
    v = worse["extrapolation"]
    assert v["how"] == "paired" and v["high"] < 0 and v["low"] < -0.3 < v["high"]
    printed = capsys.readouterr().out
    assert "Paired: seed i here against seed i there (5 pairs)" in printed and "WORSE" in printed
    assert "at most 5% (1 in 20)" in printed and "7 measures judged at once" in printed


def test_better_needs_the_right_direction():
    ref = made_up(range(10))
    v = seeds.compare(made_up(range(5), shift={"thinking_r": -4, "learning_step": -600}, rng_seed=1), ref, "ref")
    assert v["thinking_r"]["word"] == "better" and v["learning_step"]["word"] == "better"   # fewer is better
    v = seeds.compare(made_up(range(5), shift={"trained": +0.01}, rng_seed=1), ref, "ref")
    assert v["trained"]["word"] == "better" and v["trained"]["diff"] == pytest.approx(0.01, abs=0.002)


def test_pairing_removes_the_seeds_shared_noise():
    """Seed i of the variant and of the reference share most of their noise: paired, a small shift is seen
    beyond doubt; the same shift on seeds the reference lacks (unpaired) is far less certain."""
    ref = made_up(range(10))
    paired = seeds.judge(*[{k: {int(s): r["measures"][k] for s, r in x["runs"].items()} for k in KEYS}
                           for x in (made_up(range(5), shift={"extrapolation": -0.03}, rng_seed=1), ref)],
                         [(k, +1) for k in KEYS])
    unpaired = seeds.judge(*[{k: {int(s): r["measures"][k] for s, r in x["runs"].items()} for k in KEYS}
                             for x in (made_up(range(10, 15), shift={"extrapolation": -0.03}, rng_seed=1), ref)],
                           [(k, +1) for k in KEYS])
    assert paired["extrapolation"]["how"] == "paired" and paired["extrapolation"]["word"] == "worse"
    assert unpaired["extrapolation"]["how"] == "unpaired"
    assert unpaired["extrapolation"]["p"] > 2 * paired["extrapolation"]["p"]


def test_unpaired_is_said_in_the_printout(capsys):
    seeds.compare(made_up(range(10, 15)), made_up(range(10)), "ref")
    assert "Unpaired: the reference lacks seeds 10, 11, 12, 13, 14" in capsys.readouterr().out


def test_one_seed_is_held_against_the_reference_spread(capsys):
    ref = made_up(range(10))
    v = seeds.compare(made_up([3], shift={"extrapolation": -0.5}), ref, "ref")
    assert v["extrapolation"]["how"] == "one seed" and v["extrapolation"]["word"] == "worse"
    assert v["trained"]["word"] == "no difference detected"
    assert "One seed: held against the reference's spread" in capsys.readouterr().out
    alone = seeds.judge({"x": {0: 0.5}}, {"x": {0: 0.9}}, [("x", +1)])["x"]      # one seed each: cannot tell
    assert alone["how"] == "one seed each" and alone["word"] == "no difference detected" and alone["low"] is None


def test_identical_values_and_exact_costs():
    ref = made_up(range(10))
    v = seeds.compare(made_up(range(10)), ref, "ref")                # the reference against itself
    assert all(x["diff"] == 0 and x["word"] == "no difference detected" for x in v.values())
    v = seeds.compare(made_up(range(5), shift={"params": 1000, "peak_mib": -2}), ref, "ref")
    assert v["params"]["word"] == "worse" and v["params"]["low"] == v["params"]["high"] == 1000   # a cost: exact
    assert v["peak_mib"]["word"] == "better" and v["gflops"]["word"] == "no difference detected"
    alike = json.loads(json.dumps(ref))       # a noisy measure whose every pair moved by one whole r: no spread
    for run in list(alike["runs"].values())[:5]:
        run["measures"]["thinking_r"] = round(run["measures"]["thinking_r"]) + 1
    for run in ref["runs"].values():
        run["measures"]["thinking_r"] = round(run["measures"]["thinking_r"])
    alike["runs"] = {k: alike["runs"][k] for k in list(alike["runs"])[:5]}
    v = seeds.compare(alike, ref, "ref")["thinking_r"]           # the sign test: 2 / 2**5, not below 5% / 7
    assert v["diff"] == 1 and v["p"] == pytest.approx(2 / 32) and v["word"] == "no difference detected"
    crumbs = made_up(range(5))                # tracemalloc's peak moves by bytes from seed to seed: not a change
    for i, run in enumerate(crumbs["runs"].values()):
        run["measures"]["peak_mib"] -= (60 + i) / 2 ** 20
    assert seeds.compare(crumbs, ref, "ref")["peak_mib"]["word"] == "no difference detected"


def test_holm_needs_more_than_one_measure_alone_would():
    """p = 0.02 would be a word for one measure alone; among seven at once it is not (0.05 / 7 = 0.007)."""
    d = [0.2, 1.5, 1.0, 2.0, 1.2]                       # t = 3.97 on 4 degrees of freedom: p = 0.017
    mine = {"a": {i: x for i, x in enumerate(d)}, **{k: {i: 0.0 for i in range(5)} for k in "bcdefg"}}
    ref = {k: {i: 0.0 for i in range(5)} for k in "abcdefg"}
    alone = seeds.judge({"a": mine["a"]}, {"a": ref["a"]}, [("a", +1)])["a"]
    assert alone["p"] == pytest.approx(0.0166, abs=0.001) and alone["word"] == "better"
    assert seeds.judge(mine, ref, [(k, +1) for k in "abcdefg"])["a"]["word"] == "no difference detected"


def test_student_t_matches_its_table():
    assert seeds.t_sf2(2.776445, 4) == pytest.approx(0.05, rel=1e-4)
    assert seeds.t_sf2(2.262157, 9) == pytest.approx(0.05, rel=1e-4)
    assert seeds.t_quantile(0.01, 4) == pytest.approx(4.604095, rel=1e-4)
    assert seeds.t_sf2(0.0, 3) == pytest.approx(1.0)


def test_refuses_another_task_size_or_missing_measures():
    ref = made_up(range(10))
    with pytest.raises(ValueError, match="another task or size"):
        seeds.compare(made_up(range(5), n_ops=6), ref, "ref")
    old = json.loads(json.dumps(ref))
    for run in old["runs"].values():
        del run["measures"]["extrapolation"]
    with pytest.raises(ValueError, match="lacks the measures extrapolation"):
        seeds.compare(made_up(range(5)), old, "old.json")
    old = json.loads(json.dumps(ref))
    old["eval_problems"] = 500
    with pytest.raises(ValueError, match="evaluated on 500 problems"):
        seeds.compare(made_up(range(5)), old, "ref")


def test_run_measures_from_a_made_up_results_json():
    res = {"n_ops": 8, "enough_r": 16, "step": 1000, "train_seconds": 50.0, "params": 1000,
           "flops_per_step": 2e9, "peak_step_bytes": 3 * 2 ** 20,
           "accuracy_by_every_r": {"1": 0.1, "8": 0.98, "9": 0.995, "16": 0.999, "64": 0.999},
           "longer": {str(seeds.TIMES * 8): {"accuracy_by_r": {"16": 0.4, "32": 0.96, "64": 0.95}},
                      "99": {"accuracy_by_r": {"16": 1.0}}},            # another length: not (b)
           "log": [{"step": 100, "accuracy": 0.5}, {"step": 200, "accuracy": 0.96}, {"step": 300, "accuracy": 0.9}]}
    m = seeds.run_measures(res)
    assert m == {"trained": 0.999, "extrapolation": 0.96, "thinking_r": 9, "learning_step": 200, "params": 1000,
                 "gflops": 2.0, "peak_mib": 3.0, "ms_per_step": 50.0}
    res["log"] = [{"step": 100, "accuracy": 0.5}]                  # never learnt: one progress line past the end
    res["accuracy_by_every_r"] = {"1": 0.1, "16": 0.9, "64": 0.95}   # never at 99%: twice the largest r
    assert seeds.run_measures(res)["learning_step"] == 1100 and seeds.run_measures(res)["thinking_r"] == 128


def test_expected_r_is_fixed_and_below_the_caps():
    r, rk = seeds.expected_r(10.0, 32, 4)
    assert (r, rk) == seeds.expected_r(10.0, 32, 4) and 9.0 < r < 10.0 and 3.5 < rk < 4.0
    assert seeds.expected_r(1.0, 32, 1) == (1.0, 1.0)


def git(folder, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                   capture_output=True)


def test_an_edit_to_the_model_shows_in_what_was_run(tmp_path):
    for name in ("rdmini.py", "train_toy.py", "seeds.py"):
        (tmp_path / name).write_text(f"# {name}\nx = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "the reference's code")
    clean = seeds.record_sources(str(tmp_path))
    assert clean["commit"] and all(f["diff"] == "" for f in clean["files"].values())
    (tmp_path / "rdmini.py").write_text("# rdmini.py\nx = 2\n")                  # a student's edit
    (tmp_path / "task.py").write_text("y = 3\n")                                  # a new, untracked module
    edited = seeds.record_sources(str(tmp_path))
    assert "-x = 1" in edited["files"]["rdmini.py"]["diff"] and "+x = 2" in edited["files"]["rdmini.py"]["diff"]
    assert "+y = 3" in edited["files"]["task.py"]["diff"]
    assert edited["files"]["rdmini.py"]["sha256"] != clean["files"]["rdmini.py"]["sha256"]
    flags, files, note = seeds.what_differs(made_up(range(5), sources=edited), made_up(range(10), sources=clean))
    assert flags == [] and note is None
    assert files == ["rdmini.py (edited: 2 lines of diff here)", "task.py (edited: 1 lines of diff here)"]


def test_what_differs_names_flags_and_a_later_commit(tmp_path):
    mine, ref = made_up(range(5)), made_up(range(10))
    mine["settings"]["window"] = None                   # --window 0: the whole prefix (Config's None)
    mine["sources"] = {"commit": "b" * 40, "files": {"rdmini.py": {"sha256": "1", "diff": ""}}}
    ref["sources"] = {"commit": "a" * 40, "files": {"rdmini.py": {"sha256": "2", "diff": ""}}}
    flags, files, note = seeds.what_differs(mine, ref)
    assert flags == ["--window 2 -> 0"] and files == []
    assert note == ("the reference was made at commit aaaaaaaaaa, these runs at bbbbbbbbbb; committed since: rdmini.py "
                    "(git diff aaaaaaaaaa -- rdmini.py shows how)")


def test_the_command_line_judges_saved_summaries(tmp_path, capsys):
    ref, mine = tmp_path / "ref.json", tmp_path / "mine"
    mine.mkdir()
    json.dump(made_up(range(10)), open(ref, "w"))
    json.dump(made_up(range(5), shift={"extrapolation": -0.3}, rng_seed=1), open(mine / "summary.json", "w"))
    assert seeds.main([str(mine), str(ref)]) == 0
    assert "WORSE" in capsys.readouterr().out
    assert seeds.main([str(mine), str(tmp_path)]) == 2 and "no summary of several seeds" in capsys.readouterr().err
