"""Training throughput: charrnn's training step against the bare fused module on the same shapes.

The bare loop is embedding -> nn.LSTM -> linear -> cross-entropy -> backward -> AdamW step on random
ids; charrnn's is Trainer.train_step on the real corpus (memory-mapped batches, hidden state carried,
learning-rate schedule, gradient clipping, NaN check). Also reports how much of a default run's time
goes to evaluation.

    python benchmarks/bench_train.py [--corpus ../shared/corpora/tinyshakespeare.txt] [--sizes 128 256 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved, table
from charrnn.training.config import TrainConfig
from charrnn.training.lm import evaluate
from charrnn.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def bare_step_fn(model, batch, seq_len, vocab):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq_len))
    y = torch.randint(0, vocab, (batch, seq_len))

    def steps(n=5):
        for _ in range(n):
            logits, _ = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return n * batch * seq_len

    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in args.sizes:
            cfg = TrainConfig(corpus=args.corpus, out=f"{tmp}/h{hidden}", hidden=hidden, max_steps=10**6,
                              cache_dir=f"{tmp}/cache")
            trainer = Trainer(cfg, progress=False)
            trainer.model.train()
            ours_steps = 5

            def ours(trainer=trainer, n=ours_steps):
                for _ in range(n):
                    trainer.train_step()
                return n * trainer.cfg.batch_size * trainer.cfg.seq_len

            bare = bare_step_fn(trainer.model, cfg.batch_size, cfg.seq_len, trainer.model.cfg.vocab_size)
            ours(), bare()  # warm up both
            speed = interleaved({"bare": bare, "charrnn": ours}, rounds=args.rounds)
            t0 = time.perf_counter()
            evaluate(trainer.model, trainer.task.val_ids, cfg.eval_batch, 256)
            eval_s = time.perf_counter() - t0
            train_s = cfg.eval_every * cfg.batch_size * cfg.seq_len / speed["charrnn"]
            rows.append([f"{cfg.layers}x{hidden} LSTM, B{cfg.batch_size}xT{cfg.seq_len}", f"{speed['bare']:,.0f}",
                         f"{speed['charrnn']:,.0f}", f"{speed['charrnn'] / speed['bare']:.2f}",
                         f"{eval_s:.1f} s", f"{eval_s / (eval_s + train_s):.1%}"])
            print(rows[-1], flush=True)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table(rows, ["model", "bare fused chars/s", "charrnn chars/s", "ratio",
                       "one val eval", f"eval share at --eval-every {TrainConfig.eval_every}"]))


if __name__ == "__main__":
    main()
