"""Gradient checks: every hand-written backward against central finite differences, in float64.

    python -m pytest tests/test_gradients.py          # after you edit the recurrence step

Each backward is compared with the derivative measured numerically, (f(x + eps) - f(x - eps)) / 2 eps,
one entry at a time. The two must agree to a relative error of 1e-6 over the whole array. In float64 a
correct backward lands around 1e-9 or below; a wrong one (a missing term, a transposed matrix, a
forgotten `+=`) is typically off by 1e-3 or more, so there is no grey zone.

Layers are checked on their own first, so a failure points at the layer that broke. A layer's output is
an array, not a number, so each test differentiates a random projection of it, loss = sum(out * G) with a
fixed random G: then d loss / d out = G, which is exactly the `dout` the backward receives.

Run `python -m pytest tests/test_gradients.py -s` to see every relative error.
"""
import numpy as np
import pytest

import rdmini

TOL = 1e-6                          # the largest relative error a correct backward may show
# The whole model's loss goes through many more operations than one layer, so its rounding error is
# larger, and a central difference divides that error by 2 eps. eps = 1e-5 keeps that term near 1e-10
# while the method's own error (~eps^2) stays near 1e-10 too: neither dominates.
MODEL_EPS = 1e-5
INJECTIONS = ["concat", "add"]      # every recurrence-step test runs for both ways of injecting e


# ============================================================================================
# The two helpers
# ============================================================================================

def numerical_grad(f, x, eps=1e-6, entries=None):
    """d f() / d x by central differences. f takes no argument and reads x, which is perturbed IN PLACE
    (and restored), so f must use the very array x, not a copy of it.

    entries: a list of index tuples to measure only those entries (returned as a vector, in that
    order); by default every entry is measured and the result has the shape of x."""
    if entries is None:
        entries = list(np.ndindex(x.shape))
        shape = x.shape
    else:
        shape = (len(entries),)
    grad = np.zeros(len(entries))
    for n, i in enumerate(entries):
        old = x[i]
        x[i] = old + eps
        f_plus = f()
        x[i] = old - eps
        f_minus = f()
        x[i] = old                  # restore exactly: the next entry must see the original x
        grad[n] = (f_plus - f_minus) / (2 * eps)
    return grad.reshape(shape)


def rel_error(a, b):
    """|a - b| / (|a| + |b|) over the whole array, with norms: 0 is perfect, 1 is unrelated."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)


def check(name, analytic, numeric, tol=TOL):
    """Assert that a backward's gradient matches the finite-difference one."""
    assert np.shape(analytic) == np.shape(numeric), f"{name}: shape {np.shape(analytic)} != {np.shape(numeric)}"
    # Where the true gradient is zero, a backward returning zeros would pass: make sure that is not the case.
    assert np.abs(numeric).max() > 1e-8, \
        f"{name}: the loss does not depend on this input, so the check cannot tell right from wrong"
    err = rel_error(analytic, numeric)
    print(f"{name:40s} relative error {err:.1e}")
    assert err <= tol, f"{name}: backward and finite differences disagree, relative error {err:.2e} > {tol}"


