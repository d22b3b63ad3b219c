"""`charrnn inspect MODEL TEXTFILE`: what a model makes of a text, as HTML, JSON or terminal colour."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from charrnn.cli.common import add_inference_args, load_lm
from charrnn.data import read_text
from charrnn.errors import CharRNNError
from charrnn.inside.render import SHOW_BEST, html_page, terminal
from charrnn.inside.report import MAX_TEXT, CellRef, Report, inspect_text


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="look inside a model: surprise per character, its guesses, the cells "
                                       "that track quotes, lines, brackets ..., gate saturation")
    add_inference_args(p)
    p.add_argument("file", help="the UTF-8 text to read ('-': standard input)")
    p.add_argument("--html", help="write one self-contained HTML page here")
    p.add_argument("--cell", action="append", default=[], metavar="L:I[:KIND]",
                   help="colour the text by this cell in the terminal (KIND: h, the default; c or a gate "
                        "i, f, g, o of an LSTM; r, z, n of a GRU); repeatable")
    p.add_argument("--feature", action="append", default=[], metavar="NAME=REGEX",
                   help="a feature of your own: the characters inside the regex's matches; repeatable")
    p.add_argument("--top", type=int, default=10, help="best cells shown for each feature (default 10)")
    p.add_argument("--max-chars", type=int, default=MAX_TEXT,
                   help=f"read at most this many characters from the start of the text (default {MAX_TEXT:,}; "
                        "memory grows with it: every cell of every character is kept)")
    p.set_defaults(func=cmd_inspect)


def _summary(report: Report, top: int) -> str:
    """The plain-text answer: bits per character, the best cells, saturation at a glance."""
    lines = [f"{len(report.text):,} characters, {report.bpc:.4f} bits per character"]
    for c in report.best_cells(top):
        lines.append(f"  {c['feature']:14} cell {c['layer']}:{c['cell']}:{c['kind']:2} {c['metric']} {c['score']:.3f}")
    for s in report.saturation:
        low, high = sum(s["low"]) / len(s["low"]), sum(s["high"]) / len(s["high"])
        lines.append(f"  layer {s['layer']} {s['gate']} gate: {low:.1%} of the time < 0.1, {high:.1%} > 0.9")
    return "\n".join(lines)


def cmd_inspect(args) -> int:
    model, vocab, run = load_lm(args)
    text = read_text(args.file)
    if not text:
        raise CharRNNError(f"{args.file} is empty")
    if args.top < 1:
        raise CharRNNError(f"--top must be at least 1; got {args.top}")
    if args.max_chars < 2:
        raise CharRNNError(f"--max-chars must be at least 2; got {args.max_chars}")
    if len(text) > args.max_chars:
        print(f"inspecting the first {args.max_chars:,} of {len(text):,} characters (--max-chars sets how many)",
              file=sys.stderr)
        text = text[:args.max_chars]
    cells = [CellRef.parse(spec) for spec in args.cell]
    report = inspect_text(model, vocab, text, args.feature, cells, args.unknown, run.char_counts,
                          show_best=SHOW_BEST if args.html else 0)
    if args.html:
        try:
            Path(args.html).write_text(html_page(report, f"{Path(args.model_dir).name} reads {Path(args.file).name}"),
                                       encoding="utf-8")
        except OSError as e:
            raise CharRNNError(f"cannot write {args.html}: {e.strerror or e}") from None
    if args.json:
        print(json.dumps(report.to_json(args.top), ensure_ascii=False))
        return 0
    for ref in cells:
        values = report.cells[ref]
        if sys.stdout.isatty():
            print(f"cell {ref} (red above zero, blue below):")
            print(terminal(report.text, values))
        else:  # a pipe or a file gets no colour codes: one character a line, its JSON string and the value
            print(f"cell {ref}:")
            print("\n".join(f"{json.dumps(ch, ensure_ascii=False)}\t{float(v):.4f}"
                            for ch, v in zip(report.text, values, strict=True)))
    print(_summary(report, min(args.top, 3)))
    return 0
