"""Inference: the KV cache gives forward()'s numbers, cache sharing, adaptive exit and its latest-entry rule,
continuous chain of thought, the trajectory classifier, and think.py's command
lines (a problem, --trajectories, --report)."""
import importlib.util
import json
import re
import sys
from unittest import mock

import numpy as np
import pytest

import rdmini
import think
import task


def fed(params, cfg, tokens, state0, r, m=None, prompt=3, read="latest", capacity=None, **kw):
    """Feed tokens (B,T): the first `prompt` in one pass, then one at a time. -> logits (B,T,V), steps, cache."""
    B, T = tokens.shape
    cache = rdmini.new_cache(cfg, B, r, m, capacity, read=read)
    cuts = [0] + list(range(prompt, T)) + [T]
    out = [rdmini.feed(params, cfg, cache, tokens[:, a:b], state0[:, a:b], **kw) for a, b in zip(cuts, cuts[1:])]
    return np.concatenate([o[0] for o in out], axis=1), np.concatenate([o[1] for o in out], axis=1), cache


def close(a, b, rtol):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("prompt", [1, 3, 7])
@pytest.mark.parametrize("injection", ["concat", "add"])
def test_cache_equals_full_recomputation(make_cfg, make_params, make_state0, dtype, rtol, prompt, injection):
    cfg = make_cfg(dtype=dtype, injection=injection)
    params = make_params(cfg)
    tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, size=(2, 7))
    state0 = make_state0(cfg, tokens)
    full, _ = rdmini.forward(params, cfg, tokens, 4, state0=state0)
    logits, steps, cache = fed(params, cfg, tokens, state0, 4, prompt=prompt)
    close(logits, full, rtol)
    assert np.array_equal(logits.argmax(-1), full.argmax(-1)) and (steps == 4).all()
    # the cache also keeps every position's final state, the s_r that forward decodes
    close(cache["state"][:, :7], rdmini.trace_states(params, cfg, tokens, 4, state0=state0)[-1], rtol)


@pytest.mark.parametrize("prompt", [1, 4])
def test_cache_equals_full_recomputation_with_a_window(make_cfg, make_params, make_state0, prompt):
    cfg = make_cfg(window=3)
    params = make_params(cfg)
    tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, size=(2, 8))
    state0 = make_state0(cfg, tokens)
    logits = fed(params, cfg, tokens, state0, 4, prompt=prompt, capacity=8)[0]
    close(logits, rdmini.forward(params, cfg, tokens, 4, state0=state0)[0], 1e-10)
    # and the window matters: full attention gives other numbers
    assert not np.allclose(logits, rdmini.forward(params, make_cfg(), tokens, 4, state0=state0)[0])


def test_rope_tables_for_the_positions_at_hand():
    whole = rdmini.rope_tables(50, 8, 10000.0, "float32")
    np.testing.assert_array_equal(rdmini.rope_tables(7, 8, 10000.0, "float32", t0=40), whole[40:47])


SETTINGS = [dict(), dict(m=1, threshold=1e-2), dict(m=2, read="always-last", threshold=0.3, criterion="state"),
            dict(m=3, threshold=1e-2, continuous=True)]


@pytest.mark.parametrize("window", [2, 3])
@pytest.mark.parametrize("settings", SETTINGS)
def test_ring_equals_the_full_cache_bit_for_bit(make_cfg, make_params, make_state0, window, settings):
    """A windowed model, 30 positions (max_seq_len is 8: a window reads any length), fed 4 then one at a
    time: a ring of the last 4 positions gives the very numbers of a cache that keeps all 30, in every
    inference setting, and forward's up to rounding."""
    cfg = make_cfg(window=window)
    params = make_params(cfg)
    tokens = np.random.default_rng(8).integers(0, cfg.vocab_size, size=(2, 30))
    state0 = make_state0(cfg, tokens)
    kw = dict(settings, m=settings.get("m"), prompt=4)
    ring, ring_steps, cache = fed(params, cfg, tokens, state0, 5, capacity=4, **kw)
    full, full_steps, _ = fed(params, cfg, tokens, state0, 5, capacity=30, **kw)
    assert cache["core"].shape[-2] == 4 and cache["length"] == 30
    np.testing.assert_array_equal(ring, full)
    np.testing.assert_array_equal(ring_steps, full_steps)
    if not settings:
        close(ring, rdmini.forward(params, cfg, tokens, 5, state0=state0)[0], 1e-10)
    else:
        assert len(np.unique(ring_steps)) >= 3                 # the exits stopped tokens at different steps


