"""Background training jobs: one at a time, bounded, with progress, a loss history and stop."""

from __future__ import annotations

import time

import pytest

from charrnn.errors import CharRNNError
from charrnn.serve import jobs as jobs_module
from charrnn.serve import limits
from charrnn.serve.jobs import Busy, JobManager, check_upload, safe_name
from charrnn.serve.registry import Registry
from charrnn.training.autosize import BudgetTooShort


def wait_until(predicate, timeout: float = 120.0, every: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


@pytest.mark.parametrize(("text", "expected"), [
    ("my run", "my-run"), ("../../etc/passwd", "etc-passwd"), ("..", ""), ("a/b\\c", "a-b-c"),
    ("ünïcode ok", "n-code-ok"), ("x" * 100, "x" * 40), ("-_-", ""), ("run_1-b", "run_1-b"),
])
def test_safe_name(text, expected):
    assert safe_name(text) == expected


@pytest.mark.parametrize(("name", "copy"), [("sonnets.txt", "sonnets.txt"), ("My Tunes!.abc", "My-Tunes.abc"),
                                            ("../../etc/passwd", "passwd.txt"), ("config.json", "config.json"),
                                            ("...", "upload.txt")])
def test_an_upload_is_copied_under_its_own_safe_name(name, copy):
    assert jobs_module.upload_file_name(name) == copy


def test_check_upload(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("héllo wörld\n" * 1000, encoding="utf-8")
    assert check_upload(good).startswith("héllo")
    big = tmp_path / "big.txt"
    big.write_text("a" * 20_000)
    with pytest.raises(CharRNNError, match="limit is 10,000"):
        check_upload(big, max_bytes=10_000)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 2000)
    with pytest.raises(CharRNNError, match="not UTF-8"):
        check_upload(latin)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(CharRNNError, match="at least 5,000"):
        check_upload(short)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00" * 6000)
    with pytest.raises(CharRNNError, match="binary"):
        check_upload(binary)
    with pytest.raises(CharRNNError, match="gone"):
        check_upload(tmp_path / "missing.txt")


def test_bad_requests(tmp_path, small_text, monkeypatch):
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path / "no-corpora"))
    manager = JobManager(tmp_path / "runs")
    with pytest.raises(CharRNNError, match="core must be"):
        manager.start(upload=small_text, model="transformer")
    with pytest.raises(CharRNNError, match="size must be"):
        manager.start(upload=small_text, size="huge")
    with pytest.raises(CharRNNError, match="one of the two"):
        manager.start()
    with pytest.raises(CharRNNError, match="one of the two"):
        manager.start(corpus="shakespeare", upload=small_text)
    with pytest.raises(CharRNNError, match="unknown corpus"):
        manager.start(corpus="../../etc/passwd")
    with pytest.raises(CharRNNError, match="not on this server yet"):
        manager.start(corpus="shakespeare")
    with pytest.raises(CharRNNError, match="number of seconds"):
        manager.start(upload=small_text, time_budget="soon")
    assert manager.snapshot()["status"] == "idle" and not (tmp_path / "runs").exists()


