"""Run directories: config.json, model.safetensors (best weights) and latest.safetensors (resume state).

Nothing here unpickles: weights and trainer tensors are safetensors, everything else is JSON (the
trainer's scalars travel in the safetensors header's metadata, so one file holds one consistent
resume point). Every file is written to a temporary name, flushed to disk and renamed over the old
one, so a kill at any moment leaves either the old file or the new one, never a broken one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.files import atomic_path
from charrnn.models.rnn import CharRNN, ModelConfig

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
LATEST = "latest.safetensors"

def _write_failed(path: Path, e: OSError) -> CharRNNError:
    return CharRNNError(f"cannot write {path}: {e.strerror or e}; the previous file there is unchanged")


def write_json(path: Path, obj: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise _write_failed(path, e) from None


def read_json_lines(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a line cut short by a kill is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def write_json_lines(path: Path, records: list[dict]) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    except OSError as e:
        raise _write_failed(path, e) from None


def append_json_line(path: Path, record: dict) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: {e.strerror or e}") from None


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as e:  # what its writer raises for a full disk or a read-only filesystem
        raise CharRNNError(f"cannot write {path}: {e}; the previous file there is unchanged") from None
    except OSError as e:
        raise _write_failed(path, e) from None


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, with a clear error for a broken one."""
    from safetensors import safe_open

    if not path.is_file():
        raise CharRNNError(f"missing checkpoint file {path}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CharRNNError(f"{path} is not a readable safetensors file (truncated or corrupted?): {e}") from None
    return tensors, metadata


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if Path(run_dir).is_file():
        raise CharRNNError(f"{run_dir} is a file; give the run directory that holds {CONFIG} and {WEIGHTS}")
    if not Path(run_dir).is_dir():
        raise CharRNNError(f"no such run directory: {run_dir}")
    if not path.is_file():
        raise CharRNNError(f"{run_dir} is not a charrnn run directory (no {CONFIG})")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise CharRNNError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("format_version") != FORMAT_VERSION:
        raise CharRNNError(f"{path}: unsupported or missing format_version (this charrnn reads {FORMAT_VERSION})")
    try:
        ModelConfig(**cfg["model"])
        chars = cfg["vocab"]
        if not all(isinstance(c, str) and len(c) == 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("vocab must be a list of distinct single characters")
        if len(chars) != cfg["model"]["vocab_size"]:
            raise ValueError("vocab length differs from model.vocab_size")
    except (KeyError, TypeError, ValueError) as e:
        raise CharRNNError(f"{path} is malformed: {e}") from None
    return cfg


def load_state_into(model: CharRNN, tensors: dict[str, torch.Tensor], path: Path, prefix: str = "") -> None:
    """Copy tensors named `prefix + param` into the model; shapes and names must match exactly."""
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or extra or bad:
        what = (f"missing {missing}" if missing else "") or (f"unexpected {extra}" if extra else "") or (
            f"shape mismatch for {bad[0]}: file {tuple(state[bad[0]].shape)}, config {tuple(expected[bad[0]].shape)}")
        raise CharRNNError(f"{path} does not match config.json: {what}")
    ref = expected[next(iter(expected))]
    model.load_state_dict({k: v.to(dtype=ref.dtype, device=ref.device) for k, v in state.items()})


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[CharRNN, Vocab, dict]:
    """The best weights of a run (or a shipped model), in eval mode, with its vocabulary and config."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    model = CharRNN(ModelConfig(**cfg["model"]))
    tensors, _ = read_tensors(run_dir / WEIGHTS)
    load_state_into(model, tensors, run_dir / WEIGHTS)
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise CharRNNError(f"{run_dir / WEIGHTS}: parameter {name} holds NaN or infinite values")
    return model.to(device).eval(), Vocab(cfg["vocab"]), cfg


def save_weights(run_dir: Path, model: CharRNN, dtype: torch.dtype | None = None, **metadata) -> None:
    tensors = {k: (v.to(dtype) if dtype else v) for k, v in model.state_dict().items()}
    write_tensors(Path(run_dir) / WEIGHTS, tensors, {k: json.dumps(v) for k, v in metadata.items()})


def export_model(run_dir: str | Path, dest: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a run's best weights (in `dtype`, half by default) and config to `dest`: a small model folder
    that sample/complete/eval/the app load like a run, without the resume state."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.resolve() == run_dir.resolve():
        raise CharRNNError("export needs a destination other than the run directory itself")
    model, _, cfg = load_model(run_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharRNNError(f"cannot create {dest}: {e.strerror or e}") from None
    _, meta = read_tensors(run_dir / WEIGHTS)
    save_weights(dest, model, dtype=dtype, **{k: json.loads(v) for k, v in meta.items()})
    cfg["corpus"]["path"] = Path(cfg["corpus"]["path"]).name  # the builder's paths mean nothing elsewhere
    cfg["train"]["corpus"] = cfg["corpus"]["name"] or cfg["corpus"]["path"]
    cfg["weights_dtype"] = str(dtype).removeprefix("torch.")
    cfg["size_bytes"] = (dest / WEIGHTS).stat().st_size
    cfg["parameters"] = sum(p.numel() for p in model.parameters())
    write_json(dest / CONFIG, cfg)
    return dest
