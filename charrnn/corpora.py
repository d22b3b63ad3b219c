"""Named training corpora: download the classic ones, build the folk-tune corpus from music21's ABC files."""

from __future__ import annotations

import hashlib
import http.client
import json
import multiprocessing
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path, sha256_file
from charrnn.folk.check import check_tune
from charrnn.folk.spelling import canonical_key, canonical_meter, canonical_tune_type, default_unit_length
from charrnn.seq2seq import cmudict


@dataclass(frozen=True)
class Corpus:
    """One entry of the catalogue: where a corpus comes from and the file it ends up in."""

    name: str
    description: str
    kind: str  # "download" or "build"
    filename: str
    url: str | None = None
    sha256: str | None = None
    licence: str = ""
    mirror_names: tuple[str, ...] = ()  # further names a mirror may hold the file under
    splits: tuple[str, ...] = ()  # fixed splits built beside the file (see split_files)

    def names_in_mirror(self) -> list[str]:
        """The file names to look for in a mirror: the catalogue's, the URL's, then the extra ones."""
        url_name = Path(urllib.parse.urlparse(self.url or "").path).name
        return [name for name in dict.fromkeys((self.filename, url_name, *self.mirror_names)) if name]


CATALOGUE: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            name="shakespeare",
            description="Tiny Shakespeare: 1.1 million characters of the plays, the classic char-rnn corpus",
            kind="download",
            filename="shakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            licence="public domain text, assembled by Andrej Karpathy for char-rnn",
            mirror_names=("tinyshakespeare.txt",),
        ),
        Corpus(
            name="folk",
            description="About 3,950 Irish, Scottish and American fiddle tunes in ABC, built from music21's corpus",
            kind="build",
            filename="folk.abc",
            licence="traditional tunes; transcriptions distributed with music21 (see its corpus/license.txt)",
        ),
        Corpus(
            name="cmudict",
            description="The CMU Pronouncing Dictionary: ~134k word<TAB>ARPAbet pairs for G2P, split 90/5/5 by word",
            kind="build",
            filename="cmudict.tsv",
            licence="CMU's BSD-style licence (its notice is written beside the corpus as cmudict.LICENSE)",
            splits=tuple(cmudict.SPLIT_FRACTIONS),
        ),
    )
}

TIMEOUT_S = 30.0  # per connection attempt and per read
_CHUNK = 1 << 16


def corpora_dir() -> Path:
    """Where corpora live: $CHARRNN_CORPORA_DIR, else the corpora/ folder beside the charrnn package."""
    override = os.environ.get("CHARRNN_CORPORA_DIR")
    return Path(override).expanduser() if override else Path(__file__).resolve().parents[1] / "corpora"


def _lookup(name: str) -> Corpus:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise CharRNNError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CATALOGUE))}") from None


def corpus_path(name: str) -> Path:
    """The path a corpus has once fetched or built."""
    return corpora_dir() / _lookup(name).filename


def split_files(name: str, dest_dir: Path | None = None) -> dict[str, Path]:
    """The fixed split files of a corpus built with splits: {"train": ..., "val": ..., "test": ...}."""
    corpus = _lookup(name)
    if not corpus.splits:
        raise CharRNNError(f"corpus {name!r} has no fixed splits")
    path = (dest_dir or corpora_dir()) / corpus.filename
    return {split: path.with_name(f"{path.stem}.{split}{path.suffix}") for split in corpus.splits}


def is_ready(name: str) -> bool:
    """Whether the corpus is on disk (and, for a download, has the catalogue's checksum)."""
    corpus, path = _lookup(name), corpus_path(name)
    return path.is_file() and (corpus.sha256 is None or sha256_file(path) == corpus.sha256)


def ensure(name: str, mirror: str | None = None) -> Path:
    """The corpus's path, fetching or building it first if it is not there yet."""
    if is_ready(name):
        return corpus_path(name)
    return fetch(name, mirror) if _lookup(name).kind == "download" else build(name).path


@contextmanager
def _atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces dest only if the block completes (and is removed otherwise)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        yield out


class _NotFound(CharRNNError):
    """The URL names no file (HTTP 404, or a missing file in a folder mirror): try the next name."""


def fetch(name: str, mirror: str | None = None, dest_dir: Path | None = None, progress: bool = True) -> Path:
    """Download a corpus from its URL or a mirror (a folder or base URL; default $CHARRNN_MIRROR) and verify it."""
    corpus = _lookup(name)
    if corpus.kind != "download":
        raise CharRNNError(f"corpus {name!r} is built, not downloaded: run 'charrnn corpora build {name}'")
    dest = (dest_dir or corpora_dir()) / corpus.filename
    if dest.is_file() and sha256_file(dest) == corpus.sha256:
        return dest
    mirror = mirror or os.environ.get("CHARRNN_MIRROR")
    if mirror:
        base = _mirror_base(mirror)
        urls = [base + urllib.parse.quote(file_name) for file_name in corpus.names_in_mirror()]
    else:
        urls = [corpus.url]
    for url in urls:
        try:
            return _download(url, dest, corpus.sha256, progress)
        except _NotFound:
            continue
        except CharRNNError as err:
            if mirror:
                raise
            raise CharRNNError(f"{err}. Without a network, fetch from a copy of {corpus.filename}: "
                               f"charrnn corpora fetch {name} --mirror DIR_OR_URL (or set CHARRNN_MIRROR)") from None
    raise CharRNNError(f"cannot fetch corpus {name!r}: not found at {' or '.join(urls)}")


