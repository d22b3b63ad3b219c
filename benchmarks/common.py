"""Timing helpers shared by the benchmark scripts: interleaved rounds, best-of, side-by-side ratios."""

from __future__ import annotations

import time
from collections.abc import Callable


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
