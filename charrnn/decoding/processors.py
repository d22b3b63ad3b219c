"""Logits processors, and the sampling settings that chain them.

Processors follow the shape of Hugging Face's generation utilities: `processor(ids, logits) -> logits`,
where `ids` (B, T) are the tokens this decoding call has produced so far for each row (T is 0 at the
first step; a processor that needs the prompt takes it when built) and `logits` is (B, V). They
compose in the order listed. Each checks its own argument when built, with a message that says what
to use instead. A processor that never looks at `ids` says so with `uses_ids = False`: when no
processor of a call looks, the loop keeps no history and hands them an empty tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from charrnn.errors import CharRNNError

DEFAULT_TEMPERATURE = 0.8  # what `charrnn sample` and the app's Generate tab draw with unless told otherwise
LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class Temperature:
    """Divide the logits by t: below 1 sharper, above 1 flatter."""

    uses_ids = False

    def __init__(self, t: float):
        if not (_is_number(t) and t > 0):
            raise CharRNNError(f"temperature must be a finite number > 0; use greedy=True (or --temperature 0) "
                               f"for argmax; got {t}")
        self.t = t

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.t


class TopK:
    """Keep the k most likely characters."""

    uses_ids = False

    def __init__(self, k: int):
        if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
            raise CharRNNError(f"top-k must be a whole number >= 1 (leave it out to keep every character); got {k}")
        self.k = k

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, self.k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -math.inf)


class TopP:
    """Keep the smallest set of most likely characters whose probability reaches p (nucleus sampling)."""

    uses_ids = False

    def __init__(self, p: float):
        if not (_is_number(p) and 0 < p <= 1):
            raise CharRNNError(f"top-p must be in (0, 1]; 1 (or leaving it out) keeps every character; got {p}")
        self.p = p

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:  # float rounding would otherwise drop characters of tiny probability
            return logits
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= self.p  # mass before this char already reaches p
        drop[..., 0] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)


class RepetitionPenalty:
    """Make every character already generated in the row less likely (CTRL's penalty, as Hugging Face has it):
    its logit is divided by `penalty` when positive and multiplied by it when negative; 1 changes nothing."""

    def __init__(self, penalty: float):
        if not (_is_number(penalty) and penalty > 0):
            raise CharRNNError(f"the repetition penalty must be a finite number > 0 (1 means none, above 1 "
                               f"discourages repeats); got {penalty}")
        self.penalty = penalty

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.shape[-1] == 0:
            return logits
        seen = logits.gather(-1, ids)
        return logits.scatter(-1, ids, torch.where(seen > 0, seen / self.penalty, seen * self.penalty))


class NoRepeat:
    """Forbid the character that would make a row write a run of `n` characters it has already written (Hugging
    Face's no_repeat_ngram_size, for characters; the prompt is not looked at): greedy or cold text that loops
    leaves the loop within n - 1 characters of a repeat. A row where that would forbid everything keeps all."""

    def __init__(self, n: int):
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 2):
            raise CharRNNError(f"no-repeat length must be a whole number of characters >= 2 (0 or leaving it out "
                               f"allows repeats); got {n}")
        self.n = n

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        n, t = self.n, ids.shape[-1]
        if t < n:  # no run of n characters written yet
            return logits
        # Each earlier run of n - 1 characters (starting at 0 .. t - n) that equals the last n - 1: the character
        # that followed it is forbidden now. Only the runs that end in the same character are compared whole, so a
        # step costs about t comparisons, not t * n.
        earlier, last = ids.unfold(-1, n - 1, 1)[:, : t - n + 1], ids[:, t - n + 1 :]
        rows, starts = (earlier[..., -1] == last[:, -1:]).nonzero(as_tuple=True)
        same = (earlier[rows, starts] == last[rows]).all(-1)
        rows, starts = rows[same], starts[same]
        forbid = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        forbid[rows, ids[rows, starts + n - 1]] = True
        forbid &= ~forbid.all(-1, keepdim=True)
        return logits.masked_fill(forbid, -math.inf)


class ForbidFirst:
    """The first token of every row may not be one of `tokens` (folk's title never begins with a bar line)."""

    def __init__(self, tokens: Sequence[int]):
        if not all(isinstance(t, int) and t >= 0 for t in tokens):
            raise CharRNNError(f"tokens to forbid must be ids >= 0; got {list(tokens)}")
        self.tokens = list(tokens)

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.shape[-1] or not self.tokens:
            return logits
        return logits.index_fill(-1, torch.tensor(self.tokens, device=logits.device), -math.inf)


def uses_ids(processors: Sequence[LogitsProcessor]) -> bool:
    """Whether any of the processors looks at the ids so far (one that does not say otherwise might)."""
    return any(getattr(p, "uses_ids", True) for p in processors)


@dataclass(frozen=True)
class SamplingSettings:
    """How to choose each next character; checked when made.

    temperature 0 means greedy (argmax), as `--temperature 0` does on the command line; temperature,
    top-k and top-p then change nothing (they never move the most likely character) and are left out.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    greedy: bool = False
    seed: int | None = None  # same seed, same text
    stop: tuple[str, ...] = ()  # end a sample after any of these strings (which is kept)
    repetition_penalty: float = 1.0  # above 1, characters already generated are less likely
    no_repeat: int = 0  # n >= 2: no run of n characters is written twice in a row's text (0: off)
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
        penalty = RepetitionPenalty(self.repetition_penalty)
        chain: list[LogitsProcessor] = [penalty] if penalty.penalty != 1 else []
        if self.no_repeat != 0:
            chain.insert(0, NoRepeat(self.no_repeat))
        warpers: list[LogitsProcessor] = []  # built (so checked) even when greedy leaves them out
        if t not in (0, 1):
            warpers.append(Temperature(t))
        if self.top_k is not None:
            warpers.append(TopK(self.top_k))
        if self.top_p is not None:
            top_p = TopP(self.top_p)
            if top_p.p < 1:
                warpers.append(top_p)
        object.__setattr__(self, "processors", tuple(chain if self.greedy else chain + warpers))

    def validate(self, vocab_size: int) -> SamplingSettings:
        """Check the settings against a model's vocabulary; returns self."""
        if self.top_k is not None and self.top_k > vocab_size:
            raise CharRNNError(f"top-k must be between 1 and the vocabulary size {vocab_size}; got {self.top_k}")
        return self