def _mirror_base(mirror: str) -> str:
    """A mirror as a base URL ending in '/': URLs pass through, folders become file:// URLs."""
    if "://" not in mirror:
        folder = Path(mirror).expanduser()
        if not folder.is_dir():
            raise CharRNNError(f"mirror folder {mirror} does not exist")
        mirror = folder.resolve().as_uri()
    return mirror.rstrip("/") + "/"


def _download(url: str, dest: Path, sha256: str | None, progress: bool) -> Path:
    """Stream url into dest through a temporary file, checking its length and checksum before it takes dest's place."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, _atomic_file(dest) as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length else None
            digest, received = hashlib.sha256(), 0
            bar = tqdm(total=expected, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            with bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            # http.client returns a short body without complaint when the server hangs up early.
            if expected is not None and received != expected:
                raise CharRNNError(f"download of {url} broke off after {received:,} of {expected:,} bytes")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise CharRNNError(f"checksum mismatch for {url}: got sha256 {digest.hexdigest()}, expected {sha256}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise _NotFound(url) from err
        raise CharRNNError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError):
            raise _NotFound(url) from err
        raise CharRNNError(f"cannot download {url}: {err.reason}") from err
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets and garbled replies mid-body
        raise CharRNNError(f"cannot download {url}: {err or type(err).__name__}") from err
    return dest


# ---------------------------------------------------------------------------------------------------------
# The folk corpus

FOLK_COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk")
ESSEN_COLLECTION = "essenFolksong"  # licensed for non-commercial use only, so it is opt-in
DROP_REASONS = ("multi_voice", "odd_key", "duplicate", "failed_check", "rejected", "parse_error", "no_notes")

_HEADER_ORDER = ("T", "R", "M", "L", "K")  # after X:, which is renumbered; K: ends the header
_BODY_FIELDS = frozenset("KLM")  # field lines in the music that change how the notes after them read
_FIELD = re.compile(r"([A-Za-z+]):(.*)")
_COMMENT = re.compile(r"(?<!\\)%.*")  # "\%" is a literal percent sign
_VOICE = re.compile(r"(?:^|\[)V:\s*([^\s\]]+)", re.MULTILINE)
_TUNE_START = re.compile(r"^(?=X:)", re.MULTILINE)
_QUOTED = re.compile(r'"[^"]*"')  # chord symbols and annotations: "Am", "4" (a fingering), "^SEGUE"
_BANG_DECORATION = re.compile(r"![^!\s|]{1,40}!")  # !4!, !sf!, !D.C.!, !Segno!
_INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]|\[]*)\]")
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
    lines = [line for line in (_COMMENT.sub("", line).rstrip() for line in raw.splitlines()) if line]
    if len(set(_VOICE.findall("\n".join(lines)))) > 1:
        raise _Dropped("multi_voice")

    # The header runs to the first K: line; the odd header line that lost its colon is dropped with it.
    header_end = next((i + 1 for i, line in enumerate(lines) if line.startswith("K:")), len(lines))
    header: dict[str, str] = {}
    for field in filter(None, map(_FIELD.match, lines[:header_end])):
        header.setdefault(field[1], field[2])
    # Spell out ABC's implicit unit length so that every tune's header reads the same way.
    header.setdefault("L", default_unit_length(_squeeze(header.get("M", ""))))
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
        body=tuple(line for line in map(_squeeze, body) if line),
    )


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
    for field in _INLINE_FIELD.finditer(line):  # [K:D] holds letters that are not decorations
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


def build(
    name: str,
    dest_dir: Path | None = None,
    include_essen: bool = False,
    progress: bool = True,
    keep: Callable[[str], bool] | None = None,
) -> BuildStats | cmudict.BuildStats:
    """Build a corpus of kind "build" (the folk tunes, Essen's only with include_essen; cmudict) into dest_dir."""
    corpus = _lookup(name)
    if corpus.kind != "build":
        raise CharRNNError(f"corpus {name!r} is downloaded, not built: run 'charrnn corpora fetch {name}'")
    if name == "cmudict":
        dest = (dest_dir or corpora_dir()) / corpus.filename
        return cmudict.build(dest, split_files(name, dest_dir), progress=progress)
    collections = FOLK_COLLECTIONS + (ESSEN_COLLECTION,) if include_essen else FOLK_COLLECTIONS
    return build_folk((dest_dir or corpora_dir()) / corpus.filename, collections, keep, progress)


def build_folk(
    path: Path,
    collections: Sequence[str] = FOLK_COLLECTIONS,
    keep: Callable[[str], bool] | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> BuildStats:
    """Write music21's ABC collections to path as one clean training text, and its stats beside it.

    Only tunes that pass charrnn.folk.check's checks and music21's parser are kept. keep, if given, sees each
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
    if not tunes:
        raise CharRNNError(f"no tune of {', '.join(collections)} survived the checks; nothing written")

    data_bytes = ("\n\n".join(tune.abc(number) for number, tune in enumerate(tunes, 1)) + "\n").encode("utf-8")
    with _atomic_file(path) as out:
        out.write(data_bytes)
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
    with _atomic_file(path.with_suffix(".stats.json")) as out:
        out.write(stats.to_json().encode("utf-8"))
    return stats


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
