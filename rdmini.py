"""rdmini: a recurrent-depth language model in numpy, forward and backward written by hand.

A recurrent-depth model (Geiping et al. 2025, "Huginn") thinks by looping in latent space instead of
by writing more tokens. It has three stages, and this file uses the paper's words for them:

    prelude  P: tokens -> e            a few transformer blocks that embed the input once
    core     R: s_i = R(adapter(s_{i-1}, e))   a few blocks iterated r times with ONE set of weights
    coda     C: s_r -> logits          a few blocks that decode the final state

The state s starts as noise s_0. The adapter injects e into every iteration, so the core never forgets
the input. Training draws a different r for every batch, so the same weights learn to work for any r,
and only the last k iterations are backpropagated ("truncated backprop"). At test time r is a knob:
more iterations, more thinking, same weights.

Every layer is a pair, `x_forward(...) -> (out, cache)` and `x_backward(dout, cache) -> (dinputs, grads)`.
Caches are plain values returned to the caller, never stored on an object: the core runs r times with the
same weights and each iteration needs a cache of its own. Gradients of a weight used several times (the
core's weights, the injected e, the tied embedding) are summed with `+=`, one contribution per use.

Legend of the letters used in shape comments:
    B batch, T time (sequence positions), h width, H heads, d = h / H head width, F MLP hidden width,
    V vocabulary, N = B * T positions, r recurrences (core iterations), k backprop steps (the last k of r).
    At inference: c positions a KV cache can hold, m its core slots (the cache budget), t new positions.
"""
import dataclasses
import json
import math
import os
import tempfile
import zipfile

import numpy as np


