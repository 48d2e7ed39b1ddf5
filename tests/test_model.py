"""Behaviour of the model as a whole: truncation memory, causality, the noise s_0, the r distribution,
dtypes, input checking, decoding every state, the optimiser, and a tiny overfit that shows it learns."""
import math

import numpy as np
import pytest

import rdmini


def rel_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


# ============================================================================================
# Truncated backprop keeps only what it needs
# ============================================================================================

@pytest.mark.parametrize("r", [1, 3, 6])
@pytest.mark.parametrize("k", [1, 2, 4, 9])
def test_cache_holds_min_k_r_steps(make_cfg, make_params, batch, r, k):
    # memory grows with k, not with r: only the last min(k, r) iterations keep a cache
    cfg = make_cfg()
    tokens, _, _ = batch(cfg)
    _, cache = rdmini.forward(make_params(cfg), cfg, tokens, r, k)
    assert len(cache["steps"]) == min(k, r)


def test_inference_keeps_no_cache(make_cfg, make_params, batch):
    cfg = make_cfg()
    tokens, _, _ = batch(cfg)
    _, cache = rdmini.forward(make_params(cfg), cfg, tokens, 4, 0)
    assert cache is None


# ============================================================================================
# Causality: position t never sees a later token
# ============================================================================================

@pytest.mark.parametrize("injection", ["concat", "add"])
def test_causality(make_cfg, make_params, make_state0, batch, injection):
    cfg = make_cfg(injection=injection)
    params = make_params(cfg)
    tokens, _, _ = batch(cfg, T=6)
    s0 = make_state0(cfg, tokens)            # the same noise for both runs, or every position would move
    logits, _ = rdmini.forward(params, cfg, tokens, 3, state0=s0)
    for t in range(tokens.shape[1]):
        changed = tokens.copy()
        changed[:, t] = (changed[:, t] + 1) % cfg.vocab_size
        logits_changed, _ = rdmini.forward(params, cfg, changed, 3, state0=s0)
        # exactly equal, not just close: the masked attention weights are exactly 0
        np.testing.assert_array_equal(logits_changed[:, :t], logits[:, :t], err_msg=f"t={t} leaks backwards")
        assert not np.array_equal(logits_changed[:, t:], logits[:, t:]), f"changing token {t} changed nothing"


def test_window_mask_by_hand():
    # window 2: each query sees itself and the one position before it; -inf everywhere else
    o, x = 0.0, -np.inf
    np.testing.assert_array_equal(rdmini.causal_mask(4, "float64", window=2),
                                  [[o, x, x, x], [o, o, x, x], [x, o, o, x], [x, x, o, o]])
    # two new positions at t0 = 3 behind a KV cache: their rows of the 5 x 5 mask
    np.testing.assert_array_equal(rdmini.causal_mask(2, "float64", t0=3, window=3),
                                  [[x, o, o, o, x], [x, x, o, o, o]])
    # a window as long as the sequence is no window at all
    np.testing.assert_array_equal(rdmini.causal_mask(5, "float64", window=5), rdmini.causal_mask(5, "float64"))


@pytest.mark.parametrize("r", [1, 2])
def test_window_reach_grows_with_each_iteration(make_cfg, make_params, make_state0, r):
    """With a window of 2, each attention layer carries information one position further. The tiny model
    has a prelude block, a 2-block core and a coda block: 1 + 2r + 1 layers, so a change of token 0
    reaches positions 0 .. 2 + 2r and no further. More iterations, further reach."""
    cfg = make_cfg(window=2)
    params = make_params(cfg)
    tokens = np.random.default_rng(3).integers(0, cfg.vocab_size, size=(1, 8))
    s0 = make_state0(cfg, tokens)
    changed = tokens.copy()
    changed[0, 0] = (changed[0, 0] + 1) % cfg.vocab_size
    a = rdmini.forward(params, cfg, tokens, r, state0=s0)[0]
    b = rdmini.forward(params, cfg, changed, r, state0=s0)[0]
    reach = 2 + 2 * r
    assert not np.array_equal(a[0, reach], b[0, reach])
    np.testing.assert_array_equal(a[0, reach + 1:], b[0, reach + 1:])


