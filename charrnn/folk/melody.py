"""A tune's melody as bars of sounding notes, read with the one ABC reader (reader.py), and the
transposition-invariant form of it that finds the same melody in another key or under another title.

`read_melody` keeps what form and originality need: each written bar's notes (MIDI pitch or a rest,
duration in whole notes), the bar line that closes it and the endings that begin in it. `bar_shapes`
turns the notes into intervals, so a tune and its transposition read the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from charrnn.folk.reader import (
    FREE_METER,
    Meter,
    Voice,
    default_unit,
    parse_field,
    parse_meter,
    parse_unit,
    tokenize,
)
from charrnn.folk.spelling import canonical_key

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass
class Bar:
    """One written bar: its notes as [pitch (None: a rest), duration in whole notes], in order."""

    notes: list[list] = field(default_factory=list)  # a note tied across the bar line stays in its first bar
    duration: Fraction = Fraction(0)  # the written time of the bar, a tied note's share included
    meter: Meter = FREE_METER
    closing: str = ""  # the bar line that ends it ("|", ":|", "||", "|]", "::" ...); "" at the end of the text
    endings: tuple[int, ...] = ()  # the passes of an ending that starts in it (|1, :|2, [1,3)


@dataclass
class Melody:
    """The header fields of a tune (X:, T:, R:, M:, L:, K: ...) and its bars, in written order."""

    headers: dict[str, str]
    meter: Meter
    key: str  # the canonical key the tune ends in ("Dmix"), "" if none has a plain name
    bars: list[Bar]
    lead: str = ""  # bar lines before the first note, as "|:"

    @property
    def notes(self) -> list[tuple[int, Fraction]]:
        """Every sounding note (ties joined), in order."""
        return [(pitch, duration) for bar in self.bars for pitch, duration in bar.notes if pitch is not None]


def tonic_pitch_class(key: str) -> int | None:
    """The pitch class (C = 0) of a canonical key's tonic: "F#m" -> 6; None for no key."""
    if not key:
        return None
    shift = {"#": 1, "b": -1}.get(key[1:2], 0)
    return (_PITCH_CLASS[key[0]] + shift) % 12


def read_melody(abc: str) -> Melody:
    """Read one tune's header and melody; never raises on bad music (what is not music is skipped).

    A chord counts as its top note (the melody); a note tied to the one before it lengthens it; grace
    notes take no time. Only the first voice is read.
    """
    lines = abc.splitlines()
    headers: dict[str, str] = {}
    body = len(lines)
    for index, line in enumerate(lines):
        found = parse_field(line)
        if found is None:
            body = index
            break
        headers.setdefault(*found)
        if found[0] == "K":
            body = index + 1
            break
    meter = parse_meter(headers.get("M", "")) or FREE_METER
    unit = parse_unit(headers.get("L", "")) or default_unit(meter)
    key = headers.get("K", "")
    reading = _Reading(Voice(meter, unit, key), meter, canonical_key(key) or "")
    for line in lines[body:]:
        found = parse_field(line)
        if found is not None:
            if found[0] == "V" and reading.bars and reading.bars[0].notes:
                break  # a second voice: the melody is the first
            reading.field(*found)
        elif line.strip():
            reading.line(line)
    # An empty last bar stays only for the ending it opens (a tune still being written: "...:|2").
    bars = reading.bars if reading.bars[-1].duration or reading.bars[-1].endings else reading.bars[:-1]
    return Melody(headers, meter, reading.key, bars, reading.lead)