def sample_entries(shape, n, rng):
    """n distinct random index tuples of an array of this shape (all of them if it has fewer)."""
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(n, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def layer_weights(shapes, rng):
    """Random weights for a layer test: norm weights around 1, matrices of moderate size so that
    softmaxes and sigmoids are neither saturated nor linear."""
    return {name: (1.0 + 0.2 * rng.standard_normal(s)) if "norm" in name else 0.5 * rng.standard_normal(s)
            for name, s in shapes.items()}


def rope_and_mask(cfg, T):
    """What rdmini.start builds once per forward: the RoPE tables and the additive causal mask."""
    rope = rdmini.rope_tables(T, cfg.head_dim, cfg.rope_base, cfg.dtype)
    return rope, rdmini.causal_mask(T, cfg.dtype)


# ============================================================================================
# One layer at a time
# ============================================================================================

def test_embedding():
    rng = np.random.default_rng(0)
    V, h = 7, 8
    tokens = rng.integers(0, V, size=(2, 5))
    assert len(np.unique(tokens)) < tokens.size      # repeated tokens: their rows' gradients must add up
    W = rng.standard_normal((V, h))
    scale = np.sqrt(h)
    out, cache = rdmini.embedding_forward(tokens, W, scale)
    G = rng.standard_normal(out.shape)
    dW = rdmini.embedding_backward(G, cache)
    check("embedding dW", dW, numerical_grad(lambda: np.sum(rdmini.embedding_forward(tokens, W, scale)[0] * G), W))


@pytest.mark.parametrize("w_shape", [(8, 6), (3, 8, 6)], ids=["matrix", "stack"])
def test_linear(w_shape):
    # a stack (S, n, m) is S products of the same x, as qkv and up use it: dx must sum all S
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 8))
    W = rng.standard_normal(w_shape)
    out, cache = rdmini.linear_forward(x, W)
    G = rng.standard_normal(out.shape)
    dx, dW = rdmini.linear_backward(G, cache)
    loss = lambda: np.sum(rdmini.linear_forward(x, W)[0] * G)
    check("linear dx", dx, numerical_grad(loss, x))
    check("linear dW", dW, numerical_grad(loss, W))


def test_rmsnorm():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 8))
    w = 1.0 + 0.3 * rng.standard_normal(8)
    eps = 1e-6
    out, cache = rdmini.rmsnorm_forward(x, w, eps)
    G = rng.standard_normal(out.shape)
    dx, dw = rdmini.rmsnorm_backward(G, cache)
    loss = lambda: np.sum(rdmini.rmsnorm_forward(x, w, eps)[0] * G)
    check("rmsnorm dx", dx, numerical_grad(loss, x))
    check("rmsnorm dw", dw, numerical_grad(loss, w))


def test_rope(make_cfg):
    cfg = make_cfg()
    B, T, H, d = 2, 5, cfg.n_heads, cfg.head_dim
    rng = np.random.default_rng(3)
    rope = rdmini.rope_tables(T, d, cfg.rope_base, cfg.dtype)
    x = rng.standard_normal((B, T, H, d))             # the layout attention hands to rope_forward
    out = rdmini.rope_forward(x, rope)
    G = rng.standard_normal(out.shape)
    dx = rdmini.rope_backward(G, rope)
    check("rope dx", dx, numerical_grad(lambda: np.sum(rdmini.rope_forward(x, rope) * G), x))


def test_attention(make_cfg):
    cfg = make_cfg()
    B, T, h = 2, 5, cfg.width
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, T, h))
    p = layer_weights({"qkv": (3, h, h), "proj": (h, h)}, rng)
    rope, mask = rope_and_mask(cfg, T)
    out, cache = rdmini.attention_forward(x, p, cfg.n_heads, rope, mask)
    G = rng.standard_normal(out.shape)
    dx, g = rdmini.attention_backward(G, cache)
    loss = lambda: np.sum(rdmini.attention_forward(x, p, cfg.n_heads, rope, mask)[0] * G)
    check("attention dx", dx, numerical_grad(loss, x))
    check("attention d qkv", g["qkv"], numerical_grad(loss, p["qkv"]))
    check("attention d proj", g["proj"], numerical_grad(loss, p["proj"]))


def test_swiglu(make_cfg):
    cfg = make_cfg()
    h, F = cfg.width, cfg.mlp_hidden
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, h))
    p = layer_weights({"up": (2, h, F), "down": (F, h)}, rng)
    out, cache = rdmini.swiglu_forward(x, p)
    G = rng.standard_normal(out.shape)
    dx, g = rdmini.swiglu_backward(G, cache)
    loss = lambda: np.sum(rdmini.swiglu_forward(x, p)[0] * G)
    check("swiglu dx", dx, numerical_grad(loss, x))
    check("swiglu d up", g["up"], numerical_grad(loss, p["up"]))
    check("swiglu d down", g["down"], numerical_grad(loss, p["down"]))


