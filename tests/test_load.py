"""Load on the real app (`python app.py`, loopback only, with the shipped models): many autocomplete clients
beside a running training job (sending what the Autocomplete tab's page sends: /api/page/complete), and folk
tunes asked for all at once. Bounded in count and time.

The figures go to test-artifacts/load.json; the README's Reliability section quotes a run of
benchmarks/load_app.py, which drives the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from load_clients import autocomplete_load, call, folk_burst, start_training, stop_training, wait_until_warm
from test_app_support import ARTIFACTS, AppServer

from conftest import REPO

pytestmark = pytest.mark.slow
CLIENTS, SECONDS = 50, 60.0


def _record(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "load.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**saved, name: figures}, indent=1))
    print(name, figures)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("load-app")
    server = AppServer(REPO / "models", work / "runs", work)
    wait_until_warm(server.url)
    yield server
    server.stop()
    assert server.network_attempts() == [], "the app tried to reach the network"


def test_autocomplete_clients_beside_a_training_job(app: AppServer, shakespeare: Path) -> None:
    text = shakespeare.read_text(encoding="utf-8")
    start_training(app.url, shakespeare, budget_s=SECONDS + 120)
    try:
        load = autocomplete_load(app.url, text[int(len(text) * 0.9) :], app.process.pid, CLIENTS, SECONDS)
    finally:
        job = stop_training(app.url)
    _record("autocomplete", load)
    assert load["failed"] == {}, load
    assert load["least_answered_by_a_client"] >= 10, load  # nobody starved
    assert load["ok"] + load["queue_full"] == load["requests"]
    assert load["rss_growth_mb"] < 50, load  # no leak: a few KB a request would show over the second half
    assert job["status"] == "done" and job["step"] > 0, job  # the job trained throughout, and stopped cleanly


def test_twenty_folk_tunes_at_once(app: AppServer) -> None:
    burst = folk_burst(app.url, 20)
    _record("folk", burst)
    assert burst["failed"] == {} and burst["ok"] + burst["queue_full"] == 20, burst
    assert call(app.url, "models", []) == "ok"  # still up


def test_a_full_queue_refuses_cleanly_and_the_app_stays_up(tmp_path: Path) -> None:
    server = AppServer(REPO / "models", tmp_path / "runs", tmp_path, "--queue-size", "4")
    try:
        burst = folk_burst(server.url, 20, candidates=1)
        assert burst["failed"] == {}, burst
        assert burst["queue_full"] > 0 and burst["ok"] >= 4, burst
        assert call(server.url, "folk", ["folk", "6/8", "D", "major", "jig", "", 0.8, 1, 1, 120]) == "ok"
    finally:
        server.stop()