def test_ring_memory_does_not_grow_with_the_length(make_cfg, make_params):
    """Fed one token at a time, a windowed model's cache holds `window` positions whatever the length;
    a full-attention model's holds every position, so its bytes grow with the length."""
    cfg = make_cfg(window=2, dtype="float32")
    params = make_params(cfg)

    def streamed(cfg, T):
        tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, T))
        cache = rdmini.new_cache(cfg, 1, 4, m=1)
        for t in range(T):
            rdmini.feed(params, cfg, cache, tokens[:, t:t + 1])
        return cache
    short, long = streamed(cfg, 10), streamed(cfg, 100)
    assert long["length"] == 100 and rdmini.cache_bytes(short) == rdmini.cache_bytes(long)
    nbytes = lambda cache: sum(a.nbytes for a in cache.values() if isinstance(a, np.ndarray))   # the states too
    assert nbytes(short) == nbytes(long)
    assert rdmini.cache_bytes(long) == 2 * (cfg.n_prelude + cfg.n_coda + cfg.n_core * 1) * 1 * 2 * cfg.width * 4
    full = make_cfg(window=None, dtype="float32", max_seq_len=100)      # its cache is made for the whole length
    grows = [rdmini.cache_bytes(rdmini.new_cache(full, 1, 4, m=1, capacity=T)) for T in (10, 100)]
    assert grows[1] == 10 * grows[0] == 10 * 5 * rdmini.cache_bytes(short)


def test_a_windowed_forward_reads_past_max_seq_len(make_cfg, make_params, make_state0):
    cfg = make_cfg(window=2)
    params = make_params(cfg)
    tokens = np.random.default_rng(9).integers(0, cfg.vocab_size, size=(1, 20))      # max_seq_len is 8
    state0 = make_state0(cfg, tokens)
    logits = rdmini.forward(params, cfg, tokens, 3, state0=state0)[0]
    assert logits.shape == (1, 20, cfg.vocab_size)
    # causal: the first 8 positions' logits are those of forward on them alone
    close(logits[:, :8], rdmini.forward(params, cfg, tokens[:, :8], 3, state0=state0[:, :8])[0], 1e-12)
    # generate goes as far, through a ring that takes the prompt of 3 in one call
    out, gen_logits, _ = rdmini.generate(params, cfg, tokens[0, :3], 18, r=3, m=None, state0=state0[:, :20])
    assert out.shape == (21,)
    close(gen_logits, rdmini.forward(params, cfg, out[None, :-1], 3, state0=state0)[0][0], 1e-10)


def test_read_rule_always_last_reads_the_last_entry_by_hand(make_cfg, make_params, make_state0):
    """r = 3 steps, no sharing (3 slots). Token 0 runs its 3 steps alone; then token 1 comes. With
    "always-last", token 1 reads token 0's step-3 entry at every step. By hand: the "latest" rule on a cache
    whose every slot holds, for token 0, what its last step wrote gives the same numbers."""
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.array([[3, 5]])
    state0 = make_state0(cfg, tokens)

    def second_token(read, copy_last=False):
        cache = rdmini.new_cache(cfg, 1, 3, read=read)
        rdmini.feed(params, cfg, cache, tokens[:, :1], state0[:, :1])
        if copy_last:                                 # (slot, block, k/v, B, H, position, d): position 0 only
            cache["core"][:, :, :, :, :, 0] = cache["core"][2, :, :, :, :, 0]
        return rdmini.feed(params, cfg, cache, tokens[:, 1:], state0[:, 1:])[0]
    last = second_token("always-last")
    np.testing.assert_array_equal(last, second_token("latest", copy_last=True))
    # the rule changes what token 1 reads: "latest" reads token 0's own step-i entry, as forward does
    latest = second_token("latest")
    assert not np.allclose(last, latest)
    close(latest, rdmini.forward(params, cfg, tokens, 3, state0=state0)[0][:, 1:], 1e-10)


def test_always_last_after_an_early_exit(make_cfg, make_params, make_state0):
    """A token that stopped at step j < r left its step-j entry in the last step's slot: always-last
    readers read that one (by hand: the latest rule on a cache where every slot holds it)."""
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.array([[3, 5]])
    state0 = make_state0(cfg, tokens)
    caches = [rdmini.new_cache(cfg, 1, 5, read=read) for read in ("always-last", "latest")]
    for cache in caches:
        _, steps = rdmini.feed(params, cfg, cache, tokens[:, :1], state0[:, :1], threshold=10.0, criterion="state")
        assert steps[0, 0] == 2
    caches[1]["core"][:, :, :, :, :, 0] = caches[1]["core"][1, :, :, :, :, 0]     # step 2's slot: index 1
    a, b = (rdmini.feed(params, cfg, c, tokens[:, 1:], state0[:, 1:])[0] for c in caches)
    np.testing.assert_array_equal(a, b)


