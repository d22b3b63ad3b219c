"""One trainer per run directory: an advisory lock the operating system drops when its holder dies.

`flock` on `<run>/.lock` is released by the kernel when the process exits for any reason, `kill -9`
included, so no stale lock is ever left to clean up. The file also names its holder (pid, host and
command) so that a second trainer can say who is already training there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from charrnn.errors import CharRNNError

LOCK = ".lock"


class RunLock:
    """Hold the lock of one run directory while training there (a context manager)."""

    def __init__(self, run_dir: str | Path, command: str | None = None):
        """`command` says what is training, for a second trainer's error (e.g. the command line)."""
        self.path = Path(run_dir) / LOCK
        self.command = command or "a charrnn trainer"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a CharRNNError naming the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only filesystem, no permission, --out naming a file ...
            raise CharRNNError(f"cannot take the lock {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise CharRNNError(f"{self.path.parent} is being trained by another process ({holder}); "
                               "wait for it to finish or stop it first") from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (an unlocked file means nothing)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        holder = json.loads(raw.decode())
        return f"pid {holder['pid']} on {holder['host']}: {holder['command'][:200]}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "a process that has not written its name yet"
