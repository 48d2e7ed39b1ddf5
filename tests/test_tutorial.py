"""tutorial.md runs: every ```python block in it is executed, in order, from the repo root; each top-level
section (## ...) in a namespace of its own, so that a reader can run any one section alone.

    python -m pytest tests/test_tutorial.py -s      # prints how many blocks ran and how many were skipped
    python tests/test_tutorial.py                   # runs the blocks and prints each one's output

A block fenced as ```python slow (a training run, a long measurement) is skipped and counted as skipped;
```bash blocks are never run. The blocks print the numbers the tutorial's text quotes, and the ```text
block right after a python block is compared with what it printed (test_printed_outputs_match_the_text),
so a change to rdmini.py that changes a quoted number fails here.
The second test catches rot in the prose: every function the tutorial names as `name(` must exist.
"""
import contextlib
import io
import math
import os
import re
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(ROOT, "tutorial.md")
MIN_BLOCKS = 20          # the tutorial has more than this; fewer means blocks were lost or mis-fenced
MIN_CHECKED = 20         # python blocks with their printed output shown right after them
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks():
    """-> [(info string, code, line number, section)] of every fenced block, in order; section: the number
    of `## ` headings above it."""
    text = open(TUTORIAL, encoding="utf-8").read()
    heads = [m.start() for m in re.finditer(r"^## ", text, re.M)]
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1,
             sum(h < m.start() for h in heads)) for m in FENCE.finditer(text)]


def run_blocks(show=False):
    """Execute the ```python blocks with cwd = repo root, a fresh namespace for each top-level section.
    -> (names, ran, skipped, printed): names, every name any section defined; printed {line number of a
    block: what it printed}."""
    names, namespace, section = {}, None, None
    ran, skipped, printed = 0, 0, {}
    old_cwd = os.getcwd()
    os.chdir(ROOT)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    try:
        for info, code, line, sec in blocks():
            if sec != section:                   # a new section starts from nothing, as a reader may
                names.update(namespace or {})
                namespace, section = {"__name__": "tutorial"}, sec
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
            printed[line] = out.getvalue()
            if show:
                print(f"--- tutorial.md line {line} ({time.perf_counter() - t:.1f} s)")
                print(out.getvalue(), end="")
    finally:
        os.chdir(old_cwd)
    names.update(namespace or {})
    return names, ran, skipped, printed


@pytest.fixture(scope="module")
def executed():
    return run_blocks()


def test_every_python_block_runs(executed):
    _, ran, skipped, _ = executed
    print(f"\ntutorial.md: {ran} python blocks ran, {skipped} marked slow were skipped")
    assert ran >= MIN_BLOCKS, f"only {ran} python blocks ran; expected at least {MIN_BLOCKS}"


NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?")


def same_number(got, want):
    """The tolerance of a printed number. Written as 3e-10 and below 1e-6 (a finite-difference or rounding
    error's size, which another machine's sums change): within a factor of 3, so that an error grown by an
    order of magnitude, as a slightly wrong backward gives, fails. Any other number written with an
    exponent (a setting, 1e9): exactly. With a decimal point: within one unit of its last printed digit,
    so that a number rounded the other way on another machine still passes and any real change fails.
    Without one (a count, a token id, a mask entry, a step number): exactly."""
    g, w = float(got.replace(",", "")), float(want.replace(",", ""))
    if "e" in want and abs(w) < 1e-6:
        return (g == w == 0) or (g != 0 and w != 0 and abs(math.log10(abs(g)) - math.log10(abs(w))) <= math.log10(3))
    if "e" in want:
        return g == w
    if "." not in want:
        return g == w
    return abs(g - w) <= 1.01 * 10 ** -len(want.split(".")[1])


