"""Tests for charrnn.corpora: fetching through local mirrors (never the network) and normalising ABC tunes."""

from __future__ import annotations

import functools
import json
import re
import socket
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
from charrnn.corpora import CATALOGUE, normalise_tunes
from charrnn.errors import CharRNNError
from charrnn.folk import spelling
from charrnn.folk.check import check_tune

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
    with pytest.raises(CharRNNError, match=r"^unknown corpus 'poems'; known corpora: folk, shakespeare$"):
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


# ---- normalising ABC ------------------------------------------------------------------------------------

# Hand-written for these tests; not tunes from any collection.
MESSY = """\
% a file-level comment before the first tune
X: 12
C:Somebody
T: First  Test
T:Its other title
Z:typed in by nobody
N:a note
M:4/4
R:reel
O:Nowhere
L:1/8
K:G
%%MIDI program 1
abcd efga|  % halfway
w: la la la la

bagf edcB|\\
  cdef gfed :|
W:more words
P:B
M:3/4
gfe dcB|\\
[K:D] A6|]
"""


def _one(text: str) -> str:
    tunes, _ = normalise_tunes([("test", text)])
    assert len(tunes) == 1
    return tunes[0].abc(1)


def test_header_is_reduced_and_ordered_and_the_body_cleaned() -> None:
    assert _one(MESSY) == (
        "X:1\nT:First Test\nR:reel\nM:4/4\nL:1/8\nK:G\nabcd efga|\nbagf edcB| cdef gfed :|\nM:3/4\ngfe dcB|[K:D] A6|]"
    )


def test_header_ends_at_its_k_line_and_drops_lines_without_a_colon() -> None:
    tune = "X:1\nT:Header rubble\nM:6/8\nthis line lost its colon\nK:D\nK:A\nABc def|\n"
    assert _one(tune) == "X:1\nT:Header rubble\nM:6/8\nL:1/8\nK:D\nK:A\nABc def|"


@pytest.mark.parametrize(
    ("meter", "written", "length"),
    [("2/4", "2/4", "1/16"), ("3/4", "3/4", "1/8"), ("6/8", "6/8", "1/8"), ("C", "4/4", "1/8"),
     ("C|", "2/2", "1/8"), ("none", "none", "1/8")],
)
def test_implicit_unit_length_is_written_out(meter: str, written: str, length: str) -> None:
    assert _one(f"X:1\nM:{meter}\nK:C\nCDEF|\n") == f"X:1\nM:{written}\nL:{length}\nK:C\nCDEF|"


@pytest.mark.parametrize(
    ("text", "key"),
    [("D", "D"), ("Dmaj", "D"), ("D Major", "D"), ("D  major", "D"), ("Cion", "C"), ("E Minor", "Em"),
     ("EMin", "Em"), ("em", "Em"), ("EM", "Em"), ("Aaeolian", "Am"), ("A Dorian", "Ador"), ("ADor", "Ador"),
     ("EDorian", "Edor"), ("A Mixolydian", "Amix"), ("AMix", "Amix"), ("G Lydian", "Glyd"), ("Bphr", "Bphr"),
     ("Bloc", "Bloc"), ("Bb", "Bb"), ("bb lydian", "Bblyd"), ("F# Minor", "F#m"), ("Ebmix", "Ebmix")],
)
def test_canonical_key(text: str, key: str) -> None:
    assert spelling.canonical_key(text) == key


@pytest.mark.parametrize("text", ["", "Hp", "Bn", "H", "Dmi", "Dmixm", "Dmix=c", "D major7", "none", "D#b"])
def test_keys_without_a_canonical_form(text: str) -> None:
    assert spelling.canonical_key(text) is None


@pytest.mark.parametrize(
    ("text", "meter"),
    [("C", "4/4"), ("C|", "2/2"), ("6/8", "6/8"), (" 9 / 8", "9/8"), ("06/8", "6/8"), ("2+3/8", None),
     ("none", None), ("0/4", None), ("3/0", None), ("jig", None)],
)
def test_canonical_meter(text: str, meter: str | None) -> None:
    assert spelling.canonical_meter(text) == meter


