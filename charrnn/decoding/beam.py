"""Beam search over a language model's characters, and prefix completion (the autocomplete) built on it.

The search itself is decoding.search's, which seq2seq decoding uses too; this names its tokens as text.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.data import Vocab
from charrnn.decoding import search
from charrnn.decoding.interface import Decodable
from charrnn.decoding.sampling import Prompt
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError

SAMPLING_ONLY = ("temperature", "top-k", "top-p", "seed")  # what beam search never uses: it ranks, it draws nothing
SAMPLING_HISTORY = ("repetition-penalty", "no-repeat")  # the sampler's processors of the text so far (CLI only)


def unused_by_beam(given: Iterable[str]) -> str:
    """The line saying which of the given settings (SAMPLING_ONLY's and SAMPLING_HISTORY's names) beam search
    leaves unused; "" for none. The CLI and the app say it rather than ignore such settings silently."""
    given = set(given)  # once: `given` may be an iterator
    names = [name for name in SAMPLING_ONLY + SAMPLING_HISTORY if name in given]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"beam search does not use {listed}: it keeps the likeliest texts and draws nothing at random"


@dataclass(frozen=True)
class Beam:
    text: str
    logprob: float  # natural log of the text's probability given the prompt
    score: float  # logprob / len(text) ** length_penalty: what the beams are ranked by


def beam_search(model: Decodable, vocab: Vocab, prompt: Prompt, width: int, max_len: int, num: int = 1,
                stop: Sequence[str] = (), length_penalty: float = 0.0) -> list[Beam]:
    """The `num` best distinct continuations of the prompt, best first (decoding.search on characters);
    a continuation ends after any of the `stop` strings. With length_penalty 0 the ranking is by probability alone.
    """
    if max_len < 1:
        raise CharRNNError(f"beam search length must be at least 1 (got {max_len})")
    stopping = Stopping.text(vocab, max_len, stop)
    (found,) = search.beam_search(model, prompt.logits, prompt.state, width, stopping, num, length_penalty)
    return [Beam(vocab.decode(h.tokens), h.logprob, h.score) for h in found]


WORD_END = set(string.whitespace) | (set(string.punctuation) - {"'", "-", "_"})
PHRASE_END = set(".,;:!?\n")
LINE_END = {"\n"}
UNTIL = {"word": WORD_END, "phrase": PHRASE_END, "line": LINE_END}
# The suggestions' search (decoding/suggest.py): the word and the punctuation after it, to the next space or new line.
SEARCHES = {**UNTIL, "separator": set(string.whitespace)}


@dataclass(frozen=True)
class Completion:
    text: str  # what to append to the prefix (without the character that ends the word)
    logprob: float
    ended: bool = True  # False if cut off at max_len before the word/phrase/line ended
    end: str = ""  # the likeliest character to follow it (one of those that end it; "" when cut off)
    end_logprob: float = 0.0  # natural log of the probability of the text followed by `end`

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


def complete(model: Decodable, vocab: Vocab, prompt: Prompt, num: int = 3, until: str = "word",
             max_len: int = 30, width: int | None = None) -> list[Completion]:
    """The `num` most likely distinct completions of the prompt to the end of the word, phrase or line.

    The probability of a completion sums over the characters that can end it ("the " and "the," both
    complete the word "the"). Empty completions (the word was already complete) are left out; one cut
    off at max_len before it ended comes back with `ended=False`.
    """
    return complete_all(model, vocab, [prompt], num, until, [max_len], width)[0]


def complete_all(model: Decodable, vocab: Vocab, prompts: Sequence[Prompt], num: int = 3, until: str = "word",
                 max_len: Sequence[int] = (30,), width: int | None = None) -> list[list[Completion]]:
    """`complete` for many prompts (each with its own max_len) in one batched search: each gets what it would alone."""
    if until not in SEARCHES:
        raise CharRNNError(f"until must be one of {', '.join(UNTIL)}; got {until!r}")
    if min(max_len, default=1) < 1:
        raise CharRNNError(f"beam search length must be at least 1 (got {min(max_len)})")
    ends = SEARCHES[until]
    width = width or max(8, 2 * num)
    logits = torch.cat([p.logits for p in prompts])
    state = prompts[0].state if len(prompts) == 1 else model.concat([p.state for p in prompts])
    stop = Stopping(list(max_len), eos=[vocab.index[c] for c in ends if c in vocab.index])
    found = search.beam_search(model, logits, state, width, stop, num=width)
    return [_merged(vocab, hyps, ends, num) for hyps in found]


def _merged(vocab: Vocab, hyps: list[search.Hypothesis], ends: set[str], num: int) -> list[Completion]:
    merged: dict[tuple[str, bool], float] = {}
    end: dict[tuple[str, bool], tuple[float, str]] = {}  # each text's likeliest ending character
    for h in hyps:
        text = vocab.decode(h.tokens)
        ended = text[-1] in ends
        key = (text[:-1] if ended else text, ended)
        if key[0].strip():
            merged[key] = float(np.logaddexp(merged.get(key, -math.inf), h.logprob))
            if ended and h.logprob > end.get(key, (-math.inf, ""))[0]:
                end[key] = (h.logprob, text[-1])
    best = sorted(merged.items(), key=lambda kv: kv[1], reverse=True)[:num]
    out = []
    for (text, ended), lp in best:
        end_lp, end_char = end.get((text, ended), (0.0, ""))
        out.append(Completion(text, lp, ended, end_char, end_lp))
    return out
