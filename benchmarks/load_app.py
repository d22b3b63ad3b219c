"""Load on the web app, on loopback: many autocomplete clients typing beside a training job, then a burst
of folk tunes. It reports requests, failures by kind, p50/p95 latency and the app's memory (RSS).

    python -m benchmarks.load_app [--clients 50] [--seconds 60] [--folk 20] [--corpus ../shared/...]

It starts `python app.py` with the shipped models, starts a training job on the corpus (a 2x128 LSTM,
through the app's own API, as the Train tab does), and lets `--clients` clients type: each sends its text
one character longer than last time, waits for the completions and types on after --think seconds.
Then it asks for `--folk` tunes at the same moment. Only the app's explicit "queue is full" (HTTP 503)
counts as a clean refusal; anything else that is not an answer is a failure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import REPO, running_app
from tests.load_clients import autocomplete_load, call, folk_burst, start_training, stop_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=0.1, help="seconds between an answer and the next keystroke")
    parser.add_argument("--folk", type=int, default=20, help="folk tunes asked for at once (default 20)")
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt")
    parser.add_argument("--no-training", action="store_true", help="no training job beside the clients")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    with running_app(REPO / "models", REPO / "runs" / "load-app") as (app, url, first_response):
        print(f"app answered after {first_response:.1f}s")
        if not args.no_training:
            print("training job:", json.dumps(start_training(url, args.corpus, args.seconds + 120)["status"]))
        load = autocomplete_load(url, text[int(len(text) * 0.9) :], app.pid, args.clients, args.seconds, args.think)
        print("autocomplete:", json.dumps(load))
        if not args.no_training:
            job = stop_training(url)
            print("training job:", job["status"], f"step {job.get('step')}", job.get("message", ""))
        print("folk burst:", json.dumps(folk_burst(url, args.folk)))
        print("the app is still up:", call(url, "models", []) == "ok")


if __name__ == "__main__":
    main()
