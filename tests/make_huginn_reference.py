"""Write tests/huginn_reference.npz with Huginn's own model file, for tests/test_huginn.py.

tests/test_huginn.py checks rdmini against the paper's model file with numpy alone: this script is the
only place that needs torch, and CI never runs it (its name does not start with test_). It builds a tiny
random model with Huginn's own code in float64, then writes its config, weights (under Huginn's names),
tokens, labels, initial state s_0, logits at r = 1, 3, 8, and the loss and every parameter's gradient
of one training pass with truncated backprop. docs/huginn.md says what the test checks and where rdmini
differs from Huginn on purpose.

How to run it (the numbers in tests/huginn_reference.npz were written this way):

  1. Huginn's code: the GitHub repository seal-rg/recurrent-pretraining at commit
     59e0b69b2d96a59cbbe79c9d5034d89ecb5ab6f6. Only two files are used:
     recpre/raven_config_minimal.py and recpre/raven_modeling_minimal.py. Put them in one folder of
     their own, outside this repository (the repository's package __init__ imports lightning, which
     is not needed; never commit Huginn's code here). The script checks their sha256 against that
     commit's and stops if they differ (--any-commit to go on anyway).
  2. A scratch venv, outside this repository:
         python -m venv /tmp/venv-huginn
         /tmp/venv-huginn/bin/pip install torch==2.13.0 'transformers<4.58' numpy
     (a CPU build of torch is enough; the model file's glue code breaks on transformers 5).
     Written with Python 3.11.7, torch 2.13.0+cpu, transformers 4.57.6, numpy 2.4.6.
  3. From the repository's root:
         /tmp/venv-huginn/bin/python tests/make_huginn_reference.py --huginn /path/to/that/folder
     It rewrites tests/huginn_reference.npz; run twice, it writes the same bytes (every seed is fixed,
     torch runs on one thread, and the zip entries carry a fixed date). It also prints how far the
     logits move when Huginn's float32 casts are left in (2e-7 to 1.3e-6: float32 rounding).

The casts it removes. Huginn computes in bfloat16 with float32 islands; four places cast to float32
whatever the model's dtype. In float64 each of them rounds to float32 and caps the agreement with rdmini
at ~1e-7, far above the 1e-12 the test asks. The script patches a copy of the model file's text at run
time (each replaced string must occur exactly as often as expected, or it stops):
  - RMSNorm.forward:                 self._norm(x.float())          -> self._norm(x)
  - apply_rotary_emb_complex_like:   ...unflatten(...).float()      -> ...unflatten(...)   (the RoPE input)
  - precompute_freqs_cis:            arange(..., dtype=torch.float32) twice -> float64, and
                                     torch.outer(t, inv_freqs).float() -> torch.outer(t, inv_freqs)
                                     (the frequency table, built once as a buffer)
  - the logits:                      self.lm_head(x).float()        -> self.lm_head(x)   (every occurrence)
Nothing else changes: the patched file computes what the shipped one does, in float64 throughout.

The model: 2 prelude blocks, a 2-block core, 2 coda blocks, width 16, 4 heads of 4, SwiGLU width 24,
vocabulary 13, 2 sequences of 8 tokens, the whole prefix in view (Huginn's causal attention; rdmini's
window=None), RoPE base 50000 (Huginn's), qk_bias=False (Huginn's learned q/k bias is not built, so
the model has no such parameter; rdmini has none), the concat adapter, tied embeddings. Weights are
random (matrices with std 1/sqrt(fan-in), norm weights around 1, not 1), so that every weight matters.
s_0 is drawn by Huginn's own initialize_state (truncated normal, std sqrt(2/5)) and passed to the model
as input_states, so both models start from the same state. The training pass runs
num_steps_no_grad = r - k = 2 and num_steps_with_grad = k = 3 (r = 5) with labels = the stored targets:
Huginn's loss is the mean cross-entropy over all positions, without shifting the labels.
"""
import argparse
import hashlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HUGINN_COMMIT = "59e0b69b2d96a59cbbe79c9d5034d89ecb5ab6f6"
SHA256 = {  # the two files at HUGINN_COMMIT
    "raven_config_minimal.py": "36a39939e76dc9e8f7563187c6498e012ca7f64a3d86b32ff1daa7f4c41a4278",
    "raven_modeling_minimal.py": "18fcacd53fb5696a76c0d3bda44480f2f3900aa9659c137a08962c593a9a9e42",
}
# (old text, new text, how many times old occurs in the file at HUGINN_COMMIT)
PATCHES = [
    ("return self._norm(x.float()).type_as(x) * self.weight",
     "return self._norm(x).type_as(x) * self.weight", 1),                           # RMSNorm input
    ("qk_r2 = torch.cat([q, k], dim=2).unflatten(dim=-1, sizes=(-1, 2)).float()",
     "qk_r2 = torch.cat([q, k], dim=2).unflatten(dim=-1, sizes=(-1, 2))", 1),      # RoPE input
    ("torch.arange(0, dim, 2, dtype=torch.float32)",
     "torch.arange(0, dim, 2, dtype=torch.float64)", 1),                            # frequency table
    ("t = torch.arange(end, dtype=torch.float32, device=inv_freqs.device)",
     "t = torch.arange(end, dtype=torch.float64, device=inv_freqs.device)", 1),     # frequency table
    ("freqs = torch.outer(t, inv_freqs).float()",
     "freqs = torch.outer(t, inv_freqs)", 1),                                       # frequency table
    ("self.lm_head(x).float()", "self.lm_head(x)", 4),                              # the logits
]

