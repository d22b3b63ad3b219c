"""Beam and greedy search over tokens, for many inputs at once: strategies of charrnn.decoding.loop.

Every live beam of every input advances in one batched `model.step` per token, so a thousand sources
cost about as many steps as one. Each step ranks the 2 x width best extensions of an input's beams;
one among the first `width` that the stop rule ends (it ends with <EOS>, say, or reaches the input's
length limit) finishes, and the best `width` others live on (as in fairseq, so width 1 is greedy search).
Finished ones are ranked by logprob / length**length_penalty, the length counting every token
including the one that stopped it. An input stops searching as soon as no live beam can still beat
its `num`-th finished one, which is exact for any length penalty >= 0: log-probabilities only fall
as a hypothesis grows, so the best a live one can reach is its logprob now over its longest allowed length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from charrnn.decoding.interface import State, Stepper
from charrnn.decoding.loop import Rows, Strategy, decode
from charrnn.decoding.processors import LogitsProcessor
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]
    logprob: float  # natural log of the sequence's probability given the input
    score: float  # logprob / len(tokens) ** length_penalty: what finished hypotheses are ranked by


class BeamHypotheses:
    """The `num` best finished hypotheses of one input, best first, and whether a live beam can still beat them."""

    def __init__(self, num: int, max_len: int, length_penalty: float = 0.0):
        self.num, self.max_len, self.length_penalty = num, max_len, length_penalty
        self.best: list[Hypothesis] = []

    def add(self, tokens: tuple[int, ...], logprob: float) -> None:
        """A finished hypothesis; of equal scores the one added first ranks first."""
        self.best.append(Hypothesis(tokens, logprob, logprob / len(tokens) ** self.length_penalty))
        self.best.sort(key=lambda h: h.score, reverse=True)
        del self.best[self.num :]

    def is_done(self, best_live: float) -> bool:
        """Whether a live beam with log-probability `best_live` (the input's best) can no longer get in."""
        return len(self.best) == self.num and best_live / self.max_len**self.length_penalty <= self.best[-1].score


class LiveBeam(NamedTuple):
    """A beam that goes on: its row in the last step, the token it adds, its input, tokens and log-probability."""

    row: int
    token: int
    input: int
    tokens: tuple[int, ...]
    logprob: float


class Beam(Strategy):
    """Beam search for `rows` inputs, `width` beams each; `results[i]` holds input i's best finished ones."""

    def __init__(self, width: int, stop: Stopping, rows: int, num: int = 1, length_penalty: float = 0.0):
        if width < 1 or num < 1:
            raise CharRNNError(f"beam width and number of results must be at least 1 (got width {width}, num {num})")
        if not (math.isfinite(length_penalty) and length_penalty >= 0):
            raise CharRNNError(f"length penalty must be a number >= 0, not {length_penalty}")
        stop.check_rows(rows)
        self.width, self.stop = max(width, num), stop
        self.results = [BeamHypotheses(num, stop.limit(i), length_penalty) for i in range(rows)]
        self.live = [LiveBeam(i, 0, i, (), 0.0) for i in range(rows)]  # grouped by input, in input order

    def advance(self, logits: torch.Tensor) -> None:
        # Each input's beams as one (width, V) block of scores; topk over the block ranks their extensions.
        inputs, firsts, slots, places = [], [], [], []  # each group's input and first row; each row's place
        for r, beam in enumerate(self.live):
            if not inputs or inputs[-1] != beam.input:
                inputs.append(beam.input)
                firsts.append(r)
            slots.append(len(inputs) - 1)
            places.append(r - firsts[-1])
        vocab = logits.shape[-1]
        scores = torch.tensor([beam.logprob for beam in self.live], dtype=torch.float64)
        dense = torch.full((len(inputs), self.width, vocab), -math.inf, dtype=torch.float64)
        dense[slots, places] = scores[:, None] + logits.log_softmax(-1).double().cpu()
        top = dense.view(len(inputs), -1).topk(min(2 * self.width, self.width * vocab))
        self._ranked = inputs, firsts, top.values.tolist(), top.indices.tolist(), vocab
        self._device = logits.device

    def update_finished(self) -> None:
        inputs, firsts, values, indices, vocab = self._ranked
        live: list[LiveBeam] = []
        for i, first, ranked, index in zip(inputs, firsts, values, indices, strict=True):
            done, kept = self.results[i], []
            for rank, (value, at) in enumerate(zip(ranked, index, strict=True)):
                if value == -math.inf:
                    break
                beam, token = divmod(at, vocab)
                seq = self.live[first + beam].tokens + (token,)
                if self.stop.ends(seq, i):
                    if rank < self.width:  # only a finish that would have held a beam counts (so width 1 is greedy)
                        done.add(seq, value)
                elif len(kept) < self.width:
                    kept.append(LiveBeam(first + beam, token, i, seq, value))
            if kept and not done.is_done(kept[0].logprob):
                live += kept
        self.live = live
        if live:
            self.select = torch.tensor([beam.row for beam in live], dtype=torch.long, device=self._device)
            self.tokens = torch.tensor([beam.token for beam in live], dtype=torch.long, device=self._device)

    def is_finished(self) -> bool:
        return not self.live


class Greedy(Rows):
    """The most likely token at every step; `results[i]` is input i's output once it ends. Unscored, it
    keeps no log-probabilities (streaming generation reads only the tokens: one argmax a step)."""

    def __init__(self, stop: Stopping, rows: int = 1, scored: bool = True):
        super().__init__(stop, rows)
        self.total = torch.zeros(rows, dtype=torch.float64) if scored else None  # each live row's log-probability
        self.results: list[Hypothesis | None] = [None] * rows

    def advance(self, logits: torch.Tensor) -> None:
        if self.total is None:
            self.tokens = logits.argmax(-1)
        else:
            best, self.tokens = logits.log_softmax(-1).max(-1)
            self.total += best.double().cpu()

    def finish(self, r: int, i: int) -> None:
        if self.total is not None:
            logprob = float(self.total[r])
            self.results[i] = Hypothesis(tuple(self.out[i]), logprob, logprob)

    def update_finished(self) -> None:
        super().update_finished()
        if self.select is not None and self.total is not None:
            self.total = self.total[self.select.cpu()]


def beam_search(model: Stepper, logits: torch.Tensor, state: State, width: int, stop: Stopping, num: int = 1,
                length_penalty: float = 0.0, processors: Sequence[LogitsProcessor] = ()) -> list[list[Hypothesis]]:
    """For each of the N inputs whose first logits (N, V) and state (N rows) are given: its `num` best
    distinct outputs, best first."""
    beam = Beam(width, stop, logits.shape[0], num, length_penalty)
    decode(model, beam, logits, state, processors)
    return [done.best for done in beam.results]


def greedy_search(model: Stepper, logits: torch.Tensor, state: State, stop: Stopping,
                  processors: Sequence[LogitsProcessor] = ()) -> list[Hypothesis]:
    """For each of the N inputs: the output that takes the most likely token at every step."""
    greedy = Greedy(stop, logits.shape[0])
    decode(model, greedy, logits, state, processors)
    return greedy.results
