"""What decoding needs from a model: sampling, beam search and autocomplete depend on this, not on a class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

State = Any  # whatever the model keeps between steps; only the model itself looks inside


class Stepper(Protocol):
    """What beam and greedy search need: any model kind that advances one token at a time."""

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one token: ids (B,) -> logits (B, V). Eval mode, under inference_mode."""

    def reorder(self, state: State, index: torch.Tensor) -> State:
        """Rows `index` of a state (beam search keeps, drops and copies beams this way)."""


class Decodable(Stepper, Protocol):
    """A language model: it also starts from nothing and reads a prompt."""

    device: torch.device  # where the model's tensors live: decoding builds its inputs there

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """A start state of `batch` rows."""

    def read(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read ids (B, T) through the fused path: logits (B, V) after the last id, and the new state."""

    def concat(self, states: Sequence[State]) -> State:
        """The rows of several states, one after another (serve.batcher steps many requests at once)."""


class Scorer(Decodable, Protocol):
    """A language model that also scores a given text: every position's logits from one fused call."""

    def __call__(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read ids (B, T): the logits (B, T, V) after each id, and the new state."""
