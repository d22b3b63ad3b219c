"""Learning the writer's text: dynamic evaluation (training/adapt.py), each session's own copy (serve/adaptation.py)."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import weakref

import pytest
import torch
from helpers import run_in_threads

from charrnn.checkpoint import load_model
from charrnn.cli import main
from charrnn.errors import CharRNNError
from charrnn.serve.adaptation import Sessions
from charrnn.serve.batcher import Batcher
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry
from charrnn.serve.service import Service
from charrnn.training.adapt import Adapter, AdaptSettings, dynamic_eval
from charrnn.training.lm import evaluate

NAME = "Morbrin the quiet came to Padua. "  # a name the model has never seen, over and over


@pytest.fixture(scope="module")
def lm(tiny_run):
    return load_model(tiny_run)


def ids_of(vocab, text: str) -> torch.Tensor:
    return torch.from_numpy(vocab.encode(text)).long()


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_at_rate_zero_adapted_equals_static_equals_plain_evaluation(lm, small_text):
    model, vocab, _ = lm
    ids = ids_of(vocab, small_text.read_text(encoding="utf-8")[:3000])
    static, adapted, n = dynamic_eval(model, ids, AdaptSettings(0.0, 0.0, 64))
    assert n == len(ids) - 1 and static == adapted
    loss, _ = evaluate(model, ids.numpy(), batch_size=1, seq_len=64)  # one stream, the same windows
    assert static == pytest.approx(loss, abs=1e-5)


def test_learning_lowers_the_loss_of_repeated_text_and_leaves_the_model_alone(lm):
    model, vocab, _ = lm
    before = weights(model)
    static, adapted, _ = dynamic_eval(model, ids_of(vocab, NAME * 12), AdaptSettings(0.1, 0.0, 32))
    assert adapted < static - 0.05
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_follow_learns_whole_segments_once_and_restarts_at_an_edit(lm):
    model, vocab, _ = lm
    adapter = Adapter(model, AdaptSettings(0.05, 0.0, 16))
    encode = vocab.encode
    assert adapter.follow(NAME[:16], encode) == 0  # a segment needs the character after it too
    assert adapter.follow(NAME, encode) == 2 and adapter.learned == NAME[:32]
    assert adapter.follow(NAME, encode) == 0  # nothing new
    edited = NAME[:20] + "x" * 40
    assert adapter.follow(edited, encode) == 2 and adapter.learned == edited[:52]
    assert adapter.follow(NAME * 10, encode, limit=64) == 3  # a long paste: its last 64 characters
    assert adapter.steps == 7
    adapter.reset()
    assert adapter.steps == 0 and all(torch.equal(a, b) for a, b in zip(adapter.model.parameters(),
                                                                       model.parameters(), strict=True))


def test_decay_pulls_back_toward_the_trained_weights(lm):
    model, vocab, _ = lm
    drift = {}
    for decay in (0.0, 0.5):
        adapter = Adapter(model, AdaptSettings(0.1, decay, 16))
        adapter.follow(NAME * 4, vocab.encode)
        pairs = zip(adapter.model.parameters(), model.parameters(), strict=True)
        drift[decay] = sum(float((p - p0).detach().norm()) for p, p0 in pairs)
    assert 0 < drift[0.5] < drift[0.0]


@pytest.mark.parametrize("bad", [dict(lr=-1), dict(lr=float("nan")), dict(decay=2), dict(segment=1)])
def test_settings_are_checked(bad):
    with pytest.raises(CharRNNError):
        AdaptSettings(**bad)


@pytest.fixture
def service(tiny_run, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_run, root / "shakespeare")
    jobs = JobManager(tmp_path / "runs", threads=1, device="cpu")
    return Service(Registry(root, tmp_path / "runs"), jobs, files_dir=tmp_path / "files",
                   sessions=Sessions(AdaptSettings(0.1, 0.0, 32), max_sessions=3))


def texts(answer: dict) -> list[tuple[str, float]]:
    return [(c["text"], c["logprob"]) for c in answer["completions"]]


def test_sessions_learn_apart_even_at_once(service):
    """Two writers adapt at the same time; each one's answers are what it would get alone; others see the base."""
    base = texts(service.complete("shakespeare", "Then came Morb"))
    a = service.complete("shakespeare", "", adapt=True)["session"]
    b = service.complete("shakespeare", "", adapt=True)["session"]
    assert a != b and len(a) >= 20
    other = "The weather in Mantua is fair and mild today. " * 3

    def write(session: str, text: str):
        for cut in range(40, len(text) + 1, 40):  # as typed, a bit at a time
            service.complete("shakespeare", text[:cut], adapt=True, session=session)
        service.sessions.idle(60)

    run_in_threads([lambda: write(a, NAME * 4), lambda: write(b, other)])
    assert service.sessions.idle(60)
    got_a = texts(service.complete("shakespeare", "Then came Morb", adapt=True, session=a))
    got_b = texts(service.complete("shakespeare", "Then came Morb", adapt=True, session=b))
    assert texts(service.complete("shakespeare", "Then came Morb")) == base  # no adaptation: the trained model
    assert got_a != base and got_a != got_b
    # B alone, in a server of its own, learns exactly the same: nothing of A reached it.
    alone = Service(service.registry, service.jobs, sessions=Sessions(AdaptSettings(0.1, 0.0, 32)))
    c = alone.complete("shakespeare", "", adapt=True)["session"]
    write_alone = [alone.complete("shakespeare", other[:cut], adapt=True, session=c)
                   for cut in range(40, len(other) + 1, 40)]
    assert write_alone and alone.sessions.idle(60)
    assert texts(alone.complete("shakespeare", "Then came Morb", adapt=True, session=c)) == got_b


