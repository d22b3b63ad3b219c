"""Beam search over characters, and prefix completion (the autocomplete) built on it.

All live beams advance in one batched `model.step` per character. A hypothesis finishes when `stop`
says so or at `max_len`; finished ones are ranked by log-probability / length**length_penalty.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.data import Vocab
from charrnn.decoding.sampling import Prompt
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, select_state


@dataclass(frozen=True)
class Hypothesis:
    text: str
    logprob: float  # natural log of the sequence's probability given the prompt
    score: float  # logprob / len(text) ** length_penalty: what the beams are ranked by


def beam_search(model: CharRNN, vocab: Vocab, prompt: Prompt, width: int, max_len: int, num: int = 1,
                stop: Callable[[str], bool] | None = None, length_penalty: float = 0.0) -> list[Hypothesis]:
    """The `num` best distinct continuations of the prompt, best first.

    With length_penalty 0 the ranking is by probability alone and the search stops as soon as no live
    beam can still beat the `num`-th finished one (log-probabilities only fall as text grows).
    """
    if width < 1 or num < 1 or max_len < 1:
        raise CharRNNError(f"beam width, number of results and length must be at least 1 "
                           f"(got width {width}, num {num}, length {max_len})")
    stop = stop or (lambda text: False)
    width = max(width, num)
    texts, scores = [""], torch.zeros(1, dtype=torch.float64)
    logp, state = prompt.logits.log_softmax(-1).double(), prompt.state
    finished: list[Hypothesis] = []
    with torch.inference_mode():
        for t in range(1, max_len + 1):
            cand = (scores[:, None] + logp).flatten()
            top = torch.topk(cand, min(2 * width, cand.numel()))
            live_rows, live_chars, live_texts, live_scores = [], [], [], []
            for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                if value == -math.inf:
                    break
                row, char = divmod(index, len(vocab))
                text = texts[row] + vocab.chars[char]
                if t == max_len or stop(text):
                    finished.append(Hypothesis(text, value, value / t**length_penalty))
                elif len(live_texts) < width:
                    live_rows.append(row)
                    live_chars.append(char)
                    live_texts.append(text)
                    live_scores.append(value)
            finished.sort(key=lambda h: h.score, reverse=True)
            del finished[num:]
            if not live_texts or (length_penalty == 0 and len(finished) == num
                                  and live_scores[0] <= finished[-1].logprob):
                break
            rows = torch.tensor(live_rows, device=prompt.logits.device)
            state = select_state(state, rows)
            logits, state = model.step(torch.tensor(live_chars, device=rows.device), state)
            logp = logits.log_softmax(-1).double().cpu()
            texts, scores = live_texts, torch.tensor(live_scores, dtype=torch.float64)
    return finished


WORD_END = set(string.whitespace) | (set(string.punctuation) - {"'", "-", "_"})
PHRASE_END = set(".,;:!?\n")
LINE_END = {"\n"}
UNTIL = {"word": WORD_END, "phrase": PHRASE_END, "line": LINE_END}


@dataclass(frozen=True)
class Completion:
    text: str  # what to append to the prefix (without the character that ends the word)
    logprob: float
    ended: bool = True  # False if cut off at max_len before the word/phrase/line ended

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


def complete(model: CharRNN, vocab: Vocab, prompt: Prompt, num: int = 3, until: str = "word",
             max_len: int = 30, width: int | None = None) -> list[Completion]:
    """The `num` most likely distinct completions of the prompt to the end of the word, phrase or line.

    The probability of a completion sums over the characters that can end it ("the " and "the," both
    complete the word "the"). Empty completions (the word was already complete) are left out; one cut
    off at max_len before it ended comes back with `ended=False`.
    """
    if until not in UNTIL:
        raise CharRNNError(f"until must be one of {', '.join(UNTIL)}; got {until!r}")
    ends = UNTIL[until]
    width = width or max(8, 2 * num)
    hyps = beam_search(model, vocab, prompt, width, max_len, num=width,
                       stop=lambda text: text[-1] in ends)
    merged: dict[tuple[str, bool], float] = {}
    for h in hyps:
        ended = h.text[-1] in ends
        key = (h.text[:-1] if ended else h.text, ended)
        if key[0].strip():
            merged[key] = float(np.logaddexp(merged.get(key, -math.inf), h.logprob))
    best = sorted(merged.items(), key=lambda kv: kv[1], reverse=True)[:num]
    return [Completion(text, lp, ended) for (text, ended), lp in best]
