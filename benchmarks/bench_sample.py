"""Generation speed at batch 1: charrnn's step path against calling nn.LSTM once per character,
and beam search (width 8) against greedy, per generated character.

    python benchmarks/bench_sample.py [--sizes 512 256] [--chars 400]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import interleaved, table
from charrnn.data import Vocab
from charrnn.decoding.beam import beam_search
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.models.rnn import CharRNN, ModelConfig

VOCAB = Vocab([chr(32 + i) for i in range(65)])


def fused_per_char(model, chars):
    """The naive loop: the fused module called for one character at a time, then a sample."""

    def run():
        with torch.inference_mode():
            x, state = torch.tensor([[1]]), None
            for _ in range(chars):
                logits, state = model(x, state)
                x = torch.multinomial(logits[0, -1].softmax(-1), 1).view(1, 1)
        return chars

    return run


def charrnn_sample(model, chars, temperature=1.0):
    def run():
        prompt = prepare_prompt(model, VOCAB, "A")
        return sum(1 for _ in generate(model, VOCAB, prompt, chars, SamplingSettings(temperature, seed=0)))

    return run


def charrnn_beam(model, chars, width):
    def run():
        beam_search(model, VOCAB, prepare_prompt(model, VOCAB, "A"), width, chars)
        return chars

    return run


def with_threads(n, fn):
    def run():
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(old)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 256])
    ap.add_argument("--chars", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    rows = []
    for hidden in args.sizes:
        torch.manual_seed(0)
        model = CharRNN(ModelConfig(vocab_size=len(VOCAB), layers=2, hidden=hidden)).eval()
        n = args.chars
        contenders = {
            f"nn.LSTM per char, {threads} threads": with_threads(threads, fused_per_char(model, n // 4)),
            "nn.LSTM per char, 1 thread": with_threads(1, fused_per_char(model, n // 4)),
            f"charrnn sample, {threads} threads": with_threads(threads, charrnn_sample(model, n)),
            "charrnn sample, 1 thread": with_threads(1, charrnn_sample(model, n)),
            "charrnn greedy, 1 thread": with_threads(1, charrnn_sample(model, n, temperature=0)),
            "charrnn beam 8, 1 thread": with_threads(1, charrnn_beam(model, n // 4, 8)),
            f"charrnn beam 8, {threads} threads": with_threads(threads, charrnn_beam(model, n // 4, 8)),
        }
        for fn in contenders.values():
            fn()  # warm up
        speed = interleaved(contenders, rounds=args.rounds)
        naive = max(v for k, v in speed.items() if k.startswith("nn.LSTM"))
        ours = speed["charrnn sample, 1 thread"]
        greedy, beam = speed["charrnn greedy, 1 thread"], max(v for k, v in speed.items() if "beam" in k)
        for name, cps in speed.items():
            rows.append([f"2x{hidden}", name, f"{cps:,.0f}", f"{cps / naive:.1f}x"])
        rows.append([f"2x{hidden}", "**sample vs best nn.LSTM loop**", f"{ours:,.0f}", f"**{ours / naive:.1f}x**"])
        rows.append([f"2x{hidden}", "**beam 8 cost per char / greedy's**", "", f"**{greedy / beam:.2f}x**"])
        print(*rows[-len(speed) - 2:], sep="\n", flush=True)
    print(f"\ntorch {torch.__version__}")
    print(table(rows, ["LSTM", "how", "chars/s", "vs best nn.LSTM loop"]))


if __name__ == "__main__":
    main()
