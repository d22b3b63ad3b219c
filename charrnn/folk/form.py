"""The form of a tune as a musician reads it: its parts and their bars, repeats and endings, the note it
ends on against the key's tonic, its range, and (with a corpus index) the longest run it shares with a
tune of the corpus. Read through melody.py, on the one ABC reader.

Bars are counted as musicians count them: a pickup (a short first bar of a part) is no bar, the short
last bar it completes is one; a first ending's bars count, a later ending's, which replace them, do not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from charrnn.folk.melody import Bar, Melody, read_melody, tonic_pitch_class
from charrnn.folk.reader import bar_signs

_DEGREES = ("1", "b2", "2", "b3", "3", "4", "#4", "5", "b6", "6", "b7", "7")  # semitones above the tonic


@dataclass(frozen=True)
class Part:
    """One part of a tune: its bars as musicians count them, whether it is played twice, with endings."""

    bars: int
    repeated: bool
    endings: bool = False  # first and second endings
    pickup: bool = False


@dataclass
class PartCounter:
    """Walks a tune's bars in order and cuts them into parts; also the state a tune still being written
    is in (the constraints read it after each bar line)."""

    meter_value: Fraction | None
    parts: list[Part] = field(default_factory=list)
    count: int = 0  # bars of the current part counted so far
    pickup: Fraction = Fraction(0)  # the length of the pickup the current part began with (0: none)
    in_first_ending: bool = False
    first_start: int = 0  # count where the first ending began
    first_length: int = 0  # bars of the last first ending
    endings: bool = False  # the current part has endings
    later_left: int = 0  # bars of a later ending still to come
    in_later_ending: bool = False
    awaiting_later_ending: bool = False  # a first ending just closed with :|
    repeat_open: bool = False  # the current part began with |: (so it must end with :|)

    def counts(self, duration: Fraction) -> bool:
        """Whether a bar of this duration, closed now, counts as a bar of the current part."""
        if self.in_later_ending:
            return False
        short = self.meter_value is not None and duration < self.meter_value
        return not (self.count == 0 and short)

    def add(self, bar: Bar) -> None:
        """Read one bar and the bar line that closes it."""
        if bar.endings:
            self.awaiting_later_ending = False
            if 1 in bar.endings:
                self.in_first_ending, self.first_start, self.endings = True, self.count, True
            else:
                self.in_later_ending, self.later_left = True, self.first_length
        if bar.duration:
            if self.in_later_ending:
                self.later_left -= 1
            elif self.counts(bar.duration):
                self.count += 1
            else:
                self.pickup = bar.duration
        if bar.closing:
            self.close(bar.closing)

    def close(self, sign: str) -> None:
        """Apply a bar line: it may close a first ending or a part."""
        end, start, double = bar_signs(sign, True)
        if end and self.in_first_ending:
            self.first_length = self.count - self.first_start
            self.in_first_ending, self.awaiting_later_ending = False, True
            return
        if (end or start or double) or (self.in_later_ending and self.later_left <= 0):
            self.end_part(repeated=end or self.endings)
        if start:
            self.repeat_open = True

    def end_part(self, repeated: bool) -> None:
        """The part ends here; a section of a pickup alone carries it into the next part."""
        if self.count:
            self.parts.append(Part(self.count, repeated, self.endings, bool(self.pickup)))
            self.pickup = Fraction(0)
        self.count, self.endings = 0, False
        self.in_first_ending = self.in_later_ending = self.awaiting_later_ending = self.repeat_open = False
        self.later_left = 0

    def finish(self) -> list[Part]:
        """The parts of a complete tune: the last one ends with the music."""
        self.end_part(repeated=self.endings)
        return self.parts


def read_parts(melody: Melody) -> list[Part]:
    """The parts of a complete tune, in order."""
    counter = PartCounter(melody.meter.value)
    for bar in melody.bars:
        counter.add(bar)
    return counter.finish()


def closed_parts(abc: str) -> list[Part]:
    """The parts a tune (perhaps not finished) has closed with a repeat or double bar so far."""
    melody = read_melody(abc)
    counter = PartCounter(melody.meter.value)
    for bar in melody.bars:
        counter.add(bar)
    return counter.parts


@dataclass(frozen=True)
class Form:
    """What `read_form` finds in a tune."""

    title: str
    tune_type: str  # R:, "" if none
    meter: str
    key: str  # canonical ("Dmix"), "" if the tune names none
    parts: tuple[Part, ...]
    final: int | None  # the MIDI pitch of the last note
    tonic: int | None  # the pitch class of the key's tonic
    low: int | None  # lowest and highest MIDI pitch
    high: int | None
    bars: int  # written bars with notes

    @property
    def degree(self) -> str | None:
        """The last note as a degree above the tonic: "1" is the tonic, "5" the fifth, "b7"..."""
        if self.final is None or self.tonic is None:
            return None
        return _DEGREES[(self.final - self.tonic) % 12]

    @property
    def ends_on_tonic(self) -> bool:
        return self.degree == "1"

    @property
    def range(self) -> int:
        """Semitones from the lowest note to the highest."""
        return 0 if self.low is None or self.high is None else self.high - self.low

    @property
    def layout(self) -> str:
        """Parts and bars as a musician says them: "AABB 8+8"."""
        letters = "".join(chr(ord("A") + i % 26) * (2 if part.repeated else 1) for i, part in enumerate(self.parts))
        return f"{letters} {'+'.join(str(part.bars) for part in self.parts)}" if self.parts else "no parts"

    def every_part(self, bars: int) -> bool:
        return bool(self.parts) and all(part.bars == bars for part in self.parts)

    @property
    def parts_of_four(self) -> bool:
        """Every part is a multiple of four bars."""
        return bool(self.parts) and all(part.bars % 4 == 0 for part in self.parts)

    @property
    def odd_part(self) -> bool:
        """Some part is a bar short of or over eight: 7 or 9 bars."""
        return any(part.bars in (7, 9) for part in self.parts)


def read_form(abc: str) -> Form:
    """The form of one tune; never raises (what the reader cannot read is left out)."""
    melody = read_melody(abc)
    notes = [pitch for pitch, _ in melody.notes]
    return Form(
        title=melody.headers.get("T", ""),
        tune_type=melody.headers.get("R", ""),
        meter=melody.headers.get("M", ""),
        key=melody.key,
        parts=tuple(read_parts(melody)),
        final=notes[-1] if notes else None,
        tonic=tonic_pitch_class(melody.key),
        low=min(notes, default=None),
        high=max(notes, default=None),
        bars=sum(1 for bar in melody.bars if bar.duration),
    )


def corpus_layouts(forms: Iterable[Form]) -> dict[str, dict[str, int]]:
    """How many tunes of each type and meter ("reel 2/2"; " 6/8" for a meter over all types) have each
    layout of parts ("8+8"), commonest first: every layout, the rare ones too (the draw decides what to use)."""
    counts: dict[str, Counter[str]] = {}
    for form in forms:
        if not form.parts:
            continue
        layout = "+".join(str(part.bars) for part in form.parts)
        for group in {f"{form.tune_type} {form.meter}", f" {form.meter}"}:
            counts.setdefault(group, Counter())[layout] += 1
    return {group: dict(count.most_common()) for group, count in sorted(counts.items())}
