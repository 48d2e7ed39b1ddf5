"""Checkpoints: an exact round trip, an atomic write, and a clear refusal of anything that is not a
good rdmini checkpoint, without ever unpickling what is inside the file."""
import json
import os

import numpy as np
import pytest

import rdmini


@pytest.fixture
def saved(tmp_path, make_cfg, make_params):
    """A real checkpoint on disk: (path, params, cfg)."""
    cfg = make_cfg(dtype="float32")
    params = make_params(cfg)
    path = tmp_path / "ckpt.npz"
    rdmini.save_checkpoint(path, params, cfg, step=3)
    return path, params, cfg


# ============================================================================================
# Round trip
# ============================================================================================

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(tmp_path, make_cfg, make_params, dtype):
    cfg = make_cfg(dtype=dtype, injection="add", state_std=0.5, mean_r=3.5)
    params = make_params(cfg)
    gen = np.random.default_rng(123)
    gen.random(5)                                   # a state somewhere in the middle of the stream
    opt = rdmini.adamw_init(params)
    rdmini.adamw_update(params, {n: np.ones_like(w) for n, w in params.items()}, opt, 1e-3)
    state = {
        "step": 1234,                               # an int
        "rng": gen.bit_generator.state,             # nested JSON with 128-bit ints (PCG64's state)
        "losses": np.array([2.5, 1.25, 0.5]),       # an array
        "adam_m": opt["m"],                         # a dict of arrays
        "adam_t": opt["t"],
    }
    assert state["rng"]["state"]["state"] >= 2 ** 64 or state["rng"]["state"]["inc"] >= 2 ** 64
    path = tmp_path / "ckpt.npz"
    rdmini.save_checkpoint(path, params, cfg, **state)
    params2, cfg2, state2 = rdmini.load_checkpoint(path)

    assert cfg2 == cfg
    assert set(params2) == set(params)
    for n, w in params.items():
        assert params2[n].dtype == w.dtype and params2[n].shape == w.shape
        assert params2[n].tobytes() == w.tobytes(), f"{n} is not bitwise identical"
    assert set(state2) == set(state)
    assert state2["step"] == 1234 and type(state2["step"]) is int
    assert state2["adam_t"] == 1
    assert state2["rng"] == state["rng"]
    np.testing.assert_array_equal(state2["losses"], state["losses"])
    assert state2["losses"].dtype == state["losses"].dtype
    assert set(state2["adam_m"]) == set(opt["m"])
    for n, m in opt["m"].items():
        assert state2["adam_m"][n].tobytes() == m.tobytes() and state2["adam_m"][n].dtype == m.dtype
    # the restored generator continues exactly where the saved one was
    restored = np.random.default_rng()
    restored.bit_generator.state = state2["rng"]
    np.testing.assert_array_equal(restored.random(10), gen.random(10))


def test_path_is_used_as_given(tmp_path, make_cfg, make_params):
    # np.savez(path) appends ".npz" to a name without it; save_checkpoint must write the exact path
    cfg = make_cfg()
    params = make_params(cfg)
    path = tmp_path / "model.ckpt"
    rdmini.save_checkpoint(path, params, cfg)
    assert os.listdir(tmp_path) == ["model.ckpt"]
    assert rdmini.load_checkpoint(path)[1] == cfg


# ============================================================================================
# Atomic write
# ============================================================================================

def test_save_leaves_no_temporary_file(saved, tmp_path):
    path, params, cfg = saved
    rdmini.save_checkpoint(path, params, cfg, step=4)          # overwrite an existing checkpoint
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert rdmini.load_checkpoint(path)[2]["step"] == 4


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt], ids=["disk-full", "ctrl-c"])
def test_failed_save_keeps_the_previous_checkpoint(saved, tmp_path, monkeypatch, make_params, error):
    path, params, cfg = saved
    good = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")             # some bytes reach the disk, then it dies
        raise error("simulated failure in the middle of writing")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(error):
        rdmini.save_checkpoint(path, make_params(cfg, seed=1), cfg, step=5)
    assert path.read_bytes() == good, "the previous checkpoint was damaged"
    assert os.listdir(tmp_path) == ["ckpt.npz"], "a temporary file was left behind"
    # and a first save that fails leaves nothing at all
    with pytest.raises(error):
        rdmini.save_checkpoint(tmp_path / "new.npz", params, cfg)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    monkeypatch.undo()
    assert rdmini.load_checkpoint(path)[2]["step"] == 3


