"""What the commands share: argument types, the model-loading flags, loading a language model, a loss as text."""

from __future__ import annotations

import argparse
import math

from charrnn import models, threads
from charrnn.checkpoint import load_model
from charrnn.devices import DEVICES, resolve_device
from charrnn.errors import CharRNNError
from charrnn.models.rnn import PRECISIONS
from charrnn.training.config import parse_duration


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except CharRNNError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_inference_args(p: argparse.ArgumentParser, device: str = "cpu") -> None:
    """The model folder, --unknown, --device, --threads and --json of the commands that load a language model."""
    p.add_argument("model_dir", help="a run directory or a shipped model folder (config.json + model.safetensors)")
    p.add_argument("--unknown", choices=["error", "skip"], default="error",
                   help="what to do with characters the model does not know")
    p.add_argument("--device", choices=DEVICES, default=device, help=f"default {device}")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: 1 to sample, where one character at a time is fastest on one "
                        "thread; for beam search, completion, eval and inspect, which work on several rows, the "
                        "cores no other process is using)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the step's weights (sampling, beam, completion): fp32 (default, exact) or bf16 (a CPU with "
                        "oneDNN; faster where it has AVX512-BF16, the same held-out loss to 4 decimals, other samples "
                        "for a seed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def load_lm(args: argparse.Namespace):
    """(model, vocab, run) of the language model args.model_dir names, on args.device, with the thread policy's
    count (charrnn/threads.py) unless --threads is given, and the step in args.precision."""
    watch = threads.CoreWatch()  # looks at the machine while the model loads
    model, vocab, run = load_model(args.model_dir, resolve_device(args.device))
    models.expect(run.kind, "lm", args.model_dir)
    batched = args.command in ("complete", "eval", "inspect") or getattr(args, "beam", None)
    args.threads = threads.use(threads.Work.BATCH if batched else threads.Work.STEP, args.threads, watch)
    try:
        model.step_precision = getattr(args, "precision", "fp32")
    except ValueError as e:
        raise CharRNNError(str(e)) from None
    return model, vocab, run


def loss_text(loss: float | None, unit: str = "char", train_loss: float | None = None) -> str:
    """A val loss as the CLI prints it: nats and bits per character (or token), 4 decimals (a run without
    a val split: its best train loss, called that)."""
    if train_loss is not None:
        return f"no val split; best train loss {train_loss:.4f} nats/{unit}"
    if loss is None or not math.isfinite(loss):
        return "no evaluation yet"
    return f"best val loss {loss:.4f} nats/{unit} ({loss / math.log(2):.4f} bits/{unit})"