def test_rope_scores_depend_only_on_relative_position(make_cfg):
    # RoPE's purpose: a query at position i and a key at position j meet in a score that depends on
    # i - j only. Any table of frequencies has that property, so the frequencies are checked too: pair j
    # turns by base^(-2j/d) per position (the gradient checks cannot see a wrong table; this can).
    cfg = make_cfg()
    T, H, d = 6, cfg.n_heads, cfg.head_dim
    rng = np.random.default_rng(0)
    q_vec, k_vec = rng.standard_normal((H, d)), rng.standard_normal((H, d))
    rope = rdmini.rope_tables(T, d, cfg.rope_base, cfg.dtype)
    q = rdmini.rope_forward(np.tile(q_vec, (T, 1, 1)), rope)       # the same q at every position: (T, H, d)
    k = rdmini.rope_forward(np.tile(k_vec, (T, 1, 1)), rope)
    scores = np.einsum("ihd,jhd->hij", q, k)                         # (H, T, T)
    for offset in range(-T + 1, T):
        diagonal = np.diagonal(scores, offset, axis1=1, axis2=2)     # all pairs with j - i = offset
        np.testing.assert_allclose(diagonal, np.broadcast_to(diagonal[:, :1], diagonal.shape), rtol=1e-10)
    assert not np.allclose(scores[:, 0, 0], scores[:, 0, 1])         # but the distance does matter
    np.testing.assert_allclose(q[0], q_vec, rtol=1e-12)              # position 0 is not rotated
    np.testing.assert_allclose(np.angle(rope[1, 0]), cfg.rope_base ** (-np.arange(0, d, 2) / d), rtol=1e-12)
    # a rotation keeps lengths
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), np.tile(np.linalg.norm(q_vec, axis=-1), (T, 1)))


# ============================================================================================
# The initial state s_0
# ============================================================================================

def first_state(params, cfg, tokens, rng):
    return rdmini.trace_states(params, cfg, tokens, 1, rng=rng)[0]