def test_generate_equals_recomputation(make_cfg, make_params, make_state0):
    cfg = make_cfg()
    params = make_params(cfg)
    prompt = np.random.default_rng(2).integers(0, cfg.vocab_size, size=(2, 3))
    state0 = make_state0(cfg, np.zeros((2, 7)))                         # L = 3 + 5 - 1 positions are fed
    tokens, logits, steps = rdmini.generate(params, cfg, prompt, 5, r=3, m=None, state0=state0)
    assert tokens.shape == (2, 8) and logits.shape == (2, 7, cfg.vocab_size) and (steps == 3).all()
    assert np.array_equal(tokens[:, :3], prompt)
    full, _ = rdmini.forward(params, cfg, tokens[:, :-1], 3, state0=state0)
    close(logits, full, 1e-10)
    assert np.array_equal(full.argmax(-1)[:, 2:], tokens[:, 3:])       # greedy: each token is the last argmax
    # a 1-D prompt gives 1-D answers, the same as its row of the batch
    one, one_logits, _ = rdmini.generate(params, cfg, prompt[1], 5, r=3, m=None, state0=state0[1:])
    assert np.array_equal(one, tokens[1]) and one_logits.shape == (7, cfg.vocab_size)


def test_generate_draws_s0_as_documented(make_cfg, make_params):
    """rng draws (B,T,h) for the prompt, then (B,1,h) per token fed back: the same s_0 given by hand agrees."""
    cfg = make_cfg()
    params = make_params(cfg)
    prompt = np.array([[1, 4, 2], [0, 3, 3]])
    rng = np.random.default_rng(9)
    by_hand = np.concatenate([rdmini.initial_state(cfg, (2, 3, cfg.width), rng)]
                             + [rdmini.initial_state(cfg, (2, 1, cfg.width), rng) for _ in range(3)], axis=1)
    drawn = rdmini.generate(params, cfg, prompt, 4, r=3, rng=np.random.default_rng(9))
    given = rdmini.generate(params, cfg, prompt, 4, r=3, state0=by_hand)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, given))
    assert np.array_equal(rdmini.generate(params, cfg, prompt, 4, r=3)[1],
                          rdmini.generate(params, cfg, prompt, 4, r=3)[1])      # rng=None: reproducible


def test_cache_budget_of_r_or_more_changes_nothing_and_less_costs(make_cfg, make_params, make_state0):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.random.default_rng(3).integers(0, cfg.vocab_size, size=(2, 6))
    state0 = make_state0(cfg, tokens)
    base, _, cache = fed(params, cfg, tokens, state0, 5)
    for m in (5, 9):
        assert np.array_equal(fed(params, cfg, tokens, state0, 5, m)[0], base)
    shared, _, small = fed(params, cfg, tokens, state0, 5, 2)
    assert not np.allclose(shared, base)            # sharing is an approximation: it changes the numbers
    assert np.allclose(shared[:, :3], base[:, :3])  # but not inside the prompt: it runs in lock-step
    per_layer = 2 * 2 * 8 * cfg.width * 8           # keys and values, batch 2, capacity 8 (max_seq_len), h, float64
    assert rdmini.cache_bytes(cache) == (cfg.n_prelude + cfg.n_coda + cfg.n_core * 5) * per_layer
    assert rdmini.cache_bytes(small) == (cfg.n_prelude + cfg.n_coda + cfg.n_core * 2) * per_layer


@pytest.mark.parametrize("criterion", ["kl", "state"])
def test_threshold_zero_uses_all_steps(make_cfg, make_params, make_state0, criterion):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.random.default_rng(4).integers(0, cfg.vocab_size, size=(2, 6))
    state0 = make_state0(cfg, tokens)
    logits, steps, _ = fed(params, cfg, tokens, state0, 6, threshold=0.0, criterion=criterion)
    assert (steps == 6).all()
    close(logits, rdmini.forward(params, cfg, tokens, 6, state0=state0)[0], 1e-10)


@pytest.mark.parametrize("criterion, thresholds", [("kl", [0, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 10]),
                                                   ("state", [0, 1e-3, 1e-2, 0.03, 0.1, 0.3, 10])])
def test_larger_threshold_never_uses_more_steps(make_cfg, make_params, make_state0, criterion, thresholds):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.random.default_rng(5).integers(0, cfg.vocab_size, size=(3, 8))
    state0 = make_state0(cfg, tokens)
    runs = [fed(params, cfg, tokens, state0, 12, threshold=t, criterion=criterion)[1] for t in thresholds]
    for fewer, more in zip(runs[1:], runs):
        assert (fewer <= more).all()
    assert (runs[0] == 12).all() and (runs[-1] == 2).all()     # 2: the first step that has one to compare with
    assert len({int(s.sum()) for s in runs}) >= 4              # the thresholds in between do differ


