"""What the commands share: argument types, the model-loading flags, loading a language model, a loss as text."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from contextlib import contextmanager

from charrnn import models, threads
from charrnn.checkpoint import load_model
from charrnn.devices import DEVICES, resolve_device
from charrnn.errors import CharRNNError
from charrnn.models.rnn import PRECISIONS, serving_precision
from charrnn.training.adapt import AdaptSettings, adapted
from charrnn.training.config import parse_duration


class BadValue(CharRNNError):
    """A flag's value that the command refuses after parsing (the model or a file shows it to be wrong): one
    line and exit 2, as argparse's own refusals of a value."""


@contextmanager
def bad_values() -> Iterator[None]:
    """Inside, the library's CharRNNError (e.g. SamplingSettings' checks of the flags' values) is a BadValue."""
    try:
        yield
    except BadValue:
        raise
    except CharRNNError as e:
        raise BadValue(str(e)) from None


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}")
    return value


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except CharRNNError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_encoding(p: argparse.ArgumentParser, what: str) -> None:
    """--encoding, for a command that reads a text file."""
    p.add_argument("--encoding", default="utf-8", help=f"the text encoding of {what} (default utf-8)")


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
    p.add_argument("--precision", choices=PRECISIONS,
                   help="the step's weights (sampling, beam, completion): int8 (the default on an x86 CPU: about "
                        "twice fp32's speed, the same held-out loss to 3 decimals), bf16 (a CPU with oneDNN) or fp32 "
                        "(the default elsewhere; exact, and a seed's text is the same on every machine)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_adapt_args(p: argparse.ArgumentParser, what: str) -> None:
    """--adapt (dynamic evaluation, training/adapt.py) and its rate, decay and segment."""
    p.add_argument("--adapt", action="store_true", help=what)
    p.add_argument("--adapt-lr", type=finite_float, default=AdaptSettings.lr,
                   help=f"with --adapt: SGD rate of each step (default {AdaptSettings.lr})")
    p.add_argument("--adapt-decay", type=finite_float, default=AdaptSettings.decay,
                   help=f"with --adapt: pull toward the trained weights each step (default {AdaptSettings.decay})")
    p.add_argument("--adapt-segment", type=positive_int, default=AdaptSettings.segment,
                   help=f"with --adapt: characters per step (default {AdaptSettings.segment})")


def adapt_settings(args: argparse.Namespace) -> AdaptSettings:
    return AdaptSettings(args.adapt_lr, args.adapt_decay, args.adapt_segment)


def adapted_lm(args: argparse.Namespace, model, vocab, prime: str):
    """The model, or with --adapt a copy that learned from the prime (dynamic evaluation)."""
    if not args.adapt:
        return model
    return adapted(model, vocab.encode, vocab.known(prime, args.unknown, "the prime"), adapt_settings(args))


def load_lm(args: argparse.Namespace):
    """(model, vocab, run) of the language model args.model_dir names, on args.device, with the thread policy's
    count (charrnn/threads.py) unless --threads is given, and the step in args.precision."""
    watch = threads.CoreWatch()  # looks at the machine while the model loads
    model, vocab, run = load_model(args.model_dir, resolve_device(args.device))
    models.expect(run.kind, "lm", args.model_dir)
    batched = args.command in ("complete", "eval", "inspect") or getattr(args, "beam", None)
    args.threads = threads.use(threads.Work.BATCH if batched else threads.Work.STEP, args.threads, watch)
    try:
        model.step_precision = getattr(args, "precision", None) or serving_precision(model.device)
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
