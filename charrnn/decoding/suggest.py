"""What an autocomplete offers at each position: the rest of the word, the word with its punctuation, a phrase.

One beam search (decoding.beam, "separator": each hypothesis runs to the first space or new line after
the word) finds the likeliest ends of the word and what follows it. From them:

- word: the rest of the word inside a word, the next word at a word start (after a space, punctuation or
  a new line); its probability sums over whatever follows it;
- punctuation: the word with the punctuation after it ("lord,"), or with the new line after that;
- phrase: the best suggestion, then further words taken greedily while each is at least `phrase_prob`
  likely given everything before it (up to `phrase_words` words in all).

Each says whether the model's likeliest next character after it is a space (`space`): a page that types
the following space on acceptance ("auto-space", as phone keyboards do) types it only then.

Which `num` are shown (`rank`): "saving" picks, one at a time, the suggestion that adds the most
expected keystrokes saved to those already picked, for a typist who accepts one that is exactly what
comes next with one keystroke; "probability" shows the likeliest words. A phrase is shown among them
("together") or as one more line ("separate"). benchmarks/bench_ksr.py measures what each saves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from charrnn.data import Vocab
from charrnn.decoding.beam import WORD_END, Completion, complete_all
from charrnn.decoding.interface import Decodable
from charrnn.decoding.loop import Strategy, decode
from charrnn.decoding.sampling import Prompt, extend_prompt
from charrnn.errors import CharRNNError

PHRASES = ("separate", "together", "off")
RANKS = ("saving", "probability")
KINDS = ("word", "punctuation", "phrase")
MAX_PHRASE_WORDS = 8
MAX_SUGGESTIONS = 10
MAX_WORD = 60  # characters of one word, at most
MAX_WIDTH = 32  # the search's beams, at most
SEARCH = "separator"  # decoding.beam's search to the first space or new line after the word
SMART = ".,;:!?\n"  # typed right after an auto-space, these take its place (web/static/autocomplete.js)
PUNCTUATION_ROOM = 3  # characters of punctuation the search may add after a word of max_len


@dataclass(frozen=True)
class Suggestion:
    text: str  # what to insert after the text typed so far
    logprob: float  # natural log of its probability given the text (a phrase: its greedy path's)
    kind: str  # "word" (rest of the word, or the next word), "punctuation" (a word and what follows it), "phrase"
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
    """What to offer: `num` suggestions, at word starts too or not, how they are ranked, a phrase or not."""

    num: int = 3
    word_start: bool = True
    rank: str = "saving"
    punctuation: bool = True  # offer a word with the punctuation (and new line) the model expects after it
    auto_space: bool = True  # the page types the space after an accepted suggestion (ranking counts it)
    phrases: str = "together"
    phrase_prob: float = 0.5
    phrase_words: int = 4
    max_len: int = 30  # characters of one word
    width: int = 8  # the search's beams
    pool: int = 10  # the search's best hypotheses that the suggestions are chosen from

    def __post_init__(self):
        if not 1 <= self.num <= MAX_SUGGESTIONS:
            raise CharRNNError(f"number of suggestions must be 1..10; got {self.num}")
        if self.rank not in RANKS:
            raise CharRNNError(f"rank must be one of {', '.join(RANKS)}; got {self.rank!r}")
        if self.phrases not in PHRASES:
            raise CharRNNError(f"phrases must be one of {', '.join(PHRASES)}; got {self.phrases!r}")
        if not (math.isfinite(self.phrase_prob) and 0 < self.phrase_prob <= 1):
            raise CharRNNError(f"phrase probability must be in (0, 1]; got {self.phrase_prob}")
        if not 2 <= self.phrase_words <= MAX_PHRASE_WORDS:
            raise CharRNNError(f"phrase words must be 2..{MAX_PHRASE_WORDS}; got {self.phrase_words}")
        if not 1 <= self.max_len <= MAX_WORD:
            raise CharRNNError(f"longest word must be 1..{MAX_WORD} characters; got {self.max_len}")
        if not 1 <= self.width <= MAX_WIDTH:
            raise CharRNNError(f"search width must be 1..{MAX_WIDTH}; got {self.width}")
        if not self.num <= self.pool <= MAX_SUGGESTIONS:
            raise CharRNNError(f"the search's pool must be num..{MAX_SUGGESTIONS}; got {self.pool}")

    @property
    def search_args(self) -> dict:
        """The search's arguments (decoding.beam.complete's; serve.autocomplete's too): `offer` chooses from it."""
        return {"num": self.pool, "until": SEARCH, "max_len": self.max_len + PUNCTUATION_ROOM, "width": self.width}


