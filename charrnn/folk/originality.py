"""How much of a tune is copied from a corpus: the longest run of notes it shares with any one corpus
tune, in any key, measured in bars.

A tune is read as its sequence of notes, each an (interval from the note before, duration) pair
(melody.read_melody), so a copy in another key or octave is found. The corpus's sequences are kept as a
plain gzipped text file beside the corpus (`index_path`): a header line with the corpus's sha256, then
one line per tune of space-separated "interval@duration" tokens. A sorted array of hashed runs of
SEED_NOTES notes finds the places where a tune meets the corpus; each is followed as far as it goes.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path
from charrnn.folk.check import split_tunes
from charrnn.folk.melody import read_melody

SEED_NOTES = 6  # a shared run shorter than this is not looked for: under a bar of any tune
COPY_LIMIT_BARS = 4  # a generated tune sharing this many bars with a corpus tune is a copy
_MAGIC = "# charrnn folk note index v1"
_HASH_BASE = np.uint64(1_000_003)


def index_path(corpus: Path) -> Path:
    """Where a corpus's note index lives: folk.abc -> folk.notes.gz."""
    return corpus.with_suffix(".notes.gz")


def note_tokens(abc: str) -> list[str]:
    """A tune's notes as "interval@duration" tokens (the first note's interval is 0)."""
    tokens, previous = [], None
    for pitch, duration in read_melody(abc).notes:
        tokens.append(f"{0 if previous is None else pitch - previous}@{duration}")
        previous = pitch
    return tokens


def write_index(corpus: Path, text: str | None = None) -> Path:
    """Read every tune of the corpus file and write its note index beside it; returns the index's path."""
    data = corpus.read_bytes() if text is None else text.encode("utf-8")
    lines = [f"{_MAGIC} sha256={hashlib.sha256(data).hexdigest()}"]
    lines += [" ".join(note_tokens(tune)) for tune in split_tunes(data.decode("utf-8"))]
    path = index_path(corpus)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    return path


@dataclass(frozen=True)
class Copied:
    """The longest run a tune shares with one corpus tune."""

    bars: float  # its length in bars of the tune's meter
    notes: int
    tune: int | None  # the corpus tune's number (X:), None if nothing is shared


class NoteIndex:
    """The corpus's note sequences, searchable for the longest run a tune shares with any of them."""

    def __init__(self, tunes: Iterable[list[str]], sha256: str = "") -> None:
        self.sha256 = sha256
        vocabulary: dict[str, int] = {}
        ids: list[int] = []
        owners: list[int] = []
        for number, tokens in enumerate(tunes, 1):
            ids += [vocabulary.setdefault(token, len(vocabulary)) for token in tokens] + [-1]
            owners += [number] * (len(tokens) + 1)
        self.vocabulary = vocabulary
        self.durations = np.array([float(Fraction(token.split("@")[1])) for token in vocabulary], dtype=np.float64)
        self.ids = np.array(ids, dtype=np.int64)
        self.owners = np.array(owners, dtype=np.int64)
        hashes = _seed_hashes(self.ids)
        self.order = np.argsort(hashes, kind="stable")
        self.sorted_hashes = hashes[self.order]

    @classmethod
    def load(cls, path: Path) -> NoteIndex:
        """Read an index written by write_index; a CharRNNError if it is not one."""
        try:
            lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise CharRNNError(f"{path} is not a folk note index ({err})") from None
        if not lines or not lines[0].startswith(_MAGIC + " sha256="):
            raise CharRNNError(f"{path} is not a folk note index (rebuild it: charrnn corpora build folk)")
        return cls((line.split() for line in lines[1:]), lines[0].rpartition("=")[2])

    def longest_copy(self, abc: str) -> Copied:
        """The longest run of notes the tune shares with one corpus tune, in bars of the tune's meter."""
        melody = read_melody(abc)
        tokens = note_tokens(abc)
        bar = melody.meter.value or Fraction(1)
        query = np.array([self.vocabulary.get(token, -2) for token in tokens], dtype=np.int64)
        best = Copied(0.0, 0, None)
        if len(query) < SEED_NOTES:
            return best
        durations = np.array([float(Fraction(token.split("@")[1])) for token in tokens])
        for i, seed in enumerate(_seed_hashes(query)):
            low = np.searchsorted(self.sorted_hashes, seed, side="left")
            high = np.searchsorted(self.sorted_hashes, seed, side="right")
            for j in self.order[low:high]:
                if i and j and self.ids[j - 1] == query[i - 1]:
                    continue  # the same run, met one note earlier
                length = 0
                while i + length < len(query) and j + length < len(self.ids) and \
                        self.ids[j + length] == query[i + length]:
                    length += 1
                if length < SEED_NOTES:
                    continue  # a hash collision
                bars = float(durations[i:i + length].sum() / float(bar))
                if bars > best.bars:
                    best = Copied(round(bars, 2), length, int(self.owners[j]))
        return best


def _seed_hashes(ids: np.ndarray) -> np.ndarray:
    """A hash of each run of SEED_NOTES ids starting at each position (runs that cross a tune's end or an
    unknown note get a hash no corpus run has)."""
    n = len(ids) - SEED_NOTES + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    hashes = np.zeros(n, dtype=np.uint64)
    bad = np.zeros(n, dtype=bool)
    with np.errstate(over="ignore"):
        for k in range(SEED_NOTES):
            window = ids[k:k + n]
            bad |= window < 0
            hashes = hashes * _HASH_BASE + window.astype(np.uint64)
    hashes[bad] = np.iinfo(np.uint64).max
    return hashes
