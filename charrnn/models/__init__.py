"""The model kinds. Each kind's module registers its config and network class here, so loading a run
file builds whatever kind the file names without its callers knowing the classes."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class ModelKind:
    config: type  # a dataclass whose fields are the run file's model arguments
    network: type[nn.Module]  # built as network(config)


KINDS: dict[str, ModelKind] = {}


def register(kind: str, config: type, network: type[nn.Module]) -> None:
    """Make `kind` loadable: run files naming it build network(config(**model_args))."""
    KINDS[kind] = ModelKind(config, network)


def spec(kind: str) -> ModelKind:
    """The config and network classes of `kind`; a CharRNNError for a kind this charrnn does not know."""
    _load_kinds()
    if kind not in KINDS:
        raise CharRNNError(f"unknown model kind {kind!r}; this charrnn knows {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def build(kind: str, model_args: dict) -> nn.Module:
    """A fresh network of `kind` from a run file's model arguments."""
    found = spec(kind)
    return found.network(found.config(**model_args))


def _load_kinds() -> None:
    """Import the modules that register the built-in kinds (imported here, not above: they import us)."""
    from charrnn.models import rnn, seq2seq  # noqa: F401