# The defaults are the model `python train_toy.py` trains; the tutorial's float64 checks use a smaller one.
@dataclasses.dataclass
class Config:
    vocab_size: int = 46        # V: number of distinct tokens (train_toy's vocabulary)
    width: int = 64             # h: the width of every hidden vector, e and the state s included
    n_heads: int = 4            # H: attention heads; width / n_heads is the head width d (must be even: RoPE)
    mlp_hidden: int = 128       # F: hidden width of the SwiGLU MLP
    n_prelude: int = 1          # transformer blocks in the prelude (run once)
    n_core: int = 1             # transformer blocks in the core, run r times with shared weights
    n_coda: int = 1             # transformer blocks in the coda (run once)
    max_seq_len: int = 64       # full attention: T may not exceed this (a window reads any length)
    window: int | None = 2      # attention window: a position sees itself and the window - 1 before it
                                #   (None: the whole prefix, as Huginn; the toy task's rule needs 2)
    state_std: float = 0.63     # sigma of the initial state s_0 (paper: variance 2/5); 0 gives s_0 = 0
    mean_r: float = 10.0        # mean r drawn by sample_r in training; 1 = no recurrence
    backprop_k: int = 4         # k used in training, kept with the checkpoint; forward() takes k as an argument
    injection: str = "concat"   # how e enters the core: "concat" ([s, e] @ W, 2h -> h) or "add" (s + e)
    dtype: str = "float32"      # "float32" to train, "float64" for gradient checks
    rope_base: float = 10000.0  # base of the rotary position embedding's frequencies
    norm_eps: float = 1e-6      # epsilon inside every RMSNorm

    def __post_init__(self):
        positive = ["vocab_size", "width", "n_heads", "mlp_hidden", "n_core", "max_seq_len", "backprop_k"]
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)}")
        for name in ["n_prelude", "n_coda"]:
            if int(getattr(self, name)) < 0:
                raise ValueError(f"Config.{name} must be >= 0, got {getattr(self, name)}")
        if self.width % self.n_heads or (self.width // self.n_heads) % 2:
            raise ValueError(f"Config.width ({self.width}) / n_heads ({self.n_heads}) must be an even "
                             "integer: RoPE rotates pairs of features within each head")
        if self.injection not in ("concat", "add"):
            raise ValueError(f"Config.injection must be 'concat' or 'add', got {self.injection!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"Config.dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.window is not None and (not isinstance(self.window, (int, np.integer))
                                        or isinstance(self.window, bool) or self.window < 1):
            raise ValueError(f"Config.window must be None (the whole prefix) or an integer >= 1, got {self.window!r}")
        if self.state_std < 0 or self.mean_r < 1:
            raise ValueError("Config.state_std must be >= 0 and Config.mean_r >= 1")

    @property
    def head_dim(self):
        return self.width // self.n_heads


# ============================================================================================
# Parameters
# ============================================================================================

def block_shapes(cfg):
    """One transformer block's weights. 'Sandwich' norms: each sub-layer is normalised on the way in
    and its residual sum on the way out (the paper needed this to keep the loop stable)."""
    h, F = cfg.width, cfg.mlp_hidden
    # qkv and up are stacks of matrices that share an input: one product gives q, k and v (gate and
    # value), each a contiguous array, where one wide matrix would give strided slices that are slow
    return {"attn_norm_in": (h,), "qkv": (3, h, h), "proj": (h, h), "attn_norm_out": (h,),
            "mlp_norm_in": (h,), "up": (2, h, F), "down": (F, h), "mlp_norm_out": (h,)}


def param_shapes(cfg):
    """Every parameter's name and shape. Block weights are named '<stage>.<i>.<weight>'."""
    h = cfg.width
    shapes = {"embed": (cfg.vocab_size, h)}            # tied: also the unembedding
    for stage, n in (("prelude", cfg.n_prelude), ("core", cfg.n_core), ("coda", cfg.n_coda)):
        for i in range(n):
            shapes.update({f"{stage}.{i}.{name}": shape for name, shape in block_shapes(cfg).items()})
    if cfg.injection == "concat":
        shapes["adapter"] = (2 * h, h)
    shapes["final_norm"] = (h,)
    return shapes


def init_params(cfg, seed):
    """Paper's init: std sqrt(2 / 5h); output projections also scaled by 1/sqrt(2 * effective depth)."""
    rng = np.random.default_rng(seed)
    std = math.sqrt(2 / (5 * cfg.width))
    depth = cfg.n_prelude + cfg.n_core * cfg.mean_r + cfg.n_coda     # effective depth at mean r
    params = {}
    for name, shape in param_shapes(cfg).items():
        if "norm" in name:
            w = np.ones(shape)
        elif name.endswith(("proj", "down")):
            w = rng.standard_normal(shape) * std / math.sqrt(2 * depth)
        else:
            w = rng.standard_normal(shape) * std
        params[name] = w.astype(cfg.dtype)
    return params


def sub(params, prefix):
    """The weights of one block, without their prefix: sub(params, 'core.0.')['qkv']."""
    return {name[len(prefix):]: w for name, w in params.items() if name.startswith(prefix)}


def accumulate(grads, prefix, block_grads):
    for name, g in block_grads.items():
        grads[prefix + name] += g      # += : a weight used several times gets every contribution


# ============================================================================================
# Layers: forward/backward pairs
# ============================================================================================

def embedding_forward(tokens, W, scale):
    out = W[tokens] * scale                                  # (B,T) -> (B,T,h)
    return out, (tokens, W.shape, scale)


def embedding_backward(dout, cache):
    tokens, shape, scale = cache
    dW = np.zeros(shape, dout.dtype)
    # out = W[tokens] * scale: every occurrence of a token adds to that token's row
    np.add.at(dW, tokens, dout * scale)
    return dW


def linear_forward(x, W):
    """x (..., n) @ W (n, m) -> (..., m). A stack W (S, n, m) gives S products of the same x: (S, ..., m)."""
    x2 = x.reshape(-1, x.shape[-1])           # (..., n) -> (N, n): one BLAS call, not one per batch row
    out = x2 @ W                              # (N, m), or (S, N, m) for a stack
    return out.reshape(*W.shape[:-2], *x.shape[:-1], W.shape[-1]), (x, W)


def linear_backward(dout, cache):
    x, W = cache
    x2 = x.reshape(-1, x.shape[-1])                          # (N, n)
    d2 = dout.reshape(*W.shape[:-2], -1, W.shape[-1])        # (N, m), or (S, N, m)
    dW = x2.T @ d2                                           # out = x @ W  ->  dW = x^T dout
    dx = d2 @ W.swapaxes(-1, -2)                             #              ->  dx = dout W^T
    if W.ndim == 3:
        dx = dx.sum(axis=0)                                  # x fed all S products: sum their gradients
    return dx.reshape(x.shape), dW


def rmsnorm_forward(x, w, eps):
    # mean of squares as sum / h: the same arithmetic as np.mean, without its Python-level overhead
    rstd = 1.0 / np.sqrt((x * x).sum(axis=-1, keepdims=True) / x.shape[-1] + eps)   # (..., h) -> (..., 1)
    xhat = x * rstd
    return xhat * w, (xhat, rstd, w)


def rmsnorm_backward(dout, cache):
    xhat, rstd, w = cache
    dw = (dout * xhat).reshape(-1, w.shape[0]).sum(axis=0)  # out = xhat * w
    dxhat = dout * w
    # xhat = x * rstd, rstd = mean(x^2)^(-1/2): the rstd term removes dxhat's component along xhat
    dx = rstd * (dxhat - xhat * ((dxhat * xhat).sum(axis=-1, keepdims=True) / xhat.shape[-1]))
    return dx, dw


def rope_tables(T, d, base, dtype, t0=0):
    """Rotary position embedding: in each head, features (2j, 2j+1) form a pair, read as one complex
    number and rotated by the angle position * base^(-2j/d). Attention scores then depend only on
    how far apart two positions are. Returns e^(i angle) for the positions t0 .. t0+T-1, (T, 1, d/2)
    complex, made for the positions at hand (a forward's, or the new ones a KV cache is fed), so no
    table limits how far a sequence goes. The angle is computed in float64: at position p its rounding
    error is about p * 1e-16 radians, far below float32's precision for any p a CPU will reach."""
    freq = base ** (-np.arange(0, d, 2) / d)                                  # (d/2,)
    angle = np.arange(t0, t0 + T)[:, None, None] * freq                       # (T, 1, d/2): 1 for heads
    return np.exp(1j * angle).astype(np.complex64 if dtype == "float32" else np.complex128)


def rope_forward(x, rot):
    """x (..., T, H, d) real, contiguous -> x rotated: each pair times e^(i angle), one complex product."""
    return (x.view(rot.dtype) * rot).view(x.dtype)


def rope_backward(dout, rot):
    # a rotation's transpose is the rotation by minus the angle: multiply by the conjugate
    return (dout.view(rot.dtype) * rot.conj()).view(dout.dtype)


def causal_mask(T, dtype, t0=0, window=None):
    """Additive mask (T, t0 + T): -inf where a key comes after its query, so the query at position
    t0 + j sees positions 0 .. t0 + j only. t0 > 0 when earlier positions come from a KV cache.
    window w: the query also sees nothing before t0 + j - w + 1, i.e. itself and the w - 1 positions
    before it, however long the sequence: every position then has the same view at every length."""
    mask = np.triu(np.full((T, t0 + T), -np.inf, dtype=dtype), k=t0 + 1)       # the future
    if window is not None:
        mask += np.tril(np.full((T, t0 + T), -np.inf, dtype=dtype), k=t0 - window)   # the far past
    return mask


def attention_forward(x, p, n_heads, rope, mask, kv=None):
    """Causal multi-head self-attention with RoPE. x (B,T,h) -> (B,T,h).
    kv is for inference only: this layer's KV cache (see kv_update); then keys and values of earlier
    positions come from the cache, and rope and mask cover the new positions (T rows each)."""
    B, T, h = x.shape
    d = h // n_heads
    qkv, c_qkv = linear_forward(x, p["qkv"])                                  # (B,T,h) -> (3,B,T,h)
    qk = rope_forward(qkv[:2].reshape(2, B, T, n_heads, d), rope)             # (2,B,T,H,d): q, k rotated
    q, k = qk.transpose(0, 1, 3, 2, 4)                                        # (B,H,T,d) each
    v = qkv[2].reshape(B, T, n_heads, d).transpose(0, 2, 1, 3)                # (B,H,T,d)
    if kv is not None:
        k, v = kv_update(kv, k, v)                                            # (B,H,s+T,d): with s seen before
    q = q * (1.0 / math.sqrt(d))
    scores = q @ k.swapaxes(-1, -2) + mask                                    # (B,H,T,T); (B,H,T,s+T) with a cache
    att = np.exp(scores - scores.max(axis=-1, keepdims=True))
    att /= att.sum(axis=-1, keepdims=True)                                    # softmax over keys
    y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, h)                      # (B,H,T,d) -> (B,T,h)
    out, c_proj = linear_forward(y, p["proj"])
    return out, (c_qkv, c_proj, q, k, v, att, rope, d)


def attention_backward(dout, cache):
    c_qkv, c_proj, q, k, v, att, rope, d = cache
    B, H, T, _ = q.shape
    dy, dproj = linear_backward(dout, c_proj)                                 # out = y @ proj
    dy = dy.reshape(B, T, H, d).transpose(0, 2, 1, 3)                         # (B,T,h) -> (B,H,T,d)
    datt = dy @ v.swapaxes(-1, -2)                                            # y = att @ v
    dv = att.swapaxes(-1, -2) @ dy
    # att = softmax(scores): dscores = att * (datt - sum_j datt_j att_j)
    dscores = att * (datt - np.sum(datt * att, axis=-1, keepdims=True))       # (B,H,T,T)
    dq = (dscores @ k) * (1.0 / math.sqrt(d))                                 # scores = q k^T, q scaled
    dk = dscores.swapaxes(-1, -2) @ q
    dqkv = np.stack([dq, dk, dv]).transpose(0, 1, 3, 2, 4).copy()             # (3,B,T,H,d), in memory order
    dqkv[:2] = rope_backward(dqkv[:2], rope)                                  # qk = rope(qkv[:2])
    dqkv = dqkv.reshape(3, B, T, H * d)                                       # (3,B,T,h)
    dx, dqkv_w = linear_backward(dqkv, c_qkv)                                 # qkv = x @ qkv_w
    return dx, {"qkv": dqkv_w, "proj": dproj}


def swiglu_forward(x, p):
    """SwiGLU MLP, as in Huginn: down(silu(x @ W_gate) * (x @ W_value)). x (B,T,h) -> (B,T,h)."""
    (a, b), c_up = linear_forward(x, p["up"])                                 # gate, value: (2,B,T,F)
    with np.errstate(over="ignore"):          # exp(-a) = inf for a < -88 in float32; 1 / inf = 0 is right
        sig = 1.0 / (1.0 + np.exp(-a))                                        # sigmoid(a)
    act = a * sig * b
    out, c_down = linear_forward(act, p["down"])                              # (B,T,F) -> (B,T,h)
    return out, (c_up, c_down, a, b, sig)


def swiglu_backward(dout, cache):
    c_up, c_down, a, b, sig = cache
    dact, ddown = linear_backward(dout, c_down)                               # out = act @ down
    db = dact * a * sig                                                       # act = silu(a) * b
    da = dact * b * sig * (1.0 + a * (1.0 - sig))                             # silu'(a) = sig (1 + a (1 - sig))
    dx, dup = linear_backward(np.stack([da, db]), c_up)                       # (a, b) = x @ up_w
    return dx, {"up": dup, "down": ddown}


def block_forward(x, p, cfg, rope, mask, kv=None):
    """Huginn's sandwich block: x = n2(attn(n1(x)) + x); x = n4(mlp(n3(x)) + x). x (B,T,h) -> (B,T,h)."""
    # Why sandwich: on the toy task it beat pre-norm blocks with the state RMS-normalised after each core
    # pass, at the same step and at the same training time, although its steps cost more (docs/notes.md).
    eps = cfg.norm_eps
    a, c1 = rmsnorm_forward(x, p["attn_norm_in"], eps)
    a, c2 = attention_forward(a, p, cfg.n_heads, rope, mask, kv)
    x, c3 = rmsnorm_forward(a + x, p["attn_norm_out"], eps)
    y, c4 = rmsnorm_forward(x, p["mlp_norm_in"], eps)
    y, c5 = swiglu_forward(y, p)
    x, c6 = rmsnorm_forward(y + x, p["mlp_norm_out"], eps)
    return x, (c1, c2, c3, c4, c5, c6)


def block_backward(dout, cache):
    c1, c2, c3, c4, c5, c6 = cache
    g = {}
    dsum, g["mlp_norm_out"] = rmsnorm_backward(dout, c6)        # x = n4(y + x)
    dy, g_mlp = swiglu_backward(dsum, c5)                       # y = mlp(y)
    dx, g["mlp_norm_in"] = rmsnorm_backward(dy, c4)             # y = n3(x)
    dx += dsum                                                  # the residual branch of y + x
    dsum, g["attn_norm_out"] = rmsnorm_backward(dx, c3)         # x = n2(a + x)
    da, g_attn = attention_backward(dsum, c2)                   # a = attn(a)
    dx, g["attn_norm_in"] = rmsnorm_backward(da, c1)            # a = n1(x)
    dx += dsum                                                  # the residual branch of a + x
    return dx, {**g, **g_mlp, **g_attn}


def stack_forward(x, params, cfg, stage, n, rope, mask, kvs=None):
    """n blocks in a row, e.g. the prelude or the coda. Returns the list of their caches.
    kvs (inference only): (store, past, lo, t0, write), stores (n,2,B,H,c,d), block i using store[i] and
    past[i] (past None: read the earlier positions from store too); see kv_update."""
    caches = []
    for i in range(n):
        kv = None if kvs is None else (kvs[0][i], None if kvs[1] is None else kvs[1][i], *kvs[2:])
        x, c = block_forward(x, sub(params, f"{stage}.{i}."), cfg, rope, mask, kv)
        caches.append(c)
    return x, caches


def stack_backward(dx, caches, grads, stage):
    for i in reversed(range(len(caches))):
        dx, g = block_backward(dx, caches[i])
        accumulate(grads, f"{stage}.{i}.", g)
    return dx


# ============================================================================================
# THE RECURRENCE STEP: input injection + core, and the one loop that runs it. Classroom exercises change
# this section. s_i = core(adapter(s_{i-1}, e)). The step's backward is right below it (the loop's is the
# reversed loop in backward()); the gradient check (python -m pytest tests/test_gradients.py) tells you
# whether your change is still right.
# ============================================================================================

def recurrence_step(s, e, params, cfg, rope, mask, kvs=None):
    """One iteration of thinking: s (B,T,h), e (B,T,h) -> new s (B,T,h), and the step's cache.
    (kvs: the KV cache of this step's core blocks, at inference only; see feed.)"""
    # Input injection: e enters every iteration, so however long the core runs it still sees the input.
    if cfg.injection == "concat":   # the paper's adapter: a learned 2h -> h map weighs state against input
        x, c_in = linear_forward(np.concatenate([s, e], axis=-1), params["adapter"])  # (B,T,2h) -> (B,T,h)
    else:                           # the simpler form, which the paper finds as good for small models
        x, c_in = s + e, None
    s_new, c_core = stack_forward(x, params, cfg, "core", cfg.n_core, rope, mask, kvs)
    return s_new, (c_in, c_core)


def recurrence_step_backward(ds, cache, grads, cfg):
    """-> (d s_{i-1}, d e) for one iteration; adds this iteration's weight gradients into grads."""
    c_in, c_core = cache
    dx = stack_backward(ds, c_core, grads, "core")             # s_new = core(x)
    if cfg.injection == "concat":
        dse, dW = linear_backward(dx, c_in)                     # x = [s, e] @ adapter
        grads["adapter"] += dW
        ds_prev, de = np.split(dse, 2, axis=-1)                 # (B,T,2h) -> 2 x (B,T,h)
    else:
        ds_prev, de = dx, dx.copy()     # x = s + e: both get dx (two arrays: a caller may change one in place)
    return ds_prev, de


def recurrence(s, e, params, cfg, rope, mask, r, k=0, kv=None, after_step=None):
    """THE LOOP: r recurrence steps from the state s (B,T,h). Every path that iterates the core runs it:
    forward (training and evaluation), trace_states, logits_by_r, and feed (inference with a KV cache),
    so a change here reaches them all. -> the final state (B,T,h) and the caches of the kept steps.
    Inference only (k = 0): kv(i) gives the KV cache for step i (counted from 0), and after_step(i, s_prev,
    s_new) -> (the state to go on from, stop) looks at each new state (decodes it, stops tokens, the loop)."""
    if k > 0 and (kv is not None or after_step is not None):
        raise ValueError("kv and after_step are for inference (k = 0): the kept steps of training use neither")
    # Truncated backprop. The first r - k steps run and forget: no gradient will flow through them, so
    # nothing of theirs is kept. Only the last min(k, r) keep their caches. Memory therefore grows with k,
    # not with r. (There is no autograd here: "no gradient" just means the backward is never called for
    # those steps, so the state after them enters the kept ones as a constant, like .detach().)
    for i in range(max(r - k, 0)):
        s_new, _ = recurrence_step(s, e, params, cfg, rope, mask, None if kv is None else kv(i))
        s, stop = (s_new, False) if after_step is None else after_step(i, s, s_new)
        if stop:
            break
    step_caches = []
    for i in range(max(r - k, 0), r):                          # the last min(k, r) steps: training only
        s, c = recurrence_step(s, e, params, cfg, rope, mask)
        step_caches.append(c)
    return s, step_caches

# ===================================== end of the recurrence step ==========================


# ============================================================================================
# The model: prelude -> r recurrence steps -> coda
# ============================================================================================

def initial_state(cfg, shape, rng):
    """s_0 ~ normal(0, state_std^2) truncated at 3 sigma (redrawn, not clipped), from an explicit rng."""
    s = rng.standard_normal(shape)
    while True:
        outside = np.abs(s) > 3.0
        if not outside.any():
            break
        s[outside] = rng.standard_normal(int(outside.sum()))
    return (s * cfg.state_std).astype(cfg.dtype)


def prelude_forward(params, cfg, tokens, rope, mask, kvs=None):
    """tokens (B,T) -> e (B,T,h). Embeddings are scaled by sqrt(h), as in the paper. (kvs: inference, see feed.)"""
    x, c_emb = embedding_forward(tokens, params["embed"], math.sqrt(cfg.width))   # (B,T) -> (B,T,h)
    e, c_blocks = stack_forward(x, params, cfg, "prelude", cfg.n_prelude, rope, mask, kvs)
    return e, (c_emb, c_blocks)


def coda_forward(params, cfg, s, rope, mask, kvs=None):
    """A state s (B,T,h) -> logits (B,T,V): final norm, coda blocks, the same final norm, tied unembedding."""
    x, c_n1 = rmsnorm_forward(s, params["final_norm"], cfg.norm_eps)
    x, c_blocks = stack_forward(x, params, cfg, "coda", cfg.n_coda, rope, mask, kvs)
    x, c_n2 = rmsnorm_forward(x, params["final_norm"], cfg.norm_eps)
    logits, c_out = linear_forward(x, params["embed"].T)                       # (B,T,h) -> (B,T,V)
    return logits, (c_n1, c_blocks, c_n2, c_out)


def check_tokens(cfg, tokens):
    """tokens as a 2-D integer array (B, T) of at least one token, every id in the vocabulary; else a ValueError."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 2-D integer array (B, T), got {tokens.dtype} of shape {tokens.shape}")
    if tokens.size == 0:
        raise ValueError(f"tokens is empty (shape {tokens.shape}): give at least one token")
    if tokens.min() < 0 or tokens.max() >= cfg.vocab_size:
        raise ValueError(f"token ids must lie in [0, {cfg.vocab_size}), got min {tokens.min()} "
                         f"and max {tokens.max()}")
    return tokens


def check_length(cfg, T):
    """Full attention reads at most max_seq_len positions. A window bounds what each position sees, so a
    windowed model reads any length: forward's cost and memory then grow as T * T (it computes every score
    and masks most), streaming through a KV cache's ring (feed) costs the same for every token."""
    if cfg.window is None and T > cfg.max_seq_len:
        raise ValueError(f"sequence length T={T} is above Config.max_seq_len={cfg.max_seq_len} of this "
                         "full-attention model; shorten the input or build the model with a larger max_seq_len")