# ============================================================================================
# Refusals: every bad file gives a ValueError that says what is wrong
# ============================================================================================

@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_file(saved, fraction):
    path, _, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])           # e.g. a copy interrupted halfway
    with pytest.raises(ValueError, match="corrupt or truncated"):
        rdmini.load_checkpoint(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        rdmini.load_checkpoint(path)


def test_npz_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.arange(10.0))
    with pytest.raises(ValueError, match="not an rdmini checkpoint"):
        rdmini.load_checkpoint(path)


def test_npz_with_a_foreign_meta(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, meta=np.array(json.dumps({"format": "something-else", "config": {}})))
    with pytest.raises(ValueError, match="not an rdmini checkpoint"):
        rdmini.load_checkpoint(path)


def rewrite_config(path, **change):
    """Rewrite the config stored in a checkpoint's meta entry, as an edit or another version would."""
    with np.load(path, allow_pickle=False) as z:
        data = {n: z[n] for n in z.files}
    meta = json.loads(str(data["meta"]))
    meta["config"].update(change)
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path, **data)


@pytest.mark.parametrize("change, message", [
    ({"foo": 1}, "its config has an unknown field 'foo'"),
    ({"n_heads": 3}, r"its config is not valid \(Config.width \(8\) / n_heads \(3\) must be an even integer"),
    ({"injection": "multiply"}, "its config is not valid .*injection must be 'concat' or 'add'"),
    ({"width": None}, "its config is not valid"),
])
def test_a_bad_config_in_a_checkpoint_names_the_field(saved, change, message):
    path = saved[0]
    rewrite_config(path, **change)
    with pytest.raises(ValueError, match=message) as err:
        rdmini.load_checkpoint(path)
    assert str(path) in str(err.value) and "no valid 'meta'" not in str(err.value)


def test_npy_file_is_not_a_checkpoint(tmp_path):
    # np.load returns a bare array for a .npy file, not an archive: that too must be a clear refusal
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(10.0))
    with pytest.raises(ValueError, match="checkpoint"):
        rdmini.load_checkpoint(path)


@pytest.mark.parametrize("saved_with, loaded_as, match", [
    (dict(width=16), dict(width=8), "config says"),                     # every matrix has the wrong shape
    (dict(dtype="float64"), dict(dtype="float32"), "config says"),      # the wrong dtype
    (dict(injection="add"), dict(injection="concat"), "missing or extra"),  # no adapter in the file
    (dict(n_core=3), dict(n_core=2), "missing or extra"),                # a block too many
])
def test_params_that_do_not_fit_the_config(tmp_path, make_cfg, make_params, saved_with, loaded_as, match):
    params = make_params(make_cfg(**saved_with))
    path = tmp_path / "ckpt.npz"
    rdmini.save_checkpoint(path, params, make_cfg(**loaded_as))
    with pytest.raises(ValueError, match=match):
        rdmini.load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        rdmini.load_checkpoint(tmp_path / "nowhere.npz")


class RunsCodeWhenUnpickled:
    """Unpickling this object calls os.mkdir(marker): proof that pickled data in a file was executed."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_object_arrays_are_refused_not_unpickled(tmp_path, make_cfg, make_params):
    # Unpickling runs arbitrary code, so a checkpoint from elsewhere could run anything on load.
    # load_checkpoint must refuse an object array without unpickling it.
    cfg = make_cfg()
    marker = tmp_path / "code-was-run"
    path = tmp_path / "ckpt.npz"
    evil = np.array([RunsCodeWhenUnpickled(marker)], dtype=object)
    rdmini.save_checkpoint(path, make_params(cfg), cfg, extra=evil)        # np.savez pickles it
    with pytest.raises(ValueError, match="checkpoint"):
        rdmini.load_checkpoint(path)
    assert not marker.exists(), "load_checkpoint unpickled data from the file"
