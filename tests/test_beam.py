"""Tests for charrnn.decoding.beam: beam search against exhaustive enumeration, and prefix completion."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.data import Vocab
from charrnn.decoding.beam import LINE_END, PHRASE_END, UNTIL, WORD_END, beam_search, complete, complete_all
from charrnn.decoding.sampling import prepare_prompt
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, ModelConfig

from conftest import greedy_text


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, vocab, cfg = load_model(tiny_run)
    return model, vocab, cfg


def random_model(vocab_size: int, seed: int = 0, scale: float = 6.0, cell: str = "lstm") -> CharRNN:
    """A small untrained model; `scale` sharpens its predictions so the best sequences are well apart."""
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, layers=2, hidden=16, embed=8))
    with torch.no_grad():
        model.head.weight.mul_(scale)
    return model.eval()


def exhaustive(model: CharRNN, vocab: Vocab, prime: str, length: int) -> dict[str, float]:
    """log P(text | prime) of every text of exactly `length` characters, through the fused forward."""
    seqs = list(itertools.product(range(len(vocab)), repeat=length))
    prime_ids = vocab.encode(prime).tolist()
    ids = torch.tensor([prime_ids + list(s) for s in seqs])
    with torch.inference_mode():
        logits, _ = model(ids)
    n = len(prime_ids)
    logp = logits[:, n - 1 : -1].double().log_softmax(-1)
    scores = logp.gather(-1, ids[:, n:, None]).squeeze(-1).sum(-1)
    return {vocab.decode(s): scores[i].item() for i, s in enumerate(seqs)}


def exhaustive_one(model: CharRNN, vocab: Vocab, prime: str, text: str) -> float:
    """log P(text | prime) through the fused forward."""
    ids = torch.tensor([vocab.encode(prime + text).tolist()])
    with torch.inference_mode():
        logits, _ = model(ids)
    n = len(prime)
    logp = logits[0, n - 1 : -1].double().log_softmax(-1)
    return logp.gather(-1, ids[0, n:, None]).sum().item()


def count_steps(monkeypatch, model: CharRNN) -> list[int]:
    """Wrap model.step; the list gets the batch size of every call."""
    calls: list[int] = []
    step = model.step

    def counted(x, state):
        calls.append(int(x.shape[0]))
        return step(x, state)

    monkeypatch.setattr(model, "step", counted)
    return calls


# --- beam_search --------------------------------------------------------------------------------


def test_width_one_is_greedy(tiny):
    model, vocab, _ = tiny
    for prime in ("ROMEO:", "The ", "\n"):
        prompt = prepare_prompt(model, vocab, prime)
        hyps = beam_search(model, vocab, prompt, width=1, max_len=40)
        assert len(hyps) == 1
        assert hyps[0].text == greedy_text(model, vocab, prime, 40)
        assert hyps[0].logprob == pytest.approx(exhaustive_one(model, vocab, prime, hyps[0].text), abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_finds_the_exhaustive_best(seed):
    vocab = Vocab(list("abcd"))
    model = random_model(4, seed=seed)
    truth = exhaustive(model, vocab, "ab", 4)
    prompt = prepare_prompt(model, vocab, "ab")
    hyps = beam_search(model, vocab, prompt, width=4**3, max_len=4, num=10)
    best_text = max(truth, key=truth.get)
    assert hyps[0].text == best_text
    assert hyps[0].logprob == pytest.approx(truth[best_text], abs=1e-6)
    # The 10 returned are the exhaustive top 10, in order.
    top10 = sorted(truth, key=truth.get, reverse=True)[:10]
    assert [h.text for h in hyps] == top10
    texts = [h.text for h in hyps]
    assert len(set(texts)) == len(texts)
    assert all(len(t) == 4 for t in texts)
    for h in hyps:
        assert h.logprob == pytest.approx(truth[h.text], abs=1e-6)
        assert h.score == h.logprob  # length_penalty 0: the score is the log-probability
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)


def test_narrow_beam_results_are_consistent(tiny):
    model, vocab, _ = tiny
    prime = "KING HENRY:\n"
    prompt = prepare_prompt(model, vocab, prime)
    hyps = beam_search(model, vocab, prompt, width=6, max_len=12, num=6, length_penalty=0.7)
    assert 1 <= len(hyps) <= 6
    texts = [h.text for h in hyps]
    assert len(set(texts)) == len(texts)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert len(h.text) == 12
        assert h.logprob == pytest.approx(exhaustive_one(model, vocab, prime, h.text), abs=1e-4)
        assert h.score == pytest.approx(h.logprob / len(h.text) ** 0.7)


def test_num_larger_than_width_widens_the_beam():
    vocab = Vocab(list("abcd"))
    model = random_model(4, seed=5)
    truth = exhaustive(model, vocab, "ab", 2)
    hyps = beam_search(model, vocab, prepare_prompt(model, vocab, "ab"), width=1, max_len=2, num=16)
    assert sorted(h.text for h in hyps) == sorted(truth)
    assert [h.text for h in hyps] == sorted(truth, key=truth.get, reverse=True)


def test_all_beams_advance_in_one_batched_step_per_character(tiny, monkeypatch):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:")
    calls = count_steps(monkeypatch, model)
    max_len, width = 15, 5
    hyps = beam_search(model, vocab, prompt, width=width, max_len=max_len, num=3, length_penalty=1.0)
    assert len(hyps) == 3
    assert 1 <= len(calls) <= max_len
    assert calls == [width] * len(calls)  # every live beam in the one call, never one call per beam


def test_batched_steps_on_the_exhaustive_model(monkeypatch):
    vocab = Vocab(list("abcd"))
    model = random_model(4, seed=3)
    calls = count_steps(monkeypatch, model)
    beam_search(model, vocab, prepare_prompt(model, vocab, "ab"), width=64, max_len=4, num=64)
    # The beam holds every prefix: 4, 16 and 64 of them after 1, 2 and 3 characters.
    assert calls == [4, 16, 64]


def test_stop_strings_end_hypotheses(tiny):
    model, vocab, _ = tiny
    prime = "First Citizen:\n"
    prompt = prepare_prompt(model, vocab, prime)
    max_len = 25
    hyps = beam_search(model, vocab, prompt, width=8, max_len=max_len, num=8, stop=[" "])
    assert hyps
    ended = 0
    for h in hyps:
        assert " " not in h.text[:-1]  # nothing continues past a stop
        assert h.text.endswith(" ") or len(h.text) == max_len
        ended += h.text.endswith(" ")
        assert h.logprob == pytest.approx(exhaustive_one(model, vocab, prime, h.text), abs=1e-4)
    assert ended >= 1


def test_stop_on_the_first_character():
    vocab = Vocab(list("abcd"))
    model = random_model(4, seed=0)
    truth = exhaustive(model, vocab, "ab", 1)
    hyps = beam_search(model, vocab, prepare_prompt(model, vocab, "ab"), width=4, max_len=10, num=4,
                       stop=list(vocab.chars))
    assert [h.text for h in hyps] == sorted(truth, key=truth.get, reverse=True)


def test_length_penalty_ranks_by_logprob_per_length_power():
    vocab = Vocab(list("abcd"))
    model = random_model(4, seed=7)
    prompt = prepare_prompt(model, vocab, "ab")
    # Stopping on "d" gives hypotheses of every length from 1 to 5; the beam is exhaustive (4**4 = 256).
    stop = ["d"]
    all_texts = {}
    for n in range(1, 6):
        for text, lp in exhaustive(model, vocab, "ab", n).items():
            if "d" not in text[:-1] and (text.endswith("d") or n == 5):
                all_texts[text] = lp
    rankings = {}
    for penalty in (0.0, 1.0, 2.0):
        hyps = beam_search(model, vocab, prompt, width=256, max_len=5, num=8, stop=stop, length_penalty=penalty)
        expected = sorted(all_texts, key=lambda t: all_texts[t] / len(t) ** penalty, reverse=True)[:8]
        assert [h.text for h in hyps] == expected, penalty
        for h in hyps:
            assert h.logprob == pytest.approx(all_texts[h.text], abs=1e-6)
            assert h.score == pytest.approx(h.logprob / len(h.text) ** penalty, abs=1e-9)
        rankings[penalty] = [h.text for h in hyps]
    # The penalty favours longer texts: the mean length of the best grows with it, and the ranking changes.
    mean_len = {p: sum(map(len, r)) / len(r) for p, r in rankings.items()}
    assert mean_len[0.0] < mean_len[1.0] <= mean_len[2.0]
    assert rankings[0.0] != rankings[1.0]


def test_beam_search_argument_errors(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "a")
    for kwargs in ({"width": 0, "max_len": 5}, {"width": 2, "max_len": 0}, {"width": 2, "max_len": 5, "num": 0}):
        with pytest.raises(CharRNNError):
            beam_search(model, vocab, prompt, **kwargs)


def test_beam_from_an_empty_prime(tiny):
    model, vocab, cfg = tiny
    counts = [0] * len(vocab)
    counts[vocab.index["T"]] = 50
    prompt = prepare_prompt(model, vocab, "", char_counts=counts)
    hyps = beam_search(model, vocab, prompt, width=3, max_len=6, num=2)
    assert hyps[0].text.startswith("T")
    assert len(hyps) == 2 and all(len(h.text) == 6 for h in hyps)


# --- complete -----------------------------------------------------------------------------------


@pytest.mark.parametrize("until", ["word", "phrase", "line"])
def test_complete_returns_distinct_sorted_probable_completions(tiny, until):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:\nI will not th")
    for num in (1, 3, 5):
        found = complete(model, vocab, prompt, num=num, until=until, max_len=20)
        assert 1 <= len(found) <= num
        texts = [c.text for c in found]
        assert len(set(texts)) == len(texts)
        assert all(t.strip() for t in texts)  # never empty
        assert not any(ch in UNTIL[until] for t in texts for ch in t)  # the ending character is left out
        probs = [c.prob for c in found]
        assert all(0 < p <= 1 for p in probs)
        assert probs == sorted(probs, reverse=True)
        assert all(c.prob == pytest.approx(math.exp(c.logprob)) for c in found)
        assert sum(probs) <= 1 + 1e-9


def test_complete_more_results_extend_the_same_list(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "KING:\nWhat say yo")
    three = complete(model, vocab, prompt, num=3)
    five = complete(model, vocab, prompt, num=5, width=max(8, 2 * 3))
    assert [c.text for c in five[:3]] == [c.text for c in three]


def test_complete_bad_until(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "a")
    for until in ("sentence", "", "Word"):
        with pytest.raises(CharRNNError, match="until"):
            complete(model, vocab, prompt, until=until)


def test_until_sets():
    assert {" ", "\n", "\t", ".", ",", "!", "?", ";", ":"} <= WORD_END
    assert not {"'", "-", "_", "a", "Z", "0"} & WORD_END
    assert PHRASE_END == set(".,;:!?\n")
    assert LINE_END == {"\n"}


@pytest.mark.parametrize("seed", [0, 1])
def test_complete_merges_ending_characters_exactly(seed):
    """P(completion) = sum over the characters that can end it, checked against every sequence."""
    vocab = Vocab([" ", ".", "a", "b"])  # two ways to end a word
    model = random_model(4, seed=seed, scale=2.0)
    prime, max_len = "ab", 3
    expected: dict[str, float] = {}
    for n in range(2, max_len + 1):
        for text, lp in exhaustive(model, vocab, prime, n).items():
            word, end = text[:-1], text[-1]
            if end in " ." and not set(word) & {" ", "."}:
                expected[word] = expected.get(word, 0.0) + math.exp(lp)
    assert len(expected) == 2 + 4  # a, b, aa, ab, ba, bb
    prompt = prepare_prompt(model, vocab, prime)
    found = complete(model, vocab, prompt, num=50, until="word", max_len=max_len, width=4**max_len)
    got = {c.text: c.prob for c in found if len(c.text) < max_len}  # shorter than max_len: the word ended
    assert got.keys() == expected.keys()
    for word, p in expected.items():
        assert got[word] == pytest.approx(p, abs=1e-6), word
    # Sorted by the merged probability, not by either ending alone.
    assert [c.prob for c in found] == sorted((c.prob for c in found), reverse=True)


def test_complete_skips_empty_completions():
    vocab = Vocab([" ", ".", "a", "b"])
    model = random_model(4, seed=3, scale=2.0)
    found = complete(model, vocab, prepare_prompt(model, vocab, "ab"), num=50, max_len=3, width=64)
    assert all(c.text and c.text.strip() for c in found)
    assert "" not in {c.text for c in found}


def test_complete_all_gives_each_prompt_what_it_gets_alone(tiny):
    model, vocab, _ = tiny
    prefixes, lengths = ["To be, or not to b", "ROMEO:\nI", "Th", "a"], [30, 3, 12, 1]
    prompts = [prepare_prompt(model, vocab, p) for p in prefixes]
    for until in UNTIL:
        together = complete_all(model, vocab, prompts, 3, until, lengths)
        for prompt, max_len, got in zip(prompts, lengths, together, strict=True):
            alone = complete(model, vocab, prompt, 3, until, max_len)
            assert [(c.text, c.ended) for c in got] == [(c.text, c.ended) for c in alone]
            assert all(abs(a.logprob - b.logprob) < 1e-6 for a, b in zip(got, alone, strict=True))
