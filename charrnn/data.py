"""Corpus encoding, caching and batching.

A text file is read in chunks, decoded, mapped to character ids and written to a cache file of the
smallest unsigned integer type that fits the vocabulary. Training memory-maps that file, so a
multi-GB corpus costs no RAM in proportion to its size. The cache is keyed on the file's content hash:
an unchanged file is never encoded twice, and a changed one gets a new cache entry.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path, sha256_file

CHUNK_BYTES = 1 << 24  # 16 MiB of the file per read: bounded memory whatever the file's size
CACHE_VERSION = 1


class Vocab:
    """The characters a model knows, in id order (sorted by code point)."""

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        # Sorted code points let numpy map a whole chunk of text to ids with one searchsorted.
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def known(self, text: str, unknown: str = "error", what: str = "the text") -> str:
        """The text, or with unknown="skip" the text without the characters the model does not know."""
        missing = self.unknown(text)
        if missing and unknown != "skip":
            shown = ", ".join(repr(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise CharRNNError(f"{what} has characters the model does not know: {shown}",
                               " (use --unknown skip to drop them)")
        return "".join(c for c in text if c in self.index) if missing else text

    def encode(self, text: str) -> np.ndarray:
        """Map text to ids; every character must be in the vocabulary."""
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, cps)
        ids = np.minimum(ids, len(self.chars) - 1)
        if len(cps) and not np.array_equal(self._codepoints[ids], cps):
            raise CharRNNError(f"characters not in the vocabulary: {_show(self.unknown(text))}")
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def _show(chars: list[str], limit: int = 20) -> str:
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def smallest_dtype(vocab_size: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise CharRNNError(f"vocabulary of {vocab_size} characters is too large")


def _decoded_chunks(path: Path, encoding: str) -> Iterator[str]:
    """Yield the file's text in chunks; invalid bytes raise a CharRNNError naming the byte offset."""
    try:
        with open(path, "rb") as f:
            yield from _decode(f, str(path), encoding)
    except OSError as e:
        raise CharRNNError(f"cannot read {path}: {e.strerror or e}") from None


def _decode(stream: BinaryIO, name: str, encoding: str) -> Iterator[str]:
    """Yield a byte stream's text in chunks; invalid bytes raise a CharRNNError naming the byte offset."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise CharRNNError(f"unknown encoding {encoding!r}") from None
    offset = 0
    while True:
        raw = stream.read(CHUNK_BYTES)
        final = not raw
        try:
            text = decoder.decode(raw, final=final)
        except UnicodeDecodeError as e:
            # The decoder may hold back a few bytes of an unfinished character from the last chunk.
            held = len(decoder.getstate()[0]) if not final else 0
            raise CharRNNError(f"{name}: not valid {encoding} at byte offset {offset - held + e.start}"
                               f" (byte 0x{e.object[e.start]:02x})",
                               "; pass --encoding if the file uses another encoding") from None
        if text:
            yield text
        if final:
            return
        offset += len(raw)


def read_text(path: Path | str, encoding: str = "utf-8") -> str:
    """A whole (small) text file, or standard input for "-", with the same clear errors as corpus encoding."""
    if str(path) == "-":
        return "".join(_decode(sys.stdin.buffer, "standard input", encoding))
    if not Path(path).is_file():
        raise CharRNNError(f"file not found: {path}")
    return "".join(_decoded_chunks(Path(path), encoding))


@dataclass
class EncodedCorpus:
    """A corpus encoded to ids: a read-only memory map plus its vocabulary and character counts."""

    ids: np.ndarray
    vocab: Vocab
    counts: list[int]
    sha256: str
    path: Path

    def split(self, val_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return split_ids(self.ids, val_frac, test_frac)


def split_ids(ids: np.ndarray, val_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, val and test views in file order: train first, then val, then test (the last part)."""
    n = len(ids)
    n_test = int(n * test_frac)
    n_val = int(n * val_frac)
    n_train = n - n_val - n_test
    return ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]


def default_cache_dir() -> Path:
    root = os.environ.get("CHARRNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "charrnn"
    )
    return Path(root)


