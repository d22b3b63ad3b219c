"""charrnn.serve.batcher: requests decoded together in threads get what each would get alone."""

from __future__ import annotations

import threading

import pytest
import torch
from helpers import run_in_threads

from charrnn.checkpoint import load_model
from charrnn.data import Vocab
from charrnn.decoding.beam import beam_search, complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.models.rnn import CharRNN, ModelConfig
from charrnn.serve.autocomplete import Autocompleter
from charrnn.serve.batcher import Batcher

TOGETHER_S = 0.5  # long enough that threads started together always meet (the server's default is 2 ms)


@pytest.fixture(scope="module")
def lm(tiny_run):
    model, vocab, _ = load_model(tiny_run)
    return model, vocab


# Each request: a completion (prefix, num, until, max_len, width) or a sample (prime, length, settings).
COMPLETIONS = [("To be, or not to b", 3, "word", 30, None), ("ROMEO:\nI", 2, "line", 20, 4),
               ("The king", 5, "phrase", 40, 12), ("a", 1, "word", 10, 1)]
SAMPLES = [("ROMEO:", 80, SamplingSettings(0.8, seed=1)), ("ROMEO:", 80, SamplingSettings(0.8, seed=2)),
           ("First Citizen:", 60, SamplingSettings(1.2, top_k=10, seed=7)),
           ("Ay", 50, SamplingSettings(0.0)), ("\n", 70, SamplingSettings(1.0, top_p=0.9, seed=3))]


def completions(model, vocab: Vocab, request) -> list[tuple[str, float, bool]]:
    prefix, num, until, max_len, width = request
    found = complete(model, vocab, prepare_prompt(model, vocab, prefix), num, until, max_len, width)
    return [(c.text, c.logprob, c.ended) for c in found]


def sample(model, vocab: Vocab, request) -> str:
    prime, length, settings = request
    return "".join(generate(model, vocab, prepare_prompt(model, vocab, prime), length, settings))


def together(batcher: Batcher, model, jobs: list) -> list:
    """Run every job(decodable) in its own thread, each through its own session, all at once: each job
    reads a prompt, and no read goes on until every session has joined (by reading)."""
    meet = threading.Barrier(len(jobs), timeout=60)
    model.read = lambda ids, state: (meet.wait(), type(model).read(model, ids, state))[1]

    def in_session(job):
        with batcher.session(model) as session:
            return job(session)

    try:
        return run_in_threads([lambda job=job: in_session(job) for job in jobs])
    finally:
        del model.read


def assert_same_completions(got, alone):
    assert [(text, ended) for text, _, ended in got] == [(text, ended) for text, _, ended in alone]
    for (_, lp, _), (_, lp_alone, _) in zip(got, alone, strict=True):
        assert abs(lp - lp_alone) < 1e-5


def test_requests_together_get_what_they_get_alone(lm):
    model, vocab = lm
    torch.set_num_threads(1)
    alone_c = [completions(model, vocab, r) for r in COMPLETIONS]
    alone_s = [sample(model, vocab, r) for r in SAMPLES]
    batcher = Batcher(wait_s=TOGETHER_S)
    jobs = [lambda m, r=r: completions(m, vocab, r) for r in COMPLETIONS]
    jobs += [lambda m, r=r: sample(m, vocab, r) for r in SAMPLES]
    results = together(batcher, model, jobs)
    for got, alone in zip(results[: len(COMPLETIONS)], alone_c, strict=True):
        assert_same_completions(got, alone)
    assert results[len(COMPLETIONS) :] == alone_s
    stats = batcher.stats(model)
    assert stats.most_sessions == len(jobs)  # they were served together, one step for all at first
    assert stats.batches < stats.steps / 2 and stats.most_rows > 8


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_and_beam_search_in_a_batch(cell):
    """States that are one tensor (GRU, RNN) are joined and split too; beam search keeps its own width."""
    torch.manual_seed(0)
    vocab = Vocab(list(" abcdefgh"))
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, layers=2, hidden=16, embed=8)).eval()
    requests = [("abc", 4, 12), ("h", 1, 8), ("gg", 6, 10)]

    def search(m, prime, width, length):
        return [(h.text, h.logprob) for h in beam_search(m, vocab, prepare_prompt(m, vocab, prime), width, length,
                                                       num=width)]

    alone = [search(model, *r) for r in requests]
    batcher = Batcher(wait_s=TOGETHER_S)
    got = together(batcher, model, [lambda m, r=r: search(m, *r) for r in requests])
    for hyps, ref in zip(got, alone, strict=True):
        assert [t for t, _ in hyps] == [t for t, _ in ref]
        assert max(abs(a - b) for (_, a), (_, b) in zip(hyps, ref, strict=True)) < 1e-5
    assert batcher.stats(model).most_sessions == 3


def test_a_lone_request_never_waits(lm):
    """With a wait far longer than the test's own limit, a lone request still finishes: it never waits."""
    model, vocab = lm
    batcher = Batcher(wait_s=3600)
    done = []
    thread = threading.Thread(target=lambda: done.append(together(batcher, model, [
        lambda m: sample(m, vocab, SAMPLES[0])])))
    thread.start()
    thread.join(60)
    assert done == [[sample(model, vocab, SAMPLES[0])]]
    stats = batcher.stats(model)
    assert stats.steps == stats.batches == SAMPLES[0][1] - 1 and stats.most_sessions == 1


