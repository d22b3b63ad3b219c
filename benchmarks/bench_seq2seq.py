"""Seq2seq speed: training against the bare fused modules, and batched greedy and beam decoding.

Training: charrnn's Trainer.train_step (bucketed batches of real pairs, packed encoder, masks, schedule,
gradient clipping, NaN check) against a bare loop of the same modules on the same batches (no packing, no
masks): embedding -> bidirectional LSTM -> decoder LSTM -> attention -> head ->
cross-entropy -> backward -> AdamW. Decoding: sources per second of a model's greedy and beam search
over a file's sources, each run in turn so machine noise hits both alike.

With --app it starts `python app.py` on the models folder and asks for one test word at a time through
gradio_client (/translate, the Pronounce tab's event) and the JSON route /api/translate: p50 and p95 of
the whole round trip and of the server's own time (the "ms" it reports). The routes take turns in blocks
of BLOCK words, each block after WARM untimed calls: Gradio's own threads are still busy for a while
after its answer, and in strict alternation that work landed in the JSON route's times.

    python -m benchmarks.bench_seq2seq [--pairs corpora/cmudict.train.tsv] [--model models/g2p] [--threads 2]
                                       [--device cuda]   # both parts on the GPU (default: the CPU)
    python -m benchmarks.bench_seq2seq --app [--model models/g2p] [--words 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved, running_app, table
from charrnn.models.seq2seq import PAD
from charrnn.seq2seq.data import detokenize, read_pairs
from charrnn.seq2seq.translate import Translator
from charrnn.training.config import Seq2SeqTrainConfig
from charrnn.training.trainer import Trainer
from tests.load_clients import percentile, wait_until_warm

ROOT = Path(__file__).resolve().parents[1]
BLOCK, WARM = 20, 3  # --app: words a route answers in a row, and the untimed calls before them


def training(pairs: Path, hidden: int, layers: int, rounds: int, device: str) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Seq2SeqTrainConfig(corpus=str(pairs), out=f"{tmp}/run", hidden=hidden, layers=layers,
                                 target_tokens="space", max_steps=10**6, dropout=0.0, device=device)
        trainer = Trainer(cfg, progress=False)
        model = trainer.model.train()
        # The shapes charrnn's steps see, already on the device (as charrnn's are once its step moves them).
        batches = [trainer.task.batches.get(step).to(trainer.device) for step in range(64)]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        done = {"bare": 0}

        def bare(n=10):
            for _ in range(n):
                batch = batches[done["bare"] % len(batches)]
                done["bare"] += 1
                memory, final = model.encoder(model.source_embed(batch.source))
                state = model._bridge(final)
                out, _ = model.decoder(model.target_embed(batch.target_in), state)
                keys = model.attention["key"](memory)
                weights = torch.bmm(out, keys.transpose(1, 2)).softmax(-1)
                combined = torch.tanh(model.combine(torch.cat([out, torch.bmm(weights, memory)], -1)))
                logits = model.head(combined)
                loss = F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=PAD)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            loss.item()  # waits for the device, as charrnn's step does (it checks the loss)
            return n

        def ours(n=10):
            for _ in range(n):
                trainer.train_step()
            return n

        bare(2), ours(2)  # warm up; from here both take batches 2, 3, ... of the same list
        trainer.step = done["bare"] = 2
        speed = interleaved({"bare": bare, "charrnn": ours}, rounds=rounds)
        trainer.release()
    return [f"{layers}x{hidden} LSTM, batch {cfg.batch_size}", f"{speed['bare']:.1f}", f"{speed['charrnn']:.1f}",
            f"{speed['charrnn'] / speed['bare']:.2f}"]


def decoding(model_dir: Path, pairs: Path, n: int, rounds: int, device: str) -> tuple[list[list], str]:
    translator = Translator.load(model_dir, device)
    data = read_pairs(pairs, translator.source_tokens, translator.target_tokens)
    sources = [detokenize(s, translator.source_tokens) for s in list(data.references())[:n]]
    settings = {"greedy": (1, 0.0), "beam 5": (5, 0.0), "beam 5, length penalty 1": (5, 1.0)}

    def run(beam, penalty):
        return lambda: len(translator.translate(sources, beam, 1, penalty))

    speed = interleaved({name: run(*s) for name, s in settings.items()}, rounds=rounds)
    rows = [[name, f"{speed[name]:,.0f}", f"{speed['greedy'] / speed[name]:.2f}"] for name in settings]
    model = translator.model.cfg
    return rows, (f"{model.layers}x{model.hidden} {model.cell.upper()} on {device}, {len(sources):,} sources of "
                  f"{pairs.name}")


def app_latency(model_dir: Path, pairs: Path, words: int) -> dict:
    from gradio_client import Client  # only this mode needs it

    data = read_pairs(pairs, "chars", "space")
    sources = [detokenize(s, "chars") for s in list(data.references())[:words]]
    with running_app(model_dir.parent, ROOT / "runs" / "bench-app") as (_, url, _):
        wait_until_warm(url)
        client = Client(url, verbose=False, download_files=False)

        def gradio(word: str) -> dict:
            return client.predict(model_dir.name, word, 5, 3, api_name="/translate")[1]

        def json_route(word: str) -> dict:
            body = json.dumps({"model": model_dir.name, "text": word, "beam": 5, "num": 3}).encode()
            request = urllib.request.Request(f"{url}api/translate", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as r:
                return json.load(r)

        routes = {"Gradio /translate": gradio, "JSON /api/translate": json_route}
        times: dict[str, list[float]] = {f"{name}: {part}": [] for name in routes for part in ("round trip", "server")}
        for lo in range(0, len(sources), BLOCK):  # the routes take turns, so machine noise hits both alike
            for name, ask in routes.items():
                block = sources[lo : lo + BLOCK]
                for word in block[:WARM]:
                    ask(word)
                for word in block:
                    t0 = time.perf_counter()
                    result = ask(word)
                    times[f"{name}: round trip"].append((time.perf_counter() - t0) * 1000)
                    times[f"{name}: server"].append(result["ms"])
    return {name: {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 95), 1)}
            for name, ms in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=Path, default=ROOT / "corpora" / "cmudict.train.tsv")
    ap.add_argument("--test", type=Path, default=ROOT / "corpora" / "cmudict.test.tsv")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "g2p")
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="where to train and decode: cpu (default), cuda or mps")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--app", action="store_true", help="measure the app's /translate instead")
    ap.add_argument("--words", type=int, default=200)
    args = ap.parse_args()
    if args.app:
        result = app_latency(args.model, args.test, args.words)
        print(f"one word a request, beam 5, 3 outputs ({args.words} words):")
        print(table([[k, v["p50_ms"], v["p95_ms"]] for k, v in result.items()], ["time", "p50 ms", "p95 ms"]))
        return
    torch.set_num_threads(args.threads)
    if not args.skip_training:
        row = training(args.pairs, args.hidden, args.layers, args.rounds, args.device)
        print(table([row], ["model", "bare steps/s", "charrnn steps/s", "ratio"]), "\n", flush=True)
    rows, what = decoding(args.model, args.test, args.sources, args.rounds, args.device)
    print(f"decoding: {what}, {args.threads} threads, torch {torch.__version__}")
    print(table(rows, ["search", "sources/s", "cost per source vs greedy"]))


if __name__ == "__main__":
    main()