def test_noise_same_seed_same_state(make_cfg, make_params, batch):
    cfg = make_cfg()
    params = make_params(cfg)
    tokens, _, _ = batch(cfg)
    a = first_state(params, cfg, tokens, np.random.default_rng(5))
    b = first_state(params, cfg, tokens, np.random.default_rng(5))
    c = first_state(params, cfg, tokens, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # trace_states draws s_0 exactly as initial_state does with the same generator
    np.testing.assert_array_equal(a, rdmini.initial_state(cfg, a.shape, np.random.default_rng(5)))


def test_noise_without_rng_is_reproducible(make_cfg, make_params, batch):
    # documented in rdmini.start: rng=None means np.random.default_rng(0), so two calls agree
    cfg = make_cfg()
    params = make_params(cfg)
    tokens, _, _ = batch(cfg)
    a = first_state(params, cfg, tokens, None)
    np.testing.assert_array_equal(a, first_state(params, cfg, tokens, None))
    np.testing.assert_array_equal(a, rdmini.initial_state(cfg, a.shape, np.random.default_rng(0)))
    np.testing.assert_array_equal(rdmini.forward(params, cfg, tokens, 2)[0], rdmini.forward(params, cfg, tokens, 2)[0])


def test_noise_zero_std_gives_zero_state(make_cfg, make_params, batch):
    cfg = make_cfg(state_std=0.0)
    tokens, _, _ = batch(cfg)
    s0 = first_state(make_params(cfg), cfg, tokens, np.random.default_rng(1))
    assert np.all(s0 == 0)


def test_noise_is_truncated_normal(make_cfg):
    cfg = make_cfg(state_std=0.5)
    s = rdmini.initial_state(cfg, (200_000,), np.random.default_rng(2))
    sigma = cfg.state_std
    assert np.abs(s).max() <= 3 * sigma                       # nothing beyond 3 sigma ...
    assert np.abs(s).max() > 2.9 * sigma                      # ... but the tail up to it is there
    # redrawn, not clipped: clipping would pile thousands of values exactly on +-3 sigma
    assert np.count_nonzero(np.abs(s) == 3 * sigma) == 0
    assert abs(s.mean()) < 0.01 * sigma
    # cutting the normal at 3 sigma removes 0.27% of its mass, all in the tails, so the std shrinks a
    # little: sqrt(1 - 6 phi(3) / (2 Phi(3) - 1)) = 0.9866 sigma
    truncated_std = math.sqrt(1 - 6 * math.exp(-4.5) / math.sqrt(2 * math.pi) / math.erf(3 / math.sqrt(2)))
    assert s.std() == pytest.approx(truncated_std * sigma, rel=0.01)


# ============================================================================================
# sample_r: the paper's training distribution of r
# ============================================================================================

@pytest.mark.parametrize("mean_r", [2, 4, 8, 32])
def test_sample_r_mean_and_support(mean_r):
    rng = np.random.default_rng(mean_r)
    draws = [rdmini.sample_r(rng, mean_r) for _ in range(20_000)]
    assert all(type(r) is int for r in draws)          # a plain int, usable as a loop count and in JSON
    assert min(draws) >= 1
    assert np.mean(draws) == pytest.approx(mean_r, rel=0.05)
    # the heavy tail: r - 1 is Poisson with a log-normal rate lam (mean mean_r - 1, sigma = 1/2), so
    # Var(r) = E[lam] + Var(lam) = (mean_r - 1) + (e^(1/4) - 1)(mean_r - 1)^2, well above a plain Poisson's
    expected_var = (mean_r - 1) + (math.exp(0.25) - 1) * (mean_r - 1) ** 2
    assert np.var(draws) == pytest.approx(expected_var, rel=0.1)


def test_sample_r_mean_one_means_no_recurrence():
    rng = np.random.default_rng(0)
    assert {rdmini.sample_r(rng, 1) for _ in range(100)} == {1}


@pytest.mark.parametrize("mean_r", [0.5, 0, -3])
def test_sample_r_rejects_mean_below_one(mean_r):
    with pytest.raises(ValueError, match="mean_r"):
        rdmini.sample_r(np.random.default_rng(0), mean_r)


# ============================================================================================
# float32 stays float32
# ============================================================================================

@pytest.mark.parametrize("injection", ["concat", "add"])
def test_float32_end_to_end(make_cfg, make_params, make_state0, batch, injection):
    cfg = make_cfg(dtype="float32", injection=injection)
    params = make_params(cfg)
    assert all(w.dtype == np.float32 for w in params.values())
    tokens, targets, mask = batch(cfg)
    s0 = make_state0(cfg, tokens).astype(np.float64)        # even a float64 s_0 must not upcast the model
    logits, cache = rdmini.forward(params, cfg, tokens, 3, 2, state0=s0)
    assert logits.dtype == np.float32
    loss, dlogits = rdmini.cross_entropy(logits, targets, mask)
    assert dlogits.dtype == np.float32
    grads = rdmini.backward(cache, dlogits)
    assert {n: g.dtype for n, g in grads.items()} == {n: np.dtype(np.float32) for n in params}
    assert rdmini.trace_states(params, cfg, tokens, 2).dtype == np.float32
    assert all(l.dtype == np.float32 for l in rdmini.logits_by_r(params, cfg, tokens, {1, 2}).values())
    opt = rdmini.adamw_init(params)
    rdmini.adamw_update(params, grads, opt, lr=1e-3)
    assert all(w.dtype == np.float32 for w in params.values())
    assert all(m.dtype == np.float32 for m in opt["m"].values())

    # and float32 computes the same thing as float64, to float32's precision
    cfg64 = make_cfg(dtype="float64", injection=injection)
    params64 = {n: w.astype(np.float64) for n, w in make_params(cfg).items()}
    logits64, cache64 = rdmini.forward(params64, cfg64, tokens, 3, 2, state0=s0)
    grads64 = rdmini.backward(cache64, rdmini.cross_entropy(logits64, targets, mask)[1])
    assert rel_error(logits, logits64) < 1e-5                 # float32's precision, with room for sums
    for n in grads:
        assert rel_error(grads[n], grads64[n]) < 1e-4, n


# ============================================================================================
# Bad input is refused with a ValueError that names the problem
# ============================================================================================

# Every entry point that takes tokens checks them the same way.
ENTRY_POINTS = {
    "forward": lambda params, cfg, tokens, state0=None: rdmini.forward(params, cfg, tokens, 2, 1, state0=state0),
    "trace_states": lambda params, cfg, tokens, state0=None: rdmini.trace_states(params, cfg, tokens, 2,
                                                                                 state0=state0),
    "logits_by_r": lambda params, cfg, tokens, state0=None: rdmini.logits_by_r(params, cfg, tokens, {1, 2},
                                                                               state0=state0),
}


@pytest.fixture
def model(make_cfg, make_params, batch):
    cfg = make_cfg()
    tokens, targets, mask = batch(cfg)
    return make_params(cfg), cfg, tokens


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bad, match", [
    (lambda t, V: t - V, "token ids must lie in"),                    # negative ids
    (lambda t, V: t + V, "token ids must lie in"),                    # ids >= vocab_size
    (lambda t, V: np.where(t == t.max(), V, t), "token ids must lie in"),   # a single id == vocab_size
    (lambda t, V: t.astype(np.float64), "integer"),                   # float tokens, even whole numbers
    (lambda t, V: t[0], "2-D"),                                       # 1-D
    (lambda t, V: t[None], "2-D"),                                    # 3-D
    (lambda t, V: np.zeros((1, 9), dtype=int), "max_seq_len"),        # T = 9 > max_seq_len = 8
], ids=["negative", "above-vocab", "one-equal-to-vocab", "float", "1-D", "3-D", "too-long"])
def test_bad_tokens(model, entry, bad, match):
    params, cfg, tokens = model
    with pytest.raises(ValueError, match=match):
        ENTRY_POINTS[entry](params, cfg, bad(tokens, cfg.vocab_size))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("shape", [(2, 5, 4), (1, 5, 8), (2, 4, 8), (2, 5)])
