"""Tests for charrnn.folk.melody: reading a tune's melody into bars and finding the same melody again."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from folk_tunes import PICKUP_JIG, up_a_step

from charrnn.folk import corpus
from charrnn.folk.melody import NEAR_DUPLICATE_BARS, bar_shapes, near_duplicates, read_melody

JIG = PICKUP_JIG.replace("\nD|", "\n|:D|")  # the same jig with its first repeat written out


def test_melody_reads_pitches_durations_ties_and_bar_lines() -> None:
    melody = read_melody("X:1\nM:6/8\nL:1/8\nK:D\n|:A|d>ef (3gfe d-|d3 [Ac]2:|\n")
    assert melody.key == "D" and melody.lead == "|:"
    assert [bar.closing for bar in melody.bars] == ["|", "|", ":|"]
    # F is sharp in D; the tied d becomes one note across the bar line; a chord is its top note.
    assert melody.bars[1].notes == [[74, Fraction(3, 16)], [76, Fraction(1, 16)], [78, Fraction(1, 8)],
                                    [79, Fraction(1, 12)], [78, Fraction(1, 12)], [76, Fraction(1, 12)],
                                    [74, Fraction(1, 2)]]
    assert [bar.duration for bar in melody.bars] == [Fraction(1, 8), Fraction(3, 4), Fraction(5, 8)]
    assert melody.bars[2].notes == [[72 + 1, Fraction(1, 4)]]


def test_bar_shapes_are_the_same_in_another_key() -> None:
    assert bar_shapes(read_melody(up_a_step(JIG, "A"))) == bar_shapes(read_melody(JIG))
    # The same letters under another key signature are another melody (G major's F# becomes A's G#...).
    assert bar_shapes(read_melody(up_a_step(JIG, "Amix"))) != bar_shapes(read_melody(JIG))


def test_near_duplicates_finds_transposed_and_renamed_copies_and_keeps_the_first() -> None:
    transposed = up_a_step(JIG, "A").replace("T:Pickup Jig", "T:Another Name Entirely")
    header, _, body = JIG.partition("K:G\n")
    octave_down = header.replace("Pickup Jig", "Low") + "K:G\n" + "".join(
        c.upper() if c.islower() and c in "abcdefg" else c + "," if c in "ABCDEFG" else c for c in body)
    other = ("X:9\nT:Other\nM:6/8\nL:1/8\nK:D\n|:A|dfa afd|cec ABc|dfa afd|e3 e2:|\n"
             "|:g|fdf ege|fga b2a|fdf ege|d3 d2:|\n")
    # A copy of the first part only: 8 bars, 7 of them distinct, below the threshold.
    first_part = "X:5\nT:Half\nM:6/8\nL:1/8\nK:G\n" + "\n".join(JIG.splitlines()[6:8]) + "\n"
    assert near_duplicates([JIG, other, transposed, first_part, octave_down]) == [None, None, 0, None, 0]
    assert near_duplicates([transposed, JIG]) == [None, 0]


def test_near_duplicates_needs_the_shared_bars() -> None:
    # Change one note in all but NEAR_DUPLICATE_BARS - 1 distinct bars: then it is a new tune.
    lines = JIG.splitlines()
    changed = [line.replace("GAB", "GAc").replace("DEF", "DEE").replace("AGF", "AGG") for line in lines]
    variant = "\n".join(changed)
    shared = {s for s in bar_shapes(read_melody(JIG)) if s} & {s for s in bar_shapes(read_melody(variant)) if s}
    assert len(shared) < NEAR_DUPLICATE_BARS
    assert near_duplicates([JIG, variant]) == [None, None]
    assert near_duplicates([JIG, variant], min_bars=len(shared)) == [None, 0]


def test_build_removes_near_duplicates_and_counts_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = tmp_path / "book.abc"
    book.write_text(JIG + "\n" + up_a_step(JIG, "A").replace("X:1", "X:2"), encoding="utf-8")
    monkeypatch.setattr(corpus, "_collection_files", lambda collection: [book])
    monkeypatch.setattr(corpus, "music21_verdicts", lambda texts, workers, progress: [None] * len(texts))
    stats = corpus.build_folk(tmp_path / "folk.abc", ("book",), progress=False)
    assert stats.kept == 1 and stats.dropped["near_duplicate"] == 1
    assert (tmp_path / "folk.abc").read_text(encoding="utf-8").count("X:") == 1
