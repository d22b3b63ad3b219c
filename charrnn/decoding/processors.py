"""Logits processors, and the sampling settings that chain them.

Processors follow the shape of Hugging Face's generation utilities: each takes logits (B, V) and
returns new logits, so temperature, top-k and top-p compose in the order listed. Each checks its own
argument when built, with a message that says what to use instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from charrnn.errors import CharRNNError

LogitsProcessor = Callable[[torch.Tensor], torch.Tensor]


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class Temperature:
    """Divide the logits by t: below 1 sharper, above 1 flatter."""

    def __init__(self, t: float):
        if not (_is_number(t) and t > 0):
            raise CharRNNError(f"temperature must be a finite number > 0; use greedy=True (or --temperature 0) "
                               f"for argmax; got {t}")
        self.t = t

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.t


class TopK:
    """Keep the k most likely characters."""

    def __init__(self, k: int):
        if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            raise CharRNNError(f"top-k must be a whole number >= 1 (leave it out to keep every character); got {k}")
        self.k = k

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, self.k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -math.inf)


class TopP:
    """Keep the smallest set of most likely characters whose probability reaches p (nucleus sampling)."""

    def __init__(self, p: float):
        if not (_is_number(p) and 0 < p <= 1):
            raise CharRNNError(f"top-p must be in (0, 1]; 1 (or leaving it out) keeps every character; got {p}")
        self.p = p

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:  # float rounding would otherwise drop characters of tiny probability
            return logits
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= self.p  # mass before this char already reaches p
        drop[..., 0] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)


@dataclass(frozen=True)
class SamplingSettings:
    """How to choose each next character; checked when made.

    temperature 0 means greedy (argmax), as `--temperature 0` does on the command line.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    seed: int | None = None  # same seed, same text
    stop: tuple[str, ...] = ()  # end a sample after any of these strings (which is kept)
    processors: tuple[LogitsProcessor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        t = self.temperature
        if not (_is_number(t) and t >= 0):
            raise CharRNNError(f"temperature must be a number >= 0 (0 means greedy); got {t}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise CharRNNError(f"the seed must be a whole number; got {self.seed!r}")
        if isinstance(self.stop, str) or not all(isinstance(s, str) for s in self.stop):
            raise CharRNNError("stop must be a list of strings")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
        object.__setattr__(self, "greedy", bool(self.greedy or t == 0))
        chain: list[LogitsProcessor] = []
        if t not in (0, 1):
            chain.append(Temperature(t))
        if self.top_k is not None:
            chain.append(TopK(self.top_k))
        if self.top_p is not None:
            top_p = TopP(self.top_p)
            if top_p.p < 1:
                chain.append(top_p)
        object.__setattr__(self, "processors", tuple(chain))

    def validate(self, vocab_size: int) -> SamplingSettings:
        """Check the settings against a model's vocabulary; returns self."""
        if self.top_k is not None and self.top_k > vocab_size:
            raise CharRNNError(f"top-k must be between 1 and the vocabulary size {vocab_size}; got {self.top_k}")
        return self
