"""What an autocomplete offers at each position: the rest of the word, the next word, and a phrase.

- Inside a word: the `num` likeliest ends of it (beam search, decoding.beam.complete).
- At a word start (after a space, punctuation or a new line): the `num` likeliest next words.
- A phrase: the best word, then further words taken greedily while each is at least `phrase_prob`
  likely given everything before it (up to `phrase_words` words in all). It is offered beside the
  words ("separate": num words + 1 phrase) or in place of the last word ("together": num in all).

Each suggestion says whether the model's likeliest next character after it is a space (`space`): a
page that types the following space on acceptance ("auto-space", as phone keyboards do) types it only
then. What each variant saves is measured by benchmarks/bench_ksr.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from charrnn.data import Vocab
from charrnn.decoding.beam import WORD_END, Completion, complete
from charrnn.decoding.interface import Decodable
from charrnn.decoding.loop import Strategy, decode
from charrnn.decoding.sampling import Prompt, extend_prompt
from charrnn.errors import CharRNNError

PHRASES = ("separate", "together", "off")
MAX_PHRASE_WORDS = 8


@dataclass(frozen=True)
class Suggestion:
    text: str  # what to insert after the text typed so far
    logprob: float  # natural log of its probability given the text (a phrase: its greedy path's)
    kind: str  # "word" (rest of the word, or the next word) or "phrase" (several words)
    space: bool  # the likeliest character after it is a space: auto-space types one on acceptance
    ended: bool = True  # False: a word cut off at max_len

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    def to_dict(self) -> dict:
        return {"text": self.text, "prob": round(self.prob, 6), "logprob": round(self.logprob, 4),
                "kind": self.kind, "space": self.space, "ended": self.ended}


@dataclass(frozen=True)
class SuggestSettings:
    """What to offer: `num` words, at word starts too or not, a phrase (separate, together or off)."""

    num: int = 3
    word_start: bool = True
    phrases: str = "separate"
    phrase_prob: float = 0.5
    phrase_words: int = 4
    max_len: int = 30  # characters of one word

    def __post_init__(self):
        if not 1 <= self.num <= 10:
            raise CharRNNError(f"number of suggestions must be 1..10; got {self.num}")
        if self.phrases not in PHRASES:
            raise CharRNNError(f"phrases must be one of {', '.join(PHRASES)}; got {self.phrases!r}")
        if not (math.isfinite(self.phrase_prob) and 0 < self.phrase_prob <= 1):
            raise CharRNNError(f"phrase probability must be in (0, 1]; got {self.phrase_prob}")
        if not 2 <= self.phrase_words <= MAX_PHRASE_WORDS:
            raise CharRNNError(f"phrase words must be 2..{MAX_PHRASE_WORDS}; got {self.phrase_words}")
        if not 1 <= self.max_len <= 60:
            raise CharRNNError(f"longest word must be 1..60 characters; got {self.max_len}")


def in_word(text: str) -> bool:
    """Whether the text ends inside a word (its last character is part of one)."""
    return bool(text) and text[-1] not in WORD_END


def suggest(model: Decodable, vocab: Vocab, prompt: Prompt, settings: SuggestSettings) -> list[Suggestion]:
    """The suggestions after the prompt's text, words first (likeliest first), then the phrase if any."""
    if not settings.word_start and not in_word(prompt.text):
        return []
    return with_phrase(model, vocab, prompt, complete(model, vocab, prompt, settings.num, "word", settings.max_len),
                       settings)


def with_phrase(model: Decodable, vocab: Vocab, prompt: Prompt, words: list[Completion],
                settings: SuggestSettings) -> list[Suggestion]:
    """The word completions of the prompt (decoding.beam's, best first) as suggestions, with the phrase."""
    found = [Suggestion(c.text, c.logprob, "word", c.end == " ", c.ended) for c in words]
    if settings.phrases == "off" or not words or not words[0].ended:
        return found
    phrase = _phrase(model, vocab, prompt, words[0].text + words[0].end, words[0].logprob, settings)
    return arrange(found, phrase, settings)


def arrange(words: list[Suggestion], phrase: Suggestion | None, settings: SuggestSettings) -> list[Suggestion]:
    """What is shown: the words, and the phrase beside them ("separate") or first in their place ("together")."""
    if phrase is None or settings.phrases == "off":
        return words
    return words + [phrase] if settings.phrases == "separate" else [phrase] + words[: settings.num - 1]


class _PhraseWords(Strategy):
    """The phrase's further words, one row: the likeliest character at each step while the word it belongs
    to stays at least `floor` likely (log), up to `words` words of at most `longest` characters each."""

    def __init__(self, vocab: Vocab, floor: float, words: int, longest: int, before: str):
        self.vocab, self.floor, self.words, self.longest = vocab, floor, words, longest
        self.text, self.logprob, self.space = "", 0.0, before == " "  # the words taken, and what follows them
        self.pending, self.pending_lp, self.seen_word, self.chars = before, 0.0, False, 0
        self.done = False

    def advance(self, logits: torch.Tensor) -> None:
        best, self.tokens = logits.log_softmax(-1).max(-1)
        self.best = float(best)

    def update_finished(self) -> None:
        ch = self.vocab.chars[int(self.tokens)]
        self.pending_lp += self.best
        self.chars += 1
        if self.pending_lp < self.floor or self.chars > self.longest:  # not likely enough, or no word end in sight
            self.done = True
        elif ch in WORD_END and self.seen_word:  # a word ends: take it, with the separators before it
            self.text, self.logprob, self.space = self.text + self.pending, self.logprob + self.pending_lp, ch == " "
            self.pending, self.pending_lp, self.seen_word, self.chars = ch, 0.0, False, 0
            self.words -= 1
            self.done = self.words == 0
        else:
            self.pending += ch
            self.seen_word = self.seen_word or ch not in WORD_END

    def is_finished(self) -> bool:
        return self.done


def _phrase(model: Decodable, vocab: Vocab, prompt: Prompt, first: str, logprob: float,
            settings: SuggestSettings) -> Suggestion | None:
    """`first` (a word and the character after it), then greedy next words while each is likely enough."""
    after = extend_prompt(model, vocab, prompt, first)
    further = _PhraseWords(vocab, math.log(settings.phrase_prob), settings.phrase_words - 1, settings.max_len + 8,
                           first[-1])
    decode(model, further, after.logits, after.state)
    if not further.text:
        return None
    return Suggestion(first[:-1] + further.text, logprob + further.logprob, "phrase", further.space)