def adapter(params, cfg, s, e):
    return rdmini.linear_forward(np.concatenate([s, e], -1), params["adapter"])[0]


@pytest.mark.parametrize("m", [None, 2, 3])
def test_latest_entry_rule_by_hand(make_cfg, make_params, make_state0, m):
    """Token 0 stops after j = 2 of r = 5 steps; token 1 runs all 5. At a step whose slot token 0 no longer
    wrote, token 1 must read token 0's step-2 keys/values. By hand: every core block of token 1 runs on the
    pair [token 0's input to that block at the step it left in that slot, token 1's own input]."""
    cfg = make_cfg()
    params = make_params(cfg)
    r, j, mm = 5, 2, m or 5
    tokens = np.array([[3, 5]])
    state0 = make_state0(cfg, tokens)
    cache = rdmini.new_cache(cfg, 1, r, m)
    _, steps0 = rdmini.feed(params, cfg, cache, tokens[:, :1], state0[:, :1], threshold=10.0, criterion="state")
    logits, steps1 = rdmini.feed(params, cfg, cache, tokens[:, 1:], state0[:, 1:])
    assert steps0[0, 0] == j and steps1[0, 0] == r

    rope, mask = rdmini.rope_tables(2, cfg.head_dim, cfg.rope_base, cfg.dtype), rdmini.causal_mask(2, cfg.dtype)
    e = rdmini.prelude_forward(params, cfg, tokens, rope, mask)[0]                     # (1,2,h)
    core = [rdmini.sub(params, f"core.{c}.") for c in range(cfg.n_core)]
    inputs, s0 = {}, state0[:, :1]                          # token 0 alone: inputs[step][block]
    for i in range(1, j + 1):
        x, inputs[i] = adapter(params, cfg, s0, e[:, :1]), []
        for p in core:
            inputs[i].append(x)
            x = rdmini.block_forward(x, p, cfg, rope[:1], mask[:1, :1])[0]
        s0 = x

    def step_read(i):      # the step whose entry token 0 left in step i's slot: the last one with that slot,
        last = max(q for q in range(1, r + 1) if (q - 1) % mm == (i - 1) % mm)
        return j if last > j else last                      # or its latest entry if it stopped before it

    s1 = state0[:, 1:]
    for i in range(1, r + 1):
        x = adapter(params, cfg, s1, e[:, 1:])
        for c, p in enumerate(core):
            pair = np.concatenate([inputs[step_read(i)][c], x], axis=1)               # (1,2,h)
            x = rdmini.block_forward(pair, p, cfg, rope, mask)[0][:, 1:]
        s1 = x
    by_hand = rdmini.coda_forward(params, cfg, np.concatenate([s0, s1], axis=1), rope, mask)[0][:, 1:]
    close(logits, by_hand, 1e-10)


def test_every_token_stopping_at_step_j_equals_the_fixed_j_run(make_cfg, make_params, make_state0):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.random.default_rng(6).integers(0, cfg.vocab_size, size=(2, 6))
    state0 = make_state0(cfg, tokens)
    # state criterion, huge threshold: every token stops at step 2, the first it can
    logits, steps, _ = fed(params, cfg, tokens, state0, 7, threshold=100.0, criterion="state", prompt=1)
    assert (steps == 2).all()
    close(logits, rdmini.forward(params, cfg, tokens, 2, state0=state0)[0], 1e-10)


def test_continuous_cot_starts_from_the_previous_final_state(make_cfg, make_params, make_state0):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens = np.random.default_rng(7).integers(0, cfg.vocab_size, size=(2, 5))
    state0 = make_state0(cfg, tokens)

    def run(continuous, last_s0):
        cache = rdmini.new_cache(cfg, 2, 4)
        rdmini.feed(params, cfg, cache, tokens[:, :4], state0[:, :4])
        prev = cache["state"][:, 3].copy()
        s0 = prev[:, None] if last_s0 is None else last_s0
        return rdmini.feed(params, cfg, cache, tokens[:, 4:], s0, continuous=continuous)[0], prev

    cot, prev = run(True, state0[:, 4:])                        # continuous: state0 of that token is ignored
    by_hand, _ = run(False, None)                               # s_0 = the previous final state, given by hand
    noise, _ = run(False, state0[:, 4:])
    assert np.array_equal(cot, by_hand) and not np.allclose(cot, noise)
    assert not np.allclose(prev, state0[:, 3])                  # the previous final state is not its s_0