def test_bad_state0_shape(model, entry, shape):
    params, cfg, tokens = model
    assert tokens.shape == (2, 5) and cfg.width == 8          # so every shape above is wrong
    with pytest.raises(ValueError, match="state0"):
        ENTRY_POINTS[entry](params, cfg, tokens, state0=np.zeros(shape))


@pytest.mark.parametrize("r", [0, -1, 2.5, "3"])
def test_bad_r(model, r):
    params, cfg, tokens = model
    with pytest.raises(ValueError, match="recurrences"):
        rdmini.forward(params, cfg, tokens, r, 1)
    with pytest.raises(ValueError, match="recurrences"):
        rdmini.trace_states(params, cfg, tokens, r)


@pytest.mark.parametrize("k", [-1, 1.5])
def test_bad_k(model, k):
    params, cfg, tokens = model
    with pytest.raises(ValueError, match="backprop steps"):
        rdmini.forward(params, cfg, tokens, 2, k)


def test_cross_entropy_rejects_empty_mask(batch, make_cfg):
    cfg = make_cfg()
    _, targets, mask = batch(cfg)
    logits = np.zeros(targets.shape + (cfg.vocab_size,))
    with pytest.raises(ValueError, match="mask selects no position"):
        rdmini.cross_entropy(logits, targets, np.zeros_like(mask))


@pytest.mark.parametrize("bad_target", [-1, 7], ids=["negative", "equal-to-vocab"])
def test_cross_entropy_rejects_targets_outside_vocabulary(batch, make_cfg, bad_target):
    # A target id outside [0, V) at a counted position has no probability to read. -1 must not silently
    # read the last class through negative indexing, and V must not escape as an IndexError.
    cfg = make_cfg()
    _, targets, mask = batch(cfg)
    targets[mask] = bad_target
    logits = np.zeros(targets.shape + (cfg.vocab_size,))
    with pytest.raises(ValueError, match="target"):
        rdmini.cross_entropy(logits, targets, mask)


def test_backward_without_cache(make_cfg, make_params, batch):
    cfg = make_cfg()
    tokens, targets, mask = batch(cfg)
    logits, cache = rdmini.forward(make_params(cfg), cfg, tokens, 2, 0)      # k = 0: inference
    assert cache is None
    with pytest.raises(ValueError, match="no cache"):
        rdmini.backward(cache, rdmini.cross_entropy(logits, targets, mask)[1])


