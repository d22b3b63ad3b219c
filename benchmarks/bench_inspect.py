"""Looking inside against the bare fused forward pass over the same text, side by side.

Everything `charrnn inspect --html` does for 10,000 characters of tinyshakespeare with the shipped 2x512
LSTM (per-layer fused passes, the gates and c recomputed, surprisal and guesses, the finder over every h
and c, saturation, the HTML page) against one fused forward pass in the same chunks; and the page's size.

    python benchmarks/bench_inspect.py [--chars 10000] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import REPO, table
from charrnn.checkpoint import load_model
from charrnn.inside.activations import CHUNK, record
from charrnn.inside.render import SHOW_BEST, html_page
from charrnn.inside.report import inspect_text
from tests.helpers import SHAKESPEARE, require


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model", default=str(REPO / "models" / "shakespeare"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, vocab, run = load_model(args.model)
    text = require(SHAKESPEARE).read_text(encoding="utf-8")[: args.chars]
    ids = torch.from_numpy(vocab.encode(text))
    pages: list[str] = []

    def bare():
        state = None
        with torch.inference_mode():
            for lo in range(0, len(ids), CHUNK):
                _, state = model(ids[lo : lo + CHUNK].view(1, -1), state)

    def activations():
        record(model, ids)

    def everything():
        report = inspect_text(model, vocab, text, char_counts=run.char_counts, show_best=SHOW_BEST)
        pages.append(html_page(report, "bench"))

    contenders = {"bare fused forward": bare, "activations only (record)": activations,
                  "everything (inspect + HTML)": everything}
    best = {name: float("inf") for name in contenders}
    for _ in range(args.rounds):  # in turn, so machine noise hits all alike
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    base = best["bare fused forward"]
    rows = [[name, f"{s:.2f}", f"{s / base:.2f}x"] for name, s in best.items()]
    print(f"{len(text):,} characters, {model.cfg.layers}x{model.cfg.hidden} {model.cfg.cell.upper()}, "
          f"{args.threads} thread(s), best of {args.rounds}")
    print(table(rows, ["", "seconds", "vs bare forward"]))
    print(f"ratio everything / bare: {best['everything (inspect + HTML)'] / base:.2f}x; "
          f"HTML page: {len(pages[-1].encode()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
