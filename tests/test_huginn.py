"""rdmini against Huginn's own model file, with numpy alone (as llm.c checks itself against PyTorch).

tests/huginn_reference.npz was written by Huginn's recpre/raven_modeling_minimal.py (GitHub
seal-rg/recurrent-pretraining, commit 59e0b69) in float64, by tests/make_huginn_reference.py, whose
docstring says how to run it again. The file holds a tiny random model under Huginn's tensor names, its
tokens, labels and initial state s_0, Huginn's logits at r = 1, 3, 8, and the loss and every gradient
of one training pass with num_steps_no_grad = r - k and num_steps_with_grad = k. Here the weights go
through the map below into rdmini's names, and rdmini must give the same logits, loss and gradients.
docs/huginn.md lists where rdmini differs from Huginn on purpose.
"""
import json
import os

import numpy as np
import pytest

import rdmini

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "huginn_reference.npz")
# Both sides compute in float64; what is left is rounding, ~1e-15 (summation order differs). A wrong
# weight, a wrong layout or a missing term moves the numbers by 1e-3 or more.
TOL = 1e-12

# Huginn's name -> (rdmini's name, how Huginn's array becomes rdmini's). torch's Linear stores its
# weight as (out, in) and computes x @ W.T; rdmini stores (in, out) and computes x @ W.
# One transformer block: Huginn's '<stage>.<i>.' + key below is rdmini's '<stage>.<i>.' + name.
BLOCK_MAP = {
    "norm_1.weight":          ("attn_norm_in", "same"),   # (h,)
    "attn.Wqkv.weight":       ("qkv", "rows3_T"),         # (3h, h) rows [q; k; v] -> (3, h, h), each transposed
    "attn.proj.weight":       ("proj", "T"),              # (h, h) -> (h, h) transposed
    "norm_2.weight":          ("attn_norm_out", "same"),  # (h,)
    "norm_3.weight":          ("mlp_norm_in", "same"),    # (h,)
    "mlp.fc.weight":          ("up", "rows2_T"),          # (2F, h) rows [gate; value] -> (2, h, F), each transposed
    "mlp.proj.weight":        ("down", "T"),              # (h, F) -> (F, h)
    "norm_4.weight":          ("mlp_norm_out", "same"),   # (h,)
}
STAGE_MAP = {"transformer.prelude": "prelude", "transformer.core_block": "core", "transformer.coda": "coda"}
TOP_MAP = {
    "transformer.wte.weight":     ("embed", "same"),       # (V, h); lm_head.weight is the same tensor (tied)
    "transformer.adapter.weight": ("adapter", "T"),        # (h, 2h) -> (2h, h); input [s, e] in both
    "transformer.ln_f.weight":    ("final_norm", "same"),  # (h,); used twice in both, before and after the coda
}


