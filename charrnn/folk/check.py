"""A pure-Python checker for ABC tunes: headers, bar durations, repeats, endings, brackets and ties.

`check_tune` reads one tune and returns a `TuneReport`; it never raises, whatever the input.
`split_tunes` cuts a multi-tune ABC text into tunes. The music is read through charrnn.folk.reader.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from charrnn.errors import CharRNNError
from charrnn.folk.reader import (
    FREE_METER,
    WHERE,
    Meter,
    Token,
    Voice,
    bar_signs,
    default_unit,
    excerpt,
    parse_field,
    parse_meter,
    parse_unit,
    tokenize,
)


@dataclass(frozen=True)
class Finding:
    """One problem in a tune; only findings of severity "error" make the tune fail.

    `unfinished` marks what was still open where the text ended (a |: with no :|, a slur, a tuplet):
    in a tune that is still being written, more music could close it.
    """

    kind: str
    message: str
    bar: int | None = None
    severity: str = "error"
    unfinished: bool = False


@dataclass(frozen=True)
class TuneReport:
    """What `check_tune` found in one tune, and the tune's structure."""

    findings: tuple[Finding, ...]
    headers: dict[str, str]
    meter: Fraction | None
    unit: Fraction | None
    bars: int
    parts: int

    @property
    def passed(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity == "error" for f in self.findings)


# Junk input can raise a finding per character; the first few of each kind say enough.
_MAX_PER_KIND = 20


def split_tunes(text: str) -> list[str]:
    """Cut an ABC text into tunes: each starts at an X: line and ends at a blank line or the next X:.

    Text outside tunes (file headers, free text) is dropped; a text with no X: line at all is cut at
    blank lines, so that each block can still be checked (and reported for its missing X:).
    """
    lines = text.splitlines()
    has_x = any(_is_x_line(line) for line in lines)
    tunes: list[list[str]] = []
    in_tune = False
    for line in lines:
        if not line.strip():
            in_tune = False
        elif _is_x_line(line) or (not in_tune and not has_x):
            tunes.append([line])
            in_tune = True
        elif in_tune:
            tunes[-1].append(line)
    return ["\n".join(tune) for tune in tunes]


def _is_x_line(line: str) -> bool:
    """True for the X: line that starts a tune."""
    return line.lstrip().startswith("X:")


def check_tune(abc: str) -> TuneReport:
    """Check one ABC tune; never raises: a failure inside the checker becomes a "parse-error" finding."""
    checker = _Checker()
    try:
        checker.run(abc)
    except Exception as exc:  # the caller must get a report for any input, even if the checker has a bug
        checker.add("parse-error", f"the checker could not read this tune ({type(exc).__name__}: {exc})")
    return checker.report()


def require_passed(abc: str) -> TuneReport:
    """The tune's report; a CharRNNError if it fails the checks, since only checked tunes are rendered."""
    report = check_tune(abc)
    if not report.passed:
        first = next(f for f in report.findings if f.severity == "error")
        raise CharRNNError(f"the tune fails the checks ({first.message}), so it is not rendered")
    return report


@dataclass
class _Measure:
    """One written bar of one voice, as the post-pass needs it."""

    number: int
    duration: Fraction
    meter: Meter
    rest_bars: int  # bars of multi-measure rest (Z4) in it; they are full by definition
    line_break_before: bool  # it starts a line of music, after a bar that ended the line before
    boundary_after: bool = False  # a repeat sign, double bar, ending or part marker right after it
    repeat_target: int | None = None  # index of the bar an end repeat right after it jumps back to


