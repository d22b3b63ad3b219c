"""`charrnn folk`: write a folk tune in ABC, checked; `charrnn folk check FILE.abc`: check one."""

from __future__ import annotations

import sys
from pathlib import Path

from charrnn.cli.common import finite_float, load_lm, positive_int
from charrnn.data import read_text
from charrnn.devices import DEVICES
from charrnn.errors import CharRNNError
from charrnn.folk import render
from charrnn.folk.check import check_tune, split_tunes
from charrnn.folk.generate import DEFAULT_TEMPERATURE, MAX_MUSIC, FolkModel
from charrnn.folk.render import DEFAULT_TEMPO


def add_parser(sub) -> None:
    p = sub.add_parser("folk", help="write a new folk tune in ABC, checked; MIDI, audio and sheet music on request",
                       description="Write a folk tune in the meter, key and type you choose, check it, and write "
                                   "it as ABC (printed, or --out), MIDI, WAV and SVG sheet music.")
    p.add_argument("model_dir", help="a folk model: a run directory or a shipped model folder; or 'check' to "
                                     "check the tunes of an ABC file instead: charrnn folk check FILE.abc")
    p.add_argument("file", nargs="?", help="with check: the ABC file (one finding a line; exit 1 on any error)")
    p.add_argument("--meter", default="4/4", help="time signature: 4/4, 2/2, 6/8, 3/4, 9/8, 2/4 ... (default 4/4)")
    p.add_argument("--key", default="D", help="key and mode: D, Em, E minor, Ador, A dorian, Gmix ... (default D)")
    p.add_argument("--type", dest="tune_type", help="tune type (R:): reel, jig, hornpipe, slip jig, strathspey ...")
    p.add_argument("--start", default="", help='the first bars, e.g. "|:A2B c2d|"')
    p.add_argument("--unit", help="unit note length L: (default: what the corpus mostly uses with the meter)")
    p.add_argument("--title", help="the title (default: the model writes one)")
    p.add_argument("--temperature", type=finite_float, default=DEFAULT_TEMPERATURE,
                   help=f"0 = greedy (default {DEFAULT_TEMPERATURE})")
    p.add_argument("--seed", type=int, help="same seed and choices, same tune")
    p.add_argument("--candidates", type=positive_int, default=1,
                   help="write N tunes (seeds seed ... seed+N-1) and keep the likeliest that passes the checks")
    p.add_argument("--unguided", action="store_true",
                   help="keep every line as the model writes it (default: a line that breaks the checks is drawn "
                        "again)")
    p.add_argument("--max-chars", type=positive_int, default=MAX_MUSIC,
                   help=f"longest tune, in characters of music (default {MAX_MUSIC})")
    p.add_argument("--out", help="write the ABC to this file (default: print it)")
    p.add_argument("--midi", help="also write a MIDI file")
    p.add_argument("--wav", help="also write a WAV file (a plucked string)")
    p.add_argument("--svg", help="also write the sheet music as SVG")
    p.add_argument("--tempo", type=finite_float, default=DEFAULT_TEMPO,
                   help=f"quarter notes per minute, in every meter, for --midi and --wav (default {DEFAULT_TEMPO:g})")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default 1)")
    p.set_defaults(func=cmd_folk)


def cmd_folk(args) -> int:
    if args.model_dir == "check":
        return cmd_folk_check(args)
    if args.svg:
        render.ENGRAVER.start()  # its start-up (music21, verovio) overlaps the model's work
    model, vocab, run = load_lm(args)
    tune = FolkModel(model, vocab, run, name=args.model_dir).generate(
        args.meter, args.key, args.tune_type, args.start, unit=args.unit, title=args.title,
        temperature=args.temperature, seed=args.seed, candidates=args.candidates, max_chars=args.max_chars,
        guided=not args.unguided)
    if args.out:
        try:
            Path(args.out).write_text(tune.abc + "\n", encoding="utf-8")
        except OSError as e:
            raise CharRNNError(f"cannot write {args.out}: {e.strerror or e}") from None
    else:
        print(tune.abc)
    report = tune.report
    tried = f"best of {tune.candidates}, " if tune.candidates > 1 else ""
    tried += f"{tune.redrawn} line{'s' if tune.redrawn != 1 else ''} drawn again, " if tune.redrawn else ""
    if not tune.passed:
        problems = [f.message for f in report.findings if f.severity == "error"][:3]
        if not tune.ended:
            problems.insert(0, f"it did not end within --max-chars {args.max_chars}")
        raise CharRNNError(f"the tune (seed {tune.seed}, {tried}{tune.seconds:.2f}s) fails the checks: "
                           f"{'; '.join(problems)}; try another --seed or more --candidates")
    parts = f"{report.parts} part{'s' if report.parts != 1 else ''}"
    print(f"[seed {tune.seed}, {tried}{tune.seconds:.2f}s: passed the checks ({report.bars} bars, {parts})]",
          file=sys.stderr)
    if args.midi:
        render.write_midi(args.midi, tune.abc, args.tempo)
    if args.wav:
        render.write_wav(args.wav, render.synthesize(tune.abc, args.tempo))
    if args.svg:
        render.write_svg(args.svg, tune.abc)
    return 0


def cmd_folk_check(args) -> int:
    """Print each finding of each tune of an ABC file on one line; exit 1 if any is an error, 2 if unreadable."""
    try:
        if args.file is None:
            raise CharRNNError("give the ABC file to check: charrnn folk check FILE.abc")
        tunes = split_tunes(read_text(args.file))
        if not tunes:
            raise CharRNNError(f"{args.file} holds no ABC tune")
    except CharRNNError as e:
        print(f"charrnn: error: {e}", file=sys.stderr)
        return 2
    counts = {"error": 0, "warning": 0}
    for number, tune in enumerate(tunes, 1):
        report = check_tune(tune)
        name = f"tune {number}" + (f" ({report.headers['T']})" if report.headers.get("T") else "")
        for f in report.findings:
            counts[f.severity] += 1
            bar = f"bar {f.bar}" if f.bar is not None else "header"
            print(f"{args.file}: {name}: {bar}: {f.severity}: {f.message} [{f.kind}]")
    tally = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())
    print(f"{args.file}: {len(tunes)} tune{'s' if len(tunes) != 1 else ''} checked, {tally}")
    return 1 if counts["error"] else 0