class _Reading:
    """The running state while a body is read into bars."""

    def __init__(self, voice: Voice, meter: Meter, key: str) -> None:
        self.voice, self.key = voice, key
        self.bars = [Bar(meter=meter)]
        self.lead = ""  # bar lines before the first note ("|:")

    def field(self, letter: str, value: str) -> None:
        if letter in "KML":
            self.voice.set_field(letter, value)
            if letter == "K":
                self.key = canonical_key(value) or self.key

    def line(self, line: str) -> None:
        voice = self.voice
        for token in tokenize(line):
            kind, bar = token.kind, self.bars[-1]
            if kind in ("note", "chord", "rest"):
                if not bar.notes:
                    bar.meter = voice.meter
                if kind == "rest":
                    voice.rest()
                    duration = voice.sound(token.length)
                    bar.duration += duration
                    bar.notes.append([None, duration])
                    continue
                was_tied = bool(voice.tied)
                pitches, joined = voice.play(token.notes)
                duration = voice.sound(token.length)
                bar.duration += duration
                last = self._last_note()
                if was_tied and joined and last is not None:
                    last[1] += duration  # the tied note sounds on: one longer note
                else:
                    bar.notes.append([max(pitches) if pitches else None, duration])
            elif kind == "tie":
                voice.tie()
            elif kind == "broken":
                gained = voice.broken(token.text)
                if gained is not None and bar.notes:
                    bar.notes[-1][1] += gained
                    bar.duration += gained
            elif kind == "tuplet":
                voice.tuplet(*token.numbers)
            elif kind == "bar":
                self.close(token.text)
            elif kind == "ending":
                bar.endings = token.numbers
            elif kind == "field":
                self.field(token.text, token.value)

    def _last_note(self) -> list | None:
        for bar in reversed(self.bars):
            if bar.notes:
                return bar.notes[-1]
        return None

    def close(self, text: str) -> None:
        """A bar line ends the bar being read; signs with no note between them ("|" then "|:") join."""
        self.voice.close_bar()
        bar = self.bars[-1]
        if bar.duration:
            bar.closing = text
            self.bars.append(Bar(meter=self.voice.meter))
        elif len(self.bars) > 1:
            previous = self.bars[-2]
            previous.closing = f"{previous.closing} {text}".strip()
        else:
            self.lead = f"{self.lead} {text}".strip()


# ---- the transposition-invariant form --------------------------------------------------------------------

Shape = tuple[tuple[int, Fraction], ...]
MIN_SHAPE_NOTES = 3  # a bar of one or two long notes ends a thousand tunes; it says nothing about which


def bar_shapes(melody: Melody) -> list[Shape | None]:
    """Each bar as (interval in semitones from the note before, duration) per note; the same melody in
    another key, or under another key signature, reads the same. None for a bar with too few notes to
    tell tunes apart (MIN_SHAPE_NOTES)."""
    shapes: list[Shape | None] = []
    previous: int | None = None
    for bar in melody.bars:
        shape = []
        for pitch, duration in bar.notes:
            if pitch is None:
                continue
            shape.append((0 if previous is None else pitch - previous, duration))
            previous = pitch
        shapes.append(tuple(shape) if len(shape) >= MIN_SHAPE_NOTES else None)
    return shapes


NEAR_DUPLICATE_BARS = 8  # distinct bars two tunes share, read by bar_shapes, to be one melody


def near_duplicates(abcs: Sequence[str], min_bars: int = NEAR_DUPLICATE_BARS) -> list[int | None]:
    """For each tune, in order, the index of an earlier kept tune it shares `min_bars` or more distinct bar
    shapes with (the same melody, perhaps in another key or under another title), or None: it is kept.

    The first tune of each such group is kept; a bar-shape index of the kept tunes finds the others.
    """
    index: dict[Shape, list[int]] = {}
    found: list[int | None] = []
    for number, abc in enumerate(abcs):
        shapes = {shape for shape in bar_shapes(read_melody(abc)) if shape is not None}
        shared = Counter(kept for shape in shapes for kept in index.get(shape, ()))
        match = shared.most_common(1)[0] if shared else None
        if match is not None and match[1] >= min_bars:
            found.append(match[0])
            continue
        found.append(None)
        for shape in shapes:
            index.setdefault(shape, []).append(number)
    return found
