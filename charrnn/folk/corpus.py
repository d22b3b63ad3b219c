"""The folk-tune corpus: music21's ABC collections, normalised, checked and written as one training text.

charrnn.corpora names it in its catalogue and calls `build_folk` only when the folk corpus is built, so
that training on any other text never imports the ABC checker.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path
from charrnn.folk.check import check_tune
from charrnn.folk.facts import write_facts
from charrnn.folk.melody import near_duplicates
from charrnn.folk.reader import (
    FREE_METER,
    INLINE_FIELD_RE,
    Voice,
    default_unit,
    parse_field,
    parse_meter,
    parse_unit,
    strip_comment,
    tokenize,
)
from charrnn.folk.spelling import canonical_key, canonical_meter, canonical_tune_type

FOLK_COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk")
ESSEN_COLLECTION = "essenFolksong"  # licensed for non-commercial use only, so it is opt-in
# Where each collection's tunes come from and who wrote them down in ABC (each tune's Z: line in music21's
# files, which the build does not keep): the notice that travels with the corpus and all built from it.
SOURCES = {
    "ryansMammoth": "Ryan's Mammoth Collection (Boston, 1883); ABC transcriptions contributed by Ray Davies, "
                    "John Chambers, Bob Puckette, John Walsh and others",
    "oneills1850": "O'Neill's Music of Ireland: Eighteen Hundred and Fifty Melodies (Chicago, 1903); ABC "
                   "transcriptions by Henrik Norbeck, Bob Safranek, Trish O'Neil, John Chambers, Dan G. Petersen, "
                   "Michael Hogan, Stephen Foy, John B. Walsh, Tom Keays, Chris Falt, Dave Wooldridge, Norbert Paap, "
                   "Robert Thorpe, A. Lee Worman and others",
    "airdsAirs": "James Aird, A Selection of Scotch, English, Irish and Foreign Airs (Glasgow, 1778-1803); ABC "
                 "transcriptions by Jack Campin",
    "miscFolk": "Colonial and Civil War American fife music, and Bruce and Stokoe's Northumbrian Minstrelsy "
                "(1882); ABC by Jack Campin",
    "essenFolksong": "The Essen Folksong Collection (Helmut Schaffrath, Ewa Dahlig-Turek); ABC encodings by "
                     "Seymour Shlien; for non-commercial use only",
}
OTHER_SOURCE = "a collection of music21's corpus"
DROP_REASONS = ("multi_voice", "odd_key", "duplicate", "failed_check", "rejected", "parse_error", "no_notes",
                "near_duplicate")

_HEADER_ORDER = ("T", "R", "M", "L", "K")  # after X:, which is renumbered; K: ends the header
_BODY_FIELDS = frozenset("KLM")  # field lines in the music that change how the notes after them read
_FIELD = re.compile(r"([A-Za-z+]):(.*)")
_VOICE = re.compile(r"(?:^|\[)V:\s*([^\s\]]+)", re.MULTILINE)
_TUNE_START = re.compile(r"^(?=X:)", re.MULTILINE)
_QUOTED = re.compile(r'"[^"]*"')  # chord symbols and annotations: "Am", "4" (a fingering), "^SEGUE"
_BANG_DECORATION = re.compile(r"![^!\s|]{1,40}!")  # !4!, !sf!, !D.C.!, !Segno!
_SLUR_START = re.compile(r"\((?!\d)")  # "(3" starts a triplet, any other "(" a slur
# Fiddle-book marks that are not notes: decoration letters (ABC's predefined ones such as u/v bowings and
# H fermata, and U: user symbols), staccato dots, backtick beam breaks, y spacers and slur ends. The two
# ornaments fiddlers play from the page, ~ (roll) and T (trill), stay; so do grace notes and ties.
_MARKS = str.maketrans("", "", "HIJKLMNOPQRSUVWhijklmnopqrsuvwy.`)")


@dataclass(frozen=True)
class Tune:
    """One normalised tune: its header fields after X: (in T, R, M, L, K order) and its lines of music."""

    source: str  # the collection it came from
    fields: tuple[str, ...]
    body: tuple[str, ...]

    @property
    def music(self) -> tuple[str, ...]:
        """What makes two tunes the same: everything but the number, the title and the rhythm's name."""
        return tuple(field for field in self.fields if field[0] not in "TR") + self.body

    def abc(self, number: int) -> str:
        """The tune as ABC text numbered X:number, without a trailing newline."""
        return "\n".join((f"X:{number}", *self.fields, *self.body))


