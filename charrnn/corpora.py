"""Named training corpora: download the classic ones; the folk-tune corpus is built by charrnn.folk.corpus."""

from __future__ import annotations

import hashlib
import http.client
import os
import sysconfig
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tqdm import tqdm

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path, sha256_file
from charrnn.seq2seq import cmudict

if TYPE_CHECKING:  # the folk build imports the ABC checker, which plain training never needs
    from charrnn.folk.corpus import BuildStats


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
    task: str = "lm"  # what it trains: "lm" (a language model on the text) or "seq2seq" (input/output pairs)
    tokens: tuple[str, str] = ("chars", "chars")  # seq2seq: the source's and target's symbols, unless flags say

    def command(self) -> str:
        """The command that puts the corpus on disk."""
        return f"charrnn corpora {'fetch' if self.kind == 'download' else 'build'} {self.name}"

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
            description="3,958 Irish, Scottish and American fiddle tunes in ABC, built from music21's corpus",
            kind="build",
            filename="folk.abc",
            licence="traditional tunes, transcriptions distributed with music21 (the notice, with music21's for its "
                    "corpus, is written beside the corpus as folk.LICENSE)",
        ),
        Corpus(
            name="cmudict",
            description="The CMU Pronouncing Dictionary: ~134k word<TAB>ARPAbet pairs for G2P, split 90/5/5 by word",
            kind="build",
            filename="cmudict.tsv",
            licence="CMU's BSD-style licence (its notice is written beside the corpus as cmudict.LICENSE)",
            splits=tuple(cmudict.SPLIT_FRACTIONS),
            task="seq2seq",
            tokens=("chars", "space"),  # letters in, space-separated ARPAbet phonemes out
        ),
        Corpus(
            name="pystdlib",
            description="The Python standard library's own source (this interpreter's, tests left out): 10+ MB",
            kind="build",
            filename="pystdlib.txt",
            licence="the PSF licence (this interpreter's LICENSE.txt is written beside the corpus as pystdlib.LICENSE)",
        ),
    )
}
STDLIB_SKIP_SET = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}  # folders left out

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
    if name == "pystdlib":
        return build_pystdlib((dest_dir or corpora_dir()) / corpus.filename)
    from charrnn.folk.corpus import ESSEN_COLLECTION, FOLK_COLLECTIONS, build_folk  # the ABC checker: only here

    collections = FOLK_COLLECTIONS + (ESSEN_COLLECTION,) if include_essen else FOLK_COLLECTIONS
    return build_folk((dest_dir or corpora_dir()) / corpus.filename, collections, keep, progress)


@dataclass(frozen=True)
class StdlibStats:
    """What a pystdlib build wrote."""

    path: Path
    files: int
    skipped: int  # files that are not UTF-8
    chars: int
    seconds: float

    def summary(self) -> str:
        return (f"{self.path}: {self.files:,} files, {self.chars:,} characters ({self.skipped} not UTF-8, left out), "
                f"{self.seconds:.0f}s; licence in {self.path.with_suffix('.LICENSE')}")


def build_pystdlib(dest: Path, stdlib: Path | None = None) -> StdlibStats:
    """The running interpreter's standard-library .py files, in sorted path order, each after a header line
    naming it, into dest; the interpreter's PSF licence beside it."""
    t0 = time.perf_counter()
    stdlib = stdlib or Path(sysconfig.get_paths()["stdlib"])
    licence = stdlib / "LICENSE.txt"
    if not licence.is_file():
        raise CharRNNError(f"cannot find this Python's licence at {licence}: the corpus must travel with it")
    files = sorted(p for p in stdlib.rglob("*.py")
                   if p.is_file() and not STDLIB_SKIP_SET.intersection(p.relative_to(stdlib).parts[:-1]))
    kept = skipped = chars = 0
    with _atomic_file(dest) as out:
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            ending = "" if text.endswith("\n") else "\n"
            piece = f"# ==== {path.relative_to(stdlib).as_posix()} ====\n{text}{ending}"
            out.write(piece.encode("utf-8"))
            kept, chars = kept + 1, chars + len(piece)
    with _atomic_file(dest.with_suffix(".LICENSE")) as out:
        out.write(licence.read_bytes())
    return StdlibStats(dest, kept, skipped, chars, time.perf_counter() - t0)
