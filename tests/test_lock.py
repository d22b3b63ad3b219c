"""The run-directory lock, with real processes: a second holder is refused, a killed one frees it."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charrnn.errors import CharRNNError
from charrnn.training.lock import LOCK, RunLock

HOLD = ("import sys, time; from charrnn.training.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(60)")


def _holder(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(CharRNNError) as caught:
            RunLock(tmp_path).acquire()
        assert f"pid {holder.pid}" in str(caught.value) and "being trained by another process" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / LOCK).exists()  # the file stays; the kernel dropped the lock with its holder
    deadline = time.monotonic() + 5
    while True:
        try:
            with RunLock(tmp_path):
                break
        except CharRNNError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)


def test_released_lock_can_be_taken_again_in_the_same_process(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        pass
    with RunLock(tmp_path):
        pass


@pytest.mark.slow
def test_a_second_trainer_stops_at_once_and_the_first_is_unharmed(tmp_path: Path, small_text: Path) -> None:
    """Thirteen `charrnn train --resume` on one run directory: one trains, the others stop with one line."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "charrnn", "train", str(small_text), "--out", str(run), "--resume", "--hidden", "32",
            "--embed", "8", "--batch-size", "8", "--seq-len", "32", "--max-steps", "4000", "--eval-every", "500",
            "--quiet", "--threads", "1"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    others = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(12)]
    for other in others:
        _, err = other.communicate(timeout=120)
        assert other.returncode == 1, err
        (line,) = err.strip().splitlines()
        assert f"pid {first.pid}" in line and "being trained by another process" in line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert json.loads((run / "config.json").read_text())["status"] == "finished"
