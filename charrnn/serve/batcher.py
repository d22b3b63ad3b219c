"""One batched `step` per character for all the requests that decode with one model at the same time.

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
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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


class Batcher:
    """The sessions of every model a server decodes with; one instance per server, thread-safe."""

    def __init__(self, wait_s: float = WAIT_S):
        self.wait_s = wait_s
        self._groups: weakref.WeakKeyDictionary[Decodable, _Group] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

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