def in_word(text: str) -> bool:
    """Whether the text ends inside a word (its last character is part of one)."""
    return bool(text) and text[-1] not in WORD_END


def suggest(model: Decodable, vocab: Vocab, prompt: Prompt, settings: SuggestSettings) -> list[Suggestion]:
    """The suggestions after the prompt's text, as `settings` asks (the search, then `offer`)."""
    if not settings.word_start and not in_word(prompt.text):
        return []
    return offer(model, vocab, prompt, search(model, vocab, [prompt], settings)[0], settings)


def search(model: Decodable, vocab: Vocab, prompts: Sequence[Prompt],
           settings: SuggestSettings) -> list[list[Completion]]:
    """The search `offer` chooses from, for many prompts in one batch (each gets what it would alone)."""
    args = settings.search_args
    return complete_all(model, vocab, prompts, args["num"], args["until"], [args["max_len"]] * len(prompts),
                        args["width"])


@dataclass(frozen=True)
class _Next:
    """One way the text goes on that the search found: a word, what follows it up to the next space or new
    line, and that space or new line; with its probability."""

    text: str
    prob: float


@dataclass(frozen=True)
class _Candidate:
    suggestion: Suggestion
    after: str  # the likeliest character after it ("" if unknown): where a phrase goes on from


def offer(model: Decodable, vocab: Vocab, prompt: Prompt, found: list[Completion],
          settings: SuggestSettings) -> list[Suggestion]:
    """The suggestions shown for the prompt, from its search (`search`): `num` of them, and the phrase."""
    if not settings.word_start and not in_word(prompt.text):
        return []
    nexts = _nexts(found)
    candidates = _candidates(found, nexts, settings)
    if not candidates:
        return []
    phrase = None
    if settings.phrases != "off":
        first = max(candidates, key=lambda c: c.suggestion.logprob)
        if first.suggestion.ended and first.after:
            phrase = _phrase(model, vocab, prompt, first, settings)
    if settings.rank == "probability":
        shown = _likeliest(candidates, settings)
        if phrase is None or settings.phrases == "off":
            return shown
        return shown + [phrase] if settings.phrases == "separate" else [phrase] + shown[: settings.num - 1]
    if phrase is not None and settings.phrases == "separate":
        return _best_set(candidates, nexts, None, settings.num, settings.auto_space) + [phrase]
    return _best_set(candidates, nexts, phrase, settings.num, settings.auto_space)


def _nexts(found: list[Completion]) -> list[_Next]:
    """The continuations the search found: each completion with its likeliest space or new line, and the other."""
    out = []
    for c in found:
        if not c.ended:
            continue
        likeliest = math.exp(c.end_logprob)
        out.append(_Next(c.text + c.end, likeliest))
        out.append(_Next(c.text + ("\n" if c.end == " " else " "), max(0.0, c.prob - likeliest)))
    return [n for n in out if n.prob > 0]


def _split(text: str) -> tuple[str, str]:
    """A completion's word and the punctuation after it."""
    i = 0
    while i < len(text) and text[i] not in WORD_END:
        i += 1
    return text[:i], text[i:]


def _candidates(found: list[Completion], nexts: list[_Next], settings: SuggestSettings) -> list[_Candidate]:
    """Every suggestion the search supports: each word, and with `punctuation` each word with its punctuation
    and, where the model expects one, the new line after it."""
    words: dict[str, float] = {}
    for n in nexts:
        word, rest = _split(n.text)
        if word and all(ch in WORD_END for ch in rest):
            words[word] = words.get(word, 0.0) + n.prob
    out = []
    for word, prob in words.items():
        follow: dict[str, float] = {}  # the character after the word
        for n in nexts:
            if n.text.startswith(word) and len(n.text) > len(word) and _split(n.text)[0] == word:
                follow[n.text[len(word)]] = follow.get(n.text[len(word)], 0.0) + n.prob
        after = max(follow, key=follow.get) if follow else ""
        out.append(_Candidate(Suggestion(word, math.log(prob), "word", after == " "), after))
    out += [_Candidate(Suggestion(c.text, c.logprob, "word", c.end == " ", ended=False), "")
            for c in found if not c.ended and c.text.strip()]
    if settings.punctuation:
        for c in found:
            word, rest = _split(c.text)
            if c.ended and rest and all(ch in WORD_END for ch in rest):
                out.append(_Candidate(Suggestion(c.text, c.logprob, "punctuation", c.end == " "), c.end))
                if c.end == "\n":
                    out.append(_Candidate(Suggestion(c.text + "\n", c.end_logprob, "punctuation", False), ""))
    return out


