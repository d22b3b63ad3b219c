"""The app's operations without Gradio: bounds, streaming generation, completions, folk tunes, training.

How their results look on the page is tests/test_app_views.py's concern.
"""

from __future__ import annotations

import math
import shutil
import threading
import wave
from pathlib import Path

import pytest
from test_app_support import folk_corpus, folk_model

from charrnn.decoding.suggest import KINDS
from charrnn.errors import CharRNNError
from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.serve.batcher import Batcher
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry
from charrnn.serve.service import Service
from charrnn.web import views

PASSING = ("X:1\nT:Test Jig\nR:jig\nM:6/8\nL:1/8\nK:D\n|:AFA dFA | d2e fed | e2f gfe | d3 d2A :|\n"
           "|:afd ecA | g2e fdB | FAd fdA | D3 D2A :|")


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_run):
    base = tmp_path_factory.getbasetemp() / "app-models"
    base.mkdir(exist_ok=True)
    folk_model(base)
    root = tmp_path_factory.mktemp("service-models")
    shutil.copytree(tiny_run, root / "shakespeare")
    shutil.copytree(base / "folk", root / "folk")
    return root


@pytest.fixture
def service(models, tmp_path):
    jobs = JobManager(tmp_path / "runs", threads=1, device="cpu")
    return Service(Registry(models, tmp_path / "runs", hidden=jobs.active_dirs), jobs, files_dir=tmp_path / "files")


@pytest.mark.parametrize(("value", "expected"), [
    (5, 5), (-3, 0), (99, 10), (None, 7), ("x", 7), (math.nan, 7), (math.inf, 7), ("4", 4), (2.6, 3)])
def test_clamp_int(value, expected):
    assert limits.clamp_int(value, 0, 10, 7) == expected


def test_clamp_float_clip_and_seeds():
    assert limits.clamp_float(1e9, 0, 3, 1) == 3 and limits.clamp_float(-math.inf, 0, 3, 1) == 1
    assert limits.clip(None, 5) == "" and limits.clip("x" * 50, 5) == "xxxxx" and limits.clip(12, 5) == "12"
    assert limits.seed_or_random(12) == 12 and limits.seed_or_random(10**20) == limits.MAX_SEED
    assert 0 <= limits.seed_or_random(-1) < limits.MAX_SEED and 0 <= limits.seed_or_random(None) < limits.MAX_SEED


def test_generate_streams_in_chunks_and_reports_speed(service, monkeypatch):
    monkeypatch.setattr(svc, "STREAM_EVERY_S", 0.0)
    updates = list(service.generate("shakespeare", "ROMEO:", 200, "sample", 0.8, 0, 1.0, 7))
    assert len(updates) >= 3 and updates[-1].done and not any(u.done for u in updates[:-1])
    lengths = [u.chars for u in updates]
    assert lengths == sorted(lengths) and lengths[-1] == 200
    assert all(b - a >= svc.STREAM_MIN_CHARS for a, b in zip(lengths[:-2], lengths[1:-1], strict=True))
    final = updates[-1]
    assert final.text.startswith("ROMEO:") and len(final.text) == 206 and final.seed == 7
    assert final.chars_per_s > 0
    again = list(service.generate("shakespeare", "ROMEO:", 200, "sample", 0.8, 0, 1.0, 7))[-1]
    assert again.text == final.text  # same seed, same text


def test_generate_modes_and_bounds(service):
    greedy = [list(service.generate("shakespeare", "The ", 50, "greedy", seed=s))[-1].text for s in (1, 2)]
    assert greedy[0] == greedy[1]
    beam = list(service.generate("shakespeare", "The ", 10**9, "beam", beam=10**6))
    assert beam[-1].done and len(beam[-1].text) <= 4 + limits.BEAM_LENGTH.hi and "beam width 16" in beam[-1].note
    long = list(service.generate("shakespeare", "x" * 50_000, 10**9, "sample", temperature=99, top_k=10**6,
                                 top_p=-5, seed=3))[-1]
    assert long.chars == limits.LENGTH.hi and len(long.text) == limits.MAX_PRIME + limits.LENGTH.hi
    odd = list(service.generate("shakespeare", "ROMEO ☃:", 5, seed=1))[-1]
    assert "does not know" in odd.note and odd.text.startswith("ROMEO :")
    with pytest.raises(CharRNNError, match="mode must be"):
        list(service.generate("shakespeare", "x", 5, "nucleus"))
    with pytest.raises(CharRNNError, match="no model"):
        list(service.generate("/etc/passwd", "x", 5))