def test_a_job_trains_reports_and_shows_up_as_a_model(tmp_path, small_text):
    manager = JobManager(tmp_path / "runs", threads=1, device="cpu")
    registry = Registry(tmp_path / "models", tmp_path / "runs", hidden=manager.active_dirs)
    job = manager.start(upload=small_text, upload_name="small.txt", name="my run!", model="gru", size="tiny",
                        time_budget=1)  # clamped up to the 5 s minimum
    assert job.name == "my-run" and job.time_budget == limits.BUDGET_S.lo
    assert manager.busy() and registry.names() == []  # not offered while it trains
    with pytest.raises(Busy, match="one job at a time"):
        manager.start(upload=small_text, size="tiny")
    assert wait_until(lambda: len(manager.snapshot()["history"]) >= 2)
    snap = manager.snapshot()
    assert snap["status"] in ("running", "stopping", "done") and 0 <= snap["progress"] <= 1
    assert {"step", "train_loss", "val_loss"} <= set(snap["history"][0])
    manager.wait(60)
    snap = manager.snapshot()
    assert snap["status"] == "done", snap["message"]
    assert "time budget reached" in snap["message"] and "trained/my-run" in snap["message"]
    assert snap["progress"] == 1.0 and snap["best_val_loss"] is not None
    steps = [r["step"] for r in snap["history"]]
    assert steps == sorted(steps) and len(steps) >= 3
    assert registry.names() == ["trained/my-run"]
    entry = registry.entry("trained/my-run")
    assert entry.arch == "GRU 1x64" and entry.corpus == "small.txt"  # the uploaded file's name
    assert entry.label.startswith("trained/my-run (small.txt, ")
    assert (tmp_path / "runs" / "my-run" / "upload" / "small.txt").read_text() == small_text.read_text()
    # the same name again gets a fresh folder
    again = manager.start(upload=small_text, name="my run", size="tiny", time_budget=5)
    assert again.name == "my-run-2"
    manager.stop()
    manager.wait(60)


def test_stop_ends_a_job_early(tmp_path, small_text):
    manager = JobManager(tmp_path / "runs", threads=1, device="cpu")
    manager.start(upload=small_text, size="tiny", time_budget=600)
    assert wait_until(lambda: manager.snapshot()["step"] > 0)
    assert manager.stop()
    manager.wait(60)
    snap = manager.snapshot()
    assert snap["status"] == "done" and snap["message"].startswith("interrupted"), snap
    assert not manager.busy() and not manager.stop()


@pytest.mark.parametrize(("error", "says"), [
    (CharRNNError("the corpus is haunted", "; pass --exorcise"), "Training failed: the corpus is haunted"),
    (BudgetTooShort("a time budget of 5s is too short for any model on this machine", 47),
     "Training failed: a time budget of 5s is too short for any model on this machine: choose a time budget of "
     "47 seconds or more"),
])
def test_a_failing_job_says_why_in_the_pages_words(tmp_path, monkeypatch, small_text, error, says):
    """The page has no flags: a library error's advice to pass one is left out, or said in the page's words."""
    manager = JobManager(tmp_path / "runs", threads=1, device="cpu")

    class Broken:
        def __init__(self, *args, **kwargs):
            raise error

    monkeypatch.setattr("charrnn.serve.jobs.Trainer", Broken)
    manager.start(upload=small_text, size="tiny", time_budget=5)
    manager.wait(30)
    snap = manager.snapshot()
    assert snap["status"] == "failed" and snap["message"] == says
    assert "--" in str(error) and not manager.busy()


def test_a_catalogued_corpus_is_used_by_name(tmp_path, small_text, monkeypatch):
    corpora_dir = tmp_path / "corpora"
    corpora_dir.mkdir()
    (corpora_dir / "folk.abc").write_text(small_text.read_text())  # "folk" is a build: no checksum to match
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(corpora_dir))
    manager = JobManager(tmp_path / "runs", threads=1, device="cpu")
    job = manager.start(corpus="folk", size="tiny", time_budget=5)
    assert job.name == "folk-lstm-tiny"
    manager.stop()
    manager.wait(60)
    assert manager.snapshot()["status"] == "done"


def test_the_default_size_is_auto_and_the_job_says_what_it_chose(tmp_path, small_text):
    manager = JobManager(tmp_path / "runs", threads=1, device="cpu")
    job = manager.start(upload=small_text, upload_name="small.txt", time_budget=15)
    assert job.name == "small-lstm-auto"
    manager.wait(120)
    snap = manager.snapshot()
    assert snap["status"] == "done" and snap["best_val_loss"] is not None, snap
    settings = snap["settings"]
    assert settings["size"] == "auto" and settings["auto"].startswith(
        f"auto: LSTM {settings['layers']}x{settings['hidden']}, batch ")
