"""Every path's speed on a quiet machine and beside one busy core, side by side (README, "Busy machines").

    python -m benchmarks.bench_busy [--seconds 2] [--rounds 2] [--paths sample eval ...]

For each path, in turn and `--rounds` times: its speed with the thread policy (charrnn/threads.py) as the
command would choose it, then with a busy process beside it (a spinning Python process at the same
priority, started before the policy looks, as a browser or a second job would be), then beside it on
`--threads 1`, then beside it on every core (what torch does unasked). Each measure works for `--seconds`;
each piece of work is small (seconds at the collapsed speeds) so that the run ends. The table gives the
medians and the ratios the issue sets targets for: busy/quiet >= 0.7 and busy/one-thread >= 1. The
shipped models: shakespeare (LSTM 2x512), folk, g2p. Other processes on the machine count too: say what
else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from benchmarks.common import REPO, table
from charrnn import threads
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import beam_search, complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.folk.generate import FolkModel
from charrnn.inside.report import inspect_text
from charrnn.seq2seq.translate import Translator
from charrnn.training import autosize
from charrnn.training.lm import evaluate

CPU = torch.device("cpu")
MODES = ("quiet", "busy", "busy, --threads 1", "busy, every core")


@contextmanager
def busy_core(on: bool):
    """A process spinning on one core at this process's priority, while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        time.sleep(0.3 if on else 0)  # running before the policy looks
        yield
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()


def timed(work: Callable[[], int], seconds: float) -> float:
    """Units of `work` a second, calling it until `seconds` have passed (at least twice; the first warms up)."""
    work()
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or done == 0:
        done += work()
    return done / elapsed


def paths() -> dict[str, tuple[threads.Work, str, Callable[[float], float]]]:
    """name -> (the policy's kind of work, unit, speed(seconds): the path's speed, measured for that long)."""
    lm, vocab, run = load_model(REPO / "models" / "shakespeare", CPU)
    text = (REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    held_out = text[-20_000:]
    prefixes = [held_out[i : i + 40] for i in range(0, 4000, 200)]
    prompt = prepare_prompt(lm, vocab, "ROMEO:\n", "error", run.char_counts)
    folk = FolkModel(*load_model(REPO / "models" / "folk", CPU)[:3], name="folk")
    g2p = Translator.load(REPO / "models" / "g2p", CPU)
    words = [w for w in dict.fromkeys(held_out.lower().split()) if w.isalpha()][:60]

    def sample() -> int:
        return len("".join(generate(lm, vocab, prompt, 100, SamplingSettings(0.8, seed=1))))

    def completions() -> int:
        for p in prefixes[:2]:
            complete(lm, vocab, prepare_prompt(lm, vocab, p, "skip", run.char_counts))
        return 2

    def beam() -> int:
        beam_search(lm, vocab, prompt, 5, 30)
        return 30

    def folk_tune() -> int:
        return len(folk.generate("6/8", "D", "jig", seed=1, max_chars=100).abc)

    def every(piece: Callable[[], int]) -> Callable[[float], float]:
        return lambda seconds: timed(piece, seconds)

    def training(seconds: float) -> float:  # a training step, timed as the speed probe times it
        return autosize.measure("lstm", autosize.Shape(1, 256, 64, 32, 64), 65, CPU)

    return {
        "sample 2x512": (threads.Work.STEP, "chars/s", every(sample)),
        "app request (complete, one thread)": (threads.Work.STEP, "completions/s", every(completions)),
        "folk": (threads.Work.STEP, "chars/s", every(folk_tune)),
        "complete": (threads.Work.BATCH, "completions/s", every(completions)),
        "sample --beam 5": (threads.Work.BATCH, "chars/s", every(beam)),
        "eval": (threads.Work.BATCH, "chars/s",
                 every(lambda: evaluate(lm, vocab.encode(held_out[:8192]), 32, 256, CPU)[1])),
        "inspect": (threads.Work.BATCH, "chars/s",
                    every(lambda: len(inspect_text(lm, vocab, held_out[:500], unknown="skip").text))),
        "translate (g2p, beam 5)": (threads.Work.BATCH, "words/s",
                                    every(lambda: len(g2p.translate(words, beam=5, num=1, unknown="skip")))),
        "train / speed probe 1x256": (threads.Work.BATCH, "chars/s", training),
    }


def measure(work: threads.Work, speed: Callable[[float], float], mode: str, seconds: float) -> float:
    requested = {"busy, --threads 1": 1, "busy, every core": os.cpu_count()}.get(mode)
    with busy_core(mode != "quiet"):
        threads.use(work, requested)
        return speed(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="of each measure (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="measures of each path and mode (default 2)")
    ap.add_argument("--paths", nargs="+", help="only these paths (names as in the table, or their first word)")
    args = ap.parse_args()
    chosen = {name: p for name, p in paths().items()
              if not args.paths or name in args.paths or name.split()[0] in args.paths}
    load_before = os.getloadavg()
    results: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MODES} for name in chosen}
    for _ in range(args.rounds):
        for name, (work, _unit, speed) in chosen.items():
            for mode in MODES:
                results[name][mode].append(measure(work, speed, mode, args.seconds))
            print(name, {m: round(v[-1], 1) for m, v in results[name].items()}, flush=True)
    rows, record = [], {}
    for name, (work, unit, _speed) in chosen.items():
        med = {m: statistics.median(v) for m, v in results[name].items()}
        record[name] = {"unit": unit, "work": work.value, **{m: round(v, 1) for m, v in med.items()}}
        rows.append([name, work.value, unit, *(f"{med[m]:,.0f}" for m in MODES),
                     f"{med['busy'] / med['quiet']:.2f}x", f"{med['busy'] / med['busy, --threads 1']:.2f}x",
                     f"{med['busy, every core'] / med['quiet']:.2f}x"])
    print(json.dumps({"results": record, "cores": os.cpu_count(), "torch": torch.__version__,
                      "load_before": load_before, "load_after": os.getloadavg()}))
    print(table(rows, ["path", "policy", "unit", *MODES, "busy / quiet", "busy / --threads 1",
                       "every core busy / quiet"]))


if __name__ == "__main__":
    main()