def test_no_models_says_how_to_get_one(tmp_path):
    jobs = JobManager(tmp_path / "runs")
    empty = Service(Registry(tmp_path / "models", tmp_path / "runs"), jobs, files_dir=tmp_path / "files")
    with pytest.raises(CharRNNError, match="Train tab"):
        empty.complete("shakespeare", "To be")
    assert empty.models() == []


def test_complete_answers_a_dict(service):
    answer = service.complete("shakespeare", "To be, or not to b", 2, "word", 30)
    assert answer["text_len"] == 18 and answer["tail"] == "To be, or not to b"
    assert 1 <= len(answer["completions"]) <= 2 and answer["cache"] == "cold"
    assert {c["kind"] for c in answer["completions"]} <= set(KINDS)
    assert {"text", "prob", "logprob", "ended", "kind", "space"} <= set(answer["completions"][0])
    assert answer["ms"] >= 0 and answer["skipped"] == ""
    long = service.complete("shakespeare", "a" * 50_000)
    assert long["text_len"] == 50_000 and len(long["tail"]) == 32
    with pytest.raises(CharRNNError, match="until must be"):
        service.complete("shakespeare", "To be", until="paragraph")


def test_models_for_api_clients(service):
    listed = {m["name"]: m for m in service.models()}
    assert set(listed) == {"folk", "shakespeare"} and listed["folk"]["folk"] and not listed["shakespeare"]["folk"]


def test_a_folk_tune_that_passes_is_rendered(service):
    result = service.folk_tune("folk", "6/8", "D", "major", "jig", "", 0.5, 1, 8, 120)
    assert result.passed, result.findings
    # The form beside the sheet music; this test model has no corpus index, so the copied run is not checked.
    assert result.form["layout"] and result.form["parts"] and result.form["ends_on"] is not None
    assert result.form["copied_bars"] is None and "not checked" in views.form_markdown(result)
    assert "Parts × bars" in views.form_markdown(result) and result.summary()["form"] == result.form
    assert result.abc.startswith("X:1\nT:") and "M:6/8\nL:1/8\nK:D\n" in result.abc
    assert result.svg and "<svg" in result.svg
    rate, samples = result.audio
    assert rate > 0 and len(samples) > rate  # more than a second of music
    suffixes = sorted(Path(f).suffix for f in result.files)
    assert suffixes == [".abc", ".mid", ".wav"] and all(Path(f).is_file() for f in result.files)
    assert Path(result.files[0]).read_text().strip() == result.abc
    with wave.open(str(next(f for f in result.files if f.endswith(".wav")))) as w:
        assert w.getframerate() == rate
    summary = result.summary()
    assert summary["passed"] and summary["abc"] == result.abc
    assert summary["redrawn"] == result.redrawn >= 0 and not result.message


def test_a_failing_tune_shows_its_findings_and_no_music(service):
    broken = PASSING.replace("d3 d2A :|", "d3 d2 :|", 1)
    result = service.rerender({"abc": broken, "title": "Broken", "seed": 3, "ended": True})
    assert not result.passed and result.findings and result.svg is None and result.audio is None
    assert [Path(f).suffix for f in result.files] == [".abc"]
    assert any(f["bar"] for f in result.findings) and "only for tunes that pass" in result.message


def test_rerender_a_passing_tune_from_history(service):
    result = service.rerender({"abc": PASSING, "title": "Test Jig", "seed": 1, "ended": True}, tempo=90)
    assert result.passed and "<svg" in result.svg and len(result.files) == 3


def test_folk_bounds(service):
    with pytest.raises(CharRNNError, match="meter must be"):
        service.folk_tune("folk", "7/7")
    with pytest.raises(CharRNNError, match="tonic must be"):
        service.folk_tune("folk", "6/8", "H")
    with pytest.raises(CharRNNError, match="mode must be"):
        service.folk_tune("folk", "6/8", "D", "happy")
    with pytest.raises(CharRNNError, match="not a folk model"):
        service.folk_tune("shakespeare", "6/8", "D", "major")
    tune = service.folk_tune("folk", "6/8", "D", "major", "jig", "", temperature=50, seed=2, candidates=10**6)
    assert tune.candidates == limits.FOLK_CANDIDATES.hi