@pytest.mark.parametrize("got, want, same", [
    ("2e-10", "2e-10", True), ("5e-10", "2e-10", True), ("7e-10", "2e-10", False), ("2e-09", "2e-10", False),
    ("6e-17", "4e-16", False), ("1e8", "1e9", False), ("1e9", "1e9", True),
    ("0.995", "0.996", True), ("0.993", "0.995", False), ("1,234", "1,234", True), ("1235", "1234", False),
])
def test_the_tolerance_of_a_printed_number(got, want, same):
    assert same_number(got, want) == same


def same_line(got, want):
    if NUMBER.sub("#", got) != NUMBER.sub("#", want):          # the words and the layout, exactly
        return False
    return all(same_number(g, w) for g, w in zip(NUMBER.findall(got), NUMBER.findall(want)))


def test_printed_outputs_match_the_text(executed):
    """Every ```text block that directly follows a ```python block (nothing but blank lines between them)
    shows what that block prints: the same lines, numbers within same_number's tolerance."""
    printed = executed[3]
    text = open(TUTORIAL, encoding="utf-8").read()
    fences = list(FENCE.finditer(text))
    checked, wrong = 0, []
    for block, after in zip(fences, fences[1:]):
        line = text.count("\n", 0, block.start()) + 1
        if block.group(1).strip() != "python" or after.group(1).strip() != "text" or line not in printed:
            continue
        if text[block.end():after.start()].strip():
            continue
        checked += 1
        got, want = printed[line].rstrip("\n").splitlines(), after.group(2).rstrip("\n").splitlines()
        if len(got) != len(want) or not all(same_line(g, w) for g, w in zip(got, want)):
            wrong.append(f"tutorial.md line {line} prints:\n" + "\n".join(got) + "\n--- the text shows:\n"
                         + "\n".join(want))
    assert checked >= MIN_CHECKED, f"only {checked} printed outputs were compared; expected at least {MIN_CHECKED}"
    assert not wrong, "\n\n".join(wrong)


# Written as `name(` in the prose but math, not functions of the code
MATH = {"KL", "sigmoid", "sqrt", "outer", "softmax", "exp", "log", "mean", "sum", "max", "silu", "onehot", "rope"}


def test_functions_named_in_the_text_exist(executed):
    """`forward(`, `rdmini.sample_r(`, `bench.count_flops(`: each must be a function of rdmini, task,
    train_toy, bench, think, tests/test_gradients.py, a Python builtin, or one that a block of the tutorial defines
    (`def name(` in any fenced block: the exercises' solutions define new functions). Names with another
    prefix (np.) are not checked."""
    import builtins

    import bench
    import rdmini
    import task
    import think
    import train_toy
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        import test_gradients
    finally:
        sys.path.remove(os.path.join(ROOT, "tests"))
    namespace, _, _, _ = executed
    text = open(TUTORIAL, encoding="utf-8").read()
    defined = {m for _, code, _, _ in blocks() for m in re.findall(r"^\s*def (\w+)\(", code, re.M)}
    missing = set()
    for name in set(re.findall(r"`([A-Za-z_][\w.]*)\(", text)):
        prefix, _, bare = name.rpartition(".")
        if prefix not in ("", "rdmini", "task", "train_toy", "bench", "think") or bare in MATH or bare in defined:
            continue
        modules = {"rdmini": [rdmini], "task": [task], "train_toy": [train_toy], "bench": [bench], "think": [think],
                   "": [rdmini, task, train_toy, bench, think, test_gradients, builtins]}[prefix]
        if not any(callable(getattr(m, bare, None)) for m in modules) and not callable(namespace.get(bare)):
            missing.add(name)
    assert not missing, f"tutorial.md names functions that do not exist: {sorted(missing)}"


def test_figures_exist():
    text = open(TUTORIAL, encoding="utf-8").read()
    missing = [p for p in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text) if not os.path.exists(os.path.join(ROOT, p))]
    assert not missing, f"tutorial.md shows figures that are not in the repo: {missing}"


if __name__ == "__main__":
    start = time.perf_counter()
    _, ran, skipped, _ = run_blocks(show=True)
    print(f"--- {ran} python blocks ran, {skipped} skipped (slow), {time.perf_counter() - start:.1f} s")