def encode_corpus(path: str | Path, cache_dir: str | Path | None = None, encoding: str = "utf-8") -> EncodedCorpus:
    """Encode a text file (or reuse its cached encoding) and memory-map the ids."""
    path = Path(path)
    if path.is_dir():
        raise CharRNNError(f"{path} is a directory, not a corpus file")
    if not path.is_file():
        raise CharRNNError(f"corpus file not found: {path}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    digest = sha256_file(path)
    key = hashlib.sha256(f"{digest}:{encoding}:{CACHE_VERSION}".encode()).hexdigest()[:24]
    meta_path = cache_dir / f"{key}.json"
    bin_path = cache_dir / f"{key}.bin"
    meta = _read_meta(meta_path, bin_path)
    if meta is None:
        meta = _build_cache(path, encoding, digest, bin_path, meta_path)
    vocab = Vocab(meta["chars"])
    dtype = smallest_dtype(len(vocab))
    ids = np.memmap(bin_path, dtype=dtype, mode="r") if meta["length"] else np.zeros(0, dtype)
    return EncodedCorpus(ids=ids, vocab=vocab, counts=meta["counts"], sha256=digest, path=path)


def _read_meta(meta_path: Path, bin_path: Path) -> dict | None:
    """The cached metadata if the cache entry is complete and consistent, else None (rebuild)."""
    try:
        meta = json.loads(meta_path.read_text())
        itemsize = smallest_dtype(len(meta["chars"])).itemsize
        if bin_path.stat().st_size != meta["length"] * itemsize:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError, CharRNNError):
        return None


def _build_cache(path: Path, encoding: str, digest: str, bin_path: Path, meta_path: Path) -> dict:
    # Pass 1 finds the vocabulary, pass 2 writes ids: two reads keep memory bounded by one chunk.
    codepoints = np.zeros(0, dtype=np.uint32)
    length = 0
    for text in _decoded_chunks(path, encoding):
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        codepoints = np.union1d(codepoints, np.unique(cps))
        length += len(cps)
    if length == 0:
        raise CharRNNError(f"{path} is empty: a corpus needs some text")
    vocab = Vocab([chr(c) for c in codepoints])
    dtype = smallest_dtype(len(vocab))
    counts = np.zeros(len(vocab), dtype=np.int64)
    try:
        bin_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(bin_path) as tmp, open(tmp, "wb") as out:
            for text in _decoded_chunks(path, encoding):
                cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
                ids = np.searchsorted(codepoints, cps).astype(dtype)
                counts += np.bincount(ids, minlength=len(vocab))
                out.write(ids.tobytes())
        meta = {"version": CACHE_VERSION, "source": str(path), "sha256": digest, "encoding": encoding,
                "length": length, "chars": vocab.chars, "counts": counts.tolist()}
        with atomic_path(meta_path) as tmp:
            tmp.write_text(json.dumps(meta, ensure_ascii=False))
    except OSError as e:
        raise CharRNNError(f"cannot write the corpus cache in {bin_path.parent}: {e.strerror or e}") from None
    return meta


class StreamBatcher:
    """Karpathy-style batches: B contiguous streams read T characters at a time.

    Row b of every batch continues where row b of the previous batch stopped, so the model's hidden
    state can be carried from one batch to the next (truncated BPTT). With `world_size > 1`, each rank
    takes every world_size-th of the global streams: together the ranks cover exactly one global batch.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1):
        need = batch_size * (seq_len + 1)
        if len(ids) < need:
            raise CharRNNError(
                f"the training split has {len(ids):,} characters; batch size {batch_size} x sequence length"
                f" {seq_len} needs at least {need:,} (use a longer file, or smaller --batch-size / --seq-len)"
            )
        stream_len = (len(ids) - 1) // batch_size
        self.batch_size, self.seq_len = batch_size, seq_len
        self.batches_per_epoch = stream_len // seq_len
        self._x = ids[: batch_size * stream_len].reshape(batch_size, stream_len)[rank::world_size]
        self._y = ids[1 : batch_size * stream_len + 1].reshape(batch_size, stream_len)[rank::world_size]

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of batch `index` of an epoch, each (rows, seq_len) int64."""
        lo = index * self.seq_len
        hi = lo + self.seq_len
        x = torch.from_numpy(np.ascontiguousarray(self._x[:, lo:hi], dtype=np.int64))
        y = torch.from_numpy(np.ascontiguousarray(self._y[:, lo:hi], dtype=np.int64))
        return x, y
