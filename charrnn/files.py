"""File helpers every module shares: atomic replacement, atomic JSON, content hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from charrnn.errors import CharRNNError

_UMASK = os.umask(0)
os.umask(_UMASK)
TEMPORARY = ".tmp"  # atomic_path's temporary files are named .NAME.XXXXXXXX.tmp beside NAME


def remove_temporaries(directory: Path) -> None:
    """Remove the temporary files that atomic_path writes killed midway left behind in `directory`.

    Only for a directory whose writer holds it alone (a trainer with its run lock): elsewhere the
    temporary file may be another process's write in progress."""
    for tmp in Path(directory).glob(f".*{TEMPORARY}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    A kill at any moment leaves either the old file or the new one, never a half-written one; on an
    exception the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp (and writers that recreate the file) leave 0600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                digest.update(block)
    except OSError as e:
        raise CharRNNError(f"cannot read {path}: {e.strerror or e}") from None
    return digest.hexdigest()


def write_failed(path: Path, e: OSError) -> CharRNNError:
    """The error for a write that failed (the atomic writers leave the old file as it was)."""
    return CharRNNError(f"cannot write {path}: {e.strerror or e}; the previous file there is unchanged")


def write_json(path: Path, obj: dict) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise write_failed(path, e) from None
