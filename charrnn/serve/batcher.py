"""Requests that decode with one model at the same time share its computation: batched steps, batched searches.

Each request decodes as it would alone (a beam search with its own width, prefix state and stop rule;
a sampler with its own seed and settings), in its own thread, against a `Session`: a `Decodable` that
forwards everything to the model except `step`. A session's `step` joins the steps the other sessions
of the same model ask for at that moment: their rows are concatenated (`Decodable.concat`), advanced
in one `model.step`, and each session gets its own rows back. A row costs several times less when
rows share a step (see the README's Serving section), and nothing about one request depends on the
others: its rows are the same computation, so its text and log-probabilities are what it would get
alone (up to float rounding, ~1e-6, as the matrix kernels differ with the number of rows).

Who runs the batch: the step that completes it, or the one whose wait runs out. A step waits until
every active session of the model has asked (a session is active from its first read or step until
it closes), or until no other step has come for `wait_s` (2 ms), or at most 5 x `wait_s` in all,
whichever comes first. A lone session never waits at all; one whose company has stalled (reading a
long prompt, say) waits 2 ms. The threads of many sessions reach their next step one after another
(each chooses its characters in Python first), so a wait measured from the first arrival alone
would cut most batches short.

Where requests run the same whole computation on different inputs (an autocomplete's beam search with
the same settings), `Batcher.together` does better still: the calls that arrive while one batch of them
runs are run next, all in one call (one search over every prompt), so the search's own per-step work is
shared too, not only the model's step. A lone call runs at once.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from charrnn.decoding.interface import Decodable, State

WAIT_S = 0.002  # the longest a step waits for company that has not come yet ...
MAX_WAITS = 5  # ... while company keeps coming, a batch stays open at most this many times as long


@dataclass
class BatchStats:
    """What a model's batcher did: steps asked for, batched steps run, and the largest batch."""

    steps: int = 0
    batches: int = 0
    most_sessions: int = 0
    most_rows: int = 0


@dataclass
class _Ask:
    """One session's step waiting to be run: its input, and then its output."""

    x: torch.Tensor
    state: State
    logits: torch.Tensor | None = None
    new_state: State = None
    error: BaseException | None = None
    taken: bool = False  # in a batch that a step runs
    done: bool = False


@dataclass
class _Group:
    """The sessions of one model: how many are active and which steps wait."""

    model: Decodable
    wait_s: float
    cond: threading.Condition = field(default_factory=threading.Condition)
    active: int = 0
    waiting: list[_Ask] = field(default_factory=list)
    first_at: float = 0.0  # when the oldest waiting step asked
    last_at: float = 0.0  # when the newest did
    stats: BatchStats = field(default_factory=BatchStats)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        ask = _Ask(x, state)
        batch = None
        with self.cond:
            self.stats.steps += 1
            now = time.perf_counter()
            if not self.waiting:
                self.first_at = now
            self.last_at = now
            self.waiting.append(ask)
            while not ask.taken:
                deadline = min(self.last_at + self.wait_s, self.first_at + MAX_WAITS * self.wait_s)
                left = deadline - time.perf_counter()
                if len(self.waiting) >= self.active or left <= 0:  # everyone is here, or no more waiting
                    batch, self.waiting = self.waiting, []
                    for taken in batch:
                        taken.taken = True
                    break
                self.cond.wait(left)
            while batch is None and not ask.done:  # another step runs the batch this one is in
                self.cond.wait()
        if batch is not None:
            self._run(batch)
        if ask.error is not None:
            raise ask.error
        return ask.logits, ask.new_state

    def _run(self, batch: list[_Ask]) -> None:
        """One model.step for every step of the batch; each ask gets its own rows (outside the lock)."""
        try:
            with torch.inference_mode():  # thread-local: the callers' own inference mode does not reach here
                if len(batch) == 1:
                    ask = batch[0]
                    ask.logits, ask.new_state = self.model.step(ask.x, ask.state)
                else:
                    logits, state = self.model.step(torch.cat([a.x for a in batch]),
                                                    self.model.concat([a.state for a in batch]))
                    start = 0
                    for ask in batch:
                        rows = len(ask.x)
                        ask.logits = logits[start : start + rows]
                        ask.new_state = self.model.reorder(state, torch.arange(start, start + rows,
                                                                               device=logits.device))
                        start += rows
        except BaseException as e:  # every waiting request hears of it, not only the one that ran the step
            for ask in batch:
                ask.error = e
        with self.cond:
            for ask in batch:
                ask.done = True
            self.stats.batches += 1
            self.stats.most_sessions = max(self.stats.most_sessions, len(batch))
            self.stats.most_rows = max(self.stats.most_rows, sum(len(a.x) for a in batch))
            self.cond.notify_all()

    def enter(self) -> None:
        with self.cond:
            self.active += 1

    def leave(self) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()  # the waiting steps may be all there is now


