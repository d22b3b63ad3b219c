"""`charrnn complete`: the most likely completions of a prefix."""

from __future__ import annotations

import json
import sys
import time

from charrnn.cli.common import (
    BadValue,
    adapted_lm,
    add_adapt_args,
    add_encoding,
    add_inference_args,
    load_lm,
    positive_int,
)
from charrnn.data import read_text
from charrnn.decoding.beam import complete
from charrnn.decoding.sampling import prepare_prompt
from charrnn.decoding.suggest import MAX_SUGGESTIONS, MAX_WIDTH, MAX_WORD, PHRASES, SuggestSettings, suggest

MAX_COMPLETION_LENGTH = 1_000  # characters `complete --max-len` may ask for


def add_parser(sub) -> None:
    p = sub.add_parser("complete", help="the most likely completions of a prefix (autocomplete)")
    add_inference_args(p)
    p.add_argument("prefix", nargs="?", help="the text typed so far")
    p.add_argument("--prefix-file", help="read the prefix from this text file ('-': standard input)")
    add_encoding(p, "--prefix-file")
    p.add_argument("--num", type=positive_int, default=3, help="completions to show (default 3)")
    p.add_argument("--until", choices=["word", "phrase", "line"], default="word", help="how far to complete")
    p.add_argument("--max-len", type=positive_int, default=30,
                   help=f"longest completion (default 30, at most {MAX_COMPLETION_LENGTH:,})")
    p.add_argument("--beam", type=positive_int,
                   help=f"beam width (default: with --until word {SuggestSettings.width}, else max(8, 2 x num))")
    p.add_argument("--phrases", choices=PHRASES, default=SuggestSettings.phrases,
                   help="with --until word: also a phrase of several words when the model is confident, among "
                        f"the words (together), beside them (separate), or none (default {SuggestSettings.phrases})")
    add_adapt_args(p, "first learn from the prefix (one SGD step per segment: dynamic evaluation)")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    if args.max_len > MAX_COMPLETION_LENGTH:
        raise BadValue(f"argument --max-len: must be at most {MAX_COMPLETION_LENGTH:,}, got {args.max_len:,}")
    if args.prefix is None and args.prefix_file is None:
        args.parser.error("give the prefix (the text typed so far), or --prefix-file")
    if args.prefix is not None and args.prefix_file is not None:
        raise BadValue("argument --prefix-file: not allowed with a prefix on the command line")
    prefix = read_text(args.prefix_file, args.encoding) if args.prefix_file else args.prefix
    model, vocab, run = load_lm(args)
    model = adapted_lm(args, model, vocab, prefix)
    t0 = time.perf_counter()
    prompt = prepare_prompt(model, vocab, prefix, args.unknown, run.char_counts)
    if args.until == "word":  # the autocomplete's suggestions: words, words with their punctuation, a phrase
        settings = SuggestSettings(min(args.num, MAX_SUGGESTIONS), phrases=args.phrases,
                                   max_len=min(args.max_len, MAX_WORD),
                                   width=min(args.beam or SuggestSettings.width, MAX_WIDTH))
        found = suggest(model, vocab, prompt, settings)
    else:
        found = complete(model, vocab, prompt, args.num, args.until, args.max_len, args.beam)
    ms = (time.perf_counter() - t0) * 1000
    if args.json:
        items = [{"text": c.text, "logprob": c.logprob, "prob": c.prob, "ended": c.ended,
                  "kind": getattr(c, "kind", args.until), "space": getattr(c, "space", False)} for c in found]
        print(json.dumps({"prefix": prefix, "completions": items, "ms": round(ms, 1)}, ensure_ascii=False))
    else:
        shown = prefix if len(prefix) <= 80 else "\u2026" + prefix[-79:]  # the end of a long prefix
        for c in found:
            cut = "" if c.ended else f"  (cut off at --max-len {args.max_len})"
            kind = "  (phrase)" if getattr(c, "kind", "") == "phrase" else ""
            text = c.text.replace("\n", "\u23ce")  # a new line the suggestion types, shown as the Enter sign
            print(f"{shown}\u2038{text}    p={c.prob:.3f}  logprob={c.logprob:.3f}{cut}{kind}")
        print(f"[{len(found)} completions in {ms:.1f} ms]", file=sys.stderr)
    return 0
