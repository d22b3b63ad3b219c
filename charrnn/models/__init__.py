"""The model kinds. Each kind's module gives `register` one `Kind` record, so that everything which differs
between kinds (loading a run file, training, serving, the command line) reads that record instead of
branching on the kind's name.

Layering: this package sits near the ground floor (run files and checkpoints build networks through it),
while a kind's training arguments and task live in charrnn.training, above it. So the record names those
two as "module:name" references, plain data as packaging's entry points are, and charrnn.training
resolves them (training/config.py): nothing here imports training, and a new kind is still one record.
(A registry of kinds above training would hold the task directly, but then run files and checkpoints,
which sit below training, could not build a network from a kind's name without reaching up to it.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from charrnn.errors import CharRNNError

UNITS = ("char", "token")


@dataclass(frozen=True)
class Kind:
    """Everything charrnn knows about one model kind."""

    name: str  # config.json's "kind": "lm", "seq2seq"
    title: str  # for messages, after "a": "language model"
    commands: str  # the commands that use such a model, for the message that refuses it elsewhere
    config: type  # a dataclass whose fields are config.json's "model" (the network's arguments)
    network: type[nn.Module]  # built as network(config)
    unit: str  # what the model reads and writes one at a time (UNITS): losses are nats per unit
    warm_up: Callable[[nn.Module], None]  # builds the step weights and warms the kernels before a first request
    train_config: str  # "module:name" of its training arguments' dataclass (charrnn.training)
    task: str  # "module:name" of its training task, built as task(train config, Dist) (charrnn.training)
    # What its run file records beyond RunFile's own fields (config.json's "extra"), or None: a dataclass with
    # from_dict(obj) (keys it does not know left out) and check(config) (ValueError unless it fits the network).
    extra: type | None = None

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {self.unit!r}")


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    """Make `kind` known: run files naming it build kind.network(kind.config(**model_args))."""
    KINDS[kind.name] = kind


def lookup(name: str) -> Kind:
    """The record of the kind called `name`; a CharRNNError for a kind this charrnn does not know."""
    _load_kinds()
    if name not in KINDS:
        raise CharRNNError(f"unknown model kind {name!r}; this charrnn knows {', '.join(sorted(KINDS))}")
    return KINDS[name]


def expect(found: str, wanted: str, where: str) -> None:
    """A CharRNNError unless a model of kind `found` (at `where`) is of kind `wanted`."""
    if found != wanted:
        have = lookup(found)
        raise CharRNNError(f"{where} is a {have.title}, not a {lookup(wanted).title}; use {have.commands}")


def build(kind: str, model_args: dict) -> nn.Module:
    """A fresh network of `kind` from a run file's model arguments."""
    found = lookup(kind)
    return found.network(found.config(**model_args))


def _load_kinds() -> None:
    """Import the modules that register the built-in kinds (imported here, not above: they import us)."""
    from charrnn.models import rnn, seq2seq  # noqa: F401
