"""tutorial.md runs: every ```python block in it is executed, in order, in one namespace, from the repo root.

    python -m pytest tests/test_tutorial.py -s      # prints how many blocks ran and how many were skipped
    python tests/test_tutorial.py                   # runs the blocks and prints each one's output

A block fenced as ```python slow (a training run, a long measurement) is skipped and counted as skipped;
```bash blocks are never run. The blocks print the numbers the tutorial's text quotes, so a change to
rdmini.py that changes a number shows up here as a block that fails or an output that no longer matches.
The second test catches rot in the prose: every function the tutorial names as `name(` must exist.
"""
import contextlib
import io
import os
import re
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "tutorial.md")
MIN_BLOCKS = 20          # the tutorial has more than this; fewer means blocks were lost or mis-fenced
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks():
    """-> [(info string, code, line number)] of every fenced block, in order."""
    text = open(TUTORIAL, encoding="utf-8").read()
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def run_blocks(show=False):
    """Execute the ```python blocks in one namespace with cwd = repo root. -> (namespace, ran, skipped)."""
    namespace = {"__name__": "tutorial"}
    ran, skipped = 0, 0
    old_cwd = os.getcwd()
    os.chdir(ROOT)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    try:
        for info, code, line in blocks():
            words = info.split()
            if not words or words[0] != "python":
                continue
            if words[1:] == ["slow"]:
                skipped += 1
                continue
            assert words[1:] == [], f"tutorial.md line {line}: unknown fence ```{info} (use python or python slow)"
            out = io.StringIO()
            t = time.perf_counter()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"tutorial.md:{line}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"the python block at tutorial.md line {line} failed: "
                                     f"{type(err).__name__}: {err}\n--- its output so far ---\n"
                                     f"{out.getvalue()}") from err
            ran += 1
            if show:
                print(f"--- tutorial.md line {line} ({time.perf_counter() - t:.1f} s)")
                print(out.getvalue(), end="")
    finally:
        os.chdir(old_cwd)
    return namespace, ran, skipped


@pytest.fixture(scope="module")
def executed():
    return run_blocks()


def test_every_python_block_runs(executed):
    _, ran, skipped = executed
    print(f"\ntutorial.md: {ran} python blocks ran, {skipped} marked slow were skipped")
    assert ran >= MIN_BLOCKS, f"only {ran} python blocks ran; expected at least {MIN_BLOCKS}"


# Written as `name(` in the prose but math, not functions of the code
MATH = {"KL", "sigmoid", "sqrt", "outer", "softmax", "exp", "log", "mean", "sum", "max", "silu", "onehot", "rope"}


def test_functions_named_in_the_text_exist(executed):
    """`forward(`, `rdmini.sample_r(`, `train_toy.count_flops(`: each must be a function of rdmini, of
    train_toy, of tests/test_gradients.py, a Python builtin, or one that a block of the tutorial defines
    (`def name(` in any fenced block: the exercises' solutions define new functions). Names with another
    prefix (np.) are not checked."""
    import builtins

    import rdmini
    import train_toy
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        import test_gradients
    finally:
        sys.path.remove(os.path.join(ROOT, "tests"))
    namespace, _, _ = executed
    text = open(TUTORIAL, encoding="utf-8").read()
    defined = {m for _, code, _ in blocks() for m in re.findall(r"^\s*def (\w+)\(", code, re.M)}
    missing = set()
    for name in set(re.findall(r"`([A-Za-z_][\w.]*)\(", text)):
        prefix, _, bare = name.rpartition(".")
        if prefix not in ("", "rdmini", "train_toy") or bare in MATH or bare in defined:
            continue
        modules = {"rdmini": [rdmini], "train_toy": [train_toy], "": [rdmini, train_toy, test_gradients, builtins]}[prefix]
        if not any(callable(getattr(m, bare, None)) for m in modules) and not callable(namespace.get(bare)):
            missing.add(name)
    assert not missing, f"tutorial.md names functions that do not exist: {sorted(missing)}"


def test_figures_exist():
    text = open(TUTORIAL, encoding="utf-8").read()
    missing = [p for p in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text) if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, f"tutorial.md shows figures that are not in the repo: {missing}"


if __name__ == "__main__":
    start = time.perf_counter()
    _, ran, skipped = run_blocks(show=True)
    print(f"--- {ran} python blocks ran, {skipped} skipped (slow), {time.perf_counter() - start:.1f} s")
