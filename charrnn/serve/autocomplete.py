"""Autocomplete as the user types: beam-search completions of the text so far, fast enough for every pause.

The search is decoding's (decoding/beam.py); what is here is the server's part: its bounds, its caches
and their locks, and its timing.

Two caches make typing cheap. The model's state after reading a text is kept (a few dozen texts per
model), so when the user types a few more characters only those are read, one `model.step` each,
instead of the whole text again. And the completions of a text are kept, so going back (Backspace)
to a text seen before costs nothing.

Only the last `context` characters (64) of a text are read from scratch: reading costs about 0.1-0.2 ms
a character for a 2x512 LSTM on one core, and an RNN's prediction of the end of a word hardly depends
on what came further back (on 200 held-out Shakespeare prefixes, the true end of the word was among
the 3 completions exactly as often with 64 characters of context as with 256, and with 32 a little
less often). A text extended step by step keeps its whole history, so the two can differ slightly.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from charrnn.data import Vocab
from charrnn.decoding.beam import SEARCHES, UNTIL, Completion, complete, complete_all
from charrnn.decoding.interface import Decodable
from charrnn.decoding.sampling import Prompt, extend_prompt, prepare_prompt
from charrnn.errors import CharRNNError
from charrnn.serve import limits

# Batcher.together's shape: run_all(items) for an item, batched with other calls of the same key.
Together = Callable[[Hashable, Callable[[Sequence[Any]], Sequence[Any]], Any], Any]
CONTEXT = 64  # characters read when no cached state can be extended (see the module docstring)
MAX_EXTEND = 16  # beyond this many new characters, read the text afresh (one fused call) instead


@dataclass(frozen=True)
class Result:
    """The completions of one text, for display and for API clients."""

    text_len: int  # length of the text they complete (after truncation to limits.MAX_COMPLETE_TEXT)
    completions: list[Completion]
    ms: float  # server-side time
    cache: str  # "result" (answer reused), "state" (state reused), "extend" (state extended), "cold" (text read)
    skipped: str = ""  # characters of the text the model does not know (left out when reading it)

    def to_dict(self, tail: str = "") -> dict:
        return {"text_len": self.text_len, "tail": tail, "ms": round(self.ms, 2), "cache": self.cache,
                "skipped": self.skipped,
                "completions": [{"text": c.text, "prob": round(c.prob, 6), "logprob": round(c.logprob, 4),
                                 "ended": c.ended} for c in self.completions]}


@dataclass
class _ModelCache:
    states: OrderedDict[str, Prompt] = field(default_factory=OrderedDict)  # known text -> prompt after it
    results: OrderedDict[tuple, list[Completion]] = field(default_factory=OrderedDict)


class Autocompleter:
    """Completions with cached states; one instance serves every user and thread of a server.

    The caches are kept per model object, for as long as that object lives (weakly, as the batcher keeps
    its groups). A cache is only right for the weights its answers came from, so weights are never changed
    under a model that answers: a model loaded again, or adapted to a writer (serve/adaptation.py), is a
    new object, with empty caches, and the old one's caches go with it.
    """

    def __init__(self, context: int = CONTEXT, max_states: int = 64, max_results: int = 512):
        self.context = context
        self.max_states, self.max_results = max_states, max_results
        self._caches: weakref.WeakKeyDictionary[Decodable, _ModelCache] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _cache_for(self, key: Decodable) -> _ModelCache:
        with self._lock:
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = _ModelCache()
            return cache

    def prompt(self, model: Decodable, vocab: Vocab, text: str, char_counts: list[int] | None = None,
               session: Decodable | None = None) -> tuple[Prompt, str]:
        """The model's prediction after `text` (unknown characters left out), and how it was obtained.

        `session`, if given, computes in the model's place (a serve.batcher session); the caches stay the model's.
        """
        compute = session or model
        known = "".join(c for c in text if c in vocab.index)
        cache = self._cache_for(model)
        with self._lock:
            hit = cache.states.get(known)
            if hit is not None:
                cache.states.move_to_end(known)
                return hit, "state"
            base = max((t for t in cache.states if known.startswith(t) and len(known) - len(t) <= MAX_EXTEND),
                       key=len, default=None)
            start = cache.states[base] if base is not None else None
        if start is not None and base:
            prompt = self._extend(compute, vocab, start, known[len(base):], known)
            how = "extend"
        else:
            prompt = prepare_prompt(compute, vocab, known[-self.context:], char_counts=char_counts)
            how = "cold"
        with self._lock:
            cache.states[known] = prompt
            while len(cache.states) > self.max_states:
                cache.states.popitem(last=False)
        return prompt, how

    @staticmethod
    def _extend(model: Decodable, vocab: Vocab, start: Prompt, extra: str, text: str) -> Prompt:
        """Read `extra` one character at a time on from a cached prompt."""
        return replace(extend_prompt(model, vocab, start, extra), text=text)

    def complete(self, model: Decodable, vocab: Vocab, text: str, num: int = limits.COMPLETIONS.default,
                 until: str = "word", max_len: int = limits.COMPLETION_LENGTH.default, width: int | None = None,
                 char_counts: list[int] | None = None,
                 session: Decodable | None = None, together: Together | None = None) -> Result:
        """The `num` best completions of `text` to the end of the word, phrase or line.

        Arguments are checked and clamped here, to limits.COMPLETIONS and COMPLETION_LENGTH, and only the
        last limits.MAX_COMPLETE_TEXT characters of the text are kept. `session` as for `prompt`; with
        `together` (a serve.batcher Batcher's), the searches of concurrent calls with the same settings
        run as one batched search.
        """
        t0 = time.perf_counter()
        if until not in SEARCHES:
            raise CharRNNError(f"until must be one of {', '.join(UNTIL)}; got {until!r}")
        text = str(text)[-limits.MAX_COMPLETE_TEXT:]
        num = limits.COMPLETIONS.clamp_int(num)
        max_len = limits.COMPLETION_LENGTH.clamp_int(max_len)
        skipped = "".join(vocab.unknown(text))
        known = "".join(c for c in text if c in vocab.index) if skipped else text
        cache = self._cache_for(model)
        key = (known, num, until, max_len, width)
        with self._lock:
            found = cache.results.get(key)
            if found is not None:
                cache.results.move_to_end(key)
        how = "result"
        if found is None:
            prompt, how = self.prompt(model, vocab, known, char_counts, session)
            if together is None:
                found = complete(session or model, vocab, prompt, num, until, max_len, width)
            else:
                def run_all(items: Sequence[tuple[Prompt, int]]) -> list[list[Completion]]:
                    return complete_all(model, vocab, [p for p, _ in items], num, until, [m for _, m in items], width)

                found = together(("complete", model, num, until, width), run_all, (prompt, max_len))
            with self._lock:
                cache.results[key] = found
                while len(cache.results) > self.max_results:
                    cache.results.popitem(last=False)
        return Result(len(text), found, (time.perf_counter() - t0) * 1000, how, skipped)
