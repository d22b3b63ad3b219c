"""`charrnn folk`: write a folk tune in ABC, checked and held to a form; `charrnn folk check FILE.abc`:
check one; `charrnn folk stats FILE.abc`: the form of each tune, and a summary beside the corpus's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from charrnn.cli.common import add_encoding, finite_float, load_lm, positive_int, whole_number
from charrnn.corpora import corpora_dir, corpus_path
from charrnn.data import read_text
from charrnn.devices import DEVICES
from charrnn.errors import CharRNNError
from charrnn.folk import render
from charrnn.folk.check import check_tune, split_tunes
from charrnn.folk.facts import CorpusFacts
from charrnn.folk.form import read_form
from charrnn.folk.generate import DEFAULT_TEMPERATURE, MAX_MUSIC, FolkModel
from charrnn.folk.originality import COPY_LIMIT_BARS, NoteIndex, index_path
from charrnn.folk.render import DEFAULT_TEMPO
from charrnn.folk.stats import Reading, describe, table

VERBS = ("write", "check", "stats")  # write is the default: see spelled_out


def spelled_out(argv: list[str]) -> list[str]:
    """argv with folk's default verb written out: `charrnn folk MODEL_DIR ...` is `charrnn folk write MODEL_DIR
    ...` (so the documented form keeps working beside `charrnn folk check FILE.abc`)."""
    if argv[:1] == ["folk"] and argv[1:2] not in ([verb] for verb in VERBS):
        return ["folk", "write", *argv[1:]]
    return argv


def add_parser(sub) -> None:
    group = sub.add_parser("folk", help="write a new folk tune in ABC, checked; MIDI, audio and sheet music on "
                                        "request; or check the tunes of an ABC file")
    verbs = group.add_subparsers(dest="verb", required=True)
    _add_write(verbs, f"{group.prog}")
    _add_file_verb(verbs, "check", cmd_folk_check, "check the tunes of an ABC file",
                   "Check every tune of an ABC file: each finding on one line (FILE: tune N (Title): bar B: "
                   "error|warning: ... [kind]), then a summary line. Exit 0 when no finding is an error, 1 when one "
                   "is, 2 when the file cannot be read.")
    stats = _add_file_verb(verbs, "stats", cmd_folk_stats, "read the form of the tunes of an ABC file",
                           "Read the form of every tune of an ABC file (parts x bars, repeats, the ending against "
                           "the tonic, the range, the longest run copied from the corpus), one line a tune, then a "
                           "summary beside the corpus.")
    stats.add_argument("--corpus", help="the corpus to set the tunes beside, and to find copied runs in "
                                        "(default: the built folk corpus, if there is one)")


def _add_file_verb(verbs, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """A folk verb that reads the tunes of an ABC file (`_tunes`)."""
    p = verbs.add_parser(name, help=help, description=description)
    p.add_argument("file", help="the ABC file ('-': standard input)")
    add_encoding(p, "the file")
    p.set_defaults(func=func)
    return p


def _add_write(verbs, prog: str) -> None:
    p = verbs.add_parser("write", prog=prog, help="write a tune (the default: charrnn folk MODEL_DIR ...)",
                         description="Write a folk tune in the meter, key and type you choose, check it, and write "
                                     "it as ABC (printed, or --out), MIDI, WAV and SVG sheet music.",
                         epilog="To check the tunes of an ABC file instead: charrnn folk check FILE.abc")
    p.add_argument("model_dir", help="a folk model: a run directory or a shipped model folder")
    p.add_argument("--meter", default="4/4", help="time signature: 4/4, 2/2, 6/8, 3/4, 9/8, 2/4 ... (default 4/4)")
    p.add_argument("--key", default="D", help="key and mode: D, Em, E minor, Ador, A dorian, Gmix ... (default D)")
    p.add_argument("--type", dest="tune_type", help="tune type (R:): reel, jig, hornpipe, slip jig, strathspey ...")
    p.add_argument("--start", default="", help='the first bars, e.g. "|:A2B c2d|"')
    p.add_argument("--unit", help="unit note length L: (default: what the corpus mostly uses with the meter)")
    p.add_argument("--title", help="the title (default: the model writes one)")
    p.add_argument("--temperature", type=finite_float, default=DEFAULT_TEMPERATURE,
                   help=f"0 = greedy (default {DEFAULT_TEMPERATURE})")
    p.add_argument("--seed", type=whole_number, help="same seed and choices, same tune")
    p.add_argument("--candidates", type=positive_int, default=1,
                   help="write N tunes (seeds seed ... seed+N-1) and keep the likeliest that passes the checks")
    p.add_argument("--parts", type=positive_int, help="parts the tune has (default: as the corpus's tunes of the "
                                                       "type and meter have them)")
    p.add_argument("--bars", type=positive_int, help="bars of each part (default: as the corpus has them)")
    p.add_argument("--form", help="a form string: each part A, B, C... in order, written twice if it is repeated "
                                  "(AABB, AB, AABBCC)")
    p.add_argument("--free-form", action="store_true",
                   help="let the model end parts and the tune where it likes (default: held to the form)")
    p.add_argument("--allow-copies", action="store_true",
                   help="keep a tune that shares 4 bars or more with a corpus tune (default: drawn again)")
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
    p.add_argument("--threads", type=positive_int, help="CPU threads (default 1: one character at a time)")
    p.set_defaults(func=cmd_folk)


def cmd_folk(args) -> int:
    if args.svg:
        render.ENGRAVER.start()  # its start-up (music21, verovio) overlaps the model's work
    model, vocab, run = load_lm(args)
    folk = FolkModel(model, vocab, run, name=args.model_dir, facts=CorpusFacts.find(run, args.model_dir, corpora_dir()))
    tune = folk.generate(
        args.meter, args.key, args.tune_type, args.start, unit=args.unit, title=args.title,
        temperature=args.temperature, seed=args.seed, candidates=args.candidates, max_chars=args.max_chars,
        guided=not args.unguided, parts=args.parts, bars=args.bars, form=args.form, keep_form=not args.free_form,
        allow_copies=args.allow_copies)
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
    if tune.copies and not args.allow_copies:
        raise CharRNNError(f"every tune drawn ({tune.rejected + 1}) shares {COPY_LIMIT_BARS} bars or more with a "
                           f"corpus tune (this one {tune.copied.bars:g} bars of tune {tune.copied.tune}); try another "
                           "--seed, or --allow-copies")
    rejected = f"{tune.rejected} drawn again as copies, " if tune.rejected else ""
    print(f"[seed {tune.seed}, {tried}{rejected}{tune.seconds:.2f}s: passed the checks; "
          f"{describe(Reading(tune.form, tune.copied))}]", file=sys.stderr)
    if args.midi:
        render.write_midi(args.midi, tune.abc, args.tempo)
    if args.wav:
        render.write_wav(args.wav, render.synthesize(tune.abc, args.tempo))
    if args.svg:
        render.write_svg(args.svg, tune.abc)
    return 0


def _tunes(args) -> list[str]:
    """The tunes of the ABC file `folk check` or `folk stats` was given; a CharRNNError if there are none."""
    tunes = split_tunes(read_text(args.file, args.encoding))
    if not tunes:
        raise CharRNNError(f"{args.file} holds no ABC tune")
    return tunes


def cmd_folk_check(args) -> int:
    """Print each finding of each tune of an ABC file on one line; exit 1 if any is an error, 2 if unreadable."""
    try:
        tunes = _tunes(args)
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


def cmd_folk_stats(args) -> int:
    """Print each tune's form on one line, then a summary of the file's tunes beside the corpus's."""
    try:
        tunes = _tunes(args)
        corpus = Path(args.corpus) if args.corpus else corpus_path("folk")
        if args.corpus and not corpus.is_file():
            raise CharRNNError(f"there is no corpus at {corpus}")
        index = NoteIndex.load(index_path(corpus)) if index_path(corpus).is_file() else None
    except CharRNNError as e:
        print(f"charrnn: error: {e}", file=sys.stderr)
        return 2
    readings = [Reading(read_form(tune), index.longest_copy(tune) if index else None) for tune in tunes]
    for number, reading in enumerate(readings, 1):
        title = f" ({reading.form.title})" if reading.form.title else ""
        print(f"{args.file}: tune {number}{title}: {describe(reading)}")
    columns = {args.file: readings}
    if corpus.is_file():
        columns[str(corpus)] = [Reading(read_form(tune)) for tune in split_tunes(read_text(corpus))]
    print(table(columns))
    return 0