CONFIG = dict(n_embd=16, n_heads=4, n_layers=6, block_size=8, vocab_size=13, padding_multiple=1,
              intermediate_size=24, n_layers_in_prelude=2, n_layers_in_recurrent_block=2, n_layers_in_coda=2,
              qk_bias=False, bias=False, tie_embeddings=True, injection_type="linear", rope_base=50000.0,
              norm_eps=1e-6, mean_recurrence=8, mean_backprop_depth=3)
BATCH, SEQ = 2, 8
LOGITS_R = [1, 3, 8]
TRAIN_R, TRAIN_K = 5, 3
SEED = 29

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_package(huginn_dir, folder, name, patched):
    """A package `name` in folder holding the two files (the modeling file patched or as shipped)."""
    pkg = os.path.join(folder, name)
    os.makedirs(pkg)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    for fname in SHA256:
        with open(os.path.join(huginn_dir, fname)) as f:
            text = f.read()
        if patched and fname == "raven_modeling_minimal.py":
            for old, new, count in PATCHES:
                if text.count(old) != count:
                    sys.exit(f"expected {count} x {old!r} in {fname}, found {text.count(old)}: another commit?")
                text = text.replace(old, new)
        with open(os.path.join(pkg, fname), "w") as f:
            f.write(text)
    sys.path.insert(0, folder)
    return importlib.import_module(f"{name}.raven_modeling_minimal")


