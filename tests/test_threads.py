"""The thread policy (charrnn/threads.py): what it decides, and that every path runs on what it decided."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from helpers import REPO

from charrnn import threads
from charrnn.cli import main
from charrnn.models.rnn import CharRNN
from charrnn.models.seq2seq import Seq2Seq
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry
from charrnn.serve.service import Service


@pytest.fixture(autouse=True)
def _keep_torch_threads(monkeypatch):
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class FakeMachine:
    """/proc/stat and this process's CPU time as the watch reads them: `others` cores busy elsewhere."""

    def __init__(self, monkeypatch, others: float, cores: int = 2):
        self.others, self.clock = others, 0.0
        monkeypatch.setattr(threads, "_busy_seconds", lambda: self.others * self.clock)
        monkeypatch.setattr(threads, "_own_seconds", lambda: 0.0)
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.clock)
        monkeypatch.setattr(threads.time, "sleep", self.advance)
        monkeypatch.setattr(threads, "machine_cores", lambda: cores)
        monkeypatch.setattr(threads.os, "cpu_count", lambda: cores)

    def advance(self, seconds: float) -> None:
        self.clock += seconds


@pytest.mark.parametrize(("others", "free"), [(0.0, 2), (0.15, 2), (0.5, 1), (1.0, 1), (2.0, 1)])
def test_batch_work_takes_the_cores_others_leave(monkeypatch, others, free):
    FakeMachine(monkeypatch, others)
    assert threads.choose(threads.Work.BATCH) == free
    assert threads.choose(threads.Work.STEP) == 1  # busy or not


def test_threads_flag_and_environment_win(monkeypatch):
    FakeMachine(monkeypatch, 1.0)
    assert threads.choose(threads.Work.BATCH, requested=2) == 2
    assert threads.choose(threads.Work.STEP, requested=2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(threads.Work.STEP) == 2 and threads.choose(threads.Work.BATCH) == 2
    assert threads.choose(threads.Work.BATCH, requested=1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert threads.env_threads() is None


def test_the_watch_subtracts_this_process_own_work(monkeypatch):
    machine = FakeMachine(monkeypatch, 2.0)  # both cores busy ...
    monkeypatch.setattr(threads, "_own_seconds", lambda: 2.0 * machine.clock)  # ... with our own threads
    assert threads.CoreWatch().free() == 2


def test_a_long_run_follows_a_busy_process_that_comes_and_goes(monkeypatch):
    machine = FakeMachine(monkeypatch, 0.0)
    follow = threads.Follow()
    assert follow.threads == 2 == torch.get_num_threads()
    machine.others = 1.0
    machine.advance(1.0)
    assert follow.check() == 2  # not yet time to look again
    machine.advance(threads.CHECK_S)
    assert follow.check() == 1 == torch.get_num_threads()
    machine.others = 0.0
    machine.advance(threads.CHECK_S)
    assert follow.check() == 2
    assert threads.Follow(requested=1).check() == 1  # fixed by --threads: never looks


# --- every path runs on the policy's count --------------------------------------------------------------


@pytest.fixture
def seen(monkeypatch):
    """The torch thread counts the models compute with, by method."""
    counts: dict[str, set[int]] = {}

    def spy(cls, name):
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            counts.setdefault(name, set()).add(torch.get_num_threads())
            return original(self, *args, **kwargs)
        monkeypatch.setattr(cls, name, wrapper)

    for cls in (CharRNN, Seq2Seq):
        spy(cls, "step")
    for cls in (CharRNN, torch.nn.LSTM, torch.nn.GRU):  # inspect runs the LSTM layer by layer
        spy(cls, "forward")
    return counts


def _counts(seen) -> set[int]:
    return set().union(*seen.values())


@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize(("argv", "work"), [
    (["sample", "{lm}", "--length", "20", "--seed", "1"], "step"),
    (["folk", "{folk}", "--max-chars", "40", "--seed", "1"], "step"),
    (["sample", "{lm}", "--beam", "3", "--length", "10"], "batch"),
    (["complete", "{lm}", "ROMEO"], "batch"),
    (["eval", "{lm}", "{text}"], "batch"),
    (["inspect", "{lm}", "{text}", "--max-chars", "300", "--json"], "batch"),
    (["seq2seq", "translate", "{g2p}", "hello", "world", "--beam", "3"], "batch"),
])
def test_each_command_runs_on_the_policys_threads(monkeypatch, seen, tiny_run, small_text, tmp_path, capsys,
                                                  argv, work, busy):
    FakeMachine(monkeypatch, 1.0 if busy else 0.0)
    names = {"lm": str(tiny_run), "text": str(small_text), "tmp": str(tmp_path), "g2p": str(REPO / "models/g2p"),
             "folk": str(REPO / "models/folk")}
    main([a.format(**names) for a in argv])  # a 40-character tune may fail the checks: its threads count
    expected = 1 if busy or work == "step" else 2
    assert seen and _counts(seen) == {expected}
    main([a.format(**names) for a in argv] + ["--threads", "2"])
    assert 2 in _counts(seen)


@pytest.mark.parametrize("busy", [False, True])
def test_training_and_its_speed_probe_run_on_the_policys_threads(monkeypatch, seen, small_text, tmp_path, busy):
    FakeMachine(monkeypatch, 1.0 if busy else 0.0)
    main(["train", str(small_text), "--out", str(tmp_path / "r"), "--time-budget", "3s", "--quiet",
          "--cache-dir", str(tmp_path / "cache")])
    assert _counts(seen) == {1 if busy else 2}
    speeds = (tmp_path / "cache" / "speeds.json").read_text()
    assert f"threads={1 if busy else 2}" in speeds  # the probe timed what the run trains on


def test_the_apps_requests_run_on_one_thread(monkeypatch, seen, tiny_run, tmp_path):
    FakeMachine(monkeypatch, 0.0)
    shutil.copytree(tiny_run, tmp_path / "models" / "lm")
    jobs = JobManager(tmp_path / "runs", threads=1, device="cpu")
    service = Service(Registry(tmp_path / "models", tmp_path / "runs", hidden=jobs.active_dirs), jobs,
                      files_dir=tmp_path / "files")
    torch.set_num_threads(2)
    list(service.generate("lm", "ROMEO:", 30, "sample", 0.8, 0, 1.0, 7))
    service.complete("lm", "ROMEO: wh")
    assert _counts(seen) == {1}


@pytest.mark.parametrize(("cores", "others", "fixed", "expected"),
                         [(4, 0.0, None, 3), (4, 1.0, None, 2), (2, 0.0, None, 1), (4, 0.0, 4, 4)])
def test_the_train_tabs_job_trains_by_the_policy_leaving_the_apps_requests_a_core(monkeypatch, seen, small_text,
                                                                                   tmp_path, cores, others, fixed,
                                                                                   expected):
    """The job trains on the free cores less threads.SERVER_KEEPS (the app's requests' core), or on --train-threads."""
    FakeMachine(monkeypatch, others, cores)
    jobs = JobManager(tmp_path / "runs", threads=fixed, device="cpu")
    job = jobs.start(upload=small_text, upload_name="small.txt", size="tiny", time_budget=600)
    deadline = time.perf_counter() + 120  # the fake machine's clock stands still: real time bounds the wait
    while not seen.get("forward") and job.active and time.perf_counter() < deadline:
        job.thread.join(0.05)
    snapshot = jobs.snapshot()
    jobs.stop()
    jobs.wait(60)
    assert _counts(seen) == {expected}, job.message
    assert snapshot["settings"]["threads"] == expected
