"""Dynamic evaluation: a language model that keeps learning from the text it reads (Krause et al. 2018).

The text is read in segments of `segment` characters with the state carried between them. Each
segment is first scored with the weights as they are, then one SGD step is taken on its loss, and the
weights are pulled back toward the trained ones by `decay`: w <- w - lr * grad + decay * (w0 - w).
On the shipped Shakespeare model over the last 10% of tinyshakespeare this turns 1.408 nats/char into
1.354 at lr 1e-2 (FIELD-NOTES.md); `charrnn eval --adapt` measures it for any language model.

`Adapter` is one writer's private copy of a model (the autocomplete's "learn my text"); `dynamic_eval`
reports the static and the adapted loss of a text.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, detach_state

MAX_LR = 1.0


@dataclass(frozen=True)
class AdaptSettings:
    """How fast a model follows the text: SGD rate, pull back toward the trained weights, segment length."""

    lr: float = 0.1  # on 20,000 held-out Shakespeare characters: 1e-2 gains 0.010 nats/char, 0.1 0.041, 0.3 0.039
    decay: float = 0.0
    segment: int = 64

    def __post_init__(self):
        if not (math.isfinite(self.lr) and 0 <= self.lr <= MAX_LR):
            raise CharRNNError(f"adaptation rate must be between 0 and {MAX_LR}; got {self.lr}")
        if not (math.isfinite(self.decay) and 0 <= self.decay <= 1):
            raise CharRNNError(f"adaptation decay must be between 0 and 1; got {self.decay}")
        if not 2 <= self.segment <= 4096:
            raise CharRNNError(f"adaptation segment must be 2..4096 characters; got {self.segment}")


def _no_cudnn(model: CharRNN):
    # cuDNN's RNN backward runs only in training mode, which would switch dropout on: use the native kernel.
    return torch.backends.cudnn.flags(enabled=False) if model.device.type == "cuda" else contextlib.nullcontext()


def copy_of(model: CharRNN) -> CharRNN:
    """A new module with `model`'s weights and step precision, in eval mode (deepcopy cannot copy the packed
    step weights)."""
    copy = type(model)(model.cfg).to(model.device)
    copy.load_state_dict(model.state_dict())
    copy.step_precision = model.step_precision
    return copy.eval()


class Adapter:
    """A private copy of a language model that learns from one text as it arrives.

    The trained weights are shared with the base model (never written); only the copy changes, so
    nothing one writer types reaches another's model. `lock` serialises learning and decoding on the copy.
    """

    def __init__(self, base: CharRNN, settings: AdaptSettings | None = None):
        self.settings = settings or AdaptSettings()
        self.base = base
        self.model = copy_of(base)
        self.lock = threading.RLock()
        self._origin = [p.detach() for p in base.parameters()]
        self._state = None  # the state carried from the last segment learned
        self.learned = ""  # the text learned from, in order (its last `segment`-aligned end)
        self.steps = 0

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def reset(self) -> None:
        """Forget everything learned: the trained weights again."""
        with self.lock, torch.no_grad():
            for p, p0 in zip(self.model.parameters(), self._origin, strict=True):
                p.copy_(p0)
            self.model._fast = None
            self._state, self.learned, self.steps = None, "", 0

    def step(self, ids: torch.Tensor) -> tuple[float, int]:
        """Score ids (1D, carried state) with the current weights, then take one step on them: (loss sum, chars)."""
        if len(ids) < 2:
            return 0.0, 0
        lr, decay = self.settings.lr, self.settings.decay
        model = self.model
        learning = lr > 0 or decay > 0
        with self.lock, _no_cudnn(model), torch.set_grad_enabled(learning):
            x, y = ids[:-1].view(1, -1).to(model.device), ids[1:].view(1, -1).to(model.device)
            logits, state = model(x, self._state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
            self._state = detach_state(state)
            total = float(loss.detach())
            if learning and math.isfinite(total):
                model.zero_grad(set_to_none=True)
                (loss / y.numel()).backward()
                with torch.no_grad():
                    for p, p0 in zip(model.parameters(), self._origin, strict=True):
                        if p.grad is not None:
                            p.add_(p.grad, alpha=-lr)
                        if decay:
                            p.add_(p0 - p, alpha=decay)
                model.zero_grad(set_to_none=True)
                model._fast = None  # the step weights are rebuilt from the new ones
                self.steps += 1
        return total, y.numel()

    def follow(self, text: str, encode: Callable[[str], np.ndarray], limit: int = 1024) -> int:
        """Learn from the complete new segments of `text` (the whole text typed so far): the steps taken.

        Text that continues what was learned carries on from there; an edit before that point restarts
        the state at the edit (what was learned stays learned). At most `limit` new characters are read.
        """
        seg = self.settings.segment
        with self.lock:
            same = text.startswith(self.learned)
            common = len(self.learned) if same else len(os.path.commonprefix([self.learned, text]))
            if common < len(self.learned):
                self.learned, self._state = text[:common], None
            start = max(len(self.learned), len(text) - limit)
            if start > len(self.learned):
                self._state = None
            taken = 0
            # segments overlap by one character: each predicts the character after the last one
            while len(text) - start >= seg + 1:
                self.step(torch.from_numpy(encode(text[start : start + seg + 1])).long())
                start += seg
                taken += 1
            self.learned = text[:start] if taken else self.learned
            return taken


def dynamic_eval(model: CharRNN, ids: torch.Tensor, settings: AdaptSettings,
                 progress: Callable[[int], None] | None = None) -> tuple[float, float, int]:
    """(static loss, adapted loss, characters predicted) of ids in nats/char, reading them in one stream.

    Both read the same segments with the same carried state; the static one never updates the weights,
    so at lr 0 and decay 0 the two are equal. The model itself is not changed.
    """
    if len(ids) < 2:
        raise CharRNNError("evaluation needs at least 2 characters of text")
    static = Adapter(model, AdaptSettings(0.0, 0.0, settings.segment))
    adapted = Adapter(model, settings)
    totals = [0.0, 0.0]
    n = 0
    for lo in range(0, len(ids) - 1, settings.segment):
        piece = ids[lo : lo + settings.segment + 1]
        s, count = static.step(piece)
        a, _ = adapted.step(piece)
        totals[0] += s
        totals[1] += a
        n += count
        if progress is not None:
            progress(count)
    return totals[0] / n, totals[1] / n, n


def adapted(model: CharRNN, encode: Callable[[str], np.ndarray], text: str, settings: AdaptSettings) -> CharRNN:
    """A copy of the model that has learned from `text` (`sample --adapt`, `complete --adapt`: their prime).

    `encode` is the vocabulary's; a text shorter than one segment teaches nothing.
    """
    adapter = Adapter(model, settings)
    adapter.follow(text, encode, limit=len(text))
    return adapter.model
