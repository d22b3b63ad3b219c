"""Seq2seq through serve.batcher: sources decoded in threads that share steps get what they get alone (greedy
and beam, sources of different lengths), a session's memory stays bounded however many batches it shares,
and concurrent Pronounce requests through the service's batcher answer as they do alone."""

from __future__ import annotations

import random
import threading

import pytest
import torch
from helpers import run_in_threads

from charrnn.cli import main
from charrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig
from charrnn.seq2seq.cmudict import Lexicon
from charrnn.seq2seq.translate import decode_ids
from charrnn.serve.batcher import Batcher
from charrnn.serve.pronounce import Pronouncer
from charrnn.serve.registry import Registry

TOGETHER_S = 0.5  # long enough that threads started together always meet (the server's default is 2 ms)


def tiny(cell: str, attention: str) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(source_vocab_size=9, target_vocab_size=11, cell=cell, layers=2, hidden=16, embed=8,
                        attention=attention)
    return Seq2Seq(cfg).eval()


def sources(seed: int, n: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(1, 8) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def together(jobs: list, begin_of: object) -> list:
    """Each job() in its own thread, all starting to decode at once (they meet after encoding)."""
    meet = threading.Barrier(len(jobs), timeout=60)
    begin = type(begin_of).begin
    begin_of.begin = lambda src, lengths: (meet.wait(), begin(begin_of, src, lengths))[1]
    try:
        return run_in_threads(jobs)
    finally:
        del begin_of.begin


@pytest.mark.parametrize(("cell", "attention"), [("lstm", "general"), ("gru", "additive")])
def test_sources_in_shared_steps_get_what_they_get_alone(cell, attention):
    model = tiny(cell, attention)
    torch.set_num_threads(1)
    # Each request: its sources (of 1 to 12 tokens), output limits, beam width and number of outputs.
    requests = [(sources(seed, n), beam, num) for seed, n, beam, num in
                ((1, 3, 1, 1), (2, 5, 5, 3), (3, 1, 5, 5), (4, 4, 1, 1), (5, 2, 5, 1))]

    def decode(stepper, srcs, beam, num):
        found = decode_ids(model, srcs, [len(s) + 4 for s in srcs], beam, num, stepper=stepper)
        return [[(h.tokens, h.logprob) for h in hyps] for hyps in found]

    alone = [decode(None, *r) for r in requests]
    batcher = Batcher(wait_s=TOGETHER_S)
    memory_rows: list[int] = []
    step = type(model).step
    model.step = lambda x, state: (memory_rows.append(len(state.memory.mask)), step(model, x, state))[1]

    def job(r):
        with batcher.session(model) as session:
            return decode(session, *r)

    try:
        got = together([lambda r=r: job(r) for r in requests], model)
    finally:
        del model.step
    for hyps, ref in zip(got, alone, strict=True):
        assert [[t for t, _ in h] for h in hyps] == [[t for t, _ in h] for h in ref]
        assert max(abs(a - b) for h, r in zip(hyps, ref, strict=True)
                   for (_, a), (_, b) in zip(h, r, strict=True)) < 1e-5
    stats = batcher.stats(model)
    assert stats.most_sessions == len(requests) and stats.batches < stats.steps / 2
    # A shared step's memory: every session's, none more than twice the sources its rows still use.
    assert max(memory_rows) <= 2 * sum(len(srcs) for srcs, _, _ in requests)


def test_a_session_memory_stays_bounded_over_many_batches():
    """As the batcher does it: a state joined with another request's, stepped, and its rows taken back, 50 times
    over; its memory never exceeds twice its sources, and its steps stay those it takes alone."""
    model = tiny("lstm", "general")
    mine = sources(6, 3)
    with torch.inference_mode():
        x, state = model.begin(*_padded(mine))
        x_alone, state_alone = x, state
        for i in range(50):
            other_x, other = model.begin(*_padded(sources(100 + i, 2 + i % 4)))
            logits, shared = model.step(torch.cat([x, other_x]), model.concat([state, other]))
            state = model.reorder(shared, torch.arange(len(x)))
            logits_alone, state_alone = model.step(x_alone, state_alone)
            assert torch.allclose(logits[: len(x)], logits_alone, atol=1e-5)
            assert len(state.memory.mask) <= 2 * len(mine)
            x = x_alone = logits_alone.argmax(-1)


def _padded(srcs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, srcs))
    return torch.tensor([s + [0] * (width - len(s)) for s in srcs]), torch.tensor([len(s) for s in srcs])


# --- the Pronounce tab's service, on a tiny letters-to-phonemes model trained here --------------------------

PHONEMES = dict(zip("abcdefghijklmnopqrstuvwxyz'", ["AE1", "B", "K", "D", "EH0", "F", "G", "HH", "IH1", "JH", "K",
                                                    "L", "M", "N", "OW1", "P", "K", "R", "S", "T", "AH0", "V", "W",
                                                    "K", "Y", "Z", "AH0"], strict=True))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Registry, Lexicon, list[str]]:
    """The registry of the tiny model, its training pairs as the dictionary, and the words in it."""
    root = tmp_path_factory.mktemp("s2s-batcher")
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
                    for _ in range(800)})
    pairs = root / "letters.tsv"
    pairs.write_text("".join(f"{w}\t{' '.join(PHONEMES[c] for c in w)}\n" for w in words), encoding="utf-8")
    assert main(["seq2seq", "train", str(pairs), "--out", str(root / "models" / "tiny-g2p"), "--target-tokens",
                 "space", "--layers", "1", "--hidden", "32", "--embed", "16", "--dropout", "0", "--batch-size", "32",
                 "--lr", "1e-2", "--threads", "1", "--quiet", "--max-steps", "120", "--eval-every", "120"]) == 0
    return Registry(root / "models"), Lexicon.load(pairs), words


def test_pronounce_requests_together_answer_as_alone(served):
    registry, lexicon, words = served
    texts = [f"hello {words[0]} world", "the quick brown fox jumps", "a", f"{words[5]} words {words[9]} never saw"]
    settings = [(5, 3), (1, 1), (8, 5), (3, 2)]
    alone = Pronouncer(registry, lexicon)
    expected = [alone.pronounce("tiny-g2p", t, *s) for t, s in zip(texts, settings, strict=True)]
    batcher = Batcher(wait_s=TOGETHER_S)
    shared = Pronouncer(registry, lexicon, batcher)
    model = shared.translator("tiny-g2p").model
    got = together([lambda t=t, s=s: shared.pronounce("tiny-g2p", t, *s) for t, s in zip(texts, settings,
                                                                                        strict=True)], model)
    assert expected[0]["words"][1]["dictionary"]  # the dictionary's pronunciations are scored too
    for answer, ref in zip(got, expected, strict=True):
        (words, logprobs), (ref_words, ref_logprobs) = _parts(answer), _parts(ref)
        assert words == ref_words
        assert max(abs(a - b) for a, b in zip(logprobs, ref_logprobs, strict=True)) < 1e-4
    assert batcher.stats(model).most_sessions >= 2  # they shared steps (all of them, on a machine not overloaded)


def _parts(answer: dict) -> tuple[list, list[float]]:
    """What an answer says but its log-probabilities (alone and together differ by float rounding), and those."""
    words = [(w["word"], [(o["arpabet"], o["ipa"], o["in_dictionary"]) for o in w["outputs"]],
              [d["arpabet"] for d in w["dictionary"]], w["attention"]["phonemes"]) for w in answer["words"]]
    logprobs = [item["logprob"] for w in answer["words"] for item in (*w["outputs"], *w["dictionary"])]
    return words, logprobs
