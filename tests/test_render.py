"""Tests for charrnn.folk.render (perform.py and engrave.py behind it): the notes as played, MIDI, WAV, and SVG
from an isolated verovio worker."""

from __future__ import annotations

import io
import os
import re
import signal
import time
import wave
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.errors import CharRNNError
from charrnn.folk import render

# Hand-written for these tests; not tunes from any collection.
REEL_PART_A = "|:A2FA dAFA|B2GB dBGB|A2FA d2fe|dBAF D4|A2FA dAFA|B2GB dBGB|A2FA d2fe|dBAF D4:|"
REEL_PART_B = "|:f2df a2fd|g2eg b2ge|f2df afdf|edBc d4|f2df a2fd|g2eg b2ge|f2df afdf|edBc d4:|"
REEL = f"X:1\nT:Thirty-two Bars\nR:reel\nM:4/4\nL:1/8\nK:D\n{REEL_PART_A}\n{REEL_PART_B}"
ENDINGS = "X:1\nT:Endings\nM:2/4\nL:1/8\nK:C\n|:CD EF|1 G2 G2:|2 c2 c2||"
JIG = "X:1\nT:Sixteen Bars\nR:jig\nM:6/8\nL:1/8\nK:G\n|:GAB dBG|AGA BGE|GAB dBd|edB A3|GAB dBG|AGA BGE|GAB dBd|edB G3:|"
BAD = "X:1\nT:Long bar\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2 B2|A4|]"
REEL_NOTES = len(re.findall("[A-Ga-g]", REEL_PART_A + REEL_PART_B))  # as written; twice that are played
C, D, E, F, G, A, B = 60, 62, 64, 65, 67, 69, 71


def _tune(body: str, key: str = "C", meter: str = "4/4", unit: str = "1/4") -> str:
    return f"X:1\nT:t\nM:{meter}\nL:{unit}\nK:{key}\n{body}"


def _pitches(abc: str) -> list[int]:
    return [note.pitch for note in render.performance(abc).notes]


# ---- the notes as played --------------------------------------------------------------------------------


def test_repeats_and_endings_are_played_as_written() -> None:
    assert _pitches(ENDINGS) == [C, D, E, F, G, G, C, D, E, F, C + 12, C + 12]
    assert render.performance(ENDINGS).length == 4 * 2  # four bars of 2/4 played


@pytest.mark.parametrize(
    ("body", "order"),
    [
        ("CD EF|GA Bc:|", [C, D, E, F, G, A, B, C + 12] * 2),  # a :| without |: goes back to the start
        ("C4|:D4:|E4||F4:|", [C, D, D, E, F, F]),  # ... or to the last double bar
        ("|:C2D2::E2F2:|", [C, D, C, D, E, F, E, F]),
        ("|:C4|[1 D4:|[2 E4|F4||", [C, D, C, E, F]),
        ("|:C4|1 D4|D4:|2 E4|F4|G4|]", [C, D, D, C, E, F, G]),  # ... or as long as the first one
        ("|:C4|1,3 D4:|2 E4:|4 F4||", [C, D, C, E, C, D, C, F]),
        ("G A [1 B2:|[2 c2||", [G, A, B, G, A, C + 12]),  # an ending may start mid-bar
    ],
)
def test_play_order(body: str, order: list[int]) -> None:
    assert _pitches(_tune(body)) == order


def test_pitches_follow_key_signature_octaves_and_bar_accidentals() -> None:
    assert _pitches(_tune("FcB,f'", key="D")) == [F + 1, C + 13, B - 12, F + 25]
    assert _pitches(_tune("F^cc=c|c_B__B^^F", key="Gmix")) == [F, C + 13, C + 13, C + 12, C + 12, B - 1, B - 2, F + 2]
    assert _pitches(_tune("B[K:Bb]B[K:Ador]F", key="C")) == [B, B - 1, F + 1]


def test_lengths_broken_rhythm_tuplets_ties_and_chords() -> None:
    played = render.performance(_tune("A>B C<D (3EFG A/B/ c-|c2 [CEG]2 z4|Z", unit="1/8"))
    lengths = [(note.pitch, note.length) for note in played.notes]
    third = Fraction(1, 3)
    assert lengths == [(A, Fraction(3, 4)), (B, Fraction(1, 4)), (C, Fraction(1, 4)), (D, Fraction(3, 4)),
                       (E, third), (F, third), (G, third), (A, Fraction(1, 4)), (B, Fraction(1, 4)),
                       (C + 12, Fraction(3, 2)), (C, 1), (E, 1), (G, 1)]
    assert played.notes[-1].start == played.notes[-2].start  # the chord's notes sound together
    assert played.length == 8 + 4  # two bars and a bar of rest (Z)


def test_ties_join_notes_of_one_pitch_only() -> None:
    played = render.performance(_tune("^c2-c2 [CE]2-[CE]2|F2-F2 c4-|c4 z4|[C-E]4 C4|]", unit="1/8"))
    assert [(note.pitch, note.length) for note in played.notes] == [
        (C + 13, 2), (C, 2), (E, 2), (F, 2), (C + 12, 4), (C, 4), (E, 2)]  # held across the bar line too


def test_triplets_in_compound_meter() -> None:
    played = render.performance(_tune("(2AB c|", meter="6/8", unit="1/8"))  # (2: two notes in the time of three
    assert [note.length for note in played.notes] == [Fraction(3, 4), Fraction(3, 4), Fraction(1, 2)]


# Bars of 4/4 in eighths, with a place for each note: every one lasts a whole bar.
# A tie joins notes of one pitch, hence {0} twice.
BAR_SHAPES = ("{}2{}2{}2{}2", "{}{}{}{} {}{}{}{}", "(3{}{}{} {}2 {}4", "{}>{}{}<{} {}4", "[{}{}]4 z4", "{}8",
              "{0}6-{0}2")
