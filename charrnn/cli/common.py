"""What the commands share: argument types, the model-loading flags, loading a language model, a loss as text."""

from __future__ import annotations

import argparse
import math

import torch

from charrnn.checkpoint import load_model
from charrnn.devices import DEVICES, resolve_device
from charrnn.errors import CharRNNError
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
                        "thread; every core for beam search, completion, eval and inspect, which work on several rows)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def load_lm(args: argparse.Namespace):
    """(model, vocab, run) of the language model args.model_dir names, on args.device with args.threads."""
    if args.threads is None:
        batched = args.command in ("complete", "eval", "inspect") or getattr(args, "beam", None)
        args.threads = torch.get_num_threads() if batched else 1
    torch.set_num_threads(args.threads)
    model, vocab, run = load_model(args.model_dir, resolve_device(args.device))
    if run.kind != "lm":
        raise CharRNNError(f"{args.model_dir} is a {run.kind} model, not a language model; use charrnn {run.kind} "
                           "translate or eval")
    return model, vocab, run


def loss_text(loss: float | None, unit: str = "char") -> str:
    """A val loss as the CLI prints it: nats and bits per character (or token), 4 decimals."""
    if loss is None or not math.isfinite(loss):
        return "no evaluation yet"
    return f"best val loss {loss:.4f} nats/{unit} ({loss / math.log(2):.4f} bits/{unit})"