def test_an_answer_from_before_a_step_is_not_served_after_it(service):
    """The autocomplete caches answers per model object; learning puts a new model in the writer's place."""
    probe = "Then came Morb"
    key = service.complete("shakespeare", probe, adapt=True)["session"]
    before = service.complete("shakespeare", probe, adapt=True, session=key)
    assert before["cache"] == "result"  # asked again before any step: from the cache
    writer = service.sessions.writer(key, service.load("shakespeare").model)
    assert writer.version == 0 and writer.model is service.load("shakespeare").model
    service.complete("shakespeare", NAME * 4, adapt=True, session=key)  # four whole segments of 32 to learn
    assert service.sessions.idle(60) and writer.version == 1
    after = service.complete("shakespeare", probe, adapt=True, session=key)
    assert after["cache"] == "cold" and texts(after) != texts(before)
    assert texts(service.complete("shakespeare", probe)) == texts(before)  # the trained model's, still cached
    assert service.forget(key) == {"forgotten": 1}  # the reset: the trained model again
    reset = service.complete("shakespeare", probe, adapt=True, session=key)
    assert reset["session"] != key and texts(reset) == texts(before)


def test_a_replaced_model_and_its_caches_are_freed(service):
    """A writer holds its answering model and its learner; each model it replaced goes, with its caches."""
    first = service.complete("shakespeare", NAME * 2, adapt=True)
    assert service.sessions.idle(60)
    writer = service.sessions.writer(first["session"], service.load("shakespeare").model)
    replaced = weakref.ref(writer.model)
    service.complete("shakespeare", "Then came Morb", adapt=True, session=first["session"])  # cached for it
    assert replaced() in service.autocompleter._caches
    service.complete("shakespeare", NAME * 4, adapt=True, session=first["session"])
    assert service.sessions.idle(60) and writer.version == 2
    gc.collect()
    assert replaced() is None and list(service.autocompleter._caches) == [service.load("shakespeare").model]


def test_a_keystroke_never_waits_for_learning(service, monkeypatch):
    """While the learning thread is busy with a session's text, that session's next request is answered."""
    learning, release = threading.Event(), threading.Event()
    follow = Adapter.follow

    def held(self, *args, **kwargs):
        learning.set()
        release.wait(60)
        return follow(self, *args, **kwargs)

    monkeypatch.setattr(Adapter, "follow", held)
    key = service.complete("shakespeare", NAME * 2, adapt=True)["session"]
    assert learning.wait(60)
    answered = []
    asker = threading.Thread(target=lambda: answered.append(
        service.complete("shakespeare", NAME * 2 + "Then", adapt=True, session=key)))
    asker.start()
    asker.join(60)
    still_learning = not release.is_set()
    release.set()
    assert still_learning and answered and answered[0]["completions"] and answered[0]["learned_chars"] == 0
    assert service.sessions.idle(60)
    assert service.complete("shakespeare", NAME * 2 + "Then", adapt=True, session=key)["learned_chars"] == 64