def synthetic(kind, steps=64, h=16, seed=0):
    rng = np.random.default_rng(seed)
    centre = 3 * rng.standard_normal(h)
    k = np.arange(steps)[:, None]
    if kind == "fixed point":
        return centre + 1e-5 * rng.standard_normal((steps, h))
    if kind == "orbit":                 # a circle of radius 1 in features 0 and 1, period 10 steps
        circle = np.zeros((steps, h))
        circle[:, 0], circle[:, 1] = np.cos(2 * np.pi * k[:, 0] / 10), np.sin(2 * np.pi * k[:, 0] / 10)
        return centre + circle + 1e-3 * rng.standard_normal((steps, h))
    direction = rng.standard_normal(h)  # slider: a steady drift
    return centre + 0.05 * k * direction / np.linalg.norm(direction) + 1e-3 * rng.standard_normal((steps, h))


@pytest.mark.parametrize("kind", think.KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_trajectory_classifier_on_synthetic_trajectories(kind, seed):
    assert think.classify_trajectory(synthetic(kind, seed=seed)) == kind


def test_trajectory_classifier_refuses_short_trajectories():
    with pytest.raises(ValueError, match="at least 17 steps"):
        think.classify_trajectory(np.zeros((10, 4)))


@pytest.mark.parametrize("call, message", [
    (lambda p, c: rdmini.generate(p, c, [], 2, 3), "non-empty"),
    (lambda p, c: rdmini.generate(p, c, [1, 99], 2, 3), r"token ids must lie in \[0, 7\)"),
    (lambda p, c: rdmini.generate(p, c, [1] * 9, 1, 3), "max_seq_len=8"),
    (lambda p, c: rdmini.generate(p, c, [1] * 6, 4, 3), "max_seq_len=8"),
    (lambda p, c: rdmini.generate(p, c, [1, 2], 2, 0), r"r \(recurrences\) must be an integer >= 1"),
    (lambda p, c: rdmini.generate(p, c, [1, 2], 2, 3, m=0), r"m \(cache budget"),
    (lambda p, c: rdmini.generate(p, c, [1, 2], 2, 3, threshold=-1.0), "threshold"),
    (lambda p, c: rdmini.generate(p, c, [1, 2], 2, 3, threshold=0.1, criterion="argmax"), "criterion"),
    (lambda p, c: rdmini.generate(p, c, [1, 2], 2, 3, read="first"), "read rule"),
    (lambda p, c: rdmini.new_cache(c, 1, 3, read="deepest"), "read rule"),
    (lambda p, c: rdmini.feed(p, c, rdmini.new_cache(c, 1, 2), np.zeros((1, 0), int)), "empty"),
    (lambda p, c: rdmini.feed(p, c, rdmini.new_cache(c, 1, 2, capacity=3), np.zeros((1, 4), int)),
     "Config.max_seq_len = 8"),
    (lambda p, c: rdmini.feed(p, c, rdmini.new_cache(c, 2, 2), np.zeros((1, 4), int)), "cache's batch"),
    (lambda p, c: rdmini.new_cache(c, 1, 2, capacity=9), r"\[1, Config.max_seq_len=8\] for a full-attention"),
    (lambda p, c: rdmini.forward(p, c, np.zeros((1, 9), int), 2), "max_seq_len=8 of this full-attention model"),
    (lambda p, c: rdmini.feed(p, rdmini.Config(**{**vars(c), "window": 3}),
                              rdmini.new_cache(rdmini.Config(**{**vars(c), "window": 3}), 1, 2), np.zeros((1, 4), int)),
     r"4 new tokens and the 0 before them .* need 4 positions; this cache holds 3: feed fewer tokens at once"),
])
def test_bad_input_is_refused(make_cfg, make_params, call, message):
    cfg = make_cfg()
    with pytest.raises(ValueError, match=message):
        call(make_params(cfg), cfg)


# ---- think.py: streaming, a problem, --trajectories, --report on a tiny untrained checkpoint ----

@pytest.fixture
def toy(tmp_path):
    """A tiny running-task checkpoint in tmp_path, as train_toy writes it (untrained: the views must run).
    The digits' embeddings are scaled up so that its guesses are digits that differ from problem to problem
    and with s_0 and r (an untrained model's argmax is mostly a non-digit, '?', which every path agrees on)."""
    cfg = rdmini.Config(vocab_size=len(task.VOCAB), width=8, n_heads=2, mlp_hidden=8, max_seq_len=5, dtype="float64")
    params = rdmini.init_params(cfg, 0)
    params["embed"][:10] *= 4.0                                  # tied: the digits' logits grow too
    rdmini.save_checkpoint(str(tmp_path / "checkpoint.npz"), params, cfg, run={"task": "running", "n_ops": 2})
    return params, cfg, str(tmp_path)


def test_streaming_problems_gives_evaluate_s_answers(toy, monkeypatch):
    real_new_cache = rdmini.new_cache
    params, cfg, _ = toy
    problems = task.random_problems(np.random.default_rng(0), 20, 2)
    answers, steps = think.stream(params, cfg, problems, 3)
    assert answers == task.evaluate(params, cfg, problems, [3])[3][2] and (steps == 3).all()
    text = "".join(answers)
    assert len(set(answers)) > 10 and text.count("?") < len(text) / 2        # digits, not a constant
    assert think.stream(params, cfg, problems, 3, seed=1)[0] != answers         # another s_0, other answers
    made = []                                   # the cache budget reaches the cache (what m changes: the budget test)
    monkeypatch.setattr(rdmini, "new_cache", lambda *a, **kw: made.append(a[3]) or real_new_cache(*a, **kw))
    think.stream(params, cfg, problems, 3, m=1)
    assert made == [1]
    with pytest.raises(ValueError, match="characters"):
        think.stream(params, cfg, ["3+a"], 3)


@pytest.mark.parametrize("problem, message", [("", "empty"), ("3+a", "characters"), ("3+5*", "alternate")])
def test_think_refuses_a_problem_it_cannot_read(toy, capsys, problem, message):
    with pytest.raises(SystemExit) as err:
        think.main([problem, "--out", toy[2]])
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and message in lines[0]


def test_a_full_attention_model_refuses_a_problem_past_max_seq_len_and_a_window_reads_it(toy, tmp_path, capsys):
    params, cfg, windowed = toy
    full = rdmini.Config(**{**rdmini.dataclasses.asdict(cfg), "window": None})
    rdmini.save_checkpoint(str(tmp_path / "full" / "checkpoint.npz"), params, full, run={"task": "running", "n_ops": 2})
    with pytest.raises(SystemExit) as err:
        think.main(["3+5*2-7+1*3", "--out", str(tmp_path / "full")])      # 6 tokens, max_seq_len 5
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and "at most 5" in lines[0]
    think.main(["3+5*2-7+1*3", "--out", windowed, "--r", "3"])    # the toy's window of 2 reads it
    assert "/6 right" in capsys.readouterr().out


def test_think_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        think.main(["3+5", "--out", str(tmp_path)])
    assert err.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_think_prints_one_row_per_step_and_the_steps_used(toy, capsys):
    think.main(["3+5*2", "--out", toy[2], "--r", "5", "--exit-threshold", "0"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("step ")]
    assert len(rows) == 5 and all("/3 right" in row for row in rows)
    steps = [line for line in out.splitlines() if line.startswith("steps")][0].split()[1:]
    assert steps == ["5"] * 3                      # threshold 0: every token uses all r steps


def test_long_streams_past_max_seq_len_in_a_fixed_cache_as_the_frontier_way_does(toy, capsys):
    """--long 30 on the toy (max_seq_len 5, a window of 2): streamed with m = r and no exit, the answers
    are those of the same problems all at once (the same s_0: both draw it from default_rng(0))."""
    out = think.main(["--long", "30", "--problems", "4", "--out", toy[2], "--r", "3", "--cache-budget", "0",
                      "--exit-threshold", "0", "--frontier", "3"])
    printed = capsys.readouterr().out
    assert out["problems"] == 4 and out["steps"] == 3 and 0 < out["answers"] < 1
    assert out["frontier"]["answers"] == out["answers"] and out["frontier"]["all_right"] == out["all_right"]
    size = re.search(r"KV cache ([\d,]+) bytes, a ring of the last 2 positions: ([\d,]+) at 10 tokens, ([\d,]+) at 31", printed)
    assert size and size.group(1) == size.group(2) == size.group(3)
    assert int(size.group(1).replace(",", "")) == out["cache_bytes"] == 2 * (1 + 1 + 3) * 4 * 2 * 8 * 8
    assert "every token runs r = 3 core steps" in printed and "(61 characters)" in printed


def test_long_with_adaptive_exit_and_a_full_attention_model(toy, tmp_path, capsys):
    out = think.main(["--long", "20", "--out", toy[2], "--r", "6", "--exit-threshold", "1e-3"])
    assert 2 <= out["steps"] < 6 and "KL(p_i-1 || p_i) < 0.001, at most r = 6" in capsys.readouterr().out
    params, cfg, _ = toy
    full = rdmini.Config(**{**rdmini.dataclasses.asdict(cfg), "window": None})
    rdmini.save_checkpoint(str(tmp_path / "full" / "checkpoint.npz"), params, full, run={"task": "running", "n_ops": 2})
    with pytest.raises(SystemExit) as err:
        think.main(["--long", "20", "--out", str(tmp_path / "full")])
    assert err.value.code == 2 and "this model reads at most 5" in capsys.readouterr().err


def test_long_over_runs_prints_a_row_per_run_the_floor_and_the_median(toy, tmp_path, capsys):
    params, cfg, folder = toy
    params = {name: w.copy() for name, w in params.items()}
    params["embed"][:10] *= 2.0                                   # a second run that answers otherwise
    rdmini.save_checkpoint(str(tmp_path / "b" / "checkpoint.npz"), params, cfg, run={"task": "running", "n_ops": 2})
    table = think.main(["--long", "6", "--problems", "5", "--runs", folder, str(tmp_path / "b")])
    lines = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and all(len(row) == len(think.LONG_SETTINGS) for row in table)
    assert [row[0][2] for row in table] == [4.0, 4.0] and table[0] != table[1]
    answers = [[cell[1] for cell in row] for row in table]               # (run, setting): answers right
    floor, median = lines[-2], lines[-1]
    assert floor.startswith("floor") and median.startswith("median")
    assert [float(x) for x in re.findall(r"([\d.]+)%", floor)] == pytest.approx([100 * min(a) for a in zip(*answers)], abs=0.006)
    assert [float(x) for x in re.findall(r"([\d.]+)%", median)] == pytest.approx(
        [50 * (a + b) for a, b in zip(*answers)], abs=0.006)


@pytest.mark.parametrize("argv, message", [(["--long", "-3"], "--long must be >= 0"),
                                           (["--long", "5", "--problems", "0"], "--problems must be >= 1"),
                                           (["3+5", "--frontier", "8"], "go with --long"),
                                           (["--report", "--runs", "a"], "go with --long"),
                                           (["--long", "5", "--runs", "a", "--frontier", "4"], "not with --runs")])
def test_long_refuses_bad_flags(capsys, argv, message):
    with pytest.raises(SystemExit) as err:
        think.main(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_trajectories_are_classified_and_counted(toy, capsys):
    think.main(["--trajectories", "--out", toy[2], "--traj-steps", "20"])
    printed = capsys.readouterr().out
    counts = dict(re.findall(r"^  (fixed point|orbit|slider) +(\d+) tokens", printed, re.M))
    # 6 problems of 4 operations, the most this 5-token model reads: 5 tokens each
    assert "6 problems" in printed and sum(map(int, counts.values())) == 6 * 5 and len(counts) == 3


def test_the_plots_data(toy):
    """What --plot draws, checked without matplotlib: two tokens of each kind with their principal components
    in pairs 1-2, 3-4, 5-6, and every token's distance to its last state, the last step left out."""
    params, cfg, _ = toy
    out = think.trajectories(params, cfg, think.trajectory_problems(cfg), 20)
    panels, heat = think.trajectory_plots(out)
    kinds = [out["kinds"][i] for i, _, _ in panels]
    assert kinds == sorted(kinds, key=think.KINDS.index)
    assert all(kinds.count(k) == min(2, out["kinds"].count(k)) for k in think.KINDS)
    for i, title, pairs in panels:
        problem, t, tok = out["where"][i]
        assert title == f"{out['kinds'][i]}: '{tok}' at {t} of {problem}" and len(pairs) == 3
        for col, (x, y) in enumerate(pairs):
            assert np.array_equal(x, out["proj"][i, :, 2 * col]) and np.array_equal(y, out["proj"][i, :, 2 * col + 1])
    assert heat.shape == (6 * 5, 19)
    np.testing.assert_allclose(10 ** heat, out["dist"][:, :-1] + 1e-12)


def test_plot_draws_the_plots_data(toy, tmp_path, monkeypatch):
    """plot_trajectories against a stand-in for matplotlib that records what it is asked to draw."""
    params, cfg, _ = toy
    out = think.trajectories(params, cfg, think.trajectory_problems(cfg), 20)
    panels, heat = think.trajectory_plots(out)
    plt = mock.MagicMock()
    grid = np.empty((len(panels), 3), dtype=object)                   # axes[row, col], as subplots gives
    for row, col in np.ndindex(grid.shape):
        grid[row, col] = mock.MagicMock()
    single = mock.MagicMock()
    plt.subplots.side_effect = lambda *a, **kw: (mock.MagicMock(), grid if a else single)
    matplotlib = mock.MagicMock(pyplot=plt)
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    files = think.plot_trajectories(out, str(tmp_path / "figures"))
    assert files == [str(tmp_path / "figures" / n) for n in ("trajectories_pca.png", "convergence.png")]
    for (_, title, pairs), axes in zip(panels, grid):
        for (x, y), ax in zip(pairs, axes):
            drawn = ax.plot.call_args.args
            assert np.array_equal(drawn[0], x) and np.array_equal(drawn[1], y)
            assert ax.set_title.call_args.args == (title,)
    assert np.array_equal(single.imshow.call_args.args[0], heat)


def test_plot_without_matplotlib_is_one_clear_line(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)              # as if it were not installed
    with pytest.raises(SystemExit) as err:
        think.main(["--trajectories", "--out", toy[2], "--traj-steps", "20", "--plot", "--figures",
                    str(tmp_path / "figures")])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and "--plot needs matplotlib" in lines[0]
    assert "pip install matplotlib" in lines[0] and "slider" in captured.out     # the numbers were printed
    assert not (tmp_path / "figures").exists()


def test_plot_writes_into_the_run_folder_unless_told(toy, capsys, monkeypatch):
    """--plot without --figures writes beside the checkpoint, never over the figures the repo ships."""
    folders = []
    monkeypatch.setattr(think, "plot_trajectories",
                        lambda out, folder: folders.append(folder) or [folder + "/convergence.png"])
    run = ["--trajectories", "--out", toy[2], "--traj-steps", "20", "--plot"]
    think.main(run)
    assert folders == [toy[2]] and f"Wrote {toy[2]}/convergence.png" in capsys.readouterr().out
    think.main(run + ["--figures", "figures"])
    assert folders == [toy[2], "figures"]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is optional")
def test_plot_writes_the_figures(toy, tmp_path):
    think.main(["--trajectories", "--out", toy[2], "--traj-steps", "20", "--plot", "--figures", str(tmp_path)])
    assert (tmp_path / "trajectories_pca.png").exists() and (tmp_path / "convergence.png").exists()


def test_inference_report(toy, capsys, monkeypatch):
    _, cfg, out = toy
    monkeypatch.setattr(think, "KEEP", 0.25)            # the share printed is the one best_setting used
    think.main(["--report", "--out", out, "--eval-problems", "8"])
    printed = capsys.readouterr().out
    saved = json.load(open(out + "/inference.json"))
    for grid in saved["grid"].values():
        best, fixed = think.best_setting(grid["rows"], 0.25)
        assert grid["keep"] == 0.25 and grid["best"] == best
        assert (f"keep 25% of the fixed r = 16 accuracy ({fixed['accuracy']:.3f})" in printed) and "99.5" not in printed
    size = saved["cache_bytes"]
    assert size["64"]["m4"] == size["16"]["m4"] == size["4"]["unshared"] < size["16"]["unshared"]
    assert size["16"]["unshared"] < size["64"]["unshared"]
    # sized for one problem as the model reads it: the first operand and one token per operation
    assert size["4"]["unshared"] == rdmini.cache_bytes(rdmini.new_cache(cfg, 1, 4, None, capacity=saved["n_ops"] + 1))
    # (that the unshared streamed run is evaluate()'s run: test_streaming_problems_gives_evaluate_s_answers)
    grid = saved["grid"][str(saved["n_ops"])]
    rows = grid["rows"]
    assert len(rows) == len(think.EXITS) * 2 * 7          # exits x CoT x (m = 16, 4, 2 by two read rules, and m = 1)
    assert len({(x["m"], x["read"], x["exit"], x["continuous_cot"]) for x in rows}) == len(rows)   # all different
    assert all(x["mean_steps"] == 16 for x in rows if x["exit"] == "none")
    assert all(len(x["steps_by_position"]) == saved["n_ops"] + 1 and max(x["steps_by_position"]) <= 16 for x in rows)
    assert sum(saved["trajectories"].values()) == 6 * 5


def test_best_setting_keeps_the_answers_at_the_fewest_steps():
    row = lambda m, read, ex, acc, steps: {"m": m, "read": read, "exit": ex, "continuous_cot": False,
                                           "accuracy": acc, "mean_steps": steps}
    rows = [row(16, "latest", "none", 0.98, 16), row(16, "latest", "kl < 0.0005", 0.90, 3.0),
            row(16, "always-last", "kl < 0.0005", 0.976, 2.4), row(1, "latest", "kl < 0.0005", 0.976, 2.4),
            row(1, "latest", "state < 0.01", 0.98, 6.0), row(4, "latest", "kl < 0.0001", 0.97, 2.0)]
    best, fixed = think.best_setting(rows)
    assert fixed is rows[0] and best is rows[3]         # 0.97 < 0.995 * 0.98; a tie in steps goes to m = 1
