"""`charrnn eval`: a language model's cross-entropy on a text file."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from charrnn.cli.common import add_inference_args, load_lm, positive_int
from charrnn.data import read_text, split_ids
from charrnn.errors import CharRNNError
from charrnn.training.lm import evaluate


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="cross-entropy of a model on a text file, in nats and bits per character")
    add_inference_args(p, device="auto")
    p.add_argument("file", help="text file to evaluate on")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--batch-size", type=positive_int, default=32, help="parallel streams (default 32)")
    p.add_argument("--seq-len", type=positive_int, default=256, help="characters per forward call (default 256)")
    p.add_argument("--split", choices=["all", "train", "val", "test"], default="all",
                   help="evaluate on this part of the file, cut as the model's training cut its corpus (default all)")
    p.set_defaults(func=cmd_eval)




def cmd_eval(args) -> int:
    model, vocab, run = load_lm(args)
    text = read_text(Path(args.file), args.encoding)
    if args.split != "all":  # the same cut as training: train, then val, then test at the end
        cut = dict(zip(("train", "val", "test"), split_ids(text, run.train["val_frac"], run.train["test_frac"]),
                       strict=True))
        text = cut[args.split]
    missing = vocab.unknown(text)
    if missing and args.unknown == "skip":
        text = "".join(c for c in text if c in vocab.index)
    elif missing:
        shown = ", ".join(repr(c) for c in missing[:20])
        raise CharRNNError(f"{args.file} has characters the model does not know: {shown} (use --unknown skip)")
    t0 = time.perf_counter()
    # On a terminal only (tqdm's disable=None), and on stderr: stdout stays the result (--json: one object).
    with tqdm(total=max(0, len(text) - 1), unit="char", unit_scale=True, desc="eval", file=sys.stderr,
              disable=None, leave=False) as bar:
        loss, n = evaluate(model, vocab.encode(text), args.batch_size, args.seq_len, model.device,
                           progress=bar.update)
    result = {"loss": loss, "bpc": loss / math.log(2), "chars": n, "perplexity": math.exp(loss),
              "file": args.file, "split": args.split, "model": args.model_dir,
              "seconds": round(time.perf_counter() - t0, 3)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{loss:.4f} nats/char  {result['bpc']:.4f} bits/char  over {n:,} characters of {args.file}")
    return 0
