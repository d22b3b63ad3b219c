"""Tests for charrnn.corpora: the catalogue and fetching through local mirrors (never the network)."""

from __future__ import annotations

import dataclasses
import functools
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import CORPORA, require
from helpers import SHAKESPEARE as SHAKESPEARE_FILE

from charrnn import corpora
from charrnn.corpora import CATALOGUE
from charrnn.errors import CharRNNError

SHAKESPEARE = CATALOGUE["shakespeare"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mirror or corpora folder from the developer's shell, and no proxy between us and 127.0.0.1."""
    monkeypatch.delenv("CHARRNN_MIRROR", raising=False)
    monkeypatch.delenv("CHARRNN_CORPORA_DIR", raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def shared() -> Path:
    require(SHAKESPEARE_FILE)
    return CORPORA


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _files_from(folder: Path) -> Callable[..., BaseHTTPRequestHandler]:
    return functools.partial(_Files, directory=str(folder))


class _HalfBody(BaseHTTPRequestHandler):
    """Promises 1,000 bytes, sends 500 and hangs up."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 500)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _Stalls(_HalfBody):
    """Sends the headers, then nothing for a second."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        time.sleep(1.0)


@contextmanager
def _serve(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- fetching -------------------------------------------------------------------------------------------


def test_fetch_from_http_mirror(shared: Path, tmp_path: Path) -> None:
    with _serve(_files_from(shared)) as url:
        path = corpora.fetch("shakespeare", mirror=url, dest_dir=tmp_path, progress=False)
    assert path == tmp_path / "shakespeare.txt"
    assert corpora.sha256_file(path) == SHAKESPEARE.sha256
    assert [p.name for p in tmp_path.iterdir()] == ["shakespeare.txt"]


def test_fetch_from_folder_mirror_named_by_environment(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARRNN_MIRROR", str(shared))
    path = corpora.fetch("shakespeare", dest_dir=tmp_path, progress=False)
    assert corpora.sha256_file(path) == SHAKESPEARE.sha256


def test_fetch_keeps_a_good_copy_and_replaces_a_bad_one(shared: Path, tmp_path: Path) -> None:
    dead_mirror = f"http://127.0.0.1:{_unused_port()}/"
    good = corpora.fetch("shakespeare", mirror=str(shared), dest_dir=tmp_path, progress=False)
    assert corpora.fetch("shakespeare", mirror=dead_mirror, dest_dir=tmp_path, progress=False) == good

    good.write_text("not the corpus")
    corpora.fetch("shakespeare", mirror=str(shared), dest_dir=tmp_path, progress=False)
    assert corpora.sha256_file(good) == SHAKESPEARE.sha256


def _assert_nothing_left(folder: Path) -> None:
    assert not folder.exists() or list(folder.iterdir()) == []


def test_wrong_checksum_is_refused(shared: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "mirror"
    tampered.mkdir()
    text = (shared / "tinyshakespeare.txt").read_text()
    (tampered / "tinyshakespeare.txt").write_text(text.replace("First Citizen", "Second Citizen", 1))
    dest = tmp_path / "dest"
    with _serve(_files_from(tampered)) as url, pytest.raises(CharRNNError) as caught:
        corpora.fetch("shakespeare", mirror=url, dest_dir=dest, progress=False)
    assert re.fullmatch(
        rf"checksum mismatch for {url}tinyshakespeare\.txt: got sha256 [0-9a-f]{{64}}, expected {SHAKESPEARE.sha256}",
        str(caught.value),
    )
    _assert_nothing_left(dest)


def test_missing_file_names_every_url_tried(tmp_path: Path) -> None:
    with _serve(_files_from(tmp_path)) as url, pytest.raises(CharRNNError) as caught:
        corpora.fetch("shakespeare", mirror=url, dest_dir=tmp_path / "dest", progress=False)
    tried = " or ".join(url + name for name in ("shakespeare.txt", "input.txt", "tinyshakespeare.txt"))
    assert str(caught.value) == f"cannot fetch corpus 'shakespeare': not found at {tried}"
    _assert_nothing_left(tmp_path / "dest")


def test_short_body_is_refused(tmp_path: Path) -> None:
    with _serve(_HalfBody) as url, pytest.raises(CharRNNError) as caught:
        corpora.fetch("shakespeare", mirror=url, dest_dir=tmp_path, progress=False)
    assert str(caught.value) == f"download of {url}shakespeare.txt broke off after 500 of 1,000 bytes"
    _assert_nothing_left(tmp_path)


def test_stalled_server_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora, "TIMEOUT_S", 0.2)
    with _serve(_Stalls) as url, pytest.raises(CharRNNError) as caught:
        corpora.fetch("shakespeare", mirror=url, dest_dir=tmp_path, progress=False)
    assert str(caught.value) == f"cannot download {url}shakespeare.txt: timed out"
    _assert_nothing_left(tmp_path)


def test_refused_connection(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_unused_port()}/"
    with pytest.raises(CharRNNError, match=rf"^cannot download {url}shakespeare\.txt: .*[Rr]efused"):
        corpora.fetch("shakespeare", mirror=url, dest_dir=tmp_path / "dest", progress=False)
    _assert_nothing_left(tmp_path / "dest")


def test_interrupted_write_leaves_no_part_file(tmp_path: Path) -> None:
    dest = tmp_path / "corpus.txt"
    with pytest.raises(KeyboardInterrupt), corpora._atomic_file(dest) as out:
        out.write(b"half a corpus")
        raise KeyboardInterrupt
    _assert_nothing_left(tmp_path)


def test_missing_mirror_folder(tmp_path: Path) -> None:
    with pytest.raises(CharRNNError, match="^mirror folder .*nowhere does not exist$"):
        corpora.fetch("shakespeare", mirror=str(tmp_path / "nowhere"), dest_dir=tmp_path, progress=False)


def test_unknown_and_mismatched_names() -> None:
    known = "cmudict, folk, pystdlib, shakespeare"
    with pytest.raises(CharRNNError, match=rf"^unknown corpus 'poems'; known corpora: {known}$"):
        corpora.corpus_path("poems")
    with pytest.raises(CharRNNError, match="is built, not downloaded: run 'charrnn corpora build folk'"):
        corpora.fetch("folk")
    with pytest.raises(CharRNNError, match="is downloaded, not built: run 'charrnn corpora fetch shakespeare'"):
        corpora.build("shakespeare")


def test_corpora_dir_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert corpora.corpora_dir() == Path(corpora.__file__).resolve().parents[1] / "corpora"
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path))
    assert corpora.corpus_path("folk") == tmp_path / "folk.abc"


def test_ensure_fetches_once(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path))
    assert not corpora.is_ready("shakespeare")
    path = corpora.ensure("shakespeare", mirror=str(shared))
    assert path == tmp_path / "shakespeare.txt"
    assert corpora.is_ready("shakespeare")
    assert corpora.ensure("shakespeare", mirror=str(tmp_path / "nowhere")) == path


def test_the_catalogue_does_not_import_the_abc_checker() -> None:
    """Training on a plain text goes through the catalogue; only the folk build needs the checker."""
    code = "import sys, charrnn.corpora; print(sorted(m for m in sys.modules if m.startswith('charrnn.folk')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_an_unreachable_download_says_how_to_fetch_from_a_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = dataclasses.replace(SHAKESPEARE, url=f"http://127.0.0.1:{_unused_port()}/input.txt")
    monkeypatch.setitem(CATALOGUE, "shakespeare", dead)
    with pytest.raises(CharRNNError) as caught:
        corpora.fetch("shakespeare", dest_dir=tmp_path, progress=False)
    assert "--mirror DIR_OR_URL" in str(caught.value) and "CHARRNN_MIRROR" in str(caught.value)
    _assert_nothing_left(tmp_path)


def test_pystdlib_is_the_stdlib_sources_in_sorted_order_with_the_licence_and_without_tests(tmp_path) -> None:
    lib = tmp_path / "lib"
    for name, text in {"zz.py": "z = 1", "abc.py": "a = 1\n", "email/mime.py": "m = 2\n", "test/test_x.py": "t\n",
                       "site-packages/pkg.py": "p\n", "notes.txt": "not python\n"}.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_text(text)
    (lib / "latin.py").write_bytes(b"s = '\xe9'\n")
    with pytest.raises(CharRNNError, match="licence"):
        corpora.build_pystdlib(tmp_path / "out.txt", lib)
    (lib / "LICENSE.txt").write_text("PSF LICENSE AGREEMENT\n")
    stats = corpora.build_pystdlib(tmp_path / "out.txt", lib)
    assert (tmp_path / "out.txt").read_text() == ("# ==== abc.py ====\na = 1\n# ==== email/mime.py ====\nm = 2\n"
                                                  "# ==== zz.py ====\nz = 1\n")
    assert (stats.files, stats.skipped) == (3, 1) and "PSF" in (tmp_path / "out.LICENSE").read_text()
    assert corpora.CATALOGUE["pystdlib"].kind == "build" and corpora.CATALOGUE["pystdlib"].task == "lm"


def test_the_folk_corpus_size_is_given_one_way_everywhere(capsys) -> None:
    """Every mention of the folk build's size gives corpora.FOLK_TUNES (tests/test_folk_corpus.py checks it against a
    real build): the catalogue that `corpora list` and the app print, the README and corpora/README.md."""
    from charrnn.cli import main

    tunes = f"{corpora.FOLK_TUNES:,}"
    main(["corpora", "list"])
    assert f"{tunes} Irish, Scottish and American fiddle tunes" in capsys.readouterr().out
    root = Path(__file__).resolve().parents[1]
    readme, notes = (root / "README.md").read_text(), (root / "corpora" / "README.md").read_text()
    rows = [line for text in (readme, notes) for line in text.splitlines() if line.startswith("| `folk` |")]
    assert len(rows) == 2 and all(f"{tunes} " in row for row in rows), rows
    assert re.search(rf"charrnn corpora build folk +# {tunes} ", readme)
    approximate = re.compile(r"(?:about|~|around|some) ?[\d,.]+k? (?:\S+ ){0,4}tunes", re.IGNORECASE)
    assert not approximate.findall(readme + notes)