class _Dropped(Exception):
    """A tune the corpus cannot use; the reason is one of DROP_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def normalise_tunes(sources: Iterable[tuple[str, str]]) -> tuple[list[Tune], dict[str, Counter[str]]]:
    """Split each (collection, ABC text) into normalised tunes, dropping multi-voice tunes, tunes in keys
    that have no plain tonic-and-mode name, and repeats.

    Returns the tunes in input order and, per collection, a Counter of "tunes" read and of drops by reason.
    """
    tunes: list[Tune] = []
    counts: dict[str, Counter[str]] = {}
    seen: set[tuple[str, ...]] = set()
    for source, text in sources:
        count = counts.setdefault(source, Counter())
        for raw in _TUNE_START.split(text)[1:]:  # what precedes the first X: is the file's own header
            count["tunes"] += 1
            try:
                tune = _normalise_tune(raw, source)
            except _Dropped as dropped:
                count[dropped.reason] += 1
                continue
            if tune.music in seen:
                count["duplicate"] += 1
            else:
                seen.add(tune.music)
                tunes.append(tune)
    return tunes, counts


def _squeeze(text: str) -> str:
    """Runs of spaces and tabs as one space; ABC reads one space and many alike."""
    return " ".join(text.split())


def _normalise_tune(raw: str, source: str) -> Tune:
    """One tune, from its X: line to the next tune's, reduced to what the model should learn.

    Raises _Dropped if it has several voices, which one line of melody cannot carry, or a key that has
    no canonical name (K:Hp, explicit accidentals).
    """
    # A tune runs up to the next X: line rather than to the first blank line: these collections have
    # a few tunes with stray blank lines inside. Comment-only, directive (%%) and blank lines all go.
    lines = [line for line in (strip_comment(line).rstrip() for line in raw.splitlines()) if line]
    if len(set(_VOICE.findall("\n".join(lines)))) > 1:
        raise _Dropped("multi_voice")

    # The header runs to the first K: line; the odd header line that lost its colon is dropped with it.
    header_end = next((i + 1 for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    header: dict[str, str] = {}
    for field in filter(None, map(_FIELD.match, lines[:header_end])):
        header.setdefault(field[1], field[2])
    # Spell out ABC's implicit unit length so that every tune's header reads the same way.
    header.setdefault("L", str(default_unit(parse_meter(header.get("M", "")))))
    values = {letter: _field_value(letter, header[letter]) for letter in _HEADER_ORDER if letter in header}

    body: list[str] = []
    continues = False  # the previous line of music ended in a "\" continuation
    for line in lines[header_end:]:
        if field := _FIELD.match(line):
            if field[1] in _BODY_FIELDS:
                body.append(f"{field[1]}:{_field_value(field[1], field[2])}")
                continues = False
            continue  # lyrics, parts, tempo, notes...: dropped without breaking a continuation
        music = _clean_music(line.removesuffix("\\"))
        if continues:
            body[-1] += music
        else:
            body.append(music)
        continues = line.endswith("\\")
    return Tune(
        source=source,
        fields=tuple(f"{letter}:{value}" for letter, value in values.items() if value),
        body=tuple(line for line in map(_squeeze, _without_slur_ties(values, body)) if line),
    )


def _without_slur_ties(header: dict[str, str], body: list[str]) -> list[str]:
    """The body without the "-" that some transcriptions (O'Neill's) write for a slur between two different
    notes: a tie joins one pitch, and slurs are not kept."""
    meter = parse_meter(header.get("M", "")) or FREE_METER
    voice = Voice(meter, parse_unit(header.get("L", "")) or default_unit(meter), header.get("K", ""))
    slurs: dict[int, list[int]] = {}  # line -> positions of the ties to drop
    tie: tuple[int, int] | None = None  # where the tie into the next note is
    for index, line in enumerate(body):
        if found := parse_field(line):
            voice.set_field(*found)
            continue
        for token in tokenize(line):
            if token.kind == "tie":
                voice.tie()
                tie = (index, token.start)
            elif token.kind in ("note", "chord"):
                if not voice.play(token.notes)[1] and tie is not None:
                    slurs.setdefault(tie[0], []).append(tie[1])
                tie = None
            elif token.kind == "rest":
                voice.rest()
            elif token.kind == "bar":
                voice.close_bar()
            elif token.kind == "field":
                voice.set_field(token.text, token.value)
    for index, positions in slurs.items():
        line = body[index]
        for at in reversed(positions):
            line = line[:at] + line[at + 1 :]
        body[index] = line
    return body


def _field_value(letter: str, value: str) -> str:
    """A field's value in the corpus's one spelling (see canonical_key, canonical_meter, canonical_tune_type)."""
    value = _squeeze(value)
    if letter == "K":
        key = canonical_key(value)
        if key is None:
            raise _Dropped("odd_key")
        return key
    if letter == "M":
        return canonical_meter(value) or value  # free and complex meters stay as written
    if letter == "R":
        return canonical_tune_type(value)
    return value


def _clean_music(line: str) -> str:
    """A line of music without chord symbols, annotations, fingerings, bowings, slurs and other marks."""
    line = _BANG_DECORATION.sub("", _QUOTED.sub("", line))
    pieces, done = [], 0
    for field in INLINE_FIELD_RE.finditer(line):  # [K:D] holds letters that are not decorations
        pieces.append(_strip_marks(line[done : field.start()]))
        if field[1] in _BODY_FIELDS:
            pieces.append(f"[{field[1]}:{_field_value(field[1], field[2])}]")
        done = field.end()
    pieces.append(_strip_marks(line[done:]))
    return "".join(pieces)


def _strip_marks(music: str) -> str:
    return _SLUR_START.sub("", music).translate(_MARKS)


def music21_verdict(text: str) -> str | None:
    """Why music21 rejects a tune ("parse_error" or "no_notes"), or None if it yields notes."""
    from music21 import converter  # imported in the worker processes only

    try:
        score = converter.parseData(text, format="abc")
    except Exception:  # music21 raises many types on bad ABC; each means the tune is unusable
        return "parse_error"
    return None if score.recurse().notes.first() is not None else "no_notes"


def music21_verdicts(texts: list[str], workers: int | None, progress: bool) -> list[str | None]:
    """music21_verdict for each text, in order, across worker processes (music21 takes ~0.1 s a tune)."""
    # spawn, not fork: forking a process that runs threads (tqdm's, a web app's) can deadlock.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers or os.cpu_count() or 1) as pool:
        verdicts = pool.imap(music21_verdict, texts, chunksize=8)
        return list(tqdm(verdicts, total=len(texts), desc="checking with music21", unit="tune", disable=not progress))


@dataclass(frozen=True)
class BuildStats:
    """What a build wrote, and per collection how many tunes it read, kept and dropped (by reason)."""

    path: Path
    sha256: str
    seconds: float
    collections: dict[str, dict[str, int]]  # collection -> {"tunes", "kept", *DROP_REASONS} -> count

    @property
    def kept(self) -> int:
        return sum(counts["kept"] for counts in self.collections.values())

    @property
    def dropped(self) -> dict[str, int]:
        return {reason: sum(c[reason] for c in self.collections.values()) for reason in DROP_REASONS}

    def to_json(self) -> str:
        return json.dumps(
            {
                "output": self.path.name,
                "sha256": self.sha256,
                "seconds": round(self.seconds, 1),
                "tunes": sum(counts["tunes"] for counts in self.collections.values()),
                "kept": self.kept,
                "dropped": self.dropped,
                "collections": self.collections,
            },
            indent=2,
        )


def build_folk(
    path: Path,
    collections: Sequence[str] = FOLK_COLLECTIONS,
    keep: Callable[[str], bool] | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> BuildStats:
    """Write music21's ABC collections to path as one clean training text, and beside it its stats, the facts
    generation uses (facts.write_facts: the layouts of its tunes' parts, its note index) and its notice
    (licence_notice, at notice_path).

    Only tunes that pass charrnn.folk.check's checks and music21's parser are kept, and of tunes that share
    many bars (melody.near_duplicates), only the first. keep, if given, sees each
    remaining tune's ABC text (numbered X:1) and says whether to keep it.
    """
    started = time.perf_counter()
    sources = (
        (collection, file.read_text(encoding="utf-8"))
        for collection in collections
        for file in _collection_files(collection)
    )
    tunes, counts = normalise_tunes(sources)
    # The model learns whatever it reads: a tune with bars that do not add up or repeats that do not
    # close would teach it to write such tunes.
    tunes = _sift(tunes, [None if check_tune(tune.abc(1)).passed else "failed_check" for tune in tunes], counts)
    if keep is not None:
        tunes = _sift(tunes, [None if keep(tune.abc(1)) else "rejected" for tune in tunes], counts)
    tunes = _sift(tunes, music21_verdicts([tune.abc(1) for tune in tunes], workers, progress), counts)
    # The same melody under another title or in another key would be learnt twice and would sit on both
    # sides of the train/val split; the first of each group stays.
    copies = near_duplicates([tune.abc(1) for tune in tunes])
    tunes = _sift(tunes, [None if copy is None else "near_duplicate" for copy in copies], counts)
    if not tunes:
        raise CharRNNError(f"no tune of {', '.join(collections)} survived the checks; nothing written")

    data_bytes = ("\n\n".join(tune.abc(number) for number, tune in enumerate(tunes, 1)) + "\n").encode("utf-8")
    _write_atomically(path, data_bytes)
    for tune in tunes:
        counts[tune.source]["kept"] += 1
    stats = BuildStats(
        path=path,
        sha256=hashlib.sha256(data_bytes).hexdigest(),
        seconds=time.perf_counter() - started,
        collections={
            name: {key: count[key] for key in ("tunes", "kept", *DROP_REASONS)} for name, count in counts.items()
        },
    )
    _write_atomically(path.with_suffix(".stats.json"), stats.to_json().encode("utf-8"))
    write_facts(path, data_bytes.decode("utf-8"))  # generation's default forms and its copy check
    _write_atomically(notice_path(path), licence_notice(collections).encode("utf-8"))
    return stats


def notice_path(corpus: Path) -> Path:
    """Where the notice of a built corpus lies: folk.abc -> folk.LICENSE (copy it beside whatever is built from
    the corpus: a model, its corpus.forms.json and corpus.notes.gz)."""
    return corpus.with_suffix(".LICENSE")


def licence_notice(collections: Sequence[str]) -> str:
    """The notice for a corpus built from these of music21's collections: where the tunes come from and who
    transcribed them, music21's notice for its corpus (and a collection's own, if it has one), music21's licence."""
    try:
        music21 = importlib.metadata.distribution("music21")
    except importlib.metadata.PackageNotFoundError:
        raise CharRNNError("building the folk corpus needs music21: pip install music21") from None
    corpus = Path(music21.locate_file("music21/corpus"))
    licence = next((f for f in music21.files or () if f.name.upper() in ("LICENSE", "LICENSE.TXT")
                    and "dist-info" in str(f)), None)
    sources = "\n".join(f"- {name}: {SOURCES.get(name, OTHER_SOURCE)}" for name in collections)
    parts = [f"The folk corpus (folk.abc) and what is built from it (the layouts and note index beside it, "
             f"corpus.forms.json and corpus.notes.gz in a model folder, and a model trained on it) are derived from "
             f"these collections of traditional tunes, as music21 {music21.version} distributes them in its corpus "
             f"(music21/corpus/NAME):\n\n{sources}\n\nThe build keeps each tune's title, type, meter, unit length, key "
             f"and music, normalised, and leaves out the other fields, the transcribers' Z: lines among them: they "
             f"are credited above.",
             _quoted("music21's notice for its corpus (music21/corpus/license.txt)", corpus / "license.txt")]
    parts += [_quoted(f"music21's notice for the {name} collection (music21/corpus/{name}/license.txt)", own)
              for name in collections if (own := corpus / name / "license.txt").is_file()]
    if licence is not None:
        parts.append(_quoted("music21's own licence (BSD-3-Clause: its software; the corpus is under the notices "
                             "above)", Path(music21.locate_file(licence))))
    return "\n\n".join(parts) + "\n"


def _quoted(title: str, path: Path) -> str:
    """A file's text under a title line, as it is but for blank lines around it (a notice is never edited)."""
    return f"==== {title} ====\n\n{path.read_text(encoding='utf-8').strip()}"


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace path with data, or leave it as it was (see charrnn.files.atomic_path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _collection_files(collection: str) -> list[Path]:
    """The ABC files of one of music21's corpus collections, in a fixed order."""
    try:
        from music21 import corpus
    except ImportError:
        raise CharRNNError("building the folk corpus needs music21: pip install music21") from None
    files = sorted(corpus.getComposer(collection, fileExtensions=("abc",)))
    if not files:
        raise CharRNNError(f"music21's corpus has no ABC collection named {collection!r}")
    return files


def _sift(tunes: list[Tune], reasons: Iterable[str | None], counts: dict[str, Counter[str]]) -> list[Tune]:
    """The tunes whose reason is None; the others are counted under their reason."""
    kept = []
    for tune, reason in zip(tunes, reasons, strict=True):
        if reason is None:
            kept.append(tune)
        else:
            counts[tune.source][reason] += 1
    return kept