NOTES = ("A", "^c", "_B", "d'", "E,", "=f", "g", "__e", "^^F")


@settings(max_examples=60, deadline=None)
@given(bars=st.lists(st.tuples(st.sampled_from(BAR_SHAPES), st.lists(st.sampled_from(NOTES), min_size=8,
                                                                     max_size=8)), min_size=2, max_size=6),
       endings=st.booleans(), tempo=st.sampled_from([60, 120, 200]))
def test_fuzzed_tunes_play_every_bar_as_written(bars: list, endings: bool, tempo: int) -> None:
    written = [shape.format(*notes) for shape, notes in bars]
    if endings:  # the last bar twice, as first and second ending: as many bars played as without
        body = "|:" + "|".join(written[:-1]) + f"|1 {written[-1]}:|2 {written[-1]}|]"
    else:
        body = "|:" + "|".join(written) + ":|"
    abc = _tune(body, unit="1/8")
    played = render.performance(abc)
    assert played.length == 4 * 2 * len(written)
    assert all(0 <= note.start < played.length and note.length > 0 for note in played.notes)
    assert render.midi_bytes(abc, tempo)[:4] == b"MThd"
    rate, samples = render.synthesize(abc, tempo)
    assert len(samples) == round(played.seconds(tempo) * rate)


def test_only_checked_tunes_are_rendered() -> None:
    for make in (render.performance, render.midi_bytes, render.synthesize, render.to_svg):
        with pytest.raises(CharRNNError, match=r"^the tune fails the checks \(bar 2 lasts .*\), so it is not rendered"):
            make(BAD)


# ---- MIDI and WAV ---------------------------------------------------------------------------------------


def test_a_32_bar_reel_lasts_64_seconds_at_120(tmp_path: Path) -> None:
    played = render.performance(REEL)
    assert played.length == 32 * 4 and played.seconds(120) == 64.0
    rate, samples = render.synthesize(REEL, tempo=120)
    assert rate == render.SAMPLE_RATE and samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) == 64 * rate
    assert 0.5 * 32767 < np.abs(samples).max() < 32767 and np.abs(samples[: rate // 2]).mean() > 100

    render.write_wav(tmp_path / "reel.wav", (rate, samples))
    with wave.open(str(tmp_path / "reel.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, rate)
        assert wav.getnframes() / wav.getframerate() == 64.0
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), samples)


def test_tempo_counts_quarter_notes_in_every_meter() -> None:
    rate, samples = render.synthesize(JIG, tempo=90)
    assert len(samples) / rate == 16 * 3 * 60 / 90  # 16 bars of 6/8, three quarter notes each
    with pytest.raises(CharRNNError, match="tempo must be between 20 and 400"):
        render.synthesize(JIG, tempo=0)


def test_audio_is_the_same_every_time() -> None:
    assert np.array_equal(render.synthesize(ENDINGS)[1], render.synthesize(ENDINGS)[1])


def test_midi_reads_back_with_music21(tmp_path: Path) -> None:
    music21 = pytest.importorskip("music21")
    render.write_midi(tmp_path / "reel.mid", REEL, tempo=100)
    data = (tmp_path / "reel.mid").read_bytes()
    assert data[:4] == b"MThd" and data == render.midi_bytes(REEL, tempo=100)

    score = music21.converter.parse(str(tmp_path / "reel.mid"))
    notes = list(score.recurse().notes)
    played = render.performance(REEL).notes
    assert len(notes) == len(played) == 2 * REEL_NOTES
    assert [n.pitch.midi for n in notes] == [note.pitch for note in played]
    assert score.highestTime == 32 * 4
    assert [round(m.number) for m in score.recurse().getElementsByClass("MetronomeMark")][:1] == [100]


def test_wav_bytes_is_a_riff_file() -> None:
    data = render.wav_bytes((8000, np.zeros(800, dtype=np.int16)))
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() == 800


# ---- sheet music ----------------------------------------------------------------------------------------


def _classes(svg: str) -> list[str]:
    return [element.get("class", "") for element in ET.fromstring(svg).iter()]


def test_svg_of_a_checked_tune(tmp_path: Path) -> None:
    pytest.importorskip("verovio")
    render.write_svg(tmp_path / "endings.svg", ENDINGS)
    classes = _classes((tmp_path / "endings.svg").read_text(encoding="utf-8"))
    assert classes.count("note") == 8  # as written, not as played
    assert classes.count("voltaBracket") == 2  # first and second endings survive the trip through MusicXML
    assert _classes(render.to_svg(REEL)).count("note") == REEL_NOTES


@pytest.mark.slow
def test_a_verovio_crash_costs_a_restart_not_the_caller() -> None:
    pytest.importorskip("verovio")
    engraver = render.Engraver()
    try:
        # music21 cannot read this, so verovio reads the ABC itself, and segfaults on the stray brackets.
        with pytest.raises(CharRNNError, match=r"engraver \(verovio\) crashed on this tune \(exit code -11\)"):
            engraver.render(_tune("]] [["))
        assert "voltaBracket" in _classes(engraver.render(ENDINGS))

        os.kill(engraver.pid, signal.SIGKILL)  # a worker killed between tunes is restarted
        deadline = time.monotonic() + 10
        while engraver.pid is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "voltaBracket" in _classes(engraver.render(ENDINGS))

        with pytest.raises(CharRNNError, match=r"^engraving the sheet music took more than 1e-06s; it was stopped$"):
            engraver.render(ENDINGS, timeout=1e-6)
        assert engraver.pid is None
        assert "voltaBracket" in _classes(engraver.render(ENDINGS))
    finally:
        engraver.close()