def build_model(mod, torch, weights):
    """Huginn's RavenForCausalLM in float64 with the given weights (Huginn's names -> arrays)."""
    cfg = mod.RavenConfig(**CONFIG)
    model = mod.RavenForCausalLM(cfg).to(torch.float64)
    params = dict(model.named_parameters())
    if set(params) != set(weights):
        sys.exit(f"parameter names differ: {sorted(set(params) ^ set(weights))}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(torch.from_numpy(weights[name]))
    return model


def random_weights(names_shapes, rng):
    weights = {}
    for name, shape in names_shapes:
        if "norm" in name or "ln_f" in name:
            w = 1.0 + 0.3 * rng.standard_normal(shape)         # random, so a swapped norm shows
        else:
            w = rng.standard_normal(shape) / np.sqrt(shape[-1])  # Linear (out, in) and Embedding (V, h)
        weights[name] = w
    return weights


def logits_at(model, torch, tokens, s0, rs):
    with torch.no_grad():
        return {r: model(tokens, input_states=s0, num_steps=(torch.tensor(r), torch.tensor(0))).logits.numpy()
                for r in rs}


def write_npz(path, arrays):
    """np.savez with a fixed date on every entry, so that the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, a in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asarray(a), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, npy.getvalue())
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def shipped_check(huginn_dir, path):
    """Run in a child process (the model file registers itself with transformers once per process):
    the same weights, tokens and s_0 through the model file as shipped; print how far its logits are."""
    import torch
    torch.set_num_threads(1)
    data = np.load(path, allow_pickle=False)
    weights = {n[len("weight/"):]: data[n] for n in data.files if n.startswith("weight/")}
    with tempfile.TemporaryDirectory() as tmp:
        mod = make_package(huginn_dir, tmp, "huginn_shipped", patched=False)
        model = build_model(mod, torch, weights)
        got = logits_at(model, torch, torch.from_numpy(data["tokens"]), torch.from_numpy(data["s0"]), LOGITS_R)
    for r in LOGITS_R:
        want = data[f"logits/r{r}"]
        print(f"  casts left in, r = {r}: logits differ by {np.abs(got[r] - want).max() / np.abs(want).max():.2g} "
              "(relative to the largest)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--huginn", required=True, help="folder holding raven_config_minimal.py and "
                    "raven_modeling_minimal.py from seal-rg/recurrent-pretraining (recpre/)")
    ap.add_argument("--out", default=os.path.join(HERE, "huginn_reference.npz"))
    ap.add_argument("--any-commit", action="store_true", help="go on if the files are not those of "
                    f"commit {HUGINN_COMMIT[:7]}")
    ap.add_argument("--shipped-check", action="store_true", help=argparse.SUPPRESS)   # the child process
    args = ap.parse_args()
    huginn = os.path.abspath(args.huginn)
    for fname, digest in SHA256.items():
        path = os.path.join(huginn, fname)
        if not os.path.exists(path):
            sys.exit(f"{path} not found: --huginn must be a folder holding {' and '.join(SHA256)}")
        if sha256(path) != digest and not args.any_commit:
            sys.exit(f"{path} is not the file of commit {HUGINN_COMMIT}; check out that commit "
                     "(or pass --any-commit and say which one you used)")
    if args.shipped_check:
        return shipped_check(huginn, args.out)

    try:
        import torch
        import transformers
    except ImportError as err:
        sys.exit(f"{err}: this script needs torch and transformers<4.58, in a scratch venv outside the "
                 "repository (see its docstring); rdmini and its tests need neither")
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        mod = make_package(huginn, tmp, "huginn_f64", patched=True)
        names_shapes = [(n, tuple(p.shape)) for n, p in mod.RavenForCausalLM(mod.RavenConfig(**CONFIG))
                        .named_parameters()]
        rng = np.random.default_rng(SEED)
        weights = random_weights(names_shapes, rng)
        model = build_model(mod, torch, weights)
        assert model.lm_head.weight is model.transformer.wte.weight, "embeddings must be tied"
        assert all(t.dtype == torch.float64 for t in [*model.parameters(), *model.buffers()])
        tokens = rng.integers(0, CONFIG["vocab_size"], size=(BATCH, SEQ))
        labels = rng.integers(0, CONFIG["vocab_size"], size=(BATCH, SEQ))
        # s_0 as Huginn draws it: initialize_state on a tensor of e's shape (it reads only the shape)
        s0 = model.initialize_state(torch.zeros(BATCH, SEQ, CONFIG["n_embd"])).detach()
        t_tokens = torch.from_numpy(tokens)
        logits = logits_at(model, torch, t_tokens, s0, LOGITS_R)

        model.train()
        model.zero_grad()
        out = model(t_tokens, input_states=s0, labels=torch.from_numpy(labels),
                    num_steps=(torch.tensor(TRAIN_R - TRAIN_K), torch.tensor(TRAIN_K)))
        out.loss.backward()
        grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
        assert all(np.abs(g).max() > 0 for g in grads.values()), "every parameter must get a gradient"

    meta = {"huginn_commit": HUGINN_COMMIT, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "config": CONFIG, "logits_r": LOGITS_R,
            "train": {"num_steps_no_grad": TRAIN_R - TRAIN_K, "num_steps_with_grad": TRAIN_K},
            "casts_removed": [old for old, _, _ in PATCHES]}
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "tokens": tokens, "labels": labels,
              "s0": s0.numpy()}
    arrays.update({f"logits/r{r}": logits[r] for r in LOGITS_R})
    arrays["train_loss"] = np.array(out.loss.item())
    arrays.update({f"weight/{n}": w for n, w in weights.items()})
    arrays.update({f"grad/{n}": g for n, g in grads.items()})
    write_npz(args.out, arrays)
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, sha256 {sha256(args.out)}")
    print(f"  loss {out.loss.item():.17g}; logits at r = {LOGITS_R}; {len(grads)} gradients")
    subprocess.run([sys.executable, __file__, "--huginn", huginn, "--out", args.out, "--shipped-check"]
                   + (["--any-commit"] if args.any_commit else []), check=True)


if __name__ == "__main__":
    main()