def test_block(make_cfg):
    cfg = make_cfg()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, cfg.width))
    p = layer_weights(rdmini.block_shapes(cfg), rng)
    rope, mask = rope_and_mask(cfg, 5)
    out, cache = rdmini.block_forward(x, p, cfg, rope, mask)
    G = rng.standard_normal(out.shape)
    dx, g = rdmini.block_backward(G, cache)
    assert set(g) == set(p), "block_backward must return a gradient for every weight of the block"
    loss = lambda: np.sum(rdmini.block_forward(x, p, cfg, rope, mask)[0] * G)
    check("block dx", dx, numerical_grad(loss, x))
    for name in p:
        check(f"block d {name}", g[name], numerical_grad(loss, p[name]))


def test_cross_entropy(batch, make_cfg):
    cfg = make_cfg()
    rng = np.random.default_rng(7)
    _, targets, mask = batch(cfg)
    logits = 2.0 * rng.standard_normal(targets.shape + (cfg.vocab_size,))
    loss, dlogits = rdmini.cross_entropy(logits, targets, mask)
    check("cross_entropy dlogits",
          dlogits, numerical_grad(lambda: rdmini.cross_entropy(logits, targets, mask)[0], logits))
    # positions outside the mask do not count: their gradient is exactly zero
    assert np.all(dlogits[~mask] == 0)


# ============================================================================================
# The recurrence step: the part students change. Checked for both injections.
# ============================================================================================

def recurrence_params(params):
    """The parameters one recurrence step owns: everything but the prelude, the coda, the embedding and
    the final norm. Written as an exclusion so a weight you add to the step is checked automatically."""
    return [n for n in params if not (n in ("embed", "final_norm") or n.startswith(("prelude.", "coda.")))]


@pytest.mark.parametrize("injection", INJECTIONS)
def test_recurrence_step(make_cfg, make_params, injection):
    cfg = make_cfg(injection=injection)
    params = make_params(cfg)
    rng = np.random.default_rng(8)
    B, T, h = 2, 5, cfg.width
    s, e = rng.standard_normal((B, T, h)), rng.standard_normal((B, T, h))
    rope, mask = rope_and_mask(cfg, T)
    out, cache = rdmini.recurrence_step(s, e, params, cfg, rope, mask)
    assert out.shape == (B, T, h)
    G = rng.standard_normal(out.shape)
    # The grads dict already holds something: the step must ADD its contribution (the core runs r times
    # with one set of weights, and backward sums the r contributions in the same dict).
    before = {n: rng.standard_normal(w.shape) for n, w in params.items()}
    grads = {n: g.copy() for n, g in before.items()}
    ds_prev, de = rdmini.recurrence_step_backward(G, cache, grads, cfg)

    loss = lambda: np.sum(rdmini.recurrence_step(s, e, params, cfg, rope, mask)[0] * G)
    check(f"recurrence[{injection}] d s_prev", ds_prev, numerical_grad(loss, s))
    check(f"recurrence[{injection}] d e", de, numerical_grad(loss, e))
    own = recurrence_params(params)
    for name in own:
        # a few entries of each weight: the block test above already checks every entry of a block
        entries = sample_entries(params[name].shape, 6, rng)
        added = np.array([grads[name][i] - before[name][i] for i in entries])
        check(f"recurrence[{injection}] d {name}", added, numerical_grad(loss, params[name], entries=entries))
    for name in set(params) - set(own):
        assert np.array_equal(grads[name], before[name]), f"the recurrence step must not touch grads[{name!r}]"


# ============================================================================================
# The whole model: forward + cross_entropy + backward, every parameter tensor
# ============================================================================================

def model_loss(params, cfg, tokens, targets, mask, r, state0):
    return rdmini.cross_entropy(rdmini.forward(params, cfg, tokens, r, 0, state0=state0)[0], targets, mask)[0]