def check_inputs(cfg, tokens, r, k, state0):
    tokens = check_tokens(cfg, tokens)
    B, T = tokens.shape
    check_length(cfg, T)
    if not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"r (recurrences) must be an integer >= 1, got {r!r}")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k (backprop steps) must be an integer >= 0, got {k!r}; use k=0 for inference")
    if state0 is not None and np.shape(state0) != (B, T, cfg.width):
        raise ValueError(f"state0 must have shape (B, T, h) = {(B, T, cfg.width)}, got {np.shape(state0)}")
    return tokens


def rope_and_mask(cfg, T, t0=0, seen=0):
    """RoPE tables (T,1,d/2) for the positions t0 .. t0+T-1, and the mask (T, seen+T) of their queries over
    `seen` earlier keys (from a KV cache; 0 in forward) and their own."""
    return rope_tables(T, cfg.head_dim, cfg.rope_base, cfg.dtype, t0), causal_mask(T, cfg.dtype, seen, cfg.window)


def start(params, cfg, tokens, rng, state0):
    """What every entry point shares: RoPE tables, the causal mask, e from the prelude, and s_0.
    rng=None draws s_0 from np.random.default_rng(0), so a call without rng is reproducible;
    pass your own Generator for fresh noise on every call, as the paper does."""
    rope, mask = rope_and_mask(cfg, tokens.shape[1])
    e, c_prelude = prelude_forward(params, cfg, tokens, rope, mask)
    if state0 is None:
        state0 = initial_state(cfg, e.shape, rng if rng is not None else np.random.default_rng(0))
    return rope, mask, e, c_prelude, np.asarray(state0, dtype=cfg.dtype)