class Session:
    """A `Decodable` for one request: `step` is batched with the other sessions of its model."""

    def __init__(self, group: _Group):
        self._group = group
        self.model = group.model
        self.device = group.model.device
        self._active = False

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        return self.model.init_state(batch, device)

    def read(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        self._join()  # steps follow a read: the other sessions may wait for this one's
        return self.model.read(ids, state)

    def reorder(self, state: State, index: torch.Tensor) -> State:
        return self.model.reorder(state, index)

    def concat(self, states: list[State]) -> State:
        return self.model.concat(states)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one token, in one batch with the other sessions' steps of this moment."""
        self._join()
        return self._group.step(x, state)

    def _join(self) -> None:
        """Count as active from the first read or step on: a request served from a cache holds no one up."""
        if not self._active:
            self._active = True
            self._group.enter()

    def close(self) -> None:
        """No longer active (until the next read or step): the other sessions' steps stop waiting for this one's."""
        if self._active:
            self._active = False
            self._group.leave()


@dataclass
class _Call:
    """One call waiting in `Batcher.together`: its input, then its output (or error), or the turn to run."""

    item: Any
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Line:
    """The calls of one key waiting for the next batch (a key has a line while one of its batches runs)."""

    waiting: list[_Call] = field(default_factory=list)


class Batcher:
    """The sessions of every model a server decodes with; one instance per server, thread-safe."""

    def __init__(self, wait_s: float = WAIT_S):
        self.wait_s = wait_s
        self._groups: weakref.WeakKeyDictionary[Decodable, _Group] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._lines: dict[Hashable, _Line] = {}

    def together(self, key: Hashable, run_all: Callable[[Sequence[Any]], Sequence[Any]], item: Any) -> Any:
        """`run_all([item, ...])[i]` for this call's item, run in one batch with the other calls of `key` that
        arrived while the previous batch ran (a lone call runs at once). `run_all` must treat items independently."""
        call = _Call(item)
        with self._lock:
            leads = key not in self._lines  # no batch of this key runs now
            line = self._lines.setdefault(key, _Line())
            line.waiting.append(call)
        if not leads:
            call.woken.wait()  # until a batch that held this call ran, or it is this call's turn to run the next
        if not call.done:
            self._run_line(key, line, run_all)
        if call.error is not None:
            raise call.error
        return call.result

    def _run_line(self, key: Hashable, line: _Line, run_all: Callable[[Sequence[Any]], Sequence[Any]]) -> None:
        with self._lock:
            batch, line.waiting = line.waiting, []
        try:
            results = run_all([c.item for c in batch])
            for c, result in zip(batch, results, strict=True):
                c.result = result
        except BaseException as e:  # every call of the batch hears of it
            for c in batch:
                c.error = e
        with self._lock:
            if line.waiting:  # the first of those that came meanwhile runs the next batch
                line.waiting[0].woken.set()
            else:  # idle: forget the line (its key may hold a model that is then unloaded)
                del self._lines[key]
        for c in batch:
            c.done = True
            c.woken.set()

    def _group(self, model: Decodable) -> _Group:
        with self._lock:
            group = self._groups.get(model)
            if group is None:
                group = self._groups[model] = _Group(model, self.wait_s)
            return group

    @contextmanager
    def session(self, model: Decodable) -> Iterator[Session]:
        """A Decodable over `model` whose steps are batched with the other sessions of `model`, for one request."""
        session = Session(self._group(model))
        try:
            yield session
        finally:
            session.close()

    def stats(self, model: Decodable) -> BatchStats:
        """What the batcher did for `model` so far (a copy)."""
        group = self._group(model)
        with group.cond:
            return BatchStats(**vars(group.stats))
