"""`charrnn inspect MODEL TEXTFILE`: what a model makes of a text, as HTML, JSON or terminal colour."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from charrnn.cli.common import BadValue, add_encoding, add_inference_args, load_lm, positive_int
from charrnn.data import read_text
from charrnn.errors import CharRNNError
from charrnn.inside.render import (
    SHOW_BEST,
    html_page,
    most_surprising,
    terminal,
    terminal_legend,
    terminal_surprise,
)
from charrnn.inside.report import MAX_TEXT, CellRef, Report, inspect_text

TERMINAL_CHARS = 2_000  # characters of the text a terminal is shown in colour (--html shows all of it)
SURPRISING = 5  # the most surprising characters listed, with the model's guesses for them


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="look inside a model: surprise per character, its guesses, the cells "
                                       "that track quotes, lines, brackets ..., gate saturation",
                       description="Read a text through a model and show what happened inside. On a terminal: the "
                                   "text coloured by surprise (or by --cell), the most surprising characters with "
                                   "the model's guesses, the best cell for each feature, gate saturation. Into a "
                                   "pipe with --cell: only the cells' values, a line per character.")
    add_inference_args(p)
    p.add_argument("file", help="the text to read ('-': standard input)")
    add_encoding(p, "the file")
    p.add_argument("--html", help="write one self-contained HTML page here")
    p.add_argument("--cell", action="append", default=[], metavar="L:I[:KIND]",
                   help="colour the text by this cell in the terminal (KIND: h, the default; c or a gate "
                        "i, f, g, o of an LSTM; r, z, n of a GRU); repeatable. Into a pipe: one line per "
                        "character, its JSON string, then a tab and the value of each --cell in order")
    p.add_argument("--feature", action="append", default=[], metavar="NAME=REGEX",
                   help="a feature of your own: the characters inside the regex's matches; repeatable")
    p.add_argument("--top", type=positive_int, default=10, help="best cells shown for each feature (default 10)")
    p.add_argument("--max-chars", type=positive_int, default=MAX_TEXT,
                   help=f"read at most this many characters from the start of the text (default {MAX_TEXT:,}; "
                        "memory grows with it: every cell of every character is kept)")
    p.set_defaults(func=cmd_inspect)


def _summary(report: Report, top: int) -> str:
    """The plain-text answer: bits per character, the most surprising characters, the best cells, saturation."""
    lines = [f"{len(report.text):,} characters, {report.bpc:.4f} bits per character",
             "  the most surprising characters, with the model's guesses for them:"]
    lines += [f"    {line}" for line in most_surprising(report, SURPRISING)]
    for c in report.best_cells(top):
        lines.append(f"  {c['feature']:14} cell {c['layer']}:{c['cell']}:{c['kind']:2} {c['metric']} {c['score']:.3f}")
    for s in report.saturation:
        low, high = sum(s["low"]) / len(s["low"]), sum(s["high"]) / len(s["high"])
        lines.append(f"  layer {s['layer']} {s['gate']} gate: {low:.1%} of the time < 0.1, {high:.1%} > 0.9")
    return "\n".join(lines)


def cmd_inspect(args) -> int:
    if args.max_chars < 2:  # a surprisal needs a character before it
        raise BadValue(f"argument --max-chars: must be at least 2, got {args.max_chars}")
    model, vocab, run = load_lm(args)
    text = read_text(args.file, args.encoding)
    if not text:
        raise CharRNNError(f"{args.file} is empty")
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
    summary = _summary(report, min(args.top, 3))
    if cells and not sys.stdout.isatty():  # a pipe or a file gets the values alone: no colour, no summary
        series = [report.cells[ref] for ref in cells]
        print("\n".join(json.dumps(ch, ensure_ascii=False) + "".join(f"\t{float(v[i]):.4f}" for v in series)
                        for i, ch in enumerate(report.text)))
        print(summary, file=sys.stderr)
        return 0
    if sys.stdout.isatty():
        shown = f" (the first {TERMINAL_CHARS:,} characters; --html shows all)" if len(text) > TERMINAL_CHARS else ""
        for ref in cells:
            print(f"cell {ref} (red above zero, blue below){shown}:")
            print(terminal(report.text[:TERMINAL_CHARS], report.cells[ref][:TERMINAL_CHARS]))
        if not cells:
            print(f"{terminal_legend()}{shown}")
            print(terminal_surprise(report, TERMINAL_CHARS))
    print(summary)
    return 0
