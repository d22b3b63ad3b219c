"""Faults injected into real training processes: kill -9 at random moments, a full disk, a read-only
filesystem, hand-edited trainer state. Whatever happens, a checkpoint on disk stays loadable."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError
from charrnn.runfile import CONFIG
from charrnn.training.config import resume_config
from charrnn.training.trainer import Trainer

ARGS = ["--hidden", "48", "--layers", "2", "--embed", "8", "--batch-size", "8", "--seq-len", "32",
        "--max-steps", "240", "--eval-every", "20", "--dropout", "0.2", "--val-frac", "0.4", "--quiet",
        "--threads", "1"]  # a large val split: evaluations take much of the time, so kills land in them too


def train_proc(*args):
    return subprocess.Popen([sys.executable, "-m", "charrnn", "train", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def model_weights(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run / ckpt.LATEST)).items() if k.startswith("model.")}


class LoadabilityWatch(threading.Thread):
    """Checks, over and over while a run is being killed and resumed, that what is on disk loads."""

    def __init__(self, run: Path):
        super().__init__(daemon=True)
        self.run_dir, self.stop, self.checks, self.failures = run, threading.Event(), 0, []

    def run(self):
        while not self.stop.is_set():
            try:
                if (self.run_dir / ckpt.WEIGHTS).exists():
                    ckpt.load_model(self.run_dir)
                if (self.run_dir / ckpt.LATEST).exists():
                    ckpt.read_tensors(self.run_dir / ckpt.LATEST)
                self.checks += 1
            except CharRNNError as e:
                self.failures.append(str(e))


def kill_when(proc: subprocess.Popen, condition, timeout: float = 60) -> bool:
    """kill -9 the process as soon as condition() holds; False if it ended first."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path, small_text):
    whole = tmp_path / "whole"
    assert train_proc(small_text, "--out", whole, *ARGS).wait(timeout=300) == 0
    run = tmp_path / "run"
    watch = LoadabilityWatch(run)
    watch.start()
    rng = random.Random(7)
    command = [small_text, "--out", run, *ARGS, "--resume"]  # a scheduler's way: the very same command, again
    proc, kills = train_proc(*command), []
    # First in start-up (imports take ~2 s: nothing is saved yet, so --resume starts the run), then during a
    # checkpoint write (a temporary file beside the checkpoint is being written), then at random moments:
    # in steps, in evaluations, in writes, wherever they fall.
    for delay in [0.5, None, *(rng.uniform(2.0, 4.5) for _ in range(4))]:
        started = time.time()
        if delay is None:
            when = lambda: run.exists() and any(p.name.endswith(".tmp") for p in run.glob(".*"))  # noqa: E731
        else:
            when = lambda delay=delay, started=started: time.time() - started > delay  # noqa: E731
        if not kill_when(proc, when):
            break
        saved = (run / ckpt.LATEST).exists()
        kills.append(json.loads(ckpt.read_tensors(run / ckpt.LATEST)[1]["trainer"])["step"] if saved else 0)
        proc = train_proc(*command)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    watch.stop.set()
    watch.join()
    assert len(kills) >= 3 and kills[0] == 0, f"the run finished before it could be interrupted: {kills}"
    assert watch.failures == [] and watch.checks > 50
    a, b = model_weights(whole), model_weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert list(run.glob(".*.tmp")) == []


@pytest.fixture
def small_fs(tmp_path):
    """A real tmpfs mount point (needs root, as CI has); yields (path, mount(size_kb), remount_ro())."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()

    def mount(size_kb: int):
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)]).returncode:
            pytest.skip("cannot mount a tmpfs here (not root?)")

    def remount_ro():
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    yield mnt, mount, remount_ro
    subprocess.run(["umount", str(mnt)], capture_output=True)


def _first_run(tmp_path, small_text) -> Path:
    first = tmp_path / "first"
    args = ["--hidden", "48", "--embed", "8", "--batch-size", "8", "--seq-len", "32", "--max-steps", "20",
            "--eval-every", "10", "--quiet", "--threads", "1"]
    proc = train_proc(small_text, "--out", first, *args)
    assert proc.wait(timeout=120) == 0
    return first


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, small_text, small_fs):
    first = _first_run(tmp_path, small_text)
    mnt, mount, _ = small_fs
    used = sum(p.stat().st_size for p in first.iterdir())
    # Room for the run as it is, but not for a second copy of its largest file beside the first.
    mount((used + (first / ckpt.LATEST).stat().st_size // 2) // 1024 + 8)
    run = Path(shutil.copytree(first, mnt / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    proc = train_proc("--out", run, "--resume", "--max-steps", "40", "--quiet")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("charrnn: error: cannot write")
    assert "No space left on device" in err
    # The resume state is the one before; the best weights (smaller, written first) may have moved on to
    # the eval whose trainer state did not fit, but only as a whole: weights and config.json agree.
    assert (run / ckpt.LATEST).read_bytes() == before[ckpt.LATEST]
    _, meta = ckpt.read_tensors(run / ckpt.WEIGHTS)
    config = json.loads((run / CONFIG).read_text())
    assert json.loads(meta["val_loss"]) == config["best_val_loss"]
    assert json.loads(meta["step"]) == config["best_step"]
    ckpt.load_model(run)
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_read_only_run_directory_fails_cleanly(tmp_path, small_text, small_fs):
    first = _first_run(tmp_path, small_text)
    mnt, mount, remount_ro = small_fs
    mount(8192)
    run = Path(shutil.copytree(first, mnt / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    remount_ro()
    proc = train_proc("--out", run, "--resume", "--max-steps", "40", "--quiet")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err
    assert "Read-only file system" in err.strip().splitlines()[-1]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("edit, message", [
    (lambda meta: {**meta, "trainer": "{not json"}, "not a valid trainer state"),
    (lambda meta: {**meta, "trainer": json.dumps({"step": 3})}, "not a valid trainer state"),
    (lambda meta: {}, "not a valid trainer state"),
])
def test_hand_edited_trainer_state_is_refused(tmp_path, tiny_run, edit, message):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    tensors, meta = ckpt.read_tensors(run / ckpt.LATEST)
    save_file(tensors, str(run / ckpt.LATEST), metadata=edit(meta))
    with pytest.raises(CharRNNError, match=f"{ckpt.LATEST}.*{message}"):
        Trainer(resume_config(run, {}), resume=True, progress=False)


def test_truncated_trainer_state_names_the_file(tmp_path, tiny_run):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    data = (run / ckpt.LATEST).read_bytes()
    (run / ckpt.LATEST).write_bytes(data[: len(data) // 2])
    with pytest.raises(CharRNNError, match=f"{ckpt.LATEST} is not a readable safetensors file"):
        Trainer(resume_config(run, {}), resume=True, progress=False)
