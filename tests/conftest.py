"""Shared helpers for the rdmini tests.

The repo root goes on sys.path so `import rdmini` works however pytest is started
(python -m pytest from the root adds it already; plain `pytest` or running from tests/ may not).
"""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import rdmini  # noqa: E402  (needs the path above)

# A model small enough that finite differences over it take milliseconds, but with every part present:
# two heads, a prelude, a two-block core (so the core's own weights are used twice per iteration's
# stack) and a coda. float64 so that central differences are accurate to ~1e-9. It attends over the whole
# prefix, as Huginn does; tests of the window (the trained model's default) ask for one.
TINY = dict(vocab_size=7, width=8, n_heads=2, mlp_hidden=12, n_prelude=1, n_core=2, n_coda=1,
            max_seq_len=8, window=None, dtype="float64")


@pytest.fixture
def make_cfg():
    """make_cfg(**overrides) -> a tiny Config; e.g. make_cfg(injection="add", dtype="float32")."""
    def make(**overrides):
        return rdmini.Config(**{**TINY, **overrides})
    return make


@pytest.fixture
def batch():
    """batch(cfg, B=2, T=5, seed=0) -> tokens, targets, mask. The mask has some True and some False."""
    def make(cfg, B=2, T=5, seed=0):
        rng = np.random.default_rng(seed)
        tokens = rng.integers(0, cfg.vocab_size, size=(B, T))
        targets = rng.integers(0, cfg.vocab_size, size=(B, T))
        mask = rng.random((B, T)) < 0.6
        mask[0, -1], mask[-1, 0] = True, False          # at least one position in, one out
        return tokens, targets, mask
    return make


@pytest.fixture
def make_params():
    """make_params(cfg, seed=0) -> init_params, with the norm weights moved away from exactly 1.

    At init every norm weight is 1; a gradient check at that single symmetric point could miss a
    backward that, say, forgets to multiply by w. Random weights around 1 avoid that blind spot."""
    def make(cfg, seed=0):
        params = rdmini.init_params(cfg, seed)
        rng = np.random.default_rng(seed + 1000)
        for name, w in params.items():
            if "norm" in name:
                w += (0.2 * rng.standard_normal(w.shape)).astype(w.dtype)
        return params
    return make


@pytest.fixture
def make_state0():
    """make_state0(cfg, tokens, seed=0) -> a fixed s_0 (B, T, h), so that runs can be compared exactly."""
    def make(cfg, tokens, seed=0):
        B, T = np.shape(tokens)
        return rdmini.initial_state(cfg, (B, T, cfg.width), np.random.default_rng(seed))
    return make