def _likeliest(candidates: list[_Candidate], settings: SuggestSettings) -> list[Suggestion]:
    """The `num` likeliest words; with `punctuation`, each with what follows it where that is likelier than not."""
    words = sorted((c.suggestion for c in candidates if c.suggestion.kind == "word"), key=lambda s: -s.logprob)
    shown = []
    for word in words[: settings.num]:
        longer = [c.suggestion for c in candidates if c.suggestion.kind == "punctuation"
                  and _split(c.suggestion.text)[0] == word.text and c.suggestion.logprob > word.logprob + math.log(0.5)]
        shown.append(max(longer, key=lambda s: (len(s.text), s.logprob), default=word))
    return shown


def _saving(s: Suggestion, text: str, auto_space: bool) -> float:
    """Keystrokes that accepting `s` saves when `text` (a word, its punctuation, a space or new line) comes next.

    Its letters count one keystroke at most: typed one letter later, the same word would likely be offered
    again. The rest counts in full, as only this suggestion saves it: the punctuation and new line in it, and
    with `auto_space` the space (or the space a punctuation mark typed after it moves along)."""
    n = len(s.text)
    if not text.startswith(s.text) or (s.text[-1] not in WORD_END and n < len(text) and text[n] not in WORD_END):
        return 0.0
    letters = sum(ch not in WORD_END for ch in s.text)
    saved = min(letters - 1, 1) + (n - letters)
    after, spaced = text[n : n + 1], auto_space and s.space
    if spaced and after == " ":
        saved += 1
    elif spaced and after in SMART:
        saved += after != "\n" and text[n + 1 : n + 2] == " "
    elif spaced and after:
        saved -= 1  # a Backspace for the space
    return max(saved, 0.0)


def _phrase_saving(phrase: Suggestion, n: _Next, auto_space: bool) -> float:
    """What a phrase saves, on average, where `n` comes next: where it begins with `n`, its first word's saving and a
    keystroke for each further word (the accept it spares), times its chance to go on as it says."""
    if not (n.prob > 0 and phrase.text.startswith(n.text)):
        return 0.0
    first = _saving(Suggestion(n.text[:-1], 0.0, "word", n.text[-1] == " "), n.text, auto_space)
    rest = phrase.text[len(n.text) :]
    further = sum(ch in WORD_END and rest[i - 1] not in WORD_END for i, ch in enumerate(rest) if i) + 1
    return min(1.0, phrase.prob / n.prob) * (first + further)


def _best_set(candidates: list[_Candidate], nexts: list[_Next], phrase: Suggestion | None, num: int,
              auto_space: bool) -> list[Suggestion]:
    """`num` suggestions picked one at a time, each adding the most expected keystrokes saved to those picked,
    likeliest first. A phrase saves a keystroke for each word after its first (the search does not see them)."""
    pool = [c.suggestion for c in candidates]
    saved = [[_saving(s, n.text, auto_space) for n in nexts] for s in pool]
    if phrase is not None:
        pool.append(phrase)
        saved.append([_phrase_saving(phrase, n, auto_space) for n in nexts])
    best, chosen = [0.0] * len(nexts), []
    for _ in range(min(num, len(pool))):
        gains = []
        for k, s in enumerate(pool):
            if k not in chosen:
                gain = sum(n.prob * max(0.0, v - b) for n, v, b in zip(nexts, saved[k], best, strict=True))
                gains.append((gain, s.logprob, k))
        _, _, k = max(gains)
        chosen.append(k)
        best = [max(b, v) for b, v in zip(best, saved[k], strict=True)]
    return sorted((pool[k] for k in chosen), key=lambda s: -s.logprob)


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


def _phrase(model: Decodable, vocab: Vocab, prompt: Prompt, first: _Candidate,
            settings: SuggestSettings) -> Suggestion | None:
    """The first suggestion and the character after it, then greedy next words while each is likely enough."""
    start = first.suggestion.text + first.after
    after = extend_prompt(model, vocab, prompt, start)
    further = _PhraseWords(vocab, math.log(settings.phrase_prob), settings.phrase_words - 1, settings.max_len + 8,
                           first.after)
    decode(model, further, after.logits, after.state)
    if not further.text:
        return None
    return Suggestion(first.suggestion.text + further.text, first.suggestion.logprob + further.logprob, "phrase",
                      further.space)