class _Voice(Voice):
    """The running state of one voice while the body is read: its time and pitch (reader.Voice), its bars
    and its structure."""

    def __init__(self, name: str, meter: Meter, unit: Fraction, key: str) -> None:
        super().__init__(meter, unit, key)
        self.name = name
        self.measures: list[_Measure] = []
        self.bar_number = 0  # number of the last closed bar (a Z4 rest takes four)
        # The bar being read.
        self.duration = Fraction(0)
        self.layers: list[Fraction] = []  # earlier layers of an & voice overlay
        self.has_music = False
        self.rest_bars = 0
        self.measure_meter = meter
        self.line_break_before = False
        self.tuplet_bar = 0  # where the tuplet being read began
        self.tie_bar = 0  # where the tie into the next note was written
        self.tie_text = ""
        # Structure.
        self.slurs: list[int] = []  # bars where slurs still open began
        self.repeat_open: int | None = None  # bar of a |: not closed yet
        self.first_ending: int | None = None  # bar of a first ending that has not reached its :| yet
        self.first_ending_index = 0
        self.first_ending_length = 0  # bars in the last closed first ending
        self.ending_prefix: Fraction | None = None  # bar time before a first ending that starts mid-bar
        self.ending_seen = False
        self.after_end_repeat = False  # the last bar sign ended a repeat and no music followed yet
        self.section_start = 0  # index of the first bar after the last repeat sign or double bar
        # Parts: sections between repeat signs and double bars that hold at least one full bar.
        self.section_full = False
        self.later_ending_left = 0  # bars of a second ending, which belong to the part already counted
        self.sections = 0
        self.part_labels: list[str] = []

    @property
    def current_bar(self) -> int:
        """Number of the bar being read."""
        return self.bar_number + 1

    def where(self, bar: int) -> str:
        """Name a bar for messages, with its voice when the tune has named voices."""
        return f"bar {bar} of voice {self.name}" if self.name else f"bar {bar}"

    @property
    def parts(self) -> int:
        """Parts marked with P: when there are any, else repeated or double-barred sections."""
        return len(set(self.part_labels)) if self.part_labels else self.sections