def convert(a, how):
    """Huginn's array -> rdmini's layout. Each is a transpose and a reshape: gradients map the same way."""
    if how == "same":
        return a
    if how == "T":
        return a.T
    if how in ("rows3_T", "rows2_T"):
        n = 3 if how == "rows3_T" else 2
        return a.reshape(n, a.shape[0] // n, a.shape[1]).transpose(0, 2, 1)
    raise ValueError(f"unknown conversion {how!r}")


def name_map(names):
    """{Huginn name: (rdmini name, conversion)} for every tensor name in names."""
    out = {}
    for name in names:
        if name in TOP_MAP:
            out[name] = TOP_MAP[name]
            continue
        parts = name.split(".")                 # e.g. transformer.core_block.1.attn.Wqkv.weight
        stage, i, key = ".".join(parts[:2]), parts[2], ".".join(parts[3:])
        rd_name, how = BLOCK_MAP[key]
        out[name] = (f"{STAGE_MAP[stage]}.{i}.{rd_name}", how)
    return out


def load():
    with np.load(PATH, allow_pickle=False) as z:
        data = {n: z[n] for n in z.files}
    meta = json.loads(str(data.pop("meta")))
    weights = {n[len("weight/"):]: w for n, w in data.items() if n.startswith("weight/")}
    grads = {n[len("grad/"):]: g for n, g in data.items() if n.startswith("grad/")}
    return meta, data, weights, grads


def rdmini_config(hc):
    """rdmini.Config from Huginn's config in the file."""
    assert not hc["qk_bias"] and not hc["bias"] and hc["tie_embeddings"] and hc["injection_type"] == "linear"
    return rdmini.Config(vocab_size=hc["vocab_size"], width=hc["n_embd"], n_heads=hc["n_heads"],
                         mlp_hidden=hc["intermediate_size"], n_prelude=hc["n_layers_in_prelude"],
                         n_core=hc["n_layers_in_recurrent_block"], n_coda=hc["n_layers_in_coda"],
                         max_seq_len=hc["block_size"], window=None, rope_base=hc["rope_base"],
                         norm_eps=hc["norm_eps"], injection="concat", dtype="float64")


def to_rdmini(arrays, mapping):
    return {mapping[n][0]: np.ascontiguousarray(convert(a, mapping[n][1])) for n, a in arrays.items()}


def rel(a, b):
    """Largest difference relative to the largest entry of the reference b."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def ref():
    meta, data, weights, grads = load()
    cfg = rdmini_config(meta["config"])
    mapping = name_map(weights)
    return dict(meta=meta, data=data, cfg=cfg, mapping=mapping, weights=weights, grads=grads,
                params=to_rdmini(weights, mapping))


def test_the_map_covers_both_models_once(ref):
    cfg, mapping = ref["cfg"], ref["mapping"]
    assert ref["meta"]["huginn_commit"].startswith("59e0b69"), "the docstrings name this commit"
    rd_names = [rd for rd, _ in mapping.values()]
    assert len(rd_names) == len(set(rd_names)), "two Huginn tensors map to one rdmini weight"
    assert set(ref["grads"]) == set(ref["weights"])
    shapes = rdmini.param_shapes(cfg)
    assert set(rd_names) == set(shapes), sorted(set(rd_names) ^ set(shapes))
    for name, w in ref["params"].items():
        assert w.shape == shapes[name] and w.dtype == np.float64, name


def test_logits_match_huginn_at_every_r(ref):
    data = ref["data"]
    for r in ref["meta"]["logits_r"]:
        logits, _ = rdmini.forward(ref["params"], ref["cfg"], data["tokens"], r, state0=data["s0"])
        assert rel(logits, data[f"logits/r{r}"]) < TOL, r


def test_loss_and_every_gradient_match_huginn_with_truncated_backprop(ref):
    data, train = ref["data"], ref["meta"]["train"]
    k = train["num_steps_with_grad"]
    r = train["num_steps_no_grad"] + k
    logits, cache = rdmini.forward(ref["params"], ref["cfg"], data["tokens"], r, k, state0=data["s0"])
    # Huginn's loss: mean cross-entropy over every position, labels as given (not shifted)
    loss, dlogits = rdmini.cross_entropy(logits, data["labels"], np.ones(data["labels"].shape, bool))
    assert abs(loss - float(data["train_loss"])) < TOL * abs(float(data["train_loss"]))
    grads = rdmini.backward(cache, dlogits)
    want = to_rdmini(ref["grads"], ref["mapping"])
    for name in want:
        assert rel(grads[name], want[name]) < TOL, name


def test_the_truncation_matters(ref):
    """Backpropagating through all r steps gives other core gradients: the file pins the truncation."""
    data, train = ref["data"], ref["meta"]["train"]
    r = train["num_steps_no_grad"] + train["num_steps_with_grad"]
    logits, cache = rdmini.forward(ref["params"], ref["cfg"], data["tokens"], r, r, state0=data["s0"])
    _, dlogits = rdmini.cross_entropy(logits, data["labels"], np.ones(data["labels"].shape, bool))
    grads = rdmini.backward(cache, dlogits)
    want = to_rdmini(ref["grads"], ref["mapping"])
    assert rel(grads["adapter"], want["adapter"]) > 1e3 * TOL


def swap(mapping, a, b):
    m = dict(mapping)
    m[a], m[b] = mapping[b], mapping[a]
    return m


CORE0 = "transformer.core_block.0."
# Wrong maps a port could plausibly have: each must move the logits far beyond TOL.
MISTAKES = {
    "norm_1 <-> norm_3 in the core": lambda m: swap(m, CORE0 + "norm_1.weight", CORE0 + "norm_3.weight"),
    "final norm <-> the coda's last norm": lambda m: swap(m, "transformer.ln_f.weight",
                                                           "transformer.coda.1.norm_4.weight"),
    "core blocks 0 <-> 1": lambda m: {n: (rd.replace("core.0.", "core.X.").replace("core.1.", "core.0.")
                                          .replace("core.X.", "core.1."), how) for n, (rd, how) in m.items()},
    "adapter reshaped, not transposed": lambda m: {**m, "transformer.adapter.weight": ("adapter", "reshape")},
    "adapter input order [e, s]": lambda m: {**m, "transformer.adapter.weight": ("adapter", "T_halves_swapped")},
    "qkv rows reshaped, not transposed": lambda m: {**m, CORE0 + "attn.Wqkv.weight": ("core.0.qkv", "reshape")},
    "MLP gate <-> value": lambda m: {**m, CORE0 + "mlp.fc.weight": ("core.0.up", "rows2_T_swapped")},
}


def convert_wrong(a, how, shape):
    if how == "reshape":
        return a.reshape(shape)
    if how == "T_halves_swapped":
        h = a.shape[0]
        return np.concatenate([a.T[h:], a.T[:h]])
    if how == "rows2_T_swapped":
        return convert(a, "rows2_T")[::-1]
    return convert(a, how)


@pytest.mark.parametrize("which", list(MISTAKES))
def test_a_wrong_map_fails_the_check(ref, which):
    mapping = MISTAKES[which](ref["mapping"])
    shapes = rdmini.param_shapes(ref["cfg"])
    params = {mapping[n][0]: np.ascontiguousarray(convert_wrong(w, mapping[n][1], shapes[mapping[n][0]]))
              for n, w in ref["weights"].items()}
    data = ref["data"]
    logits, _ = rdmini.forward(params, ref["cfg"], data["tokens"], 3, state0=data["s0"])
    assert rel(logits, data["logits/r3"]) > 1e3 * TOL, which
