"""Each writer's own adapted model ("learn my text" in the autocomplete), bounded and private.

A session that asks for adaptation gets its own copy of the model (training/adapt.py's `Adapter`),
which learns from the text it sends; nobody else's requests ever use that copy, and the caches and
batches of decoding are per model object, so they never mix either. Sessions without adaptation keep
sharing the one loaded model, and so the batcher's shared steps. Bounds:
- at most `max_sessions` adapted copies (the least recently used is dropped: it starts over);
- learning runs on one background thread for the whole server, off the keystroke path, at most
  `limit` new characters a request (one SGD step per 64), the latest text of a session only;
- nothing is written to disk; `forget` drops a session's copy at once.
Keys are issued here (random, 128 bits), so no client can pick another's.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from charrnn.data import Vocab
from charrnn.models.rnn import CharRNN
from charrnn.training.adapt import Adapter, AdaptSettings

MAX_SESSIONS = 8  # adapted copies kept (a 2x512 model: ~13 MB of weights, ~40 MB with its step weights)
LEARN_LIMIT = 1024  # new characters one request may teach (a paste of more: its last ones)


class Sessions:
    """The adapted models of the sessions that asked for one, keyed by a session key issued here."""

    def __init__(self, settings: AdaptSettings | None = None, max_sessions: int = MAX_SESSIONS,
                 limit: int = LEARN_LIMIT):
        self.settings = settings or AdaptSettings()
        self.max_sessions, self.limit = max_sessions, limit
        self._adapters: OrderedDict[tuple[str, int], Adapter] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: OrderedDict[Adapter, tuple[str, Vocab]] = OrderedDict()  # the latest text of each
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._busy = False  # the worker is learning (what it took is no longer pending)

    @staticmethod
    def new_key() -> str:
        return secrets.token_urlsafe(16)

    def held(self, key: str) -> bool:
        """Whether `key` names a session that has an adapted model now."""
        with self._lock:
            return any(slot[0] == key for slot in self._adapters)

    def adapter(self, key: str, model: CharRNN) -> Adapter:
        """The session's adapted copy of `model` (made now if it has none)."""
        with self._lock:
            slot = (key, id(model))
            found = self._adapters.get(slot)
            if found is None or found.base is not model:
                found = self._adapters[slot] = Adapter(model, self.settings)
                while len(self._adapters) > self.max_sessions:
                    _, dropped = self._adapters.popitem(last=False)
                    self._pending.pop(dropped, None)
            self._adapters.move_to_end(slot)
            return found

    def learn(self, adapter: Adapter, text: str, vocab: Vocab) -> None:
        """Have the background thread learn from `text` (the whole text so far); a later call replaces it."""
        with self._lock:
            self._pending[adapter] = (text, vocab)
            self._pending.move_to_end(adapter)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="charrnn-adapt", daemon=True)
                self._worker.start()
            self._wake.notify()

    def forget(self, key: str) -> int:
        """Drop every adapted copy of the session: the number dropped."""
        with self._lock:
            slots = [s for s in self._adapters if s[0] == key]
            for slot in slots:
                self._pending.pop(self._adapters.pop(slot), None)
            return len(slots)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is left to learn (for tests and benchmarks): whether it got there."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: bool(self._pending))
                adapter, (text, vocab) = self._pending.popitem(last=False)
                self._busy = True
            try:
                adapter.follow(text, vocab.encode, self.limit)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()