def forward(params, cfg, tokens, r, k=0, rng=None, state0=None):
    """tokens (B,T) -> logits (B,T,V) after r iterations of the core. k > 0 keeps what the backward
    needs for the last min(k, r) iterations; k = 0 is inference and keeps nothing."""
    tokens = check_inputs(cfg, tokens, r, k, state0)
    rope, mask, e, c_prelude, s = start(params, cfg, tokens, rng, state0)   # e, s: (B,T,h)
    s, step_caches = recurrence(s, e, params, cfg, rope, mask, r, k)       # caches of the last min(k, r) steps
    logits, c_coda = coda_forward(params, cfg, s, rope, mask)
    cache = {"cfg": cfg, "shapes": {n: w.shape for n, w in params.items()}, "prelude": c_prelude,
             "steps": step_caches, "coda": c_coda} if k > 0 else None
    return logits, cache


def log_softmax(logits):
    """log p over the last axis; subtracting the max first keeps exp from overflowing."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits, targets, mask, count=None):
    """Mean cross-entropy over the positions where mask is true (the answer tokens).
    logits (B,T,V), targets (B,T) int, mask (B,T) bool -> (loss, dlogits (B,T,V)).
    count: what the sum is divided by, if not mask.sum(). A slice of a batch passes the whole batch's
    count, so that the slices' losses and gradients add up to the whole batch's (train_toy's threads)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != logits.shape[:2] or np.shape(targets) != logits.shape[:2]:
        raise ValueError(f"targets and mask must have shape (B, T) = {logits.shape[:2]}, "
                         f"got {np.shape(targets)} and {mask.shape}")
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= logits.shape[-1]:
        raise ValueError(f"targets must be integers in [0, {logits.shape[-1]}) (token ids), "
                         f"got {targets.dtype} from {targets.min()} to {targets.max()}")
    n = int(mask.sum())
    if count is not None:
        if count != int(count) or not count >= max(n, 1):
            raise ValueError(f"count={count} must be a whole number >= 1 and at least the {n} positions mask selects: "
                             "pass the whole batch's mask.sum()")
        n = int(count)
    if n == 0:
        raise ValueError("mask selects no position: the loss would be 0/0; mark at least one answer token")
    logp = log_softmax(logits)                                                # (B,T,V)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]    # (B,T)
    loss = -(picked * mask).sum() / n
    # The chain rule starts here: d loss / d logits = (p - onehot(target)) / n at masked positions
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, targets[..., None], np.exp(picked)[..., None] - 1.0, axis=-1)
    dlogits *= (mask / n)[..., None].astype(logits.dtype)
    return float(loss), dlogits