@pytest.mark.parametrize(
    ("text", "tune_type"),
    [("Reel", "reel"), ("REEL.", "reel"), ("Double Jig", "jig"), ("slipjig", "slip jig"), ("Slip-Jig", "slip jig"),
     ("slip  jig", "slip jig"), ("Fling", "highland fling"), ("Highland Fling", "highland fling")],
)
def test_canonical_tune_type(text: str, tune_type: str) -> None:
    assert spelling.canonical_tune_type(text) == tune_type
    assert tune_type in spelling.FOLK_TUNE_TYPES


def test_header_values_are_spelled_one_way() -> None:
    tune = "X:1\nT:Spelling\nR:Double Jig\nM:C|\nK:A Mixolydian\nABcd efga|\nM:C\nK:E Minor\nefga ABcd|]\n"
    assert _one(tune) == "X:1\nT:Spelling\nR:jig\nM:2/2\nL:1/8\nK:Amix\nABcd efga|\nM:4/4\nK:Em\nefga ABcd|]"
    assert _one("X:1\nR:\nM:6/8\nL:1/8\nK:D\nABc def|\n") == "X:1\nM:6/8\nL:1/8\nK:D\nABc def|"


def test_chord_symbols_fingerings_bowings_and_slurs_go_ornaments_stay() -> None:
    body = ('u"4"e|v(c<A)(A>.B) "Am"(c<A)"^SEGUE"A2 | !4!~B2 {c}BA TG2 H"_D.C."G2-|\n'
            '((3DEF) .D[K:A Dorian]!D.C.!"0"E (3.F.G.A y`B2 |]')
    tune = f"X:1\nM:4/4\nL:1/8\nK:D\n{body}\n"
    assert _one(tune) == "X:1\nM:4/4\nL:1/8\nK:D\ne|c<AA>B c<AA2 | ~B2 {c}BA TG2 G2-|\n(3DEF D[K:Ador]E (3FGA B2 |]"


def test_tunes_in_keys_without_a_canonical_name_are_dropped() -> None:
    pipes = "X:1\nM:6/8\nL:1/8\nK:Hp\nABc def|\n"
    modulates = "X:2\nM:6/8\nL:1/8\nK:D\nABc def|\nK:Dmix=c\nABc def|\n"
    inline = "X:3\nM:6/8\nL:1/8\nK:D\nABc [K:Bn] def|\n"
    tunes, counts = normalise_tunes([("book", "\n".join((pipes, modulates, inline)))])
    assert tunes == [] and counts == {"book": {"tunes": 3, "odd_key": 3}}


def test_duplicates_and_multi_voice_tunes_are_dropped_and_counted() -> None:
    first = "X:1\nT:One\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2|]\n"
    renamed = "X:2\nT:Same music, another name\nR:polka\nM:2/4\nL:1/8\nK:D\nDE  FG|A2 A2|] % same notes\n"
    other_key = first.replace("K:D", "K:E")
    voices = "X:3\nM:2/4\nL:1/8\nV:1\nV:2\nK:D\n[V:1] DE FG|\n[V:2] A,B, CD|\n"
    inline_voices = "X:4\nM:2/4\nL:1/8\nK:D\n[V:1] DE FG|\n[V:2] A,B, CD|\n"
    one_voice = "X:5\nM:2/4\nL:1/8\nV:1 program 1\nK:D\nFG AB|\n"
    text = "\n".join((first, renamed, other_key, voices, inline_voices, one_voice))

    tunes, counts = normalise_tunes([("book", text), ("other book", first)])
    assert [tune.abc(n) for n, tune in enumerate(tunes, 1)] == [
        "X:1\nT:One\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2|]",
        "X:2\nT:One\nM:2/4\nL:1/8\nK:E\nDE FG|A2 A2|]",
        "X:3\nM:2/4\nL:1/8\nK:D\nFG AB|",
    ]
    assert counts == {
        "book": {"tunes": 6, "duplicate": 1, "multi_voice": 2},
        "other book": {"tunes": 1, "duplicate": 1},
    }


