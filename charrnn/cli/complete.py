"""`charrnn complete`: the most likely completions of a prefix."""

from __future__ import annotations

import json
import sys
import time

from charrnn.cli.common import add_inference_args, load_lm, positive_int
from charrnn.data import read_text
from charrnn.decoding.beam import complete
from charrnn.decoding.sampling import prepare_prompt
from charrnn.errors import CharRNNError

MAX_COMPLETION_LENGTH = 1_000  # characters `complete --max-len` may ask for


def add_parser(sub) -> None:
    p = sub.add_parser("complete", help="the most likely completions of a prefix (autocomplete)")
    add_inference_args(p)
    p.add_argument("prefix", nargs="?", help="the text typed so far")
    p.add_argument("--prefix-file", help="read the prefix from this UTF-8 file ('-': standard input)")
    p.add_argument("--num", type=positive_int, default=3, help="completions to show (default 3)")
    p.add_argument("--until", choices=["word", "phrase", "line"], default="word", help="how far to complete")
    p.add_argument("--max-len", type=positive_int, default=30, help="longest completion (default 30)")
    p.add_argument("--beam", type=positive_int, help="beam width (default max(8, 2 x num))")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    if args.max_len > MAX_COMPLETION_LENGTH:
        raise CharRNNError(f"--max-len must be at most {MAX_COMPLETION_LENGTH}; got {args.max_len}")
    if (args.prefix is None) == (args.prefix_file is None):
        raise CharRNNError("give the prefix, or --prefix-file, but not both")
    prefix = read_text(args.prefix_file) if args.prefix_file else args.prefix
    model, vocab, run = load_lm(args)
    t0 = time.perf_counter()
    prompt = prepare_prompt(model, vocab, prefix, args.unknown, run.char_counts)
    found = complete(model, vocab, prompt, args.num, args.until, args.max_len, args.beam)
    ms = (time.perf_counter() - t0) * 1000
    if args.json:
        items = [{"text": c.text, "logprob": c.logprob, "prob": c.prob, "ended": c.ended} for c in found]
        print(json.dumps({"prefix": prefix, "completions": items, "ms": round(ms, 1)}, ensure_ascii=False))
    else:
        shown = prefix if len(prefix) <= 80 else "\u2026" + prefix[-79:]  # the end of a long prefix
        for c in found:
            cut = "" if c.ended else f"  (cut off at --max-len {args.max_len})"
            print(f"{shown}\u2038{c.text}    p={c.prob:.3f}  logprob={c.logprob:.3f}{cut}")
        print(f"[{len(found)} completions in {ms:.1f} ms]", file=sys.stderr)
    return 0
