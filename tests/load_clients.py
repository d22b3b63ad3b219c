"""Clients of the web app's REST API that put load on it: the load test (tests/test_load.py) and the
benchmark (benchmarks/load_app.py) drive the same code."""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from charrnn.decoding.suggest import SuggestSettings


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


QUEUE_FULL = "queue full"


def wait_until_warm(url: str, timeout: float = 300.0) -> float:
    """Wait until the app has loaded what its first requests need (GET /api/health); the seconds it took.
    Memory is measured from then on: the dictionary and the models it loads in the background are no leak."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with urllib.request.urlopen(f"{url}api/health", timeout=30) as r:
            if json.load(r)["warm"]:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"the app was not warm after {timeout:.0f}s")


def call_json(url: str, api: str, body: dict, timeout: float = 300.0) -> str:
    """One request to the app's JSON route /api/NAME (charrnn/web/rest.py): "ok", QUEUE_FULL or "error: ..."."""
    request = urllib.request.Request(f"{url}api/{api}", json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            json.load(r)
        return "ok"
    except urllib.error.HTTPError as e:
        return QUEUE_FULL if e.code == 503 else f"error: HTTP {e.code} {e.read()[:200]!r}"
    except (OSError, ValueError) as e:
        return f"error: {type(e).__name__}: {e}"


def call(url: str, api: str, data: list, timeout: float = 300.0) -> str:
    """One request through Gradio's REST API: "ok", QUEUE_FULL, or "error: ..." saying what went wrong."""
    request = urllib.request.Request(f"{url}gradio_api/call/{api}", json.dumps({"data": data}).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            event_id = json.load(r)["event_id"]
        with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=timeout) as r:
            event = ""
            for raw in r:  # server-sent events: "event: NAME" then "data: JSON"
                line = raw.decode().strip()
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "complete":
                        return "ok"
                    return f"error: {(json.loads(line[5:]) or {}).get('error')}"
        return "error: the event stream ended without a result"
    except urllib.error.HTTPError as e:
        return QUEUE_FULL if e.code == 503 else f"error: HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"error: {type(e).__name__}: {e}"


ROUTES = {"page": "page/complete", "json": "complete"}  # autocomplete_load's JSON routes, under /api/
# what the Autocomplete tab sends with each keystroke at its defaults (static/autocomplete.js)
PAGE_SETTINGS = {"num": 3, "until": "word", "max_len": 30, "phrases": SuggestSettings.phrases, "phrase_prob": 0.5,
                 "auto_space": True, "adapt": False, "session": ""}


def gradio_values(args: dict) -> list:
    """The same request as the Gradio event /complete takes it: its inputs in order, phrases a checkbox."""
    return [*args.values()][:5] + [args["phrases"] != "off", *[*args.values()][6:]]
WARM_UP_S = 15.0  # seconds of load before the measured load (see autocomplete_load)


class MemoryWatch(threading.Thread):
    """Samples a process's resident memory (Linux /proc) every `every` seconds until stopped."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MB)
        self._stop_event = threading.Event()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop_event.wait(self.every):
            self.samples.append((time.monotonic() - started, self.rss_mb()))

    def stop(self) -> dict:
        """Stop; memory at the start, once warm (the median of the run's sixth tenth: the caches, Gradio's
        sessions and the worker threads' heaps fill in the first half) and at the end (the median of its
        last tenth), the peak, and the growth from warm to the end: a leak grows on through the second half."""
        self._stop_event.set()
        self.join()
        mb = [m for _, m in self.samples]
        tenth = max(1, len(mb) // 10)
        warm, end = statistics.median(mb[5 * tenth : 6 * tenth] or mb), statistics.median(mb[-tenth:])
        return {"rss_start_mb": round(mb[0]), "rss_warm_mb": round(warm), "rss_end_mb": round(end),
                "rss_peak_mb": round(max(mb)), "rss_growth_mb": round(end - warm, 1)}


def _summary(outcomes: list[tuple[str, float]], seconds: float) -> dict:
    """Counts by outcome and latency of the answered requests."""
    kinds = Counter(outcome for outcome, _ in outcomes)
    ms = [1000 * s for outcome, s in outcomes if outcome == "ok"] or [0.0]
    return {"requests": len(outcomes), "ok": kinds["ok"], "queue_full": kinds[QUEUE_FULL],
            "failed": {k: n for k, n in kinds.items() if k not in ("ok", QUEUE_FULL)},
            "per_s": round(len(outcomes) / seconds, 1), "answers_per_s": round(kinds["ok"] / seconds, 1),
            "p50_ms": round(statistics.median(ms)),
            "p95_ms": round(percentile(ms, 95)), "max_ms": round(max(ms))}


def _in_threads(client: Callable[[int], None], count: int) -> float:
    """Run client(0) ... client(count - 1) in threads at once; the seconds until all are done."""
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started


def _timed(request: Callable[..., str], *args) -> tuple[str, float]:
    started = time.perf_counter()
    outcome = request(*args)
    return outcome, time.perf_counter() - started


def autocomplete_load(url: str, text: str, pid: int, clients: int = 50, seconds: float = 60.0,
                      think: float = 0.1, model: str = "shakespeare", route: str = "page",
                      warm_up_s: float = WARM_UP_S) -> dict:
    """`clients` threads type through their own stretch of `text` for `seconds`; outcomes and memory.

    `route` "page" sends what the Autocomplete tab's page sends as you type (static/autocomplete.js: the same
    JSON body to /api/page/complete), "json" asks the JSON route /api/complete, "gradio" the Gradio event
    /complete.
    The same clients first type `warm_up_s` seconds, unmeasured, elsewhere in `text`: the first requests
    under load fill the caches and the allocator's arenas, which is not what a leak check should see."""
    if warm_up_s:
        autocomplete_load(url, text[len(text) // (2 * clients) :], pid, clients, warm_up_s, think, model, route, 0)
    outcomes: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(i: int) -> None:
        start = i * (len(text) - 1000) // clients
        at = start + 200  # 200 characters typed before the first request; the text grows from there
        while time.monotonic() < deadline:
            at += 1
            args = {"model": model, "text": text[start:at], **PAGE_SETTINGS}
            outcomes[i].append(_timed(call, url, "complete", gradio_values(args)) if route == "gradio"
                               else _timed(call_json, url, ROUTES[route], args))
            time.sleep(think)

    watch = MemoryWatch(pid)
    watch.start()
    elapsed = _in_threads(client, clients)
    result = _summary([o for per_client in outcomes for o in per_client], elapsed)
    result.update(route=route, clients=clients, seconds=seconds, least_answered_by_a_client=min(
        sum(outcome == "ok" for outcome, _ in per_client) for per_client in outcomes), **watch.stop())
    return result


def folk_burst(url: str, count: int = 20, model: str = "folk", candidates: int = 4) -> dict:
    """`count` folk tunes asked for at the same moment (as many users pressing Write a tune at once)."""
    outcomes: list[tuple[str, float]] = [("error: not run", 0.0)] * count
    start = threading.Barrier(count)

    def client(i: int) -> None:
        start.wait()
        outcomes[i] = _timed(call, url, "folk", [model, "6/8", "D", "major", "jig", "", 0.8, i, candidates, 120])

    return _summary(outcomes, _in_threads(client, count))


def start_training(url: str, corpus: Path, budget_s: float) -> dict:
    """Start the app's training job on an uploaded corpus (a 2x128 LSTM) and wait until it trains."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    client.predict("upload", handle_file(str(corpus)), "under load", "lstm", "small", budget_s, api_name="/train_start")
    deadline = time.monotonic() + 120
    while (status := client.predict(api_name="/train_status"))["status"] != "running" or not status.get("step"):
        if status["status"] in ("done", "failed") or time.monotonic() > deadline:
            raise RuntimeError(f"the training job did not start: {status}")
        time.sleep(0.5)
    return status


def stop_training(url: str) -> dict:
    """Ask the job to stop and wait for it; its last status."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    client.predict(api_name="/train_stop")
    deadline = time.monotonic() + 120
    while (status := client.predict(api_name="/train_status"))["status"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the training job did not stop: {status}")
        time.sleep(0.5)
    return status
