"""Tests for charrnn.folk.form (the form of a tune, on hand-checked tunes), charrnn.folk.originality (the
longest run a tune shares with a corpus) and charrnn.folk.facts (what generation knows of a corpus)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from folk_tunes import ENDING_REEL, PICKUP_JIG, PLAIN_AIR, SHORT_POLKA, up_a_step

from charrnn.cli import main
from charrnn.errors import CharRNNError
from charrnn.folk.check import check_tune
from charrnn.folk.facts import MODEL_FORMS, MODEL_INDEX, CorpusFacts, forms_path, write_facts
from charrnn.folk.form import Part, closed_parts, corpus_layouts, read_form
from charrnn.folk.originality import NoteIndex, index_path, write_index
from charrnn.runfile import CorpusInfo

TUNES = (PICKUP_JIG, ENDING_REEL, PLAIN_AIR, SHORT_POLKA)


def test_the_hand_checked_tunes_pass_the_checks() -> None:
    assert all(check_tune(tune).passed for tune in TUNES)


@pytest.mark.parametrize(
    ("abc", "parts", "layout", "degree", "low", "high"),
    [
        (PICKUP_JIG, (Part(8, True, False, True), Part(8, True, False, True)), "AABB 8+8", "1", 62, 79),
        (ENDING_REEL, (Part(8, True, True), Part(8, True, True)), "AABB 8+8", "1", 64, 81),
        (PLAIN_AIR, (Part(8, False), Part(8, False)), "AB 8+8", "b3", 64, 79),
        (SHORT_POLKA, (Part(7, True, False, True),), "AA 7", "1", 64, 79),
    ],
)
def test_form_of_hand_checked_tunes(abc: str, parts: tuple[Part, ...], layout: str, degree: str, low: int,
                                    high: int) -> None:
    form = read_form(abc)
    assert form.parts == parts and form.layout == layout
    assert form.degree == degree and form.ends_on_tonic == (degree == "1")
    assert (form.low, form.high, form.range) == (low, high, high - low)


def test_form_measures() -> None:
    jig, polka = read_form(PICKUP_JIG), read_form(SHORT_POLKA)
    assert jig.every_part(8) and jig.parts_of_four and not jig.odd_part
    assert not polka.every_part(8) and not polka.parts_of_four and polka.odd_part
    assert (jig.title, jig.tune_type, jig.meter, jig.key) == ("Pickup Jig", "jig", "6/8", "G")


def test_a_tune_still_being_written_has_the_parts_it_closed() -> None:
    half = ENDING_REEL.split("|:e2ae")[0]  # the first part with both its endings, then the next |:
    assert closed_parts(half) == [Part(8, True, True)]
    assert closed_parts(half.rsplit("||", 1)[0]) == []  # the second ending is not closed yet


def test_form_never_raises_on_junk() -> None:
    for junk in ("", "X:1\nK:D\n", "X:1\nM:6/8\nK:Hp\n|]]]:|2 ((3 z", "not abc at all"):
        form = read_form(junk)
        assert form.range >= 0 and form.layout


def test_corpus_layouts_count_every_layout_of_each_type_and_meter_the_rare_ones_too() -> None:
    forms = [read_form(PICKUP_JIG)] * 5 + [read_form(ENDING_REEL)] * 3 + [read_form(SHORT_POLKA)] * 2 + \
        [read_form(PICKUP_JIG.replace("R:jig", "R:slide"))]
    assert corpus_layouts(forms) == {"jig 6/8": {"8+8": 5}, " 6/8": {"8+8": 6}, "slide 6/8": {"8+8": 1},
                                     "reel 4/4": {"8+8": 3}, " 4/4": {"8+8": 3}, " 2/4": {"7": 2}}


# ---- originality ----------------------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "folk.abc"
    path.write_text("\n\n".join((PICKUP_JIG, PLAIN_AIR)) + "\n", encoding="utf-8")
    write_index(path)
    return path


def test_a_copy_in_another_key_is_found_with_its_length_in_bars(corpus: Path) -> None:
    index = NoteIndex.load(index_path(corpus))
    whole = index.longest_copy(up_a_step(PICKUP_JIG, "A"))
    assert whole.tune == 1 and whole.bars == 16  # every note: 16 bars' time, pickups included
    # Five bars of the jig, a tone higher, then three of its own.
    head = up_a_step(PICKUP_JIG, "A").split("\n")
    five = "\n".join(head[:6]) + "\nE|ABc dcB|cAF E2E|ABc def|ecA B2E|ABc dcB|\ng2g g2g|f2f f2f|e3 e3|]"
    found = index.longest_copy(five)
    assert found.tune == 1 and 5 <= found.bars < 6
    assert index.longest_copy(ENDING_REEL).bars < 1


def test_index_file_is_plain_gzipped_text_with_the_corpus_sha(corpus: Path) -> None:
    lines = gzip.decompress(index_path(corpus).read_bytes()).decode("utf-8").splitlines()
    assert lines[0].startswith("# charrnn folk note index v1 sha256=") and len(lines) == 3
    assert lines[1].split()[:3] == ["0@1/8", "5@1/8", "2@1/8"]  # D, then G a fourth up, then A


def test_a_file_that_is_not_an_index_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "folk.notes.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(CharRNNError, match="is not a folk note index"):
        NoteIndex.load(bad)
    bad.write_bytes(gzip.compress(b"hello\n"))
    with pytest.raises(CharRNNError, match="is not a folk note index"):
        NoteIndex.load(bad)


# ---- corpus facts ---------------------------------------------------------------------------------------


def test_facts_are_found_beside_the_corpus_only_for_the_same_text(tmp_path: Path) -> None:
    text = "\n\n".join([PICKUP_JIG] * 12) + "\n"
    corpus = tmp_path / "folk.abc"
    corpus.write_text(text, encoding="utf-8")
    write_facts(corpus, text)
    saved = json.loads(forms_path(corpus).read_text(encoding="utf-8"))
    assert saved["layouts"]["jig 6/8"] == {"8+8": 12}

    class Config:
        def __init__(self, sha256: str) -> None:
            self.corpus = CorpusInfo("folk", "folk.abc", sha256, len(text))

    facts = CorpusFacts.find(Config(saved["sha256"]), corpora=tmp_path)
    assert facts.layouts_for("jig", "6/8") == {"8+8": 12} and facts.index is not None
    assert CorpusFacts.find(Config(saved["sha256"])).layouts == {}  # no corpora folder named: none looked in
    assert facts.layouts_for("reel", "6/8") == {"8+8": 12}  # no reels: the meter's layouts over every type
    other = CorpusFacts.find(Config("0" * 64), corpora=tmp_path)
    assert other.layouts == {} and other.index is None
    # A model folder's own copies come first, whatever the corpus.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / MODEL_FORMS).write_bytes(forms_path(corpus).read_bytes())
    (folder / MODEL_INDEX).write_bytes(index_path(corpus).read_bytes())
    assert CorpusFacts.find(Config("0" * 64), folder).layouts == saved["layouts"]


# ---- charrnn folk stats ---------------------------------------------------------------------------------


def test_folk_stats_prints_each_tune_and_a_summary_beside_the_corpus(corpus: Path, tmp_path: Path, capsys) -> None:
    tunes = tmp_path / "mine.abc"
    tunes.write_text(f"{up_a_step(PICKUP_JIG, 'A')}\n\n{SHORT_POLKA}\n", encoding="utf-8")
    assert main(["folk", "stats", str(tunes), "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{tunes}: tune 1 (Pickup Jig): AABB 8+8 (pickups); ends on 1 (the tonic) of A; range 17 "
                      "semitones; longest run shared with the corpus: 16 bars (tune 1)")
    assert out[1].startswith(f"{tunes}: tune 2 (Short Polka): AA 7 (pickups); ends on 1 (the tonic) of D")
    assert out[2] == f"| measure | {tunes} | {corpus} |"
    assert "| a part of 7 or 9 | 50 | 0 |" in out and "| copies 4+ bars | 50 | - |" in out


def test_folk_stats_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as missing:  # argparse's own one-line error, as for folk check
        main(["folk", "stats"])
    assert missing.value.code == 2 and "the following arguments are required: file" in capsys.readouterr().err
    empty = tmp_path / "empty.abc"
    empty.write_text("no tunes here\n", encoding="utf-8")
    assert main(["folk", "stats", str(tmp_path / "missing.abc")]) == 2
    assert main(["folk", "stats", str(empty), "--corpus", str(tmp_path / "nope.abc")]) == 2
    assert "there is no corpus at" in capsys.readouterr().err


# ---- the benchmark's "every part 8" by type and meter ------------------------------------------------------


def test_the_benchmark_tells_a_real_difference_from_the_corpus_from_sampling_error() -> None:
    from benchmarks.bench_folk import FormRow, eight_bar_table, interval

    assert interval(5, 10) == pytest.approx((23.66, 76.34), abs=0.01)  # Wilson's 95% interval
    assert interval(13, 13) == pytest.approx((77.19, 100.0), abs=0.01)  # 13 of 13 tells little
    assert interval(0, 10)[0] == 0.0

    jig, polka = read_form(PICKUP_JIG), read_form(SHORT_POLKA)
    corpus = [FormRow("corpus", "jig", "6/8", "G", jig, None, True)] * 9 + \
        [FormRow("corpus", "jig", "6/8", "G", polka, None, True)]
    near = [FormRow("after", "jig", "6/8", "G", jig, 0.0, True, plan=(8, 8))] * 12 + \
        [FormRow("after", "jig", "6/8", "G", polka, 0.0, True, plan=(8, 8))]
    far = [FormRow("after", "jig", "6/8", "G", polka, 0.0, True, plan=(8, 8))] * 40
    assert "| jig 6/8 (10 / 13) | 90 | 100 | 92.3 (66.7-98.6) | +2.3 | 92.3 |" in eight_bar_table(corpus + near)
    assert "-90.0 (outside) | 0 |" in eight_bar_table(corpus + far)
    # A type with under 10 corpus tunes in its meter draws from the meter's layouts: it is set beside those.
    slides = [FormRow("after", "slide", "6/8", "G", jig, 0.0, True, plan=(8, 8))] * 13
    assert "| slide 6/8 (10 / 13) | 90 (meter) | 100 | 100 (77.2-100) | +10.0 |" in eight_bar_table(corpus + slides)
