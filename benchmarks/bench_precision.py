"""The step path in bfloat16 against float32: sampling speed side by side and the loss on held-out text.

    python -m benchmarks.bench_precision [--rounds 5] [--chars 2000] [--streams 16] [--loss-chars 600]

Speed: batch-1 sampling with the shipped shakespeare model (LSTM 2x512) on one thread, fp32 and bf16
alternating `--rounds` times (the median of each, and their ratio). Loss: the held-out end of
tinyshakespeare (its last 5%, which the model did not train on), read character by character through
`step` in `--streams` streams, in nats per character, for each precision; the difference is what
StepWeights.step_precision's default must keep within 0.003 nats (README, "Lower precision").
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
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.models.rnn import PRECISIONS, bf16_supported

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
    speeds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(args.rounds):
        for precision in PRECISIONS:
            model.step_precision = precision
            t0 = time.perf_counter()
            n = len("".join(generate(model, vocab, prompt, args.chars, SamplingSettings(0.8, seed=1))))
            speeds[precision].append(n / (time.perf_counter() - t0))
    losses = {}
    for precision in PRECISIONS:
        model.step_precision = precision
        losses[precision] = step_loss(model, held_out, args.streams, args.loss_chars)
    med = {p: statistics.median(v) for p, v in speeds.items()}
    print(json.dumps({"bf16_hardware": bf16_supported(), "chars_per_s": {p: round(v) for p, v in med.items()},
                      "all": {p: [round(v) for v in vs] for p, vs in speeds.items()},
                      "speedup": round(med["bf16"] / med["fp32"], 2),
                      "loss": {p: round(v, 5) for p, v in losses.items()},
                      "loss_change": round(losses["bf16"] - losses["fp32"], 5),
                      "loss_chars": args.streams * args.loss_chars, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