def backward(cache, dlogits):
    """dlogits (B,T,V) -> grads, a dict with the same keys and shapes as params."""
    if cache is None:
        raise ValueError("no cache to backpropagate through: call forward with k >= 1 (k=0 is inference)")
    cfg = cache["cfg"]
    grads = {n: np.zeros(s, dlogits.dtype) for n, s in cache["shapes"].items()}
    c_n1, c_blocks, c_n2, c_out = cache["coda"]
    dx, dembT = linear_backward(dlogits, c_out)                 # logits = x @ embed^T
    grads["embed"] += dembT.T
    dx, dw = rmsnorm_backward(dx, c_n2)                         # x = final_norm(x)
    grads["final_norm"] += dw
    dx = stack_backward(dx, c_blocks, grads, "coda")
    ds, dw = rmsnorm_backward(dx, c_n1)                         # x = final_norm(s_r)
    grads["final_norm"] += dw                                   # the same norm, used twice
    # Walk the kept iterations in reverse. e was injected into each of them: its gradient is the sum.
    de = np.zeros_like(ds)
    for c in reversed(cache["steps"]):
        ds, de_i = recurrence_step_backward(ds, c, grads, cfg)
        de += de_i
    # ds is now d loss / d s_(r-k), and unused: that state counts as a constant, the gradient stops here.
    c_emb, c_blocks = cache["prelude"]
    dx = stack_backward(de, c_blocks, grads, "prelude")
    grads["embed"] += embedding_backward(dx, c_emb)             # x = embed[tokens] * sqrt(h)
    return grads


def trace_states(params, cfg, tokens, r, rng=None, state0=None):
    """Every state s_0 .. s_r of one inference pass, stacked: (r+1, B, T, h). rng as in forward."""
    tokens = check_inputs(cfg, tokens, r, 0, state0)
    rope, mask, e, _, s = start(params, cfg, tokens, rng, state0)
    states = [s]

    def keep(i, s_prev, s_new):
        states.append(s_new)
        return s_new, False
    recurrence(s, e, params, cfg, rope, mask, r, after_step=keep)
    return np.stack(states)


def logits_by_r(params, cfg, tokens, rs, rng=None, state0=None):
    """Inference at several r in one pass, {r: logits (B,T,V)}: the run to max(rs) passes through every
    smaller r on its way, so the coda is applied there too. Same s_0 for all, rng as in forward."""
    tokens = check_inputs(cfg, tokens, max(max(rs), 1), 0, state0)
    if min(rs) < 0:
        raise ValueError(f"every r must be >= 0 (0 decodes s_0 itself), got {sorted(rs)}")
    rope, mask, e, _, s = start(params, cfg, tokens, rng, state0)
    out = {0: coda_forward(params, cfg, s, rope, mask)[0]} if 0 in rs else {}

    def decode(i, s_prev, s_new):              # step i (from 0) has just made s_(i+1)
        if i + 1 in rs:
            out[i + 1] = coda_forward(params, cfg, s_new, rope, mask)[0]
        return s_new, False
    recurrence(s, e, params, cfg, rope, mask, max(rs), after_step=decode)
    return out


def sample_r(rng, mean_r):
    """The paper's training distribution of r, shifted so that E[r] = mean_r (the paper's log(rbar) gives
    rbar + 1): tau ~ N(log(mean_r - 1) - sigma^2/2, sigma), sigma = 1/2, r = Poisson(exp(tau)) + 1.
    E[exp(tau)] = mean_r - 1, so E[r] = mean_r; the right tail is heavy."""
    if mean_r < 1:
        raise ValueError(f"mean_r must be >= 1, got {mean_r}")
    if mean_r == 1:
        return 1                                                # no recurrence: the baseline
    sigma = 0.5
    tau = rng.normal(math.log(mean_r - 1) - sigma ** 2 / 2, sigma)
    return int(rng.poisson(math.exp(tau))) + 1


# ============================================================================================
# Optimisation: AdamW, gradient clipping, learning-rate schedule
# ============================================================================================

def adamw_init(params):
    return {"m": {n: np.zeros_like(w) for n, w in params.items()},
            "v": {n: np.zeros_like(w) for n, w in params.items()}, "t": 0}


