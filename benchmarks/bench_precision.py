"""The step path in bfloat16 and int8 against float32: sampling speed side by side, loss on held-out text.

    python -m benchmarks.bench_precision [--rounds 5] [--chars 2000] [--streams 16] [--loss-chars 600]

Speed, with the shipped shakespeare model (LSTM 2x512) on one thread, each precision in turn, `--rounds`
times (the median of each, and its ratio to fp32's): batch-1 sampling, beam search (8 beams) and
word completion (autocomplete's search, as one request of the app runs it). Loss: the held-out end of
tinyshakespeare (its last 5%, which the model did not train on), read character by character through
`step` in `--streams` streams, in nats per character, for each precision; its change from fp32's is what a
default precision must keep within 0.003 nats (README, "Lower precision"). Precisions this machine cannot
run are left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.common import REPO
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import beam_search, complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.models.rnn import PRECISIONS, bf16_supported, int8_supported

CPU = torch.device("cpu")


@torch.inference_mode()
def step_loss(model, ids: torch.Tensor, streams: int, length: int) -> float:
    """Mean cross-entropy of `streams` contiguous stretches of `ids`, each read one character a step."""
    x = ids[: streams * (length + 1)].view(streams, length + 1)
    state, total = model.init_state(streams), 0.0
    for t in range(length):
        logits, state = model.step(x[:, t], state)
        total += F.cross_entropy(logits, x[:, t + 1], reduction="sum").item()
    return total / (streams * length)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chars", type=int, default=2000, help="characters a sample (default 2000)")
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--loss-chars", type=int, default=600, help="characters each stream reads (default 600)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab, run = load_model(REPO / "models" / "shakespeare", CPU)
    text = (REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    held_out = torch.as_tensor(vocab.encode(text[int(len(text) * 0.95) :]), dtype=torch.long)
    prompt = prepare_prompt(model, vocab, "ROMEO:\n", "error", run.char_counts)
    can = {"fp32": True, "bf16": torch.backends.mkldnn.is_available(), "int8": int8_supported()}
    runnable = [p for p in PRECISIONS if can[p]]
    prefixes = [prepare_prompt(model, vocab, text[-20_000 + i : -19_960 + i], "skip") for i in range(0, 2000, 100)]
    def beam() -> int:
        beam_search(model, vocab, prompt, 8, args.chars // 10)
        return args.chars // 10

    work = {"sample chars/s": lambda: len("".join(generate(model, vocab, prompt, args.chars,
                                                            SamplingSettings(0.8, seed=1)))),
            "beam 8 chars/s": beam,
            "completions/s": lambda: sum(1 for p in prefixes if complete(model, vocab, p))}
    speeds = {(w, p): [] for w in work for p in runnable}
    for _ in range(args.rounds):
        for (what, precision), got in speeds.items():
            model.step_precision = precision
            t0 = time.perf_counter()
            got.append(work[what]() / (time.perf_counter() - t0))
    losses = {}
    for precision in runnable:
        model.step_precision = precision
        losses[precision] = step_loss(model, held_out, args.streams, args.loss_chars)
    med = {key: statistics.median(v) for key, v in speeds.items()}
    print(json.dumps({"bf16_hardware": bf16_supported(),
                      "speed": {f"{w}, {p}": round(v, 1) for (w, p), v in med.items()},
                      "all": {f"{w}, {p}": [round(v, 1) for v in vs] for (w, p), vs in speeds.items()},
                      "speedup": {f"{w}, {p}": round(v / med[w, "fp32"], 2) for (w, p), v in med.items()},
                      "loss": {p: round(v, 5) for p, v in losses.items()},
                      "loss_change": {p: round(v - losses["fp32"], 5) for p, v in losses.items()},
                      "loss_chars": args.streams * args.loss_chars, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