@pytest.mark.slow
def test_training_through_the_service(service, small_text):
    with pytest.raises(CharRNNError, match="core must be"):
        service.start_training(upload=str(small_text), core="transformer")
    snapshot = service.start_training(upload=str(small_text), upload_name="small.txt", name="svc", core="lstm",
                                      size="tiny", time_budget=5)
    assert snapshot["name"] == "svc" and snapshot["status"] in ("starting", "running")
    service.jobs.wait(60)
    assert service.training_status()["status"] == "done"
    assert "trained/svc" in [m["name"] for m in service.models()]


def test_the_synthetic_folk_corpus_passes_the_checks():
    from charrnn.folk.check import check_tune, split_tunes

    tunes = split_tunes(folk_corpus(50))
    assert len(tunes) == 50 and all(check_tune(t).passed for t in tunes)


def test_missing_corpora_say_how_to_add_them_and_folk_is_built_here(service, tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path / "corpora"))
    missing = {c["name"]: c for c in service.missing_corpora()}
    assert set(missing) == {"shakespeare", "folk", "pystdlib"}  # cmudict is pronunciations, not an LM text
    assert missing["shakespeare"]["command"] == "charrnn corpora fetch shakespeare"
    assert not missing["shakespeare"]["buildable"] and missing["folk"]["buildable"] and missing["pystdlib"]["buildable"]
    assert service.corpora() == []
    built = []

    def build(name, **kwargs):  # the real folk build takes minutes of CPU
        built.append(name)
        (tmp_path / "corpora").mkdir()
        (tmp_path / "corpora" / "folk.abc").write_text(folk_corpus(20), encoding="utf-8")

    monkeypatch.setattr(svc.corpora, "build", build)
    with pytest.raises(CharRNNError, match="must be one of folk, pystdlib"):
        service.build_corpus("shakespeare")  # downloads are the command line's, never the server's
    assert "Built the corpus folk" in service.build_corpus("folk")
    assert "is here" in service.build_corpus("folk") and built == ["folk"]
    assert [name for _, name in service.corpora()] == ["folk"]
    assert [c["name"] for c in service.missing_corpora()] == ["shakespeare", "pystdlib"]


def test_concurrent_requests_are_batched_and_answer_as_alone(models, tmp_path):
    """Completions and generations from many threads at once share model steps and answer as they do alone."""
    jobs = JobManager(tmp_path / "runs", threads=1, device="cpu")
    service = Service(Registry(models, tmp_path / "runs"), jobs, files_dir=tmp_path / "files",
                      batcher=Batcher(wait_s=0.05))
    alone = Service(Registry(models, tmp_path / "runs"), jobs, files_dir=tmp_path / "files-alone")
    texts = ["To be, or not to b", "ROMEO:\nWhat say", "I", "The qu"]
    asks = [("complete", ("shakespeare", t, 3, until, 30)) for t in texts for until in ("word", "line")]
    asks += [("generate", ("shakespeare", "ROMEO:", 150, mode, 0.9, 0, 1.0, seed, 4))
             for seed, mode in ((1, "sample"), (2, "sample"), (3, "greedy"), (4, "beam"))]

    def answer(svc_, kind, args):
        if kind == "complete":
            return [(c["text"], c["logprob"]) for c in svc_.complete(*args)["completions"]]
        return list(svc_.generate(*args))[-1].text

    expected = [answer(alone, kind, args) for kind, args in asks]
    got = [None] * len(asks)
    start = threading.Barrier(len(asks))

    def run(i, kind, args):
        start.wait()
        got[i] = answer(service, kind, args)

    threads = [threading.Thread(target=run, args=(i, *ask)) for i, ask in enumerate(asks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for g, e in zip(got, expected, strict=True):  # completions' log-probabilities are rounded to 4 places
        assert g == e or [t for t, _ in g] == [t for t, _ in e]
    stats = service.batcher.stats(service.load("shakespeare").model)
    assert stats.most_sessions >= 2 and stats.batches < stats.steps
