"""Each writer's own adapted model ("learn my text" in the autocomplete), bounded, private, off the keystroke path.

A session that asks for adaptation gets a `Writer`: the model that answers its requests (`Writer.model`),
and a private copy (training/adapt.py's `Adapter`) that learns from the text it sends. Nobody else's
requests ever use either, and the caches and batches of decoding are per model object, so they never mix.

A keystroke never waits for learning. Learning runs on one background thread for the whole server, on
the learner's own copy; after each round of steps that thread builds a new answering model from the
learned weights (its step weights built and warmed there too) and puts it in the writer's place. A model
that answers is never changed afterwards: so an answer the autocomplete cached for it (its caches are
per model object) can never be served once the weights have moved on, and a request that began on the
previous model finishes on it. Until its first step a writer answers with the trained model itself, and
so shares the batcher's steps and the caches with every other request for that model.

Bounds:
- at most `max_sessions` writers (the least recently used is dropped: it starts over); each holds at
  most two copies of the weights (the learner's, the answering one's with its step weights), a third
  only while a request still runs on the model just replaced;
- one learning thread per server, on one torch thread, at most `limit` new characters a request (one
  SGD step per 64), the latest text of a session only: a writer who types on while it learns is taught
  the newest text next, never a backlog;
- nothing is written to disk; `forget` drops a session's writer at once.
Keys are issued here (random, 128 bits), so no client can pick another's.
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections import OrderedDict

from charrnn import threads
from charrnn.data import Vocab
from charrnn.models.rnn import CharRNN, warm_up
from charrnn.training.adapt import Adapter, AdaptSettings, copy_of

MAX_SESSIONS = 8  # writers kept (a 2x512 model: ~13 MB of weights to learn on, ~40 MB to answer with)
LEARN_LIMIT = 1024  # new characters one request may teach (a paste of more: its last ones)


class Writer:
    """One session's adapted model: `model` answers (replaced, never changed, after each round of learning)."""

    def __init__(self, base: CharRNN, settings: AdaptSettings):
        self.base, self.settings = base, settings
        self.model = base  # the trained model itself until the first step
        self.version = 0  # rounds of learning published: `model` was replaced this many times
        self.learned_chars = 0  # how much of the text so far `model` has learned from
        self._learner: Adapter | None = None  # made once there is a whole segment to learn from

    def learn(self, text: str, vocab: Vocab, limit: int) -> int:
        """Learn from the whole segments of `text` not learned yet, then publish the new weights: the steps taken.

        Runs on the learning thread only."""
        if self._learner is None:
            if len(text) <= self.settings.segment:  # a segment needs the character after it: nothing to learn
                return 0
            self._learner = Adapter(self.base, self.settings)
        taken = self._learner.follow(text, vocab.encode, limit)
        if taken:
            answering = copy_of(self._learner.model)
            warm_up(answering)  # build its step weights here, not in the next keystroke's request
            self.model, self.version = answering, self.version + 1
        self.learned_chars = len(self._learner.learned)  # after the model: who sees the count sees its model
        return taken


class Sessions:
    """The writers of the sessions that asked for adaptation, keyed by a session key issued here."""

    def __init__(self, settings: AdaptSettings | None = None, max_sessions: int = MAX_SESSIONS,
                 limit: int = LEARN_LIMIT):
        self.settings = settings or AdaptSettings()
        self.max_sessions, self.limit = max_sessions, limit
        self._writers: OrderedDict[tuple[str, int], Writer] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: OrderedDict[Writer, tuple[str, Vocab]] = OrderedDict()  # the latest text of each
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._busy = False  # the worker is learning (what it took is no longer pending)

    @staticmethod
    def new_key() -> str:
        return secrets.token_urlsafe(16)

    def held(self, key: str) -> bool:
        """Whether `key` names a session that has a writer now."""
        with self._lock:
            return any(slot[0] == key for slot in self._writers)

    def writer(self, key: str, model: CharRNN) -> Writer:
        """The session's writer for `model` (made now if it has none)."""
        with self._lock:
            slot = (key, id(model))
            found = self._writers.get(slot)
            if found is None or found.base is not model:
                found = self._writers[slot] = Writer(model, self.settings)
                while len(self._writers) > self.max_sessions:
                    _, dropped = self._writers.popitem(last=False)
                    self._pending.pop(dropped, None)
            self._writers.move_to_end(slot)
            return found

    def learn(self, writer: Writer, text: str, vocab: Vocab) -> None:
        """Have the learning thread learn from `text` (the whole text so far); a later call replaces it."""
        with self._lock:
            self._pending[writer] = (text, vocab)
            self._pending.move_to_end(writer)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="charrnn-adapt", daemon=True)
                self._worker.start()
            self._wake.notify()

    def forget(self, key: str) -> int:
        """Drop every writer of the session: the number dropped."""
        with self._lock:
            slots = [s for s in self._writers if s[0] == key]
            for slot in slots:
                self._pending.pop(self._writers.pop(slot), None)
            return len(slots)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is left to learn (for tests and benchmarks): whether it got there."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        threads.use(threads.Work.STEP)  # one row, one thread: the other cores stay with the requests
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._pending))
                writer, (text, vocab) = self._pending.popitem(last=False)
                self._busy = True
            try:
                writer.learn(text, vocab, self.limit)
            except Exception as e:  # noqa: BLE001 - the writer keeps its last model; the thread serves the others
                print(f"charrnn: learning from a session's text failed: {e}", file=sys.stderr, flush=True)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