def test_music21_verdicts() -> None:
    pytest.importorskip("music21")
    assert corpora.music21_verdict("X:1\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2|]") is None
    assert corpora.music21_verdict("X:1\nM:2/4\nL:1/8\nK:D\n|]") == "no_notes"
    assert corpora.music21_verdict("X:1\nK:D\nDE FG|") == "parse_error"  # no unit length at all


# ---- building -------------------------------------------------------------------------------------------


def test_build_keeps_only_tunes_that_pass_the_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = tmp_path / "book.abc"
    good = "X:1\nT:Good\nM:2/4\nL:1/8\nK:D\n|:DE FG|A2 A2:|\n"
    long_bar = "X:2\nT:Long bar\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2 B2|A4|]\n"
    open_repeat = "X:3\nT:Open repeat\nM:2/4\nL:1/8\nK:G\n|:GA Bc|d4|\n"
    book.write_text("\n".join((good, long_bar, open_repeat)), encoding="utf-8")
    monkeypatch.setattr(corpora, "_collection_files", lambda collection: [book])
    # music21's verdicts run in spawned processes (seconds); its own test is above.
    monkeypatch.setattr(corpora, "music21_verdicts", lambda texts, workers, progress: [None] * len(texts))

    stats = corpora.build_folk(tmp_path / "folk.abc", ("book",), progress=False)
    assert (tmp_path / "folk.abc").read_text(encoding="utf-8") == "X:1\nT:Good\nM:2/4\nL:1/8\nK:D\n|:DE FG|A2 A2:|\n"
    assert stats.collections["book"] == {"tunes": 3, "kept": 1, **dict.fromkeys(corpora.DROP_REASONS, 0),
                                         "failed_check": 2}


def test_unknown_collection(tmp_path: Path) -> None:
    pytest.importorskip("music21")
    with pytest.raises(CharRNNError, match="music21's corpus has no ABC collection named 'noSuchBook'"):
        corpora.build_folk(tmp_path / "folk.abc", ("noSuchBook",), progress=False)


@pytest.mark.slow
def test_build_from_one_collection(tmp_path: Path) -> None:
    pytest.importorskip("music21")
    path = tmp_path / "folk.abc"
    stats = corpora.build_folk(path, ("miscFolk",), keep=lambda abc: "M:6/8" not in abc, progress=False, workers=2)
    text = path.read_text(encoding="utf-8")

    blocks = text.removesuffix("\n").split("\n\n")
    assert len(blocks) == stats.kept > 100
    for number, block in enumerate(blocks, 1):
        lines = block.split("\n")
        assert lines[0] == f"X:{number}"
        header_end = next(i for i, line in enumerate(lines) if line.startswith("K:")) + 1
        header = [line[0] for line in lines[:header_end]]
        assert header == sorted(header, key="XTRMLK".index) and header[-3:] == ["M", "L", "K"]
        assert all(line == line.strip() and line and "%" not in line for line in lines)
        assert not any(re.match(r"[A-Za-z]:", line) and line[0] not in "XTRMLK" for line in lines)
        music = "".join(lines[header_end:])
        assert not set('"!.)uvH') & set(music) and not re.search(r"\((?!\d)", music)  # no annotations, slurs...
        assert check_tune(block).passed
    assert "M:6/8" not in text

    counts = stats.collections["miscFolk"]
    assert counts["rejected"] > 0 and counts["multi_voice"] > 0
    assert counts["tunes"] == counts["kept"] + sum(counts[reason] for reason in corpora.DROP_REASONS)
    assert stats.sha256 == corpora.sha256_file(path)
    assert json.loads((tmp_path / "folk.stats.json").read_text()) == json.loads(stats.to_json())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folk.abc", "folk.stats.json"]

    one_worker = corpora.build_folk(
        tmp_path / "again" / "folk.abc", ("miscFolk",), keep=lambda abc: "M:6/8" not in abc, progress=False, workers=1
    )
    assert one_worker.sha256 == stats.sha256