@pytest.mark.parametrize("injection, window", [("concat", None), ("add", None), ("concat", 2)])
def test_whole_model(make_cfg, make_params, make_state0, batch, injection, window):
    cfg = make_cfg(injection=injection, window=window)
    params = make_params(cfg)
    tokens, targets, mask = batch(cfg)
    s0 = make_state0(cfg, tokens)                 # fixed: the loss must be a function of params alone
    r = 3
    logits, cache = rdmini.forward(params, cfg, tokens, r, k=r, state0=s0)
    loss, dlogits = rdmini.cross_entropy(logits, targets, mask)
    grads = rdmini.backward(cache, dlogits)
    assert set(grads) == set(params)
    rng = np.random.default_rng(9)
    f = lambda: model_loss(params, cfg, tokens, targets, mask, r, s0)
    for name, w in params.items():
        assert grads[name].shape == w.shape
        entries = sample_entries(w.shape, 4, rng)
        check(f"model[{injection}] d {name}", np.array([grads[name][i] for i in entries]),
              numerical_grad(f, w, eps=MODEL_EPS, entries=entries))


# ============================================================================================
# Truncated backprop: only the last k of r iterations get gradient
# ============================================================================================

@pytest.mark.parametrize("injection, window", [("concat", None), ("add", None), ("concat", 2)])
def test_truncated_backprop_is_full_backprop_from_a_frozen_state(make_cfg, make_params, make_state0, batch,
                                                                  injection, window):
    # forward(r, k) runs r - k iterations without gradient, then k with. That must be exactly the same
    # as taking the state after r - k iterations as a constant s_0 and backpropagating through all of k.
    cfg = make_cfg(injection=injection, window=window)
    params = make_params(cfg)
    tokens, targets, mask = batch(cfg)
    s0 = make_state0(cfg, tokens)
    r, k = 5, 2
    logits, cache = rdmini.forward(params, cfg, tokens, r, k, state0=s0)
    frozen = rdmini.trace_states(params, cfg, tokens, r - k, state0=s0)[-1]
    logits_frozen, cache_frozen = rdmini.forward(params, cfg, tokens, k, k, state0=frozen)
    np.testing.assert_allclose(logits, logits_frozen, rtol=1e-12, atol=0)

    grads = rdmini.backward(cache, rdmini.cross_entropy(logits, targets, mask)[1])
    grads_frozen = rdmini.backward(cache_frozen, rdmini.cross_entropy(logits_frozen, targets, mask)[1])
    for name in params:
        np.testing.assert_allclose(grads[name], grads_frozen[name], rtol=1e-12, atol=0, err_msg=name)

    # ... and those gradients are the true derivative of the loss with the frozen state held fixed
    rng = np.random.default_rng(10)
    f = lambda: model_loss(params, cfg, tokens, targets, mask, k, frozen)
    for name, w in params.items():
        entries = sample_entries(w.shape, 3, rng)
        check(f"truncated[{injection}] d {name}", np.array([grads[name][i] for i in entries]),
              numerical_grad(f, w, eps=MODEL_EPS, entries=entries))

    # Truncation really cuts something: full backprop through all r iterations gives other gradients.
    logits_full, cache_full = rdmini.forward(params, cfg, tokens, r, r, state0=s0)
    grads_full = rdmini.backward(cache_full, rdmini.cross_entropy(logits_full, targets, mask)[1])
    np.testing.assert_array_equal(logits_full, logits)              # k never changes the forward
    assert rel_error(grads_full["prelude.0.qkv"], grads["prelude.0.qkv"]) > 1e-3


@pytest.mark.parametrize("injection", INJECTIONS)
def test_k_above_r_is_full_backprop(make_cfg, make_params, make_state0, batch, injection):
    cfg = make_cfg(injection=injection)
    params = make_params(cfg)
    tokens, targets, mask = batch(cfg)
    s0 = make_state0(cfg, tokens)
    r = 3
    logits, cache = rdmini.forward(params, cfg, tokens, r, r, state0=s0)
    logits_big_k, cache_big_k = rdmini.forward(params, cfg, tokens, r, 7, state0=s0)
    assert len(cache_big_k["steps"]) == r
    np.testing.assert_allclose(logits_big_k, logits, rtol=1e-12, atol=0)
    grads = rdmini.backward(cache, rdmini.cross_entropy(logits, targets, mask)[1])
    grads_big_k = rdmini.backward(cache_big_k, rdmini.cross_entropy(logits_big_k, targets, mask)[1])
    for name in params:
        np.testing.assert_allclose(grads_big_k[name], grads[name], rtol=1e-12, atol=0, err_msg=name)
