"""Helpers the tests (and benchmarks) share: where the shared data lives, and how a test asks for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The shared data folder (corpora/tinyshakespeare.txt ...): beside the checkout, or $CHARRNN_SHARED.
SHARED = Path(os.environ.get("CHARRNN_SHARED") or REPO.parent / "shared")
CORPORA = SHARED / "corpora"
SHAKESPEARE = CORPORA / "tinyshakespeare.txt"


def require(path: Path) -> Path:
    """`path`, which a test needs. Missing, the test is skipped on a developer's machine, but fails
    where $CI is set: there a suite that skipped its tests would pass without testing anything."""
    if not path.exists():
        message = f"{path} is not there (set CHARRNN_SHARED to the folder that holds corpora/)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this fails instead of skipping", pytrace=False)
        pytest.skip(message)
    return path


def run_in_threads(jobs: list) -> list:
    """Each job() in its own thread, all started at once; their results in order (an error in any is raised)."""
    import threading

    results: list = [None] * len(jobs)
    errors: list = []

    def run(i, job):
        try:
            results[i] = job()
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results