def grad_norm(grads):
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def adamw_update(params, grads, opt, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, clip=1.0):
    """One AdamW step, in place. Gradients are first scaled so their global norm is at most clip.
    Weight decay is decoupled (applied to the weight, not the gradient) and skips norm weights."""
    norm = grad_norm(grads)
    scale = min(1.0, clip / (norm + 1e-12))
    b1, b2 = betas
    opt["t"] += 1
    c1, c2 = 1 - b1 ** opt["t"], 1 - b2 ** opt["t"]              # bias corrections
    for n, w in params.items():
        g = grads[n] * scale
        m, v = opt["m"][n], opt["v"][n]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        if "norm" not in n:
            w *= 1 - lr * weight_decay
        w -= (lr / c1) * m / (np.sqrt(v / c2) + eps)
    return norm


def learning_rate(step, total, peak, warmup, final_ratio=0.0):
    """Linear warmup to peak over `warmup` steps, then cosine decay to peak * final_ratio at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ============================================================================================
# Checkpoints: one .npz, written atomically, read without pickle, checked against its config
# ============================================================================================

FORMAT = "rdmini-checkpoint-1"


def save_checkpoint(path, params, cfg, **state):
    """Write params, the config and any training state to one .npz. A state value may be an array,
    a dict of arrays (e.g. Adam's moments) or anything JSON can hold (step, generator states).
    Written to a temporary file in the same folder, then renamed: a crash never leaves half a file."""
    arrays, meta = {}, {"format": FORMAT, "config": dataclasses.asdict(cfg), "json": {}, "dicts": []}
    for n, w in params.items():
        arrays["param/" + n] = w
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays["state/" + key] = value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            meta["dicts"].append(key)
            arrays.update({f"dict/{key}/{n}": v for n, v in value.items()})
        else:
            meta["json"][key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path):
    """-> (params, cfg, state). Refuses, with a ValueError saying why, a file that is missing,
    truncated, not an rdmini checkpoint, or whose arrays do not fit its own config."""
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):          # a lone .npy array, not an archive
            raise ValueError(f"{path} is not an rdmini checkpoint (a single array, not an .npz archive)")
        with z:
            data = {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except ValueError as err:
        if "rdmini" in str(err):
            raise
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({err}); "
                         "delete it or point to another one") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
                         "delete it or point to another one") from None
    try:
        meta = json.loads(str(data.pop("meta")))
    except (KeyError, ValueError):                          # no 'meta' array, or not JSON
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT and isinstance(meta.get("config"), dict)
            and isinstance(meta.get("json"), dict) and isinstance(meta.get("dicts"), list)):
        raise ValueError(f"{path} is not an rdmini checkpoint (no valid 'meta' entry)")
    unknown = sorted(set(meta["config"]) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise ValueError(f"checkpoint {path}: its config has an unknown field {unknown[0]!r}; it was written by "
                         "another version of rdmini.py, or edited")
    try:
        cfg = Config(**meta["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path}: its config is not valid ({err})") from None
    params = {n[len("param/"):]: w for n, w in data.items() if n.startswith("param/")}
    expected = param_shapes(cfg)
    if set(params) != set(expected):
        raise ValueError(f"checkpoint {path} does not fit its config: parameters "
                         f"{sorted(set(params) ^ set(expected))} are missing or extra")
    for n, shape in expected.items():
        if params[n].shape != shape or params[n].dtype != np.dtype(cfg.dtype):
            raise ValueError(f"checkpoint {path}: parameter {n} is {params[n].dtype}{params[n].shape}, "
                             f"its config says {cfg.dtype}{shape}")
    state = dict(meta["json"])
    state.update({n[len("state/"):]: w for n, w in data.items() if n.startswith("state/")})
    for key in meta["dicts"]:
        prefix = f"dict/{key}/"
        state[key] = {n[len(prefix):]: w for n, w in data.items() if n.startswith(prefix)}
    return params, cfg, state


# ======================== Inference: KV cache, cache sharing, adaptive exit ========================
# forward() recomputes every position at every step. To read a sequence as it arrives, one token at a
# time, each attention layer keeps the keys (already rotated by RoPE) and values of the positions it has
# seen, and a new token only computes its own q, k, v: the "KV cache". A recurrent-depth model has one
# such layer per prelude block, per coda block, and per core block AND core step, so without sharing the
# cache grows with r. Sharing gives the core a budget of m slots: step i (counted from 0) reads and writes
# slot i % m, so a later token reading an earlier one at step i finds that token's entry of the last step
# with the same i % m. With m >= r every step has its own slot and nothing changes.
# How far back a cache must reach: with full attention a new token reads every earlier position, so the
# cache holds them all and grows with the length. With a window of w it reads only the w - 1 before it:
# the cache keeps the last c positions, position p at index p % c, a ring in which each new position
# overwrites one no token will read again. Its memory is then the same at 10 tokens and at 10,000.
# (A cache that holds every position is the same ring, one that never wraps: c >= the whole length.)
# Adaptive exit lets each token stop when it has converged; a later token that reads it at a deeper step
# then reads its latest (deepest) entry.
# The read rule says which entry of an earlier position a new token reads at its step i:
#   "latest":      the one in slot i % m (with m >= r: the earlier token's own step-i entry, as forward()
#                  reads it, so with no exit the cache changes nothing);
#   "always-last": the earlier token's last entry, from the deepest step it ran, whatever i is.
#                  With m = 1 the two rules read the same entry.
# The rules are about tokens of earlier calls: the tokens of one feed() call run their steps together and
# read each other's entries of the same step, as forward() does, under either rule.
# Shapes: t new positions, c cache capacity, m' = min(r, m) slots, s positions seen before the new ones.

READ_RULES = ("latest", "always-last")


def new_cache(cfg, batch, r, m=None, capacity=None, rng=None, read="latest"):
    """An empty KV cache for `batch` sequences that holds their last `capacity` positions, for a model run
    with r core steps and a budget of m core slots (None: m = r, no sharing), read by the rule `read`
    ("latest" or "always-last", see above). Capacity by default: full attention, max_seq_len (every
    position of the longest sequence); a window w, w (the ring one token at a time needs; a call of t
    tokens needs w - 1 + t). It also keeps the final state s of those positions (continuous chain of
    thought starts from it) and the rng that feed() draws s_0 from when it is given no state0 (default
    np.random.default_rng(0): reproducible)."""
    if not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"r (recurrences) must be an integer >= 1, got {r!r}")
    m = r if m is None else m
    if not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m (cache budget, core slots) must be an integer >= 1 or None, got {m!r}")
    if capacity is None:
        capacity = cfg.max_seq_len if cfg.window is None else cfg.window
    if cfg.window is None and not 1 <= capacity <= cfg.max_seq_len:
        raise ValueError(f"cache capacity must lie in [1, Config.max_seq_len={cfg.max_seq_len}] for a "
                         f"full-attention model, got {capacity}")
    if capacity < 1:
        raise ValueError(f"cache capacity must be >= 1, got {capacity}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if read not in READ_RULES:
        raise ValueError(f"read (the cache's read rule) must be one of {READ_RULES}, got {read!r}")

    def kv(*layers):         # 2: keys and values; one (B,H,c,d) array of each per attention layer
        return np.zeros((*layers, 2, batch, cfg.n_heads, capacity, cfg.head_dim), cfg.dtype)
    return {"prelude": kv(cfg.n_prelude),                       # (n_prelude,2,B,H,c,d)
            "core": kv(min(r, m), cfg.n_core),                  # (m',n_core,2,B,H,c,d): the only part that grows with r
            "coda": kv(cfg.n_coda),                             # (n_coda,2,B,H,c,d)
            "state": np.zeros((batch, capacity, cfg.width), cfg.dtype),   # (B,c,h): final s of each position
            "capacity": int(capacity), "length": 0, "r": int(r), "m": int(m), "read": read,
            "rng": rng if rng is not None else np.random.default_rng(0)}


def cache_bytes(cache):
    """Bytes of the keys and values the cache holds (allocated for its whole capacity):
    2 * (n_prelude + n_coda + n_core * min(r, m)) * B * capacity * h * itemsize."""
    return sum(cache[stage].nbytes for stage in ("prelude", "core", "coda"))


def first_seen(cfg, t0):
    """The earliest position that tokens fed at position t0 attend to: 0 with full attention, and with a
    window of w the first of the w - 1 before t0."""
    return 0 if cfg.window is None else max(0, t0 - cfg.window + 1)


def kv_update(kv, k, v):
    """Write the new positions' keys and values into a layer's cache; return those of the positions they
    attend to. kv = (store, past, lo, t0, write), stores (2,B,H,c,d) with position p at index p % c: the
    new positions t0 .. t0+T-1 are written into store; the earlier ones they attend to, lo .. t0-1, are read
    from past (the read rule's choice; past None reads them from store too, the "latest" rule). write
    (B,T) (None: all) says which tokens still think; a stopped token's entry stays, so readers get its
    latest one. k, v (B,H,T,d) -> keys, values (B,H,s+T,d), s = t0 - lo."""
    store, past, lo, t0, write = kv
    T, c = k.shape[2], store.shape[3]
    new_at, seen_at = np.arange(t0, t0 + T) % c, np.arange(lo, t0) % c      # indices in the ring
    new = np.stack([k, v])                                                    # (2,B,H,T,d)
    if write is not None:
        new = np.where(write[:, None, :, None], new, store[:, :, :, new_at])   # stopped tokens keep theirs
    store[:, :, :, new_at] = new
    if past is None and t0 + T <= c:                # not wrapped (full attention never is): a view, no copy
        return store[0, :, :, lo:t0 + T], store[1, :, :, lo:t0 + T]
    both = np.concatenate([(store if past is None else past)[:, :, :, seen_at], new], axis=3)  # (2,B,H,s+T,d)
    return both[0], both[1]


def copy_to_skipped_slots(cache, i, done):
    """Tokens that stop at step i (done (B,t) of the new positions) leave their step-i entries in the slots
    of the steps they skip (at most m - 1 other slots: with sharing, later steps come back to the same
    ones), so that a deeper reader finds their latest entry. Each token is copied once, when it stops."""
    r, m, t0 = cache["r"], cache["m"], cache["length"]
    if not done.any():
        return
    at = np.arange(t0, t0 + done.shape[1]) % cache["capacity"]               # the new positions in the ring
    entry = cache["core"][i % m][:, :, :, :, at]                              # (n_core,2,B,H,t,d)
    for later in range(i + 1, min(r, i + m)):
        dst = cache["core"][later % m]
        dst[:, :, :, :, at] = np.where(done[:, None, :, None], entry, dst[:, :, :, :, at])


def check_feed_inputs(cfg, cache, tokens, state0, threshold, criterion):
    """feed's arguments, each with an error that says what was wrong; -> tokens as an array."""
    tokens = check_tokens(cfg, tokens)
    B, t = tokens.shape
    if B != cache["state"].shape[0]:
        raise ValueError(f"tokens must have B = {cache['state'].shape[0]} rows (the cache's batch), got {B}")
    t0, capacity = cache["length"], cache["capacity"]
    if cfg.window is None and t0 + t > capacity:
        raise ValueError(f"{t0 + t} positions do not fit: this cache holds {capacity} "
                         f"(Config.max_seq_len = {cfg.max_seq_len})")
    seen = t0 - first_seen(cfg, t0)
    if seen + t > capacity:
        raise ValueError(f"{t} new tokens and the {seen} before them that they attend to (window {cfg.window}) "
                         f"need {seen + t} positions; this cache holds {capacity}: feed fewer tokens at once, "
                         f"or make the cache with capacity >= {seen + t}")
    if state0 is not None and np.shape(state0) != (B, t, cfg.width):
        raise ValueError(f"state0 must have shape (B, t, h) = {(B, t, cfg.width)}, got {np.shape(state0)}")
    if threshold is not None and not threshold >= 0:
        raise ValueError(f"threshold must be None (fixed r) or a number >= 0, got {threshold!r}")
    if criterion not in ("kl", "state"):
        raise ValueError(f"criterion must be 'kl' or 'state', got {criterion!r}")
    return tokens


def feed(params, cfg, cache, tokens, state0=None, threshold=None, criterion="kl", continuous=False):
    """Run new tokens (B,t) at the next t positions, reusing the cache for all earlier ones; the cache is
    updated in place. -> logits (B,t,V) and the core steps each new token used, (B,t) int.

    s_0: state0 (B,t,h) if given, else one draw initial_state(cfg, (B,t,h), cache["rng"]) per call.
    (forward draws (B,T,h) at once, so for the same numbers as forward pass state0 = its s_0[:, t0:t0+t].)
    continuous=True: the first new position starts from the previous position's final state instead
    (continuous chain of thought; only the first: the others' predecessors are still running with them).
    threshold None: every token runs the cache's r steps; with m >= r and the "latest" rule the logits then
    equal forward's. A number: adaptive exit, r is the maximum. Once a token has made s_i, i >= 2 (s_i: the
    state after i steps; the loop's step i, counted from 0, makes s_(i+1)), it stops when
      criterion "kl":    KL(p_{i-1} || p_i) < threshold, p_i = softmax(coda(s_i)): the coda runs every step
      criterion "state": ||s_i - s_{i-1}|| / ||s_i|| < threshold (no coda per step)
    (s_1 has nothing to compare with: s_0 is noise). Threshold 0 never exits; a token's steps cannot grow
    with the threshold for the same history (earlier tokens' exits may change a later token's history).
    A token that stops at step j leaves its step-j entries in the slots of the steps it skipped, so a
    deeper reader reads its latest entry. Tokens of one call run in lock-step: a stopped token's rows
    are still computed (and thrown away) while others go on, as one batched product is simpler."""
    tokens = check_feed_inputs(cfg, cache, tokens, state0, threshold, criterion)
    B, t = tokens.shape
    t0, r, m, c = cache["length"], cache["r"], cache["m"], cache["capacity"]
    lo = first_seen(cfg, t0)                    # the new tokens attend to positions lo .. t0+t-1

    rot, mask = rope_and_mask(cfg, t, t0, t0 - lo)                            # (t,1,d/2), (t,s+t)
    e = prelude_forward(params, cfg, tokens, rot, mask, (cache["prelude"], None, lo, t0, None))[0]   # (B,t,h)
    coda = lambda s: coda_forward(params, cfg, s, rot, mask, (cache["coda"], None, lo, t0, None))[0]   # (B,t,V)
    if state0 is None:
        s = initial_state(cfg, (B, t, cfg.width), cache["rng"])              # (B,t,h)
    else:
        s = np.array(state0, dtype=cfg.dtype)                                 # a copy: we write into it
    if continuous and t0 > 0:
        s[:, 0] = cache["state"][:, (t0 - 1) % c]
    active = np.ones((B, t), bool)              # tokens still thinking
    steps = np.zeros((B, t), np.int64)
    kl_each_step = threshold is not None and criterion == "kl"
    logits = logp = None

    def kv(i):                                  # step i reads and writes slot i % m
        # the slot of the last step holds every earlier position's last entry (stopped tokens' included)
        past = None if cache["read"] == "latest" else cache["core"][(r - 1) % m]
        return cache["core"][i % m], past, lo, t0, active

    def after_step(i, s_prev, s_new):
        nonlocal steps, active, logits, logp
        s_new = np.where(active[..., None], s_new, s_prev)                  # stopped tokens keep their s
        steps += active
        if threshold is None:
            return s_new, False
        if kl_each_step:
            logits = coda(s_new)                                            # the price of this criterion
            logp_prev, logp = logp, log_softmax(logits)
            change = (np.full((B, t), np.inf) if logp_prev is None else     # rounding: keep it >= 0
                      np.maximum(np.sum(np.exp(logp_prev) * (logp_prev - logp), axis=-1), 0.0))
        else:
            change = np.linalg.norm(s_new - s_prev, axis=-1) / np.linalg.norm(s_new, axis=-1) if i > 0 else np.inf
        done = active & (change < threshold)                                # (B,t)
        copy_to_skipped_slots(cache, i, done)
        active &= ~done
        return s_new, not active.any()

    s, _ = recurrence(s, e, params, cfg, rot, mask, r, kv=kv, after_step=after_step)   # the loop of training
    if not kl_each_step:
        logits = coda(s)                                      # (with "kl" the last step's coda saw these states)
    cache["state"][:, np.arange(t0, t0 + t) % c] = s
    cache["length"] = t0 + t
    return logits, steps


def generate(params, cfg, prompt, max_new_tokens, r, m=1, rng=None, state0=None, threshold=None,
             criterion="kl", continuous=False, read="latest"):
    """Greedy decoding with the KV cache: the prompt in one pass, then each new token fed back alone.
    prompt (T,) or (B,T) ints -> tokens (B,T+n), logits (B,L,V) and core steps used (B,L), where
    n = max_new_tokens and L = T + n - 1 positions were fed (the last new token is never fed back);
    without the batch axis for a 1-D prompt. m, read, threshold, criterion, continuous: as new_cache and feed.
    m = 1 by default: one core slot, so a token reads the last, deepest entry of each earlier token it attends to,
    whether that token exited early or not, from a cache that does not grow with r (tutorial, section 4.3).
    Position p starts from s_0 = state0[:, p] (state0 (B,L,h)) if given, else from draws of rng (default
    np.random.default_rng(0)): one initial_state draw of (B,T,h) for the prompt, then (B,1,h) per new token.
    With m = None (a slot per step), read "latest", threshold None and the same state0, tokens equal those
    of rdmini.forward on tokens[:, :L] and the logits equal its logits up to float rounding."""
    prompt = np.asarray(prompt)
    if prompt.ndim not in (1, 2) or prompt.shape[-1] < 1 or prompt.size < 1:
        raise ValueError(f"prompt must be a non-empty 1-D (T,) or 2-D (B, T) array of token ids, "
                         f"got shape {prompt.shape}")
    tokens = np.atleast_2d(prompt)                                            # (T,) -> (1,T)
    B, T = tokens.shape
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    L = T + max(max_new_tokens - 1, 0)
    if cfg.window is None and L > cfg.max_seq_len:
        raise ValueError(f"a prompt of {T} tokens and {max_new_tokens} new ones need {L} positions, above "
                         f"Config.max_seq_len={cfg.max_seq_len}")
    if state0 is not None and np.shape(state0) != (B, L, cfg.width):
        raise ValueError(f"state0 must have shape (B, L, h) = {(B, L, cfg.width)}, got {np.shape(state0)}")
    # full attention: every position; a window: a ring that takes the prompt in one call, then one token a call
    capacity = L if cfg.window is None else max(T, cfg.window)
    cache = new_cache(cfg, B, r, m, capacity=capacity, rng=rng, read=read)
    s0 = (lambda a, b: None) if state0 is None else (lambda a, b: state0[:, a:b])
    opts = dict(threshold=threshold, criterion=criterion, continuous=continuous)
    logits, steps = feed(params, cfg, cache, tokens, s0(0, T), **opts)
    all_logits, all_steps, out = [logits], [steps], [tokens]
    for p in range(T, T + max_new_tokens):
        out.append(all_logits[-1][:, -1:].argmax(-1))                         # greedy: (B,1)
        if p < L:
            logits, steps = feed(params, cfg, cache, out[-1], s0(p, p + 1), **opts)
            all_logits.append(logits)
            all_steps.append(steps)
    result = np.concatenate(out, axis=1), np.concatenate(all_logits, axis=1), np.concatenate(all_steps, axis=1)
    return tuple(a[0] for a in result) if prompt.ndim == 1 else result
