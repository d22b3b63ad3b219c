"""Helpers shared by the benchmark scripts: interleaved rounds, tables, the app in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def interleaved(contenders: dict[str, Callable[[], int]], rounds: int = 5) -> dict[str, float]:
    """Units per second of each contender (best of `rounds`), run in turn so machine noise hits all alike.

    Each callable does one timed chunk of work and returns how many units (chars, steps) it did.
    """
    best = {name: 0.0 for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            units = fn()
            best[name] = max(best[name], units / (time.perf_counter() - t0))
    return best


def table(rows: list[list], header: list[str]) -> str:
    """A GitHub-markdown table (paste it into the README)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def running_app(models: Path, runs: Path, checkout: Path = REPO) -> Iterator[tuple[subprocess.Popen, str, float]]:
    """`python app.py` of `checkout` (this one, or another to compare with) on a free loopback port: (process,
    url, seconds to its first page); stopped on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, str(checkout / "app.py"), "--models", str(models), "--port", str(port),
                            "--runs", str(runs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(checkout)))
    try:
        while True:
            if app.poll() is not None:
                raise RuntimeError(f"the app exited with {app.returncode}")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield app, url, time.perf_counter() - started
    finally:
        app.terminate()
        app.wait(30)
