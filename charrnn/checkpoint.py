"""Run directories: config.json, model.safetensors (best weights) and latest.safetensors (resume state).

Nothing here unpickles: weights and trainer tensors are safetensors, everything else is JSON (the
trainer's scalars travel in the safetensors header's metadata, so one file holds one consistent
resume point). Every file is written to a temporary name, flushed to disk and renamed over the old
one, so a kill at any moment leaves either the old file or the new one, never a broken one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from charrnn import models
from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.files import atomic_path, write_failed
from charrnn.runfile import CONFIG, WEIGHTS, RunFile

LATEST = "latest.safetensors"

# The trainer state in latest.safetensors: tensors named by these prefixes and names, and the trainer's
# scalars (step, elapsed, best val loss, optimizer groups) as JSON under the TRAINER metadata key.
MODEL_PREFIX = "model."  # + parameter name: the weights
OPTIM_PREFIX = "optim."  # + "<param id>.<key>": the optimizer's tensors
HIDDEN = ("hidden.h", "hidden.c")  # the carried hidden state (c only for an LSTM), every stream
TRAINER = "trainer"


def rng_name(device: str, rank: int) -> str:
    """The tensor holding one process's RNG state: device "cpu" or "cuda"."""
    return f"rng.{device}.{rank}"


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
        raise write_failed(path, e) from None


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
        raise write_failed(path, e) from None


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file, with a clear error for a broken one."""
    if not path.is_file():
        raise CharRNNError(f"missing checkpoint file {path}")
    try:
        # One open, one read: loading by name (safetensors maps the file by its path more than once) can
        # meet a checkpoint renamed over it in between and pair one file's header with the other's size.
        with open(path, "rb") as f:
            data = f.read()
        tensors = load(data)
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        metadata = header.get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CharRNNError(f"{path} is not a readable safetensors file (truncated or corrupted?): {e}") from None
    return tensors, metadata


def read_config(run_dir: str | Path) -> RunFile:
    """The run file of a run directory (see charrnn.runfile)."""
    return RunFile.read(run_dir)


def load_state_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path, prefix: str = "") -> None:
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


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Vocab, RunFile]:
    """The best weights of a run (or a shipped model), in eval mode, with its vocabulary and run file.

    The network's class is the one registered for the run file's kind (charrnn.models)."""
    run_dir = Path(run_dir)
    run = read_config(run_dir)
    model = models.build(run.kind, run.model)
    tensors, _ = read_tensors(run_dir / WEIGHTS)
    load_state_into(model, tensors, run_dir / WEIGHTS)
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise CharRNNError(f"{run_dir / WEIGHTS}: parameter {name} holds NaN or infinite values")
    return model.to(device).eval(), Vocab(run.vocab), run


def save_weights(run_dir: Path, model: torch.nn.Module, dtype: torch.dtype | None = None, **metadata) -> None:
    tensors = {k: (v.to(dtype) if dtype else v) for k, v in model.state_dict().items()}
    write_tensors(Path(run_dir) / WEIGHTS, tensors, {k: json.dumps(v) for k, v in metadata.items()})


def export_model(run_dir: str | Path, dest: str | Path, dtype: torch.dtype = torch.float16,
                 replace_model: bool = False) -> Path:
    """Copy a run's best weights (in `dtype`, half by default) and config to `dest`: a small model folder
    that sample/complete/eval/the app load like a run, without the resume state. A model already in
    `dest` is replaced only with `replace_model`."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.resolve() == run_dir.resolve():
        raise CharRNNError("export needs a destination other than the run directory itself")
    if not replace_model and any((dest / name).exists() for name in (CONFIG, WEIGHTS)):
        raise CharRNNError(f"{dest} already holds a model; give --force to replace it")
    model, _, run = load_model(run_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharRNNError(f"cannot create {dest}: {e.strerror or e}") from None
    _, meta = read_tensors(run_dir / WEIGHTS)
    save_weights(dest, model, dtype=dtype, **{k: json.loads(v) for k, v in meta.items()})
    # The builder's paths mean nothing elsewhere: keep the corpus file's name only.
    corpus = run.corpus and replace(run.corpus, path=Path(run.corpus.path).name)
    train = {**run.train, "corpus": corpus.label} if corpus else run.train
    replace(run, corpus=corpus, train=train, weights_dtype=str(dtype).removeprefix("torch."),
            size_bytes=(dest / WEIGHTS).stat().st_size,
            parameters=sum(p.numel() for p in model.parameters())).write(dest)
    return dest