@pytest.mark.parametrize("overrides, match", [
    (dict(width=10, n_heads=4), "n_heads"),            # 10 / 4 is not an integer
    (dict(width=6, n_heads=2), "even"),                # head width 3: RoPE needs pairs
    (dict(injection="gate"), "injection"),
    (dict(dtype="float16"), "dtype"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(mean_r=0.5), "mean_r"),
    (dict(state_std=-1.0), "state_std"),
    (dict(window=0), "window"),
    (dict(window=2.5), "window"),
    (dict(window=True), "window"),
    (dict(window="4"), "window"),
])
def test_bad_config(make_cfg, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_cfg(**overrides)


# ============================================================================================
# Decoding every intermediate state
# ============================================================================================

def test_logits_by_r_matches_forward(make_cfg, make_params, make_state0, batch):
    # one pass to max(rs) decodes every r on its way: each must be what forward gives at that r
    cfg = make_cfg()
    params = make_params(cfg)
    tokens, _, _ = batch(cfg)
    s0 = make_state0(cfg, tokens)
    out = rdmini.logits_by_r(params, cfg, tokens, {0, 1, 3, 4}, state0=s0)
    assert set(out) == {0, 1, 3, 4}
    for r in (1, 3, 4):
        np.testing.assert_allclose(out[r], rdmini.forward(params, cfg, tokens, r, state0=s0)[0], rtol=1e-12, atol=0)
    # r = 0 decodes s_0 itself, through the coda alone
    rope = rdmini.rope_tables(tokens.shape[1], cfg.head_dim, cfg.rope_base, cfg.dtype)
    coda_s0, _ = rdmini.coda_forward(params, cfg, s0, rope,
                                     rdmini.causal_mask(tokens.shape[1], cfg.dtype, window=cfg.window))
    np.testing.assert_allclose(out[0], coda_s0, rtol=1e-12, atol=0)


def test_logits_by_r_zero_alone(make_cfg, make_params, make_state0, batch):
    # the docstring says "0 decodes s_0 itself": asking for r = 0 alone must work too
    cfg = make_cfg()
    params = make_params(cfg)
    tokens, _, _ = batch(cfg)
    s0 = make_state0(cfg, tokens)
    alone = rdmini.logits_by_r(params, cfg, tokens, {0}, state0=s0)
    np.testing.assert_array_equal(alone[0], rdmini.logits_by_r(params, cfg, tokens, {0, 1}, state0=s0)[0])


# ============================================================================================
# AdamW and the learning-rate schedule
# ============================================================================================

def random_grads(params, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return {n: scale * rng.standard_normal(w.shape).astype(w.dtype) for n, w in params.items()}


def copy(params):
    return {n: w.copy() for n, w in params.items()}


def test_adamw_moves_params_in_place(make_cfg, make_params):
    cfg = make_cfg()
    params = make_params(cfg)
    arrays, before = dict(params), copy(params)
    grads = random_grads(params, 0)
    opt = rdmini.adamw_init(params)
    lr = 1e-2
    rdmini.adamw_update(params, grads, opt, lr, weight_decay=0.0, clip=math.inf)
    assert opt["t"] == 1
    for n in params:
        assert params[n] is arrays[n], f"{n} was replaced, not updated in place"
        # Adam's first step: the bias corrections make m_hat = g and v_hat = g^2, so each weight moves by
        # lr * g / (|g| + eps), which is lr * sign(g) unless g is tiny
        g = grads[n]
        np.testing.assert_allclose(before[n] - params[n], lr * g / (np.abs(g) + 1e-8), rtol=1e-9, err_msg=n)


def test_adamw_clips_the_global_gradient_norm(make_cfg, make_params):
    cfg = make_cfg()
    params_a, params_b = make_params(cfg), make_params(cfg)
    huge = random_grads(params_a, 1, scale=1e6)
    norm = np.sqrt(sum(np.sum(g ** 2) for g in huge.values()))     # the global L2 norm, over all tensors
    unit = {n: g / norm for n, g in huge.items()}                     # the same direction, norm 1
    opt_a, opt_b = rdmini.adamw_init(params_a), rdmini.adamw_init(params_b)
    for _ in range(3):
        returned = rdmini.adamw_update(params_a, huge, opt_a, 1e-2, clip=1.0)
        rdmini.adamw_update(params_b, unit, opt_b, 1e-2, clip=1.0)
    assert returned == pytest.approx(norm)                            # it reports the norm before clipping
    for n in params_a:
        # Adam's step hardly depends on the gradient's scale, so compare its moments too: they would be
        # 1e6 times larger without the clip
        np.testing.assert_allclose(opt_a["m"][n], opt_b["m"][n], rtol=1e-9, err_msg=n)
        np.testing.assert_allclose(opt_a["v"][n], opt_b["v"][n], rtol=1e-9, err_msg=n)
        np.testing.assert_allclose(params_a[n], params_b[n], rtol=1e-12, err_msg=n)


def test_adamw_does_not_clip_small_gradients(make_cfg, make_params):
    cfg = make_cfg()
    params = make_params(cfg)
    small = random_grads(params, 2, scale=1e-3)
    assert rdmini.grad_norm(small) < 1.0
    opt = rdmini.adamw_init(params)
    rdmini.adamw_update(params, small, opt, 1e-2, betas=(0.9, 0.95), clip=1.0)
    for n in params:
        np.testing.assert_allclose(opt["m"][n], 0.1 * small[n], rtol=1e-12, err_msg=n)   # m = (1 - b1) g


def test_adamw_weight_decay_skips_norms(make_cfg, make_params):
    cfg = make_cfg()
    params = make_params(cfg)
    before = copy(params)
    zero = {n: np.zeros_like(w) for n, w in params.items()}
    lr, wd = 0.1, 0.5
    rdmini.adamw_update(params, zero, rdmini.adamw_init(params), lr, weight_decay=wd)
    for n in params:
        if "norm" in n:
            np.testing.assert_array_equal(params[n], before[n], err_msg=f"{n} is a norm weight: no decay")
        else:
            np.testing.assert_allclose(params[n], before[n] * (1 - lr * wd), rtol=1e-12, err_msg=n)
    assert any("norm" in n for n in params) and any("norm" not in n for n in params)


@pytest.mark.parametrize("final_ratio", [0.1, 0.0])
def test_learning_rate_schedule(final_ratio):
    peak, warmup, total = 3e-3, 10, 100
    lr = [rdmini.learning_rate(s, total, peak, warmup, final_ratio) for s in range(total + 51)]
    rise = np.diff(lr[:warmup])
    assert lr[0] > 0                                                  # step 0 already learns
    assert rise[0] > 0
    np.testing.assert_allclose(rise, rise[0], rtol=1e-12)             # linear warmup ...
    assert lr[warmup - 1] == pytest.approx(peak)                      # ... up to the peak
    assert lr[warmup] == pytest.approx(peak)
    assert max(lr) == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lr[warmup:], lr[warmup + 1:]))  # then only down
    assert lr[total] == pytest.approx(peak * final_ratio)              # to peak * final_ratio at total
    assert lr[-1] == pytest.approx(peak * final_ratio)                 # and it stays there
    assert lr[total - 1] > 0                                           # the last step still learns


