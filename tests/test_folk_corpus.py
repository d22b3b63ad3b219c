"""Tests for charrnn.folk.corpus: normalising music21's ABC tunes and building the folk corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from charrnn.errors import CharRNNError
from charrnn.files import sha256_file
from charrnn.folk import corpus, spelling
from charrnn.folk.check import check_tune
from charrnn.folk.corpus import normalise_tunes

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
    # G2- ... D is a slur written as a tie (see below), so it goes as well.
    assert _one(tune) == "X:1\nM:4/4\nL:1/8\nK:D\ne|c<AA>B c<AA2 | ~B2 {c}BA TG2 G2|\n(3DEF D[K:Ador]E (3FGA B2 |]"


def test_slurs_written_as_ties_between_two_pitches_go_true_ties_stay() -> None:
    tune = "X:1\nM:2/4\nL:1/16\nK:D\nf-g | a3-b g3-a | f4 f4- | f2 ^c2-c4 |\nK:C\nF2-^F2 =c4 |]\n"
    assert _one(tune) == "X:1\nM:2/4\nL:1/16\nK:D\nfg | a3b g3a | f4 f4- | f2 ^c2-c4 |\nK:C\nF2^F2 =c4 |]"
    assert [f.kind for f in check_tune(tune).findings] == ["bad-tie"] * 4
    assert check_tune(_one(tune)).passed


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
    assert corpus.music21_verdict("X:1\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2|]") is None
    assert corpus.music21_verdict("X:1\nM:2/4\nL:1/8\nK:D\n|]") == "no_notes"
    assert corpus.music21_verdict("X:1\nK:D\nDE FG|") == "parse_error"  # no unit length at all


# ---- building -------------------------------------------------------------------------------------------


def test_build_keeps_only_tunes_that_pass_the_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = tmp_path / "book.abc"
    good = "X:1\nT:Good\nM:2/4\nL:1/8\nK:D\n|:DE FG|A2 A2:|\n"
    long_bar = "X:2\nT:Long bar\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2 B2|A4|]\n"
    open_repeat = "X:3\nT:Open repeat\nM:2/4\nL:1/8\nK:G\n|:GA Bc|d4|\n"
    book.write_text("\n".join((good, long_bar, open_repeat)), encoding="utf-8")
    monkeypatch.setattr(corpus, "_collection_files", lambda collection: [book])
    # music21's verdicts run in spawned processes (seconds); its own test is above.
    monkeypatch.setattr(corpus, "music21_verdicts", lambda texts, workers, progress: [None] * len(texts))

    stats = corpus.build_folk(tmp_path / "folk.abc", ("book",), progress=False)
    assert (tmp_path / "folk.abc").read_text(encoding="utf-8") == "X:1\nT:Good\nM:2/4\nL:1/8\nK:D\n|:DE FG|A2 A2:|\n"
    assert stats.collections["book"] == {"tunes": 3, "kept": 1, **dict.fromkeys(corpus.DROP_REASONS, 0),
                                         "failed_check": 2}
    notice = corpus.notice_path(tmp_path / "folk.abc").read_text(encoding="utf-8")
    assert f"- book: {corpus.OTHER_SOURCE}" in notice and "music21/corpus/license.txt" in notice


def test_unknown_collection(tmp_path: Path) -> None:
    pytest.importorskip("music21")
    with pytest.raises(CharRNNError, match="music21's corpus has no ABC collection named 'noSuchBook'"):
        corpus.build_folk(tmp_path / "folk.abc", ("noSuchBook",), progress=False)


@pytest.mark.slow
def test_build_from_one_collection(tmp_path: Path) -> None:
    pytest.importorskip("music21")
    path = tmp_path / "folk.abc"
    stats = corpus.build_folk(path, ("miscFolk",), keep=lambda abc: "M:6/8" not in abc, progress=False, workers=2)
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
    assert counts["tunes"] == counts["kept"] + sum(counts[reason] for reason in corpus.DROP_REASONS)
    assert stats.sha256 == sha256_file(path)
    assert json.loads((tmp_path / "folk.stats.json").read_text()) == json.loads(stats.to_json())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folk.LICENSE", "folk.abc", "folk.forms.json",
                                                          "folk.notes.gz", "folk.stats.json"]

    one_worker = corpus.build_folk(
        tmp_path / "again" / "folk.abc", ("miscFolk",), keep=lambda abc: "M:6/8" not in abc, progress=False, workers=1
    )
    assert one_worker.sha256 == stats.sha256


# ---- the notice -----------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_the_notice_credits_each_collection_and_quotes_music21s_corpus_notice_as_it_is() -> None:
    pytest.importorskip("music21")
    from music21 import corpus as music21_corpus

    notice = corpus.licence_notice(corpus.FOLK_COLLECTIONS + (corpus.ESSEN_COLLECTION,))
    for name in corpus.FOLK_COLLECTIONS + (corpus.ESSEN_COLLECTION,):
        assert f"- {name}: {corpus.SOURCES[name]}" in notice
    folder = Path(music21_corpus.__file__).parent
    assert (folder / "license.txt").read_text(encoding="utf-8").strip() in notice
    assert (folder / "essenFolksong" / "license.txt").read_text(encoding="utf-8").strip() in notice  # non-commercial
    assert "essenFolksong" not in corpus.licence_notice(corpus.FOLK_COLLECTIONS)


def test_every_shipped_model_with_corpus_facts_carries_the_corpus_notice() -> None:
    """models/folk's corpus.forms.json and corpus.notes.gz (and its weights) are derived from music21's
    collections: the notice travels beside them, and the README says where it is."""
    folders = [path.parent for path in REPO.glob("models/*/corpus.notes.gz")]
    assert REPO / "models" / "folk" in folders
    for folder in folders:
        notice = (folder / "LICENSE").read_text(encoding="utf-8")
        for name in corpus.FOLK_COLLECTIONS:
            assert f"- {name}: {corpus.SOURCES[name]}" in notice
        assert "distributed with the permission of the encoders" in notice  # music21's corpus notice, quoted
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "models/folk/LICENSE" in readme and "folk.LICENSE" in readme