def test_writers_that_have_not_learned_share_the_trained_models_batches(service, monkeypatch):
    """Concurrent searches go together by key, and the key names the model: every request that answers with the
    trained weights (without adaptation, or adapting but with nothing learned yet) has the same one."""
    keys = []

    def together(key, run_all, item):
        keys.append(key)
        return Batcher.together(service.batcher, key, run_all, item)

    monkeypatch.setattr(service.batcher, "together", together)
    trained = service.load("shakespeare").model
    plain = service.complete("shakespeare", "Then came Morb")
    fresh = service.complete("shakespeare", "Then came Morb, said", adapt=True)
    learned = service.complete("shakespeare", NAME * 4, adapt=True)
    assert service.sessions.idle(60)
    service.complete("shakespeare", NAME * 4 + "Then", adapt=True, session=learned["session"])
    other = service.complete("shakespeare", "The weather in Mantua is fair and mild today. " * 2, adapt=True)
    assert service.sessions.idle(60)
    service.complete("shakespeare", "Then came", adapt=True, session=other["session"])
    models = [key[1] for key in keys]  # plain, fresh, learned (before it learned), learned, other (before), other
    assert plain["cache"] == "cold" and fresh["cache"] == "extend"  # on from the plain request's state: one cache
    assert len(models) == 6
    assert all(models[i] is trained for i in (0, 1, 2, 4))
    assert models[3] is not trained and models[5] is not trained and models[3] is not models[5]


def test_sessions_are_bounded_issued_here_and_forgotten(service):
    first = service.complete("shakespeare", "", adapt=True)["session"]
    assert service.complete("shakespeare", "", adapt=True, session="made-up")["session"] not in ("made-up", first)
    for _ in range(3):  # the bound is 3: the first is dropped
        service.complete("shakespeare", "", adapt=True)
    assert not service.sessions.held(first)
    assert service.complete("shakespeare", "", adapt=True, session=first)["session"] != first
    last = service.complete("shakespeare", NAME * 2, adapt=True)
    assert service.forget(last["session"]) == {"forgotten": 1} and not service.sessions.held(last["session"])
    assert service.forget("") == {"forgotten": 0}


def test_eval_adapt_reports_both_and_equals_static_at_rate_zero(tiny_run, small_text, tmp_path, capsys):
    text = tmp_path / "val.txt"
    text.write_text(small_text.read_text(encoding="utf-8")[:2000], encoding="utf-8")
    assert main(["eval", str(tiny_run), str(text), "--adapt", "--adapt-lr", "0", "--json"]) == 0
    zero = json.loads(capsys.readouterr().out)
    assert zero["adapted_loss"] == zero["loss"] and zero["gain"] == 0 and zero["chars"] == 1999
    assert main(["eval", str(tiny_run), str(text), "--adapt", "--adapt-lr", "0.1", "--json"]) == 0
    learned = json.loads(capsys.readouterr().out)
    assert learned["loss"] == zero["loss"] and learned["adapted_loss"] < learned["loss"]
    assert main(["eval", str(tiny_run), str(text), "--adapt", "--adapt-lr", "5"]) == 1
    assert "adaptation rate must be between 0 and 1" in capsys.readouterr().err


def test_complete_and_sample_adapt_on_their_prime(tiny_run, capsys):
    prime = NAME * 6 + "Then came Morb"
    assert main(["complete", str(tiny_run), prime, "--json", "--phrases", "off"]) == 0
    plain = json.loads(capsys.readouterr().out)["completions"]
    assert main(["complete", str(tiny_run), prime, "--json", "--adapt", "--adapt-lr", "0.1"]) == 0
    adapted = json.loads(capsys.readouterr().out)["completions"]
    assert [c["text"] for c in adapted if c["kind"] == "word"] != [c["text"] for c in plain]
    assert main(["sample", str(tiny_run), "--prime", prime, "--adapt", "--length", "20", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith(prime)
