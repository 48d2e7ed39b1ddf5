"""task.py: the task's ground truth by hand, its batches against its strings, reading a problem, evaluation's sizes."""
import numpy as np
import pytest

import rdmini
import task


@pytest.mark.parametrize("problem, truth", [
    ("3+5*2-7", "3869"),        # the docstring's example: 3, 8, 16 -> 6, -1 -> 9
    ("0", "0"),                 # no operation: the running value is the operand
    ("9*9", "91"),              # 81 keeps its last digit
    ("2-5", "27"),              # -3 mod 10 = 7, not -3
    ("5*0+3", "503"),           # multiplying by 0 forgets the past
    ("7+3+3", "703"),
])
def test_running_values_by_hand(problem, truth):
    assert task.running_values(problem) == truth


def test_sum_digits_by_hand():
    assert task.sum_digits("583104+090217") == "0673321"
    assert task.sum_digits("999999+000001") == "1000000"


def decode(row):
    return "".join(task.VOCAB[t] for t in row).rstrip(".")


def test_make_batch_agrees_with_the_truth():
    rng = np.random.default_rng(0)
    tokens, targets, mask = task.make_batch(rng, 64, 5)
    assert tokens.shape == targets.shape == mask.shape == (64, 6)     # the first operand, then 5 operations
    for row_t, row_y, row_m in zip(tokens, targets, mask):
        problem = decode(row_t)
        assert len(problem) == 11                   # n_ops operations: shorter chains are its prefixes
        assert task.VOCAB[row_t[0]].isdigit() and all(task.VOCAB[t][0] in "+-*" for t in row_t[1:])
        assert row_m.all()                          # every token is an operation with its answer
        assert "".join(map(str, row_y[row_m])) == task.running_values(problem)
        # a prefix is a shorter problem with the same answers: causal attention trains all lengths at once
        assert task.running_values(problem[:5]) == "".join(map(str, row_y[row_m][:3]))


@pytest.mark.parametrize("n_ops", [1, 8])
def test_make_batch_equals_the_strings_encoded(n_ops):
    # the published runs were trained on encode() of the strings; equal arrays keep them bit for bit
    fast = task.make_batch(np.random.default_rng(3), 200, n_ops)
    slow = task.encode(task.random_problems(np.random.default_rng(3), 200, n_ops))
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_the_random_stream_is_unchanged():
    # the same draws in the same order as the runs in the README: change them and every table changes
    assert task.random_problems(np.random.default_rng(0), 2, 3) == ["8+6*5-2", "3*0-0-0"]


def test_addition_batch_agrees_with_the_truth():
    tokens, targets, mask = task.make_batch(np.random.default_rng(1), 32, 4, task="addition")
    for row_t, row_y, row_m in zip(tokens, targets, mask):
        text = decode(row_t)
        problem = text.split("=")[0]
        assert text.endswith("=" + "?" * 5) and row_m.sum() == 5
        assert "".join(map(str, row_y[row_m])) == task.sum_digits(problem)


def test_held_out_problems_come_from_their_own_stream():
    a = task.random_problems(np.random.default_rng(task.EVAL_SEED), 50, 8)
    b = task.make_batch(np.random.default_rng([0, 0]), 50, 8)[0]
    assert not set(a) & {decode(row) for row in b}
    assert a == task.random_problems(np.random.default_rng(task.EVAL_SEED), 50, 8)   # the same in every run


def test_predict_reads_the_answer_positions():
    cfg = rdmini.Config(vocab_size=len(task.VOCAB), width=8, n_heads=2, mlp_hidden=8)
    params = rdmini.init_params(cfg, 0)
    params["embed"][:10] *= 4.0                # untrained: so that it guesses digits rather than '?'
    guess = task.predict(params, cfg, "3+5*2-7", 2)
    # one character per operand, the same as evaluate() reads at those positions from the same s_0
    assert len(guess) == 4 and guess.count("?") < 2
    assert guess == task.evaluate(params, cfg, ["3+5*2-7"], [2])[2][2][0]


@pytest.mark.parametrize("n_ops, sizes", [(8, [12, 16, 32, 48]), (4, [8, 16, 24]), (1, [2, 4, 5, 6])])
def test_longer_problem_sizes_are_in_order_without_repeats(n_ops, sizes):
    assert task.eval_lengths(n_ops, "running") == sizes and task.eval_lengths(6, "addition") == [10]


@pytest.mark.parametrize("problem, message", [
    ("", "empty"), ("3+a", "characters"), ("3+55", "alternate"), ("3+" * 70 + "3", "at most"),
])
def test_predict_refuses_problems_it_cannot_read(problem, message):
    cfg = rdmini.Config(vocab_size=len(task.VOCAB), width=8, n_heads=2, mlp_hidden=8, window=None)   # reads 64
    params = rdmini.init_params(cfg, 0)
    with pytest.raises(ValueError, match=message):
        task.predict(params, cfg, problem, 2)
