"""The batcher (charrnn.serve.batcher) against serving each request alone, on the shipped 2x512 model.

    python -m benchmarks.bench_batcher [--clients 1 4 8 16] [--model models/shakespeare] [--rounds 2] [--device cuda]

N requests arrive at once, each in its own thread as the app's workers do: autocomplete completions
(a beam search of width 8 to the end of the word, from distinct prefixes) or sampling streams
(200 characters, distinct seeds). Three ways to serve them:
- alone: one after another, on one thread (what one worker does);
- threads: all at once, each stepping the model alone (today's app, with N workers);
- batched: all at once through a Batcher, one model.step per character for all of them.
It prints, side by side, the rows the model stepped per second, requests per second, and the p50/p95
latency from the moment they all arrived. Inference runs on one torch thread per request, as in the app.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import REPO, table
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.serve.batcher import Batcher

PREFIXES = ["To be, or not to b", "ROMEO:\nWhat say", "First Citizen:\nBefore we pro", "My lord, I", "The qu",
            "KING RICHARD II:\nNo", "O, that this too too s", "Now is the winter of our disc"]


class Counting:
    """The model, counting the rows it steps (a Decodable: the batcher and decoding see no difference)."""

    def __init__(self, model):
        self.model, self.device, self.rows = model, model.device, 0
        self._lock = threading.Lock()

    def init_state(self, batch, device=None):
        return self.model.init_state(batch, device)

    def read(self, ids, state):
        return self.model.read(ids, state)

    def reorder(self, state, index):
        return self.model.reorder(state, index)

    def concat(self, states):
        return self.model.concat(states)

    def step(self, x, state):
        with self._lock:
            self.rows += len(x)
        return self.model.step(x, state)


def serve(mode: str, model: Counting, jobs: list[Callable], batcher: Batcher) -> list[float]:
    """Seconds from the start until each job finished, served in `mode`."""
    done: list[float] = []
    t0 = time.perf_counter()

    def run(job):
        torch.set_num_threads(1)
        if mode == "batched":
            with batcher.session(model) as session:
                job(session)
        else:
            job(model)
        done.append(time.perf_counter() - t0)

    if mode == "alone":
        for job in jobs:
            run(job)
    else:
        threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "shakespeare")
    parser.add_argument("--rounds", type=int, default=2, help="each measurement's best of this many")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net, vocab, _ = load_model(args.model, args.device)
    model = Counting(net)
    prompts = {p: prepare_prompt(net, vocab, p) for p in PREFIXES}

    def completion(prefix: str) -> Callable:
        return lambda m: complete(m, vocab, prompts[prefix], 3, "word", 30)

    def stream(seed: int) -> Callable:
        return lambda m: "".join(generate(m, vocab, prompts[PREFIXES[1]], 200, SamplingSettings(0.8, seed=seed)))

    kinds = {"completions": lambda n: [completion(PREFIXES[i % len(PREFIXES)]) for i in range(n)],
             "sampling streams": lambda n: [stream(i) for i in range(n)]}
    rows = []
    for kind, make in kinds.items():
        for n in args.clients:
            cells = {}
            for mode in ("alone", "threads", "batched"):
                best = None
                for _ in range(args.rounds):
                    batcher = Batcher()
                    model.rows = 0
                    t = serve(mode, model, make(n), batcher)
                    result = (model.rows / max(t), n / max(t), statistics.median(t), percentile(t, 95))
                    best = result if best is None or result[1] > best[1] else best
                cells[mode] = best
            rows.append([kind, n] + [f"{cells[m][0]:,.0f}" for m in cells] + [f"{cells[m][1]:,.1f}" for m in cells]
                        + [f"{cells[m][2] * 1000:,.0f} / {cells[m][3] * 1000:,.0f}" for m in cells])
            print(rows[-1], flush=True)
    modes = ("alone", "threads", "batched")
    print(table(rows, ["requests", "at once"] + [f"rows/s {m}" for m in modes] + [f"req/s {m}" for m in modes]
                + [f"p50 / p95 ms {m}" for m in modes]))


if __name__ == "__main__":
    main()