class _Checker:
    """Reads one tune line by line, collecting findings; `report` builds the result."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.per_kind: Counter[str] = Counter()
        self.headers: dict[str, str] = {}
        self.meter: Meter = FREE_METER
        self.header_meter: Fraction | None = None
        self.unit: Fraction | None = None
        self.voices: dict[str, _Voice] = {}
        self.voice: _Voice | None = None
        self.any_music = False
        self.fresh_line = False  # no music yet on the line being read

    def add(self, kind: str, message: str, bar: int | None = None, severity: str = "error",
            unfinished: bool = False) -> None:
        """Record a finding, keeping at most _MAX_PER_KIND of each kind."""
        self.per_kind[kind] += 1
        if self.per_kind[kind] <= _MAX_PER_KIND:
            self.findings.append(Finding(kind, message, bar, severity, unfinished))

    def report(self) -> TuneReport:
        """Summarise the tune; bars and parts come from the first voice that has music."""
        main = next((v for v in self.voices.values() if v.measures), None)
        return TuneReport(
            findings=tuple(sorted(self.findings, key=lambda f: -1 if f.bar is None else f.bar)),  # header, then bars
            headers=dict(self.headers),
            meter=self.header_meter,
            unit=self.unit,
            bars=main.bar_number if main else 0,
            parts=main.parts if main else 0,
        )

    # Header

    def run(self, abc: str) -> None:
        """Check the header, read the body, then check what needs the whole tune."""
        lines = abc.splitlines()
        body_start = self._read_header(lines)
        self.voice = self._voice("")
        for number, line in enumerate(lines[body_start:], start=body_start + 1):
            self._body_line(line, number)
        for voice in self.voices.values():
            self._finish(voice)
        if not self.any_music:
            self.add("empty-body", "the tune has no notes or rests")

    def _read_header(self, lines: list[str]) -> int:
        """Check the header fields; return the index of the first body line."""
        k_line = next((i for i, line in enumerate(lines) if (f := parse_field(line)) and f[0] == "K"), None)
        order: list[str] = []
        body_start = len(lines)
        for index, line in enumerate(lines):
            if not line.strip() or line.lstrip().startswith("%"):
                continue
            found = parse_field(line)
            if found is None:
                if k_line is None:
                    body_start = index
                    break
                if "music" not in order:
                    order.append("music")
                    self.add("header-order", f"line {index + 1} is music but comes before the K: field")
                continue
            order.append(found[0])
            self.headers.setdefault(found[0], found[1])
            if found[0] == "K":
                body_start = index + 1
                break
        late = self._check_fields_after_k(lines, body_start)
        self._check_header_fields(order, late)
        return body_start

    def _check_header_fields(self, order: list[str], late: set[str]) -> None:
        """X: first, K:, M: and L: present, and meter and unit that parse; an M: or L: in `late` (after K:)
        is reported as out of order already, not as missing too."""
        fields = [key for key in order if key != "music"]
        if "X" not in fields:
            self.add("missing-header", "the tune has no X: field")
        elif fields[0] != "X":
            self.add("header-order", f"X: must be the first field, but {fields[0]}: comes first")
        if "K" not in fields:
            self.add("missing-header", "the header has no K: field")
        if "M" in self.headers:
            meter = parse_meter(self.headers["M"])
            if meter is None:
                self.add("bad-meter", f"M:{self.headers['M']} is not a meter")
            else:
                self.meter = meter
                self.header_meter = meter.value
        elif "M" not in late:
            self.add("missing-header", "the header has no M: field")
        if "L" in self.headers:
            self.unit = parse_unit(self.headers["L"])
            if self.unit is None:
                self.add("bad-length", f"L:{self.headers['L']} is not a note length")
        if self.unit is None:
            self.unit = default_unit(self.meter)
            if "L" not in self.headers and "L" not in late:
                self.add(
                    "missing-header",
                    f"the header has no L: field, so the unit is {self.unit} by the ABC default",
                    severity="warning",
                )

    def _check_fields_after_k(self, lines: list[str], body_start: int) -> set[str]:
        """M: or L: that follow K: before the music belong in the header, before K:; the keys found so."""
        late: set[str] = set()
        for line in lines[body_start:]:
            if not line.strip() or line.lstrip().startswith("%"):
                continue
            found = parse_field(line)
            if found is None:
                break
            if found[0] in "ML" and found[0] not in self.headers:
                late.add(found[0])
                self.add("header-order", f"{found[0]}: comes after K:, which must end the header")
        return late

    # Body

    def _voice(self, name: str) -> _Voice:
        """The voice called name, created with the header's meter, unit and key the first time."""
        if name not in self.voices:
            assert self.unit is not None
            self.voices[name] = _Voice(name, self.meter, self.unit, self.headers.get("K", ""))
        return self.voices[name]

    def _body_line(self, line: str, number: int) -> None:
        """Dispatch one body line: skip comments, apply fields, read music."""
        if not line.strip() or line.lstrip().startswith("%"):
            return
        found = parse_field(line)
        if found is None:
            self._music(line)
        elif found[0] == "X":
            self.add("header-order", f"line {number} has a second X: field; split tunes with split_tunes")
        else:
            self._apply_field(found[0], found[1])

    def _apply_field(self, key: str, value: str) -> None:
        """Apply a body field (a line or an inline [X:...]): key, meter, unit, part or voice changes."""
        voice = self.voice
        assert voice is not None
        if key in "KML" and not voice.set_field(key, value):
            what = "a meter" if key == "M" else "a note length"
            self.add("bad-meter" if key == "M" else "bad-length",
                     f"{key}:{value} in {voice.where(voice.current_bar)} is not {what}")
        elif key == "P":
            voice.part_labels.append(value)
            self._boundary(voice)
            self._close_section(voice)
        elif key == "V":
            self.voice = self._voice(value.split()[0] if value.split() else "")

    def _music(self, line: str) -> None:
        """Read one line of music, token by token."""
        self.fresh_line = True
        for token in tokenize(line):
            voice = self.voice
            assert voice is not None
            kind = token.kind
            if kind == "problem":
                self.add(token.finding, token.message.replace(WHERE, voice.where(voice.current_bar)),
                         voice.current_bar)
            elif kind in ("note", "chord"):
                self._tie(voice, token)
                self._sound(voice, token.length)
            elif kind == "rest":
                voice.rest()
                self._sound(voice, token.length)
            elif kind == "bars_rest":
                self._begin_music(voice)
                voice.rest_bars += token.numbers[0]
            elif kind == "tie":
                voice.tie()
            elif kind == "bar":
                self._bar(voice, token.text)
            elif kind == "ending":
                self._ending(voice, token)
            elif kind == "field":
                self._apply_field(token.text, token.value)
            elif kind == "tuplet":
                self._tuplet(voice, token)
            elif kind == "broken":
                self._broken_rhythm(voice, token.text)
            elif kind == "slur_open":
                voice.slurs.append(voice.current_bar)
            elif kind == "slur_close":
                if voice.slurs:
                    voice.slurs.pop()
                else:
                    self.add("unclosed-bracket", f") in {voice.where(voice.current_bar)} closes no slur",
                             voice.current_bar)
            elif kind == "overlay":
                voice.layers.append(voice.duration)
                voice.duration = Fraction(0)
                voice.overlay()

    # Notes, ties and rhythm

    def _tie(self, voice: _Voice, token: Token) -> None:
        """A tie joins notes of one pitch: A-A, or A-|A across a bar line; A-G is an error."""
        tied_text = voice.tie_text
        _, joined = voice.play(token.notes)
        if not joined:
            self.add("bad-tie", f"the tie in {voice.where(voice.tie_bar)} joins {tied_text} to {token.text}, "
                                "a note of another pitch", voice.tie_bar)
        voice.tie_text, voice.tie_bar = token.text, voice.current_bar  # what a - after it (or in it) holds

    def _sound(self, voice: _Voice, length: Fraction) -> None:
        """Add a note, rest or chord of length units to the bar, through tuplets and broken rhythm."""
        self._begin_music(voice)
        voice.duration += voice.sound(length)

    def _begin_music(self, voice: _Voice) -> None:
        """Open the bar for music: it takes the meter in force and any boundary just passed."""
        self.any_music = True
        voice.after_end_repeat = False
        if not voice.has_music:
            voice.has_music = True
            voice.measure_meter = voice.meter
            voice.line_break_before = self.fresh_line
        self.fresh_line = False

    def _broken_rhythm(self, voice: _Voice, signs: str) -> None:
        """A>B dots A and halves B (>> and >>> more so); A<B is the reverse."""
        gained = voice.broken(signs) if len(signs) <= 3 else None
        if gained is None:
            problem = "has more than three signs" if len(signs) > 3 else "does not follow a note of the same bar"
            self.add("bad-symbol", f"broken rhythm {excerpt(signs)} in {voice.where(voice.current_bar)} {problem}",
                     voice.current_bar)
        else:
            voice.duration += gained

    def _tuplet(self, voice: _Voice, token: Token) -> None:
        """(p:q:r: p notes in the time of q for the next r notes; tuplets do not nest."""
        if voice.tuplet_left:
            self.add(
                "bad-tuplet",
                f"tuplet {excerpt(token.text)} in {voice.where(voice.current_bar)} starts before the tuplet of "
                f"{voice.where(voice.tuplet_bar)} has its notes",
                voice.current_bar,
            )
        else:
            voice.tuplet(*token.numbers)
            voice.tuplet_bar = voice.current_bar

    # Bar lines, repeats, endings

    def _bar(self, voice: _Voice, text: str) -> None:
        """Apply a bar line such as |, ||, |], [|, |:, :|, ::."""
        after_music = voice.has_music
        self._close_measure(voice)
        end, start, double = bar_signs(text, after_music)
        self._repeat_signs(voice, end, start)
        if end or start or double:
            self._boundary(voice)
            self._close_section(voice)

    def _repeat_signs(self, voice: _Voice, end: bool, start: bool) -> None:
        """Track |: and :| so that every repeat start is closed and first endings reach their :|."""
        last = voice.measures[-1] if voice.measures else None
        if end:
            if voice.first_ending is not None:
                voice.first_ending_length = len(voice.measures) - voice.first_ending_index
                voice.first_ending = None
                voice.ending_seen = True
            voice.repeat_open = None
            voice.after_end_repeat = True
            if last is not None and voice.section_start < len(voice.measures):
                last.repeat_target = voice.section_start
        if start:
            if voice.first_ending is not None:
                self.add(
                    "stray-ending",
                    f"the first ending of {voice.where(voice.first_ending)} reaches a |: before any :|",
                    voice.first_ending,
                )
                voice.first_ending = None
            if voice.repeat_open is not None and not end:
                self.add(
                    "unbalanced-repeat",
                    f"|: in {voice.where(voice.current_bar)} opens a repeat while the |: of "
                    f"{voice.where(voice.repeat_open)} is still open",
                    voice.current_bar,
                )
            voice.repeat_open = voice.current_bar
            voice.ending_seen = False

    def _ending(self, voice: _Voice, token: Token) -> None:
        """An ending |1, :|2, [1, [2 or [1,3: a first ending must reach a :|, a later one follow it.

        A first ending may start mid-bar ("G2G [1 G2 :| [2 G3 ||"); a later ending then takes over
        the bar time written before the first one.
        """
        bar = voice.current_bar
        if 1 in token.numbers:
            if voice.first_ending is not None:
                self.add(
                    "stray-ending",
                    f"the first ending of {voice.where(voice.first_ending)} reaches another first "
                    f"ending in {voice.where(bar)} before any :|",
                    bar,
                )
            voice.first_ending = bar
            voice.first_ending_index = len(voice.measures)
            voice.ending_prefix = voice.duration if voice.has_music else None
        elif voice.after_end_repeat and voice.ending_seen:
            voice.later_ending_left = voice.first_ending_length
            if voice.ending_prefix is not None:
                self._begin_music(voice)
                voice.duration = voice.ending_prefix
        else:
            self.add(
                "stray-ending",
                f"ending {token.text} in {voice.where(bar)} does not follow the :| of a first ending",
                bar,
            )
        self._boundary(voice)

    def _boundary(self, voice: _Voice) -> None:
        """Mark a section boundary after the last closed bar, unless the bar being read has begun."""
        if voice.measures and not voice.has_music:
            voice.measures[-1].boundary_after = True

    def _close_section(self, voice: _Voice) -> None:
        """End a section; it counts as a part if it holds a full bar outside second endings."""
        if voice.section_full:
            voice.sections += 1
        voice.section_full = False
        voice.later_ending_left = 0
        voice.section_start = len(voice.measures)

    def _close_measure(self, voice: _Voice) -> None:
        """Finish the bar being read, if it holds music, and check rhythm that must not cross it."""
        if voice.close_bar():
            self.add(
                "bad-symbol",
                f"broken rhythm at the end of {voice.where(voice.current_bar)} has no note after it",
                voice.current_bar,
            )
        if not voice.has_music:
            return
        meter = voice.measure_meter
        duration = voice.duration
        if voice.layers:
            for layer in voice.layers[1:] + [duration]:
                if layer != voice.layers[0]:
                    self.add(
                        "bar-duration",
                        f"an overlay in {voice.where(voice.current_bar)} lasts {meter.show(layer)}, "
                        f"the bar {meter.show(voice.layers[0])}",
                        voice.current_bar,
                    )
            duration = voice.layers[0]
        voice.measures.append(_Measure(voice.current_bar, duration, meter, voice.rest_bars, voice.line_break_before))
        voice.bar_number += max(voice.rest_bars, 1)
        if voice.later_ending_left:
            voice.later_ending_left -= 1
        elif meter.value is None or voice.rest_bars or duration >= meter.value:
            voice.section_full = True
        voice.duration = Fraction(0)
        voice.layers = []
        voice.has_music = False
        voice.rest_bars = 0

    # The whole tune

    def _finish(self, voice: _Voice) -> None:
        """Close the last bar, report what was left open, and check bar durations."""
        self._close_measure(voice)
        self._close_section(voice)
        if voice.first_ending is not None:
            self.add(
                "stray-ending",
                f"the first ending of {voice.where(voice.first_ending)} never reaches a :|",
                voice.first_ending,
                unfinished=True,
            )
        if voice.repeat_open is not None and voice.repeat_open <= voice.bar_number:  # music follows the |:
            self.add(
                "unbalanced-repeat",
                f"the |: of {voice.where(voice.repeat_open)} is never closed by :|",
                voice.repeat_open,
                unfinished=True,
            )
        for bar in voice.slurs:
            self.add("unclosed-bracket", f"the slur opened in {voice.where(bar)} is never closed", bar, unfinished=True)
        if voice.tuplet_left:
            self.add(
                "bad-tuplet",
                f"the tuplet of {voice.where(voice.tuplet_bar)} lacks {voice.tuplet_left} notes",
                voice.tuplet_bar,
                unfinished=True,
            )
        self._check_durations(voice)

    def _check_durations(self, voice: _Voice) -> None:
        """Every bar must fill its meter; a short bar is fine as a pickup, as the last bar, or where
        it completes a short bar on the other side of a part boundary or repeat."""
        measures = voice.measures
        partners: dict[int, set[int]] = {}
        for index, measure in enumerate(measures):
            candidates = []
            if measure.line_break_before:
                candidates.append(index - 1)
            if measure.boundary_after:
                candidates.append(index + 1)
            if measure.repeat_target is not None:
                # The repeat returns to the section's first bar; a pickup just before it also counts.
                candidates += [measure.repeat_target, measure.repeat_target - 1]
            for other in candidates:
                if 0 <= other < len(measures) and other != index:
                    partners.setdefault(index, set()).add(other)
                    partners.setdefault(other, set()).add(index)
        for index, measure in enumerate(measures):
            need = measure.meter.value
            if need is None or measure.rest_bars or measure.duration == need:
                continue
            if measure.duration < need:
                if index in (0, len(measures) - 1):
                    continue
                if any(
                    measures[other].meter == measure.meter and measures[other].duration + measure.duration == need
                    for other in partners.get(index, ())
                ):
                    continue
            self.add(
                "bar-duration",
                f"{voice.where(measure.number)} lasts {measure.meter.show(measure.duration)}, "
                f"the meter {measure.meter.text} needs {measure.meter.show(need)}",
                measure.number,
            )
