"""Autocomplete with cached states: the same answers as a fresh beam search, for less work."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.decoding.beam import complete
from charrnn.decoding.sampling import prepare_prompt
from charrnn.errors import CharRNNError
from charrnn.serve import limits
from charrnn.serve.autocomplete import Autocompleter


@pytest.fixture(scope="module")
def lm(tiny_run):
    model, vocab, run = load_model(tiny_run)
    return SimpleNamespace(model=model, vocab=vocab, char_counts=run.char_counts)


def ask(ac, lm, text, **kwargs):
    return ac.complete(lm.model, lm.vocab, text, char_counts=lm.char_counts, **kwargs)


def fresh(lm, text, num=3, until="word", max_len=30):
    prompt = prepare_prompt(lm.model, lm.vocab, text, char_counts=lm.char_counts)
    return complete(lm.model, lm.vocab, prompt, num, until, max_len)


def same(a, b):
    return [c.text for c in a] == [c.text for c in b] and all(
        abs(x.logprob - y.logprob) < 1e-4 for x, y in zip(a, b, strict=True))


TEXT = "ROMEO:\nWhat light through yonder window breaks? It is the ea"


def test_cold_extend_and_cached_answers_agree_with_a_fresh_search(lm):
    ac = Autocompleter()
    first = ask(ac, lm, TEXT[:30])
    assert first.cache == "cold" and same(first.completions, fresh(lm, TEXT[:30]))
    for i in range(31, len(TEXT) + 1):  # the user types on, one character at a time
        result = ask(ac, lm, TEXT[:i])
        assert result.cache == "extend"
        assert same(result.completions, fresh(lm, TEXT[:i])), TEXT[:i]
    again = ask(ac, lm, TEXT[:40])  # Backspace back to a text seen before
    assert again.cache == "result" and same(again.completions, fresh(lm, TEXT[:40]))
    assert again.text_len == 40 and 0 < again.ms < first.ms  # an answer kept costs less than a search


def test_completions_are_bounded_and_well_formed(lm):
    ac = Autocompleter()
    result = ask(ac, lm, "To be, or not to b", num=100, max_len=10_000)
    assert 1 <= len(result.completions) <= limits.COMPLETIONS.hi
    for c in result.completions:
        assert c.text and len(c.text) <= limits.COMPLETION_LENGTH.hi and 0 < c.prob <= 1
    probs = [c.prob for c in result.completions]
    assert probs == sorted(probs, reverse=True)
    assert len(ask(ac, lm, "To be", num=0).completions) <= 1
    with pytest.raises(CharRNNError, match="until"):
        ask(ac, lm, "To be", until="sentence")


def test_unknown_characters_are_skipped_and_reported(lm):
    ac = Autocompleter()
    result = ask(ac, lm, "To be, or not ☃ to b")
    assert result.skipped == "☃"
    assert same(result.completions, fresh(lm, "To be, or not  to b"))


def test_long_texts_read_only_the_context(lm):
    ac = Autocompleter(context=64)
    text = ("All the world's a stage, and all the men and women merely players. " * 300) + "They have their ex"
    result = ask(ac, lm, text)
    assert result.text_len == limits.MAX_COMPLETE_TEXT
    assert same(result.completions, fresh(lm, text[-64:]))


def test_empty_text_completes_the_first_word(lm):
    result = ask(Autocompleter(), lm, "")
    assert result.completions and all(c.text.strip() for c in result.completions)


def test_threads_get_the_same_answers(lm):
    texts = [TEXT[:n] for n in range(20, 60, 3)]
    expected = {t: [c.text for c in fresh(lm, t)] for t in texts}
    ac = Autocompleter()
    errors = []

    def worker(order):
        torch.set_num_threads(1)
        for t in order:
            got = [c.text for c in ask(ac, lm, t).completions]
            if got != expected[t]:
                errors.append((t, got))

    threads = [threading.Thread(target=worker, args=(texts[i::2] + texts,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_caches_stay_bounded(lm):
    ac = Autocompleter(max_states=5, max_results=7)
    for n in range(1, 40):
        ask(ac, lm, TEXT[:n])
    cache = ac._caches[lm.model]
    assert len(cache.states) <= 5 and len(cache.results) <= 7


def test_a_model_loaded_again_starts_with_empty_caches(lm, tiny_run):
    ac = Autocompleter()
    assert ask(ac, lm, TEXT[:20]).cache == "cold" and ask(ac, lm, TEXT[:20]).cache == "result"
    model, vocab, run = load_model(tiny_run)  # e.g. the registry saw new weights
    again = SimpleNamespace(model=model, vocab=vocab, char_counts=run.char_counts)
    assert ask(ac, again, TEXT[:20]).cache == "cold"