def test_a_request_that_ends_frees_the_others(lm):
    """A long and a short request together: once the short one closes, the long one steps alone, unheld."""
    model, vocab = lm
    batcher = Batcher(wait_s=3600)  # any step left waiting for the closed session would hang the test
    long, short = ("ROMEO:", 120, SamplingSettings(0.8, seed=5)), ("ROMEO:", 5, SamplingSettings(0.8, seed=6))
    got = together(batcher, model, [lambda m: sample(m, vocab, long), lambda m: sample(m, vocab, short)])
    assert got == [sample(model, vocab, long), sample(model, vocab, short)]


def test_models_are_never_mixed(lm, tmp_path):
    model, vocab = lm
    other = CharRNN(model.cfg).eval()
    batcher = Batcher(wait_s=0.05)
    request = SAMPLES[0]
    with batcher.session(model) as a, batcher.session(other) as b:
        assert a.model is model and b.model is other
    together(batcher, other, [lambda m: sample(m, vocab, request)] * 2)
    assert batcher.stats(model).steps == 0 and batcher.stats(other).most_sessions == 2


def test_an_error_reaches_every_request_of_the_batch(lm):
    model, vocab = lm

    class Broken(CharRNN):
        calls = 0

        def step(self, x, state):
            Broken.calls += 1
            if Broken.calls > 3:
                raise RuntimeError("the model broke")
            return super().step(x, state)

    broken = Broken(model.cfg).eval()
    broken.load_state_dict(model.state_dict())
    batcher = Batcher(wait_s=TOGETHER_S)
    outcomes = []

    def job(m):
        try:
            sample(m, vocab, SAMPLES[0])
        except RuntimeError as e:
            outcomes.append(str(e))

    together(batcher, broken, [job, job, job])
    assert outcomes == ["the model broke"] * 3


def test_autocompleter_caches_per_model_and_computes_through_the_session(lm):
    model, vocab = lm
    batcher = Batcher()
    completer = Autocompleter()
    with batcher.session(model) as session:
        first = completer.complete(model, vocab, "To be, or not to b", session=session)
    with batcher.session(model) as session:
        again = completer.complete(model, vocab, "To be, or not to b", session=session)
    assert first.cache == "cold" and again.cache == "result" and again.completions == first.completions
    assert batcher.stats(model).steps > 0


# --- Batcher.together: whole calls batched -------------------------------------------------------


def test_calls_that_come_while_a_batch_runs_go_together_in_the_next():
    batcher, batches = Batcher(), []
    first_runs, release = threading.Event(), threading.Event()

    def run_all(items):
        batches.append(list(items))
        if len(batches) == 1:  # hold the first batch until the others have queued behind it
            first_runs.set()
            release.wait(30)
        return [item * 10 for item in items]

    def call(i):
        if i:
            first_runs.wait(30)
            if i == 4:  # the last to queue lets the first batch finish
                while len(batcher._lines["k"].waiting) < 3:
                    threading.Event().wait(0.001)
                release.set()
        return batcher.together("k", run_all, i)

    assert run_in_threads([lambda i=i: call(i) for i in range(5)]) == [0, 10, 20, 30, 40]
    assert batches[0] == [0] and sorted(batches[1]) == [1, 2, 3, 4]  # one batch ran, the four waiting ran as one
    assert batcher._lines == {}  # nothing is kept once idle (a key may hold a model)


def test_a_lone_call_runs_at_once_and_errors_reach_the_whole_batch():
    batcher = Batcher()
    assert batcher.together("k", lambda items: [x + 1 for x in items], 1) == 2

    def broken(items):
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        batcher.together("k", broken, 1)
    assert batcher.together("k", lambda items: [x + 1 for x in items], 2) == 3  # the line still works


def test_autocompleter_searches_together_get_what_they_get_alone(lm):
    """Concurrent completions with the same settings share one search, and each gets its own answer."""
    model, vocab = lm
    prefixes = ["To be, or not to b", "ROMEO:\nI", "The kin", "a", "First Citizen:\nBefore we proc"]
    alone = [Autocompleter().complete(model, vocab, p, 3, "word", 20 + i) for i, p in enumerate(prefixes)]
    batcher, completer, sizes = Batcher(), Autocompleter(), []

    def together(key, run_all, item):
        return batcher.together(key, lambda items: (sizes.append(len(items)), run_all(items))[1], item)

    results = run_in_threads([lambda i=i, p=p: completer.complete(model, vocab, p, 3, "word", 20 + i,
                                                                   together=together)
                              for i, p in enumerate(prefixes)])
    for got, want in zip(results, alone, strict=True):
        assert [(c.text, c.ended) for c in got.completions] == [(c.text, c.ended) for c in want.completions]
        assert all(abs(a.logprob - b.logprob) < 1e-5 for a, b in zip(got.completions, want.completions, strict=True))
    assert sum(sizes) == len(prefixes)
