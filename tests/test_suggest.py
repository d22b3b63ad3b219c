"""Suggestions of each kind (decoding/suggest.py) and the ideal typist that measures them (benchmarks/bench_ksr.py)."""

from __future__ import annotations

import pytest
import torch

from benchmarks.bench_ksr import Variant, accepted, simulate
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import WORD_END, complete
from charrnn.decoding.sampling import prepare_prompt
from charrnn.decoding.suggest import Suggestion, SuggestSettings, in_word, suggest
from charrnn.errors import CharRNNError
from charrnn.training.adapt import AdaptSettings

from conftest import greedy_text


@pytest.fixture(scope="module")
def lm(tiny_run):
    model, vocab, run = load_model(tiny_run)
    return model, vocab, run


def test_inside_a_word_the_suggestions_are_the_beam_completions_with_their_space(lm):
    model, vocab, _ = lm
    prompt = prepare_prompt(model, vocab, "ROMEO:\nI will not th")
    found = suggest(model, vocab, prompt, SuggestSettings(3, phrases="off"))
    expected = complete(model, vocab, prompt, 3, "word")
    assert [s.text for s in found] == [c.text for c in expected] and all(s.kind == "word" for s in found)
    assert [s.space for s in found] == [c.end == " " for c in expected]
    assert all(c.end in WORD_END for c in expected)


def test_at_a_word_start_next_words_only_when_asked(lm):
    model, vocab, _ = lm
    prompt = prepare_prompt(model, vocab, "ROMEO:\nI will ")
    assert not in_word(prompt.text) and in_word("I wi")
    assert suggest(model, vocab, prompt, SuggestSettings(3, word_start=False)) == []
    found = suggest(model, vocab, prompt, SuggestSettings(3, phrases="off"))
    assert len(found) == 3 and all(s.text[0] not in WORD_END for s in found)


def test_a_phrase_is_the_best_word_then_the_greedy_next_words(lm):
    model, vocab, _ = lm
    text = "ROMEO:\nI will "
    prompt = prepare_prompt(model, vocab, text)
    words = suggest(model, vocab, prompt, SuggestSettings(3, phrases="off"))
    separate = suggest(model, vocab, prompt, SuggestSettings(3, phrases="separate", phrase_prob=1e-4))
    phrase = separate[-1]
    assert separate[:3] == words and phrase.kind == "phrase" and len(separate) == 4
    assert phrase.text.startswith(words[0].text) and phrase.logprob < words[0].logprob
    assert sum(1 for i, c in enumerate(phrase.text) if c in WORD_END and phrase.text[i - 1] not in WORD_END) >= 1
    # After the first word and the character the model expects after it, the rest is greedy decoding.
    first = len(words[0].text) + 1
    assert greedy_text(model, vocab, text + phrase.text[:first], 40).startswith(phrase.text[first:])
    together = suggest(model, vocab, prompt, SuggestSettings(3, phrases="together", phrase_prob=1e-4))
    assert together == [phrase, *words[:2]]
    # No further word is certain: no phrase.
    assert all(s.kind == "word" for s in suggest(model, vocab, prompt, SuggestSettings(3, phrase_prob=1.0)))


@pytest.mark.parametrize("bad", [dict(num=0), dict(phrases="both"), dict(phrase_prob=0.0), dict(phrase_words=1),
                                 dict(max_len=61)])
def test_settings_are_checked(bad):
    with pytest.raises(CharRNNError):
        SuggestSettings(**bad)


def s(text: str, space: bool = True, kind: str = "word") -> Suggestion:
    return Suggestion(text, -1.0, kind, space)


def test_the_ideal_typist_accepts_the_longest_suggestion_that_ends_a_word():
    text = "to be, or not"
    # "b" is not where a word ends; "be" is, and auto-space types nothing where a comma follows.
    assert accepted(text, 3, [s("b"), s("be")], True) == (2, s("be"))
    assert accepted(text, 0, [s("to"), s("to be", kind="phrase")], True) == (5, s("to be", kind="phrase"))
    assert accepted(text, 0, [s("to")], True) == (3, s("to"))  # and the space after it
    assert accepted(text, 0, [s("to")], False) == (2, s("to"))
    assert accepted(text, 0, [s("to", space=False)], True) == (2, s("to", space=False))
    assert accepted(text, 7, [s("or no"), s("o")], True) == (0, None)
    assert accepted(text, 10, [s("not")], True) == (3, s("not"))  # the end of the text ends the word


def test_ksr_of_each_variant_on_a_short_text(lm):
    model, vocab, run = lm
    before = [p.detach().clone() for p in model.parameters()]
    text = "ROMEO:\nI will not thee, my lord.\n\nJULIET:\nI will not be so.\n"
    cache = {}
    plain = simulate(model, vocab, text, Variant("in words", word_start=False, auto_space=False),
                     SuggestSettings(), AdaptSettings(), cache, run.char_counts)
    spaced = simulate(model, vocab, text, Variant("auto-space"), SuggestSettings(), AdaptSettings(), cache,
                      run.char_counts)
    assert 0 < plain["ksr"] < 1 and plain["ksr"] <= spaced["ksr"]
    assert plain["ksr"] == pytest.approx(1 - plain["keystrokes"] / len(text))
    adapted = simulate(model, vocab, text, Variant("adapt", adapt=True), SuggestSettings(),
                       AdaptSettings(1e-2, 0, 16), cache, run.char_counts)
    assert adapted["adapt_steps"] == (len(text) - 1) // 16
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # its own copy learned
