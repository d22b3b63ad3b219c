"""The one decoding loop: it steps the model and runs the logits processors; a strategy chooses the tokens.

As in OpenNMT-py, every way of decoding (sampling, greedy, beam, guided sampling, forced reading) is a
`Strategy` the loop drives, one model step for all live rows at a time:

    logits -> processors(ids, logits) -> strategy.advance -> strategy.update_finished -> (yield)
           -> stop if strategy.is_finished() -> reorder the state and ids by strategy.select
           -> model.step(strategy.tokens) -> a strategy that rolls back may resume from a saved point

The loop keeps `ids`, the tokens each live row has produced so far, in a buffer reordered with the
rows (beams); it builds it only when a processor looks at it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import torch

from charrnn.decoding.interface import State, Stepper
from charrnn.decoding.processors import LogitsProcessor, uses_ids
from charrnn.decoding.stopping import Stopping


@dataclass(frozen=True)
class Point:
    """Where decoding stands: the next logits, the model's state, and how many tokens each row has."""

    logits: torch.Tensor
    state: State
    length: int


class Strategy(ABC):
    """How tokens are chosen. After `advance` and `update_finished`, `tokens` (rows,) are what the live
    rows go on with, and `select` says which rows of the step before they continue (None: the same ones)."""

    tokens: torch.Tensor
    select: torch.Tensor | None = None
    rolls_back = False  # True: the loop calls `at` after every step (and at the start)

    @abstractmethod
    def advance(self, logits: torch.Tensor) -> None:
        """Choose the next token of every live row from its processed logits (rows, V)."""

    @abstractmethod
    def update_finished(self) -> None:
        """Record the tokens just chosen and retire the rows (or inputs) that have finished."""

    @abstractmethod
    def is_finished(self) -> bool:
        """Whether no row is left to decode."""

    def at(self, point: Point) -> Point:
        """The loop has reached `point`: the point to go on from (a strategy that rolls back saves and restores)."""
        return point


class Rows(Strategy):
    """Rows that each go on until `stop` ends them; a finished row leaves the batch. `out[i]` is row i's tokens."""

    def __init__(self, stop: Stopping, rows: int = 1):
        stop.check_rows(rows)
        self.stop = stop
        self.live = list(range(rows))  # the input row of each live row
        self.out: list[list[int]] = [[] for _ in range(rows)]

    def finish(self, r: int, i: int) -> None:
        """Live row r, input row i, has ended (a hook: the tokens are in out[i])."""

    def update_finished(self) -> None:
        keep = []
        for r, (i, token) in enumerate(zip(self.live, self.tokens.tolist(), strict=True)):
            out = self.out[i]
            out.append(token)
            if self.stop.ends(out, i):
                self.finish(r, i)
            else:
                keep.append(r)
        if len(keep) == len(self.live):
            self.select = None
        else:
            self.select = torch.tensor(keep, dtype=torch.long, device=self.tokens.device)
            self.tokens = self.tokens[self.select]
            self.live = [self.live[r] for r in keep]

    def is_finished(self) -> bool:
        return not self.live


class History:
    """The ids (rows, T) each live row has produced, in a buffer that grows by doubling, so a step
    writes one column instead of allocating; reordered with the rows."""

    def __init__(self, rows: int, device: torch.device):
        self.buf = torch.empty(rows, 64, dtype=torch.long, device=device)
        self.length = 0

    def view(self) -> torch.Tensor:
        """The ids so far, (rows, T): a view, valid until the next append or reorder."""
        return self.buf[:, : self.length]

    def append(self, tokens: torch.Tensor) -> None:
        """Add this step's tokens (rows,) as the last column."""
        if self.length == self.buf.shape[1]:
            self.buf = torch.cat([self.buf, torch.empty_like(self.buf)], 1)
        self.buf[:, self.length] = tokens
        self.length += 1

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows `index`, in that order (beams copied, dropped or moved)."""
        self.buf = self.buf[index]


NO_IDS = torch.empty(0, 0, dtype=torch.long)  # what processors that never look at the ids are handed


def steps(model: Stepper, strategy: Strategy, logits: torch.Tensor, state: State,
          processors: Sequence[LogitsProcessor] = ()) -> Generator[None, None, tuple[torch.Tensor, State]]:
    """Decode from the first logits (rows, V) and state; yield after each step's tokens are chosen
    (the strategy holds them), and return the logits and state where decoding stopped."""
    history = History(logits.shape[0], logits.device) if uses_ids(processors) else None
    ids, length = NO_IDS, 0  # length: tokens each live row has so far
    with torch.inference_mode():
        if strategy.rolls_back:
            point = strategy.at(Point(logits, state, 0))
            logits, state = point.logits, point.state
        while True:
            if history is not None:
                ids = history.view()
            scores = logits
            for process in processors:
                scores = process(ids, scores)
            strategy.advance(scores)
            strategy.update_finished()
            yield
            if strategy.is_finished():
                return logits, state
            tokens, select = strategy.tokens, strategy.select
            if select is not None:
                state = model.reorder(state, select)
                if history is not None:
                    history.reorder(select)
            if history is not None:
                history.append(tokens)
            logits, state = model.step(tokens, state)
            length += 1
            if strategy.rolls_back:
                point = strategy.at(Point(logits, state, length))
                logits, state, length = point.logits, point.state, point.length
                if history is not None:
                    history.length = length

def decode(model: Stepper, strategy: Strategy, logits: torch.Tensor, state: State,
           processors: Sequence[LogitsProcessor] = ()) -> tuple[torch.Tensor, State]:
    """Run `steps` to the end: the logits and state where decoding stopped."""
    run = steps(model, strategy, logits, state, processors)
    while True:
        try:
            next(run)
        except StopIteration as end:
            return end.value
