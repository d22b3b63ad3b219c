"""Load on the web app, on loopback: many autocomplete clients typing beside a training job, then a burst
of folk tunes. It reports requests, failures by kind, p50/p95 latency and the app's memory (RSS).

    python -m benchmarks.load_app [--clients 50] [--seconds 60] [--route page|json|gradio|all]
                                  [--training on|off|both] [--folk 20] [--plot docs/load.png]

It starts `python app.py` with the shipped models and waits until it is warm (GET /api/health). With a
training job (`--training on`), it starts one on the corpus (a 2x128 LSTM, through the app's own API, as
the Train tab does) first. Then `--clients` clients type: each sends its text one character longer than
last time, waits for the completions and types on after --think seconds; several --clients values are
run one after another on the same app. The route is the page's own (what the Autocomplete tab sends as
you type: /api/page/complete), the JSON route /api/complete (charrnn/web/rest.py) or the Gradio event
/complete. Then it asks for `--folk` tunes at the same moment. Only the app's explicit "queue is full"
(HTTP 503) counts as a clean refusal; anything else that is not an answer is a
failure. It prints one JSON line per run and a markdown table; --plot draws answers/s and p95 per count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import REPO, running_app, table
from tests.load_clients import autocomplete_load, call, folk_burst, start_training, stop_training, wait_until_warm


def plot(runs: list[dict], path: Path) -> None:
    """Answers per second and p50/p95 latency against the number of clients, one line per route and job."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, latency) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in dict.fromkeys((r["route"], r["training"]) for r in runs):
        line = sorted((r for r in runs if (r["route"], r["training"]) == key), key=lambda r: r["clients"])
        label = f"{key[0]} route, {'beside a training job' if key[1] else 'no training job'}"
        clients = [r["clients"] for r in line]
        rate.plot(clients, [r["answers_per_s"] for r in line], "o-", label=label)
        latency.plot(clients, [r["p95_ms"] for r in line], "o-", label=f"{label}: p95")
        latency.plot(clients, [r["p50_ms"] for r in line], "o--", alpha=0.5, color=latency.lines[-1].get_color())
    rate.set(xlabel="clients typing (0.1 s think time)", ylabel="answers per second", title="Throughput")
    latency.set(xlabel="clients typing (0.1 s think time)", ylabel="ms (solid p95, dashed p50)", yscale="log",
                title="Latency")
    rate.legend(fontsize=7)
    for ax in (rate, latency):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50])
    parser.add_argument("--seconds", type=float, default=60.0, help="of each run")
    parser.add_argument("--think", type=float, default=0.1, help="seconds between an answer and the next keystroke")
    parser.add_argument("--route", choices=["page", "json", "gradio", "all"], default="page",
                        help="what the page sends as you type (default), the JSON route /api/complete, the Gradio "
                             "event /complete, or all three in turn")
    parser.add_argument("--training", choices=["on", "off", "both"], default="on",
                        help="a training job beside the clients (default on); both: without, then with")
    parser.add_argument("--folk", type=int, default=20, help="folk tunes asked for at once (default 20)")
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt")
    parser.add_argument("--plot", type=Path, help="draw answers/s and latency per client count into this PNG")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    routes = ("gradio", "json", "page") if args.route == "all" else (args.route,)
    runs = []
    with running_app(REPO / "models", REPO / "runs" / "load-app") as (app, url, first_response):
        print(f"app answered after {first_response:.1f}s, warm {wait_until_warm(url):.1f}s later")
        for training in {"off": (False,), "on": (True,), "both": (False, True)}[args.training]:
            if training:
                budget = args.seconds * len(args.clients) * len(routes) + 120
                print("training job:", json.dumps(start_training(url, args.corpus, budget)["status"]))
            for route in routes:
                for clients in args.clients:
                    load = autocomplete_load(url, text[int(len(text) * 0.9) :], app.pid, clients, args.seconds,
                                             args.think, route=route)
                    runs.append({**load, "training": training})
                    print("autocomplete:", json.dumps(runs[-1]), flush=True)
            if training:
                job = stop_training(url)
                print("training job:", job["status"], f"step {job.get('step')}", job.get("message", ""))
        if args.folk:
            print("folk burst:", json.dumps(folk_burst(url, args.folk)))
        print("the app is still up:", call(url, "models", []) == "ok")
    print(table([[r["route"], "yes" if r["training"] else "no", r["clients"], f"{r['requests']:,}",
                  f"{r['queue_full']:,}", r["answers_per_s"], f"{r['p50_ms']:,}", f"{r['p95_ms']:,}",
                  sum(r["failed"].values()), f"{r['rss_end_mb']:,} MB", f"{r['rss_growth_mb']:+.0f} MB"]
                 for r in runs],
                ["route", "training job", "clients", "requests", "refused (queue full)", "answers/s", "p50 ms",
                 "p95 ms", "failed", "RSS at the end", "RSS growth (2nd half)"]))
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
