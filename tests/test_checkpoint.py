import errno
import json
import os
import pickle
import shutil
import threading
import time

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError
from charrnn.files import write_json
from charrnn.runfile import CONFIG


@pytest.fixture
def run(tmp_path, tiny_run):
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_loads_a_trained_run(run):
    model, vocab, run_file = ckpt.load_model(run)
    assert not model.training
    assert len(vocab) == run_file.model["vocab_size"] == model.head.out_features
    assert run_file.kind == "lm" and run_file.best_val_loss < 4.0


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), ckpt.atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_a_reader_never_sees_two_checkpoints_at_once(tmp_path):
    """Checkpoints renamed over each other while a reader loads: each read is one whole file, metadata included.

    Two versions differ in header length (8 bytes of padding), as successive latest.safetensors do; reading
    by name (safetensors maps the path twice) failed here ~1 read in 1,000 with 'smaller than the required
    mapping size'."""
    path = tmp_path / ckpt.LATEST
    versions = [({"w": torch.full((50_000,), float(i))}, {"trainer": str(i) * (1 + 9 * i)}) for i in range(2)]
    ckpt.write_tensors(path, *versions[0])
    done = threading.Event()

    def writer():
        i = 0
        while not done.is_set():
            i += 1
            ckpt.write_tensors(path, *versions[i % 2])

    thread = threading.Thread(target=writer)
    thread.start()
    reads, deadline = 0, time.time() + 3
    try:
        while time.time() < deadline:
            tensors, metadata = ckpt.read_tensors(path)
            i = int(metadata["trainer"][0])
            assert metadata == versions[i][1] and torch.equal(tensors["w"], versions[i][0]["w"])
            reads += 1
    finally:
        done.set()
        thread.join()
    assert reads > 1000


def test_disk_full_while_saving_keeps_the_previous_weights(run, monkeypatch):
    model, _, _ = ckpt.load_model(run)
    before = (run / ckpt.WEIGHTS).read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full)
    with torch.no_grad():
        model.head.bias += 1
    with pytest.raises(CharRNNError, match="No space left on device.*unchanged"):
        ckpt.save_weights(run, model)
    assert (run / ckpt.WEIGHTS).read_bytes() == before
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []


def test_half_precision_weights_load_as_float32(run):
    model, vocab, _ = ckpt.load_model(run)
    ckpt.save_weights(run, model, dtype=torch.float16)
    half, _, _ = ckpt.load_model(run)
    assert half.head.weight.dtype == torch.float32
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(half(x)[0], model(x)[0], atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / ckpt.WEIGHTS).write_bytes((run / ckpt.WEIGHTS).read_bytes()[:1000]), "truncated or corrupted"),
    (lambda run: (run / ckpt.WEIGHTS).write_bytes(b"\x00" * 64), "truncated or corrupted"),
    (lambda run: (run / ckpt.WEIGHTS).unlink(), "missing checkpoint file"),
    (lambda run: (run / CONFIG).write_text("{not json"), "not valid JSON"),
    (lambda run: (run / CONFIG).unlink(), "not a charrnn run directory"),
    (lambda run: edit_config(run, format_version=99), "format_version"),
    (lambda run: edit_config(run, vocab=["a", "a"]), "malformed"),
    (lambda run: edit_config(run, model={"vocab_size": 3}), "malformed"),
    (lambda run: edit_config(run, model_hidden=64), "does not match config.json: shape mismatch"),
])
def test_broken_checkpoints_get_clear_errors(run, damage, message):
    damage(run)
    with pytest.raises(CharRNNError, match=message):
        ckpt.load_model(run)


def edit_config(run, model_hidden=None, **changes):
    cfg = json.loads((run / CONFIG).read_text())
    cfg.update(changes)
    if model_hidden:
        cfg["model"]["hidden"] = model_hidden
    (run / CONFIG).write_text(json.dumps(cfg))


def test_nan_weights_are_refused(run):
    model, _, _ = ckpt.load_model(run)
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    ckpt.save_weights(run, model)
    with pytest.raises(CharRNNError, match="NaN"):
        ckpt.load_model(run)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_never_runs(run, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"head.weight": _Payload(str(marker))})
    (run / ckpt.WEIGHTS).write_bytes(payload)
    with pytest.raises(CharRNNError):
        ckpt.load_model(run)
    (run / ckpt.LATEST).write_bytes(payload)
    with pytest.raises(CharRNNError):
        ckpt.read_tensors(run / ckpt.LATEST)
    assert not marker.exists()


def test_export_makes_a_small_half_precision_model_folder(run, tmp_path):
    dest = ckpt.export_model(run, tmp_path / "shipped")
    assert sorted(p.name for p in dest.iterdir()) == [CONFIG, ckpt.WEIGHTS]
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in dest.iterdir())  # not mkstemp's 0600
    tensors, meta = ckpt.read_tensors(dest / ckpt.WEIGHTS)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    cfg = json.loads((dest / CONFIG).read_text())
    assert cfg["weights_dtype"] == "float16" and cfg["size_bytes"] == (dest / ckpt.WEIGHTS).stat().st_size
    assert cfg["parameters"] == sum(t.numel() for t in tensors.values())
    assert json.loads(meta["val_loss"]) == pytest.approx(cfg["best_val_loss"])
    assert "/" not in cfg["corpus"]["path"]  # no paths of the machine it was built on
    model, _, _ = ckpt.load_model(dest)
    assert model.head.weight.dtype == torch.float32
    with pytest.raises(CharRNNError, match="other than the run directory"):
        ckpt.export_model(run, run)
    before = (dest / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(CharRNNError, match="already holds a model; give --force"):
        ckpt.export_model(run, dest, torch.float32)
    assert (dest / ckpt.WEIGHTS).read_bytes() == before  # nothing already saved is lost
    ckpt.export_model(run, dest, torch.float32, replace_model=True)
    assert json.loads((dest / CONFIG).read_text())["weights_dtype"] == "float32"
