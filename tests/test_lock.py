"""The run-directory lock, with real processes: a second holder is refused, a killed one frees it."""

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
