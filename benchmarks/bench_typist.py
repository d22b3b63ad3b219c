"""One typist through the page: per-keystroke latency of the autocomplete, with and without "learn from my text".

It starts `python app.py` with the shipped models, waits until it is warm (GET /api/health), and types
held-out text (passages of the last 10% of the corpus) one keystroke every `--interval` seconds, sending
exactly what the Autocomplete tab's script (charrnn/web/static/autocomplete.js) sends: the box's whole
text and the tab's default settings to /api/page/complete, with its session key and `adapt` on or off. As
the page does, one request is out at a time and the latest text waits while one is out, so a keystroke's
latency runs from the moment it is typed to the first answer for a text that includes it (time spent
waiting behind an earlier request counts). The two ways take turns, passage by passage (each passage is
typed once, in one way: the trained model's caches would otherwise answer the second from memory).

    python -m benchmarks.bench_typist [--model shakespeare] [--chars 500] [--rounds 2] [--interval 0.1]
                                      [--base OTHER_CHECKOUT]

With --base, the app of another checkout (the code before a change) runs beside this one's, and the
passages go to each app in turn, so the two are compared on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
import urllib.request
from pathlib import Path

from benchmarks.common import REPO, running_app, table
from charrnn.serve import limits
from tests.helpers import SHAKESPEARE
from tests.load_clients import percentile, wait_until_warm

LEARN_WAIT_S = 2.0  # after a passage, before asking how much was learned


def ask(url: str, body: dict) -> dict:
    """One request to the page's route, as autocomplete.js sends it."""
    request = urllib.request.Request(f"{url}api/page/complete", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)


def type_passage(url: str, model: str, text: str, interval: float, adapt: bool) -> dict:
    """Type `text` one keystroke every `interval` seconds: each keystroke's latency and the server's times."""
    settings = {"model": model, "num": limits.COMPLETIONS.default, "until": "word",
                "max_len": limits.COMPLETION_LENGTH.default, "phrases": "separate",
                "phrase_prob": limits.PHRASE_PROB.default, "auto_space": True, "adapt": adapt}
    session, answered, latencies, server_ms = "", 0, [], []
    started = time.perf_counter()
    while answered < len(text):
        typed = min(len(text), int((time.perf_counter() - started) / interval) + 1)  # keystrokes made by now
        if typed <= answered:
            time.sleep(started + answered * interval - time.perf_counter())
            continue
        answer = ask(url, {**settings, "text": text[:typed], "session": session})
        done = time.perf_counter()
        latencies += [done - (started + i * interval) for i in range(answered, typed)]
        server_ms.append(answer["ms"])
        session, answered = answer.get("session", ""), typed
    learned = 0
    if adapt:  # how much it learned, asked once more (untimed) when the learning thread has caught up
        time.sleep(LEARN_WAIT_S)
        learned = ask(url, {**settings, "text": text, "session": session})["learned_chars"]
    return {"latencies": latencies, "server_ms": server_ms, "learned": learned}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shakespeare", help="a model of the models folder (default shakespeare)")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE, help="the model's corpus: its last 10%% is typed")
    parser.add_argument("--chars", type=int, default=500, help="characters of each passage")
    parser.add_argument("--rounds", type=int, default=2, help="passages typed each way, taking turns")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between keystrokes (0.1: a fast typist)")
    parser.add_argument("--base", type=Path, help="another checkout (e.g. `git worktree add /tmp/base main`) whose "
                                                  "app is typed to as well, taking turns with this one's")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    held_out = text[len(text) - len(text) // 10 :]
    checkouts = {"now": REPO, **({"base": args.base.resolve()} if args.base else {})}
    ways = [(app, adapt) for app in checkouts for adapt in (False, True)]
    runs: dict[tuple[str, bool], list[dict]] = {way: [] for way in ways}
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, checkout in checkouts.items():
            _, urls[name], first = stack.enter_context(running_app(args.models, REPO / "runs" / f"bench-typist-{name}",
                                                                   checkout))
            print(f"{name} ({checkout}): answered after {first:.1f}s, warm {wait_until_warm(urls[name]):.1f}s later",
                  flush=True)
        passage = 0
        for r in range(args.rounds):
            for app, adapt in (ways if r % 2 == 0 else ways[::-1]):
                piece = held_out[passage * args.chars : (passage + 1) * args.chars]
                passage += 1
                done = type_passage(urls[app], args.model, piece, args.interval, adapt)
                runs[app, adapt].append(done)
                print(json.dumps({"app": app, "adapt": adapt, "passage": passage, "learned_chars": done["learned"],
                                  "p95_ms": round(1000 * percentile(done["latencies"], 95), 1)}), flush=True)
    rows = []
    for (app, adapt), done in runs.items():
        ms = [1000 * s for run in done for s in run["latencies"]]
        server = [m for run in done for m in run["server_ms"]]
        rows.append([app, "on" if adapt else "off", len(ms), sum(len(run["server_ms"]) for run in done),
                     f"{statistics.median(ms):.1f}", f"{percentile(ms, 95):.1f}", f"{max(ms):.0f}",
                     f"{percentile(server, 95):.1f}", sum(run["learned"] for run in done)])
    print(f"{args.model}: {args.rounds} passage(s) of {args.chars} held-out characters each way, a keystroke every "
          f"{args.interval * 1000:.0f} ms")
    print(table(rows, ["app", "learn from my text", "keystrokes", "requests", "p50 ms", "p95 ms", "max ms",
                       "server p95 ms", "characters learned"]))


if __name__ == "__main__":
    main()