# ============================================================================================
# It learns: a tiny model memorises one small batch
# ============================================================================================

@pytest.mark.parametrize("injection", ["concat", "add"])
def test_tiny_overfit(make_cfg, injection):
    # The real training loop in miniature: a fresh r from sample_r, fresh noise, truncated backprop,
    # clipping, weight decay and the schedule, all on one fixed batch of 4 random sequences. The bound
    # lies between where this loop's loss ends and where it ends when the backward skips the recurrence
    # (no gradient to the core, nor through e to the prelude), with a margin on both sides: docs/notes.md.
    # That each iteration's gradient is right is test_gradients' job: a loop that only cuts the state's
    # gradient between iterations still memorises one batch, so this test cannot see that.
    cfg = make_cfg(dtype="float32", injection=injection, mean_r=3, backprop_k=2)
    params = rdmini.init_params(cfg, 0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, (4, 8))
    targets = rng.integers(0, cfg.vocab_size, (4, 8))
    mask = rng.random((4, 8)) < 0.7

    def eval_loss():
        return rdmini.cross_entropy(rdmini.forward(params, cfg, tokens, 3)[0], targets, mask)[0]

    first = eval_loss()
    opt = rdmini.adamw_init(params)
    steps = 100
    for step in range(steps):
        r = rdmini.sample_r(rng, cfg.mean_r)
        logits, cache = rdmini.forward(params, cfg, tokens, r, cfg.backprop_k, rng=rng)
        _, dlogits = rdmini.cross_entropy(logits, targets, mask)
        rdmini.adamw_update(params, rdmini.backward(cache, dlogits), opt, rdmini.learning_rate(step, steps, 1e-2, 10))
    last = eval_loss()
    assert last < 0.12 * first, f"loss only went from {first:.3f} to {last:.3f}"


def test_the_loop_refuses_inference_hooks_in_training(make_cfg, make_params):
    cfg = make_cfg()
    params = make_params(cfg)
    s = np.zeros((1, 3, cfg.width))
    rope, mask = rdmini.rope_tables(3, cfg.head_dim, cfg.rope_base, cfg.dtype), rdmini.causal_mask(3, cfg.dtype)
    with pytest.raises(ValueError, match="for inference"):
        rdmini.recurrence(s, s, params, cfg, rope, mask, 3, k=1, after_step=lambda i, a, b: (b, False))
