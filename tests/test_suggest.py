"""Suggestions of each kind (decoding/suggest.py) and the ideal typist that measures them (benchmarks/bench_ksr.py)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.bench_ksr import WORD_SEARCH, Page, Searches, Variant, accepted, latency, simulate
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import WORD_END, Completion, complete
from charrnn.decoding.sampling import prepare_prompt
from charrnn.decoding.suggest import SEARCH, Suggestion, SuggestSettings, in_word, offer, search, suggest
from charrnn.errors import CharRNNError
from charrnn.training.adapt import AdaptSettings

from conftest import greedy_text

WORDS_ONLY = dict(rank="probability", punctuation=False, phrases="off")


@pytest.fixture(scope="module")
def lm(tiny_run):
    model, vocab, run = load_model(tiny_run)
    return model, vocab, run


def found(*items: tuple[str, float, str, float]) -> list[Completion]:
    """A search's completions: (text, probability, the likeliest space or new line after it, that one's share)."""
    return [Completion(text, math.log(p), True, end, math.log(p * share)) for text, p, end, share in items]


def test_the_search_runs_to_the_space_or_new_line_after_the_word(lm):
    model, vocab, _ = lm
    prompt = prepare_prompt(model, vocab, "ROMEO:\nI will not th")
    (completions,) = search(model, vocab, [prompt], SuggestSettings())
    expected = complete(model, vocab, prompt, 10, SEARCH, 33, 8)
    assert completions == expected and all(c.end in " \n\t" for c in completions if c.ended)
    assert all(c.end_logprob <= c.logprob + 1e-9 for c in completions)


def test_words_sum_over_what_follows_them_and_say_whether_a_space_does():
    completions = found(("lord", 0.3, " ", 0.8), ("lord,", 0.2, " ", 0.6), ("love", 0.25, " ", 1.0),
                        ("lady.", 0.1, "\n", 0.9), ("lad", 0.05, " ", 1.0))
    shown = offer(None, None, prepare_text("my l"), completions, SuggestSettings(**WORDS_ONLY))
    assert [s.text for s in shown] == ["lord", "love", "lady"] and all(s.kind == "word" for s in shown)
    assert shown[0].prob == pytest.approx(0.5) and [s.space for s in shown] == [True, True, False]


def test_a_word_comes_with_its_punctuation_and_new_line_where_the_model_expects_them():
    completions = found(("ROMEO:", 0.6, "\n", 0.95), ("ROMEO", 0.05, " ", 1.0), ("ROSS:", 0.2, "\n", 0.95))
    by_probability = offer(None, None, prepare_text("\n\nRO"), completions,
                           SuggestSettings(rank="probability", phrases="off"))
    assert by_probability[0] == Suggestion("ROMEO:\n", math.log(0.6 * 0.95), "punctuation", False)
    saving = offer(None, None, prepare_text("\n\nRO"), completions, SuggestSettings(phrases="off"))
    assert {"ROMEO:\n", "ROSS:\n"} <= {s.text for s in saving} and len(saving) == 3
    assert [s.prob for s in saving] == sorted((s.prob for s in saving), reverse=True)
    assert len({s.text for s in saving}) == 3  # no two alike


def test_ranked_by_saving_a_likely_short_word_can_give_way_to_a_longer_sure_thing():
    # "a" saves only its auto-space; the word with its punctuation saves the comma and the space moved after it.
    completions = found(("a", 0.3, " ", 1.0), ("and", 0.28, " ", 1.0), ("as", 0.22, " ", 1.0),
                        ("all,", 0.2, " ", 1.0))
    saving = offer(None, None, prepare_text("of "), completions, SuggestSettings(phrases="off"))
    assert "all," in [s.text for s in saving]
    by_probability = offer(None, None, prepare_text("of "), completions, SuggestSettings(**WORDS_ONLY))
    assert [s.text for s in by_probability] == ["a", "and", "as"]


def test_without_auto_space_a_word_whose_only_saving_is_its_space_gives_way():
    completions = found(("I", 0.5, " ", 1.0), ("my", 0.2, " ", 1.0), ("the", 0.15, " ", 1.0), ("thou", 0.14, " ", 1.0))
    spaced = offer(None, None, prepare_text("and "), completions, SuggestSettings(phrases="off"))
    assert [s.text for s in spaced] == ["I", "my", "the"]
    unspaced = offer(None, None, prepare_text("and "), completions, SuggestSettings(phrases="off", auto_space=False))
    assert sorted(s.text for s in unspaced) == ["my", "the", "thou"]


def prepare_text(text: str):
    """A prompt whose text is `text` (offer reads only the text when no phrase is asked for)."""
    return type("P", (), {"text": text})()


def test_at_a_word_start_next_words_only_when_asked(lm):
    model, vocab, _ = lm
    prompt = prepare_prompt(model, vocab, "ROMEO:\nI will ")
    assert not in_word(prompt.text) and in_word("I wi")
    assert suggest(model, vocab, prompt, SuggestSettings(3, word_start=False)) == []
    shown = suggest(model, vocab, prompt, SuggestSettings(3, **WORDS_ONLY))
    assert len(shown) == 3 and all(s.text[0] not in WORD_END for s in shown)


def test_a_phrase_is_the_best_word_then_the_greedy_next_words(lm):
    model, vocab, _ = lm
    text = "ROMEO:\nI will "
    prompt = prepare_prompt(model, vocab, text)
    words = suggest(model, vocab, prompt, SuggestSettings(3, **WORDS_ONLY))
    separate = suggest(model, vocab, prompt, SuggestSettings(3, **{**WORDS_ONLY, "phrases": "separate"},
                                                            phrase_prob=1e-4))
    phrase = separate[-1]
    assert separate[:3] == words and phrase.kind == "phrase" and len(separate) == 4
    assert phrase.text.startswith(words[0].text) and phrase.logprob < words[0].logprob
    assert sum(1 for i, c in enumerate(phrase.text) if c in WORD_END and phrase.text[i - 1] not in WORD_END) >= 1
    # After the first word and the character the model expects after it, the rest is greedy decoding.
    first = len(words[0].text) + 1
    assert greedy_text(model, vocab, text + phrase.text[:first], 40).startswith(phrase.text[first:])
    together = suggest(model, vocab, prompt, SuggestSettings(3, **{**WORDS_ONLY, "phrases": "together"},
                                                            phrase_prob=1e-4))
    assert together == [phrase, *words[:2]]
    # No further word is certain: no phrase.
    assert all(s.kind != "phrase" for s in suggest(model, vocab, prompt, SuggestSettings(3, phrase_prob=1.0)))


@pytest.mark.parametrize("bad", [dict(num=0), dict(phrases="both"), dict(phrase_prob=0.0), dict(phrase_words=1),
                                 dict(max_len=61), dict(rank="length"), dict(width=0), dict(num=5, pool=4)])
def test_settings_are_checked(bad):
    with pytest.raises(CharRNNError):
        SuggestSettings(**bad)


def s(text: str, space: bool = True, kind: str = "word") -> Suggestion:
    return Suggestion(text, -1.0, kind, space)


def test_the_ideal_typist_accepts_what_leaves_the_most_typed():
    text = "to be, or not"
    # "b" is not where a word ends; "be" is, and auto-space types nothing where a comma follows.
    assert accepted(text, 3, [s("b"), s("be")], True) == (2, s("be"))
    assert accepted(text, 3, [s("be"), s("be,", kind="punctuation")], True) == (4, s("be,", kind="punctuation"))
    assert accepted(text, 0, [s("to"), s("to be", kind="phrase")], True) == (5, s("to be", kind="phrase"))
    assert accepted(text, 0, [s("to")], True) == (3, s("to"))  # and the space after it
    assert accepted(text, 0, [s("to")], False) == (2, s("to"))
    assert accepted(text, 0, [s("to", space=False)], True) == (2, s("to", space=False))
    assert accepted(text, 7, [s("or no"), s("o")], True) == (0, None)
    assert accepted(text, 10, [s("not")], True) == (3, s("not"))  # the end of the text ends the word
    # A space the text does not want, where no punctuation or new line takes its place, costs a Backspace.
    assert accepted("I&c", 0, [s("I")], True) == (0, None)
    assert accepted("and&c", 0, [s("and")], True) == (2, s("and"))


def test_the_page_moves_an_auto_space_after_punctuation_and_enter_replaces_it():
    page = Page()
    page.accept(s("lord"), True)
    assert (page.text, page.spaced) == ("lord ", True)
    page.type(",")
    assert (page.text, page.spaced) == ("lord, ", True)
    page.type("\n")
    assert (page.text, page.spaced) == ("lord,\n", False)
    page.accept(s("I", space=False), True)
    page.type(",")
    assert page.text == "lord,\nI,"


def test_ksr_of_each_variant_on_a_short_text(lm):
    model, vocab, run = lm
    before = [p.detach().clone() for p in model.parameters()]
    text = "ROMEO:\nI will not thee, my lord.\n\nJULIET:\nI will not be so.\n"
    searches = Searches(model, vocab, text, run.char_counts)
    settings = SuggestSettings()
    plain = simulate(model, vocab, text, Variant("in words", dict(word_start=False), auto_space=False),
                     settings, AdaptSettings(), searches, run.char_counts)
    spaced = simulate(model, vocab, text, Variant("auto-space"), settings, AdaptSettings(), searches, run.char_counts)
    assert 0 < plain["ksr"] < 1 and plain["ksr"] <= spaced["ksr"]
    assert plain["ksr"] == pytest.approx(1 - plain["keystrokes"] / len(text))
    assert plain["keystrokes"] == sum(plain["accepted"].values()) + sum(plain["by_hand"].values())
    # Searches computed ahead in batches give what single requests give.
    alone = search(model, vocab, [searches.prompts[20]], settings)[0]
    assert [c.text for c in searches.at(settings, 20)] == [c.text for c in alone]
    times = latency(model, vocab, searches, [Variant("auto-space")], settings, 5)
    assert set(times) == {"auto-space", WORD_SEARCH} and all(0 < p50 <= p95 for p50, p95 in times.values())
    adapted = simulate(model, vocab, text, Variant("adapt", adapt=True), settings, AdaptSettings(1e-2, 0, 16),
                       searches, run.char_counts)
    assert 1 <= adapted["adapt_steps"] <= (len(text) - 1) // 16  # a step per 16 characters typed
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # its own copy learned
