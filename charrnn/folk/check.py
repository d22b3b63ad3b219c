"""A pure-Python checker for ABC tunes: headers, bar durations, repeats, endings and brackets.

`check_tune` reads one tune and returns a `TuneReport`; it never raises, whatever the input.
`split_tunes` cuts a multi-tune ABC text into tunes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from charrnn.errors import CharRNNError


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
_DIGITS = frozenset("0123456789")
_PITCHES = frozenset("ABCDEFGabcdefg")
_ACCIDENTALS = frozenset("^_=")
_VALID_ACCIDENTALS = frozenset(("", "^", "^^", "_", "__", "="))  # sharp, double sharp, flat, double flat, natural
# Symbols that decorate the next note and take no time: ABC 2.1 predefines ~ . H L M O P S T u v,
# and U: may define any other letter from H-W and h-w.
_DECORATIONS = frozenset("~.HIJKLMNOPQRSTUVWhijklmnopqrstuvw")
# Spaces, beam breaks (`), line continuation (\) and the score line break ($) take no time.
_SPACING = frozenset(" \t`\\$")
# re.ASCII: \d must not match other scripts' digits.
_FIELD_RE = re.compile(r"\s*([A-Za-z+]):", re.ASCII)
_COMMENT_RE = re.compile(r"(?<!\\)%.*")
_METER_RE = re.compile(r"\(?(\d{1,3}(?:\+\d{1,3}){0,7})\)?/(\d{1,3})", re.ASCII)
_UNIT_RE = re.compile(r"(\d{1,3})(?:/(\d{1,3}))?", re.ASCII)
_TUPLET_RE = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?", re.ASCII)
_ENDING_RE = re.compile(r"\d{1,2}(?:[,-]\d{1,2}){0,8}", re.ASCII)
_DECORATION_NAME_RE = re.compile(r"[^\s!+|\"]+")
# An inline field [M:3/4]; stopping at | and [ keeps it from swallowing music and scanning twice.
_INLINE_FIELD_RE = re.compile(r"\[([A-Za-z]):([^\]|\[]*)\]")
_NOTES_AND_RESTS = _PITCHES | {"z", "x"}
# The notes of an old-style chord +CEG+, written so that no text can be matched two ways.
_OLD_CHORD_RE = re.compile(r"(?:[_^=]{0,2}[A-Ga-g][',]*[0-9]*(?:/+[0-9]*)?)+")
# Longer !...! or +...+ names are not decorations; the bound keeps scanning of junk linear.
_MAX_DECORATION = 40


@dataclass(frozen=True)
class _Meter:
    """A parsed M: field."""

    text: str
    value: Fraction | None  # bar length in whole notes; None for free meter
    denominator: int  # durations are shown in these units, as "5/8"
    compound: bool  # 6/8, 9/8, 12/8 ...: decides the default tuplet timing

    def show(self, duration: Fraction) -> str:
        """Write a duration in the meter's own units, e.g. 7/8 under 6/8."""
        units = duration * self.denominator
        return f"{units.numerator}/{self.denominator}" if units.denominator == 1 else str(duration)


_FREE_METER = _Meter("none", None, 8, False)


def _parse_meter(text: str) -> _Meter | None:
    """Parse an M: value such as 6/8, C, C|, 2+3/8 or none; None when it is not a meter."""
    text = text.strip()
    if text == "C":
        return _Meter(text, Fraction(1), 4, False)
    if text == "C|":
        return _Meter(text, Fraction(1), 2, False)
    if text.lower() == "none":
        return _FREE_METER
    match = _METER_RE.fullmatch(text.replace(" ", ""))
    if not match:
        return None
    numerator = sum(int(part) for part in match.group(1).split("+"))
    denominator = int(match.group(2))
    if numerator == 0 or denominator == 0:
        return None
    return _Meter(text, Fraction(numerator, denominator), denominator, numerator % 3 == 0 and numerator > 3)


def _parse_unit(text: str) -> Fraction | None:
    """Parse an L: value such as 1/8; None when it is not a length."""
    match = _UNIT_RE.fullmatch(text.strip())
    if not match:
        return None
    numerator, denominator = int(match.group(1)), int(match.group(2) or 1)
    return Fraction(numerator, denominator) if numerator and denominator else None


def _default_unit(meter: _Meter) -> Fraction:
    """The unit length ABC 2.1 implies when L: is absent: 1/16 below a meter of 3/4, else 1/8."""
    return Fraction(1, 16) if meter.value is not None and meter.value < Fraction(3, 4) else Fraction(1, 8)


def is_compound(meter: str | None) -> bool:
    """Whether an M: value is compound (6/8, 9/8, 12/8 ...), which decides the default tuplet timing."""
    parsed = _parse_meter(meter) if meter else None
    return parsed is not None and parsed.compound


def tuplet_time(p: int, compound: bool) -> int:
    """The ABC 2.1 default q of a tuplet (p:q: p notes in the time of q)."""
    if p in (2, 4, 8):
        return 3
    if p in (3, 6):
        return 2
    return 3 if compound else 2


def _field(line: str) -> tuple[str, str] | None:
    """(letter, value) when a line is a field such as "M:6/8"; a bar line like "A:|" is music."""
    match = _FIELD_RE.match(line)
    if not match:
        return None
    rest = line[match.end() :]
    if match.group(1) in _NOTES_AND_RESTS and rest[:1] in ("|", ":"):  # "A:|" is a note and a repeat
        return None
    return match.group(1), _COMMENT_RE.sub("", rest).strip()


def _excerpt(text: str, limit: int = 24) -> str:
    """Quote text for a message, shortened so junk input keeps messages short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


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
    meter: _Meter
    rest_bars: int  # bars of multi-measure rest (Z4) in it; they are full by definition
    line_break_before: bool  # it starts a line of music, after a bar that ended the line before
    boundary_after: bool = False  # a repeat sign, double bar, ending or part marker right after it
    repeat_target: int | None = None  # index of the bar an end repeat right after it jumps back to


class _Voice:
    """The running state of one voice while the body is read."""

    def __init__(self, name: str, meter: _Meter, unit: Fraction) -> None:
        self.name = name
        self.meter = meter
        self.unit = unit
        self.measures: list[_Measure] = []
        self.bar_number = 0  # number of the last closed bar (a Z4 rest takes four)
        # The bar being read.
        self.duration = Fraction(0)
        self.layers: list[Fraction] = []  # earlier layers of an & voice overlay
        self.has_music = False
        self.rest_bars = 0
        self.measure_meter = meter
        self.line_break_before = False
        # Rhythm modifiers that reach forward to the next note.
        self.last_duration: Fraction | None = None  # the previous note of this bar, for > and <
        self.next_factor = Fraction(1)
        self.tuplet_left = 0
        self.tuplet_factor = Fraction(1)
        self.tuplet_bar = 0
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
        self.meter: _Meter = _FREE_METER
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
            findings=tuple(self.findings),
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
        k_line = next((i for i, line in enumerate(lines) if (f := _field(line)) and f[0] == "K"), None)
        order: list[str] = []
        body_start = len(lines)
        for index, line in enumerate(lines):
            if not line.strip() or line.lstrip().startswith("%"):
                continue
            field = _field(line)
            if field is None:
                if k_line is None:
                    body_start = index
                    break
                if "music" not in order:
                    order.append("music")
                    self.add("header-order", f"line {index + 1} is music but comes before the K: field")
                continue
            order.append(field[0])
            self.headers.setdefault(field[0], field[1])
            if field[0] == "K":
                body_start = index + 1
                break
        self._check_header_fields(order)
        self._check_fields_after_k(lines, body_start)
        return body_start

    def _check_header_fields(self, order: list[str]) -> None:
        """X: first, K:, M: and L: present, and meter and unit that parse."""
        fields = [key for key in order if key != "music"]
        if "X" not in fields:
            self.add("missing-header", "the tune has no X: field")
        elif fields[0] != "X":
            self.add("header-order", f"X: must be the first field, but {fields[0]}: comes first")
        if "K" not in fields:
            self.add("missing-header", "the header has no K: field")
        if "M" in self.headers:
            meter = _parse_meter(self.headers["M"])
            if meter is None:
                self.add("bad-meter", f"M:{self.headers['M']} is not a meter")
            else:
                self.meter = meter
                self.header_meter = meter.value
        else:
            self.add("missing-header", "the header has no M: field")
        if "L" in self.headers:
            self.unit = _parse_unit(self.headers["L"])
            if self.unit is None:
                self.add("bad-length", f"L:{self.headers['L']} is not a note length")
        if self.unit is None:
            self.unit = _default_unit(self.meter)
            if "L" not in self.headers:
                self.add(
                    "missing-header",
                    f"the header has no L: field, so the unit is {self.unit} by the ABC default",
                    severity="warning",
                )

    def _check_fields_after_k(self, lines: list[str], body_start: int) -> None:
        """M: or L: that follow K: before the music belong in the header, before K:."""
        for line in lines[body_start:]:
            if not line.strip() or line.lstrip().startswith("%"):
                continue
            field = _field(line)
            if field is None:
                return
            if field[0] in "ML" and field[0] not in self.headers:
                self.add("header-order", f"{field[0]}: comes after K:, which must end the header")

    # Body

    def _voice(self, name: str) -> _Voice:
        """The voice called name, created with the header's meter and unit the first time."""
        if name not in self.voices:
            assert self.unit is not None
            self.voices[name] = _Voice(name, self.meter, self.unit)
        return self.voices[name]

    def _body_line(self, line: str, number: int) -> None:
        """Dispatch one body line: skip comments, apply fields, scan music."""
        if not line.strip() or line.lstrip().startswith("%"):
            return
        field = _field(line)
        if field is None:
            self._music(line)
        elif field[0] == "X":
            self.add("header-order", f"line {number} has a second X: field; split tunes with split_tunes")
        else:
            self._apply_field(field[0], field[1])

    def _apply_field(self, key: str, value: str) -> None:
        """Apply a body field (a line or an inline [X:...]): meter, unit, part or voice changes."""
        voice = self.voice
        assert voice is not None
        if key == "M":
            meter = _parse_meter(value)
            if meter is None:
                self.add("bad-meter", f"M:{value} in {voice.where(voice.current_bar)} is not a meter")
            else:
                voice.meter = meter
        elif key == "L":
            unit = _parse_unit(value)
            if unit is None:
                self.add("bad-length", f"L:{value} in {voice.where(voice.current_bar)} is not a note length")
            else:
                voice.unit = unit
        elif key == "P":
            voice.part_labels.append(value)
            self._boundary(voice)
            self._close_section(voice)
        elif key == "V":
            self.voice = self._voice(value.split()[0] if value.split() else "")

    def _music(self, line: str) -> None:
        """Scan one line of music, symbol by symbol; every branch moves forward, so this is linear."""
        n = len(line)
        i = 0
        self.fresh_line = True
        while i < n:
            voice = self.voice
            assert voice is not None
            c = line[i]
            if c in _SPACING or c == "-":  # a tie joins notes and takes no time
                i += 1
            elif c == "%":
                return
            elif c in _PITCHES or c in _ACCIDENTALS:
                length, i = self._pitch(line, i)
                if length is not None:
                    self._sound(voice, length)
            elif c in "zx":
                length, i = self._length(line, i + 1)
                self._sound(voice, length)
            elif c in "ZX":
                i = self._multi_measure_rest(voice, line, i + 1)
            elif c == "y":
                i += 1
                while i < n and line[i] in _DIGITS:
                    i += 1
            elif c in _DECORATIONS:
                i += 1
            elif c in "|:" or (c == "[" and line[i + 1 : i + 2] == "|"):
                i = self._bar(voice, line, i)
            elif c == "[":
                i = self._bracket(voice, line, i)
            elif c == "(":
                i = self._paren(voice, line, i)
            elif c == ")":
                if voice.slurs:
                    voice.slurs.pop()
                else:
                    self.add(
                        "unclosed-bracket", f") in {voice.where(voice.current_bar)} closes no slur", voice.current_bar
                    )
                i += 1
            elif c in "><":
                i = self._broken_rhythm(voice, line, i)
            elif c == "{":
                i = self._grace(voice, line, i)
            elif c == '"':
                i = self._quoted(voice, line, i)
            elif c == "!":
                i = self._bang_decoration(voice, line, i)
            elif c == "+":
                i = self._plus(voice, line, i)
            elif c == "&":
                voice.layers.append(voice.duration)
                voice.duration = Fraction(0)
                voice.last_duration = None
                i += 1
            elif c in "]}":
                self.add(
                    "unclosed-bracket", f"{c} in {voice.where(voice.current_bar)} closes nothing", voice.current_bar
                )
                i += 1
            else:
                self.add(
                    "bad-symbol",
                    f"{_excerpt(c)} in {voice.where(voice.current_bar)} is not ABC music",
                    voice.current_bar,
                )
                i += 1

    # Notes and their lengths

    def _length(self, line: str, i: int) -> tuple[Fraction, int]:
        """Read a length multiplier (2, /2, /, //, 3/2) at i; a malformed one is reported and read as 1."""
        n = len(line)
        j = i
        while j < n and line[j] in _DIGITS:
            j += 1
        digits = line[i:j]
        # Caps on digits and slashes keep the fractions small, so arithmetic stays cheap on junk.
        bad = len(digits) > 3 or (digits != "" and int(digits) == 0)
        value = Fraction(int(digits)) if digits and not bad else Fraction(1)
        slashes = 0
        while j < n and line[j] == "/":
            j += 1
            k = j
            while k < n and line[k] in _DIGITS:
                k += 1
            slashes += 1
            divisor = line[j:k]
            if slashes > 4 or len(divisor) > 3 or (divisor != "" and int(divisor) == 0):
                bad = True
            elif not bad:
                value /= int(divisor) if divisor else 2
            j = k
        if bad:
            voice = self.voice
            assert voice is not None
            self.add(
                "bad-length",
                f"note length {_excerpt(line[i:j])} in {voice.where(voice.current_bar)} is not valid",
                voice.current_bar,
            )
            return Fraction(1), j
        return value, j

    def _pitch(self, line: str, i: int) -> tuple[Fraction | None, int]:
        """Read accidentals, a note letter, octave marks and a length; None if no note letter follows."""
        n = len(line)
        j = i
        while j < n and line[j] in _ACCIDENTALS:
            j += 1
        if line[i:j] not in _VALID_ACCIDENTALS:
            voice = self.voice
            assert voice is not None
            self.add("bad-symbol", f"accidental {_excerpt(line[i:j])} in {voice.where(voice.current_bar)} is not "
                                   "one of ^ ^^ _ __ =", voice.current_bar)
        while j < n and j - i < 12 and (line[j] in _DIGITS or line[j] == "/"):  # microtone, as ^3/4c
            j += 1
        if j >= n or line[j] not in _PITCHES:
            voice = self.voice
            assert voice is not None
            self.add(
                "bad-symbol",
                f"accidental {_excerpt(line[i:j])} in {voice.where(voice.current_bar)} has no note",
                voice.current_bar,
            )
            return None, max(j, i + 1)
        j += 1
        while j < n and line[j] in "',":
            j += 1
        return self._length(line, j)

    def _sound(self, voice: _Voice, length: Fraction) -> None:
        """Add a note, rest or chord of length units to the bar, through tuplets and broken rhythm."""
        self._begin_music(voice)
        duration = voice.unit * length * voice.next_factor
        voice.next_factor = Fraction(1)
        if voice.tuplet_left:
            duration *= voice.tuplet_factor
            voice.tuplet_left -= 1
        voice.duration += duration
        voice.last_duration = duration

    def _begin_music(self, voice: _Voice) -> None:
        """Open the bar for music: it takes the meter in force and any boundary just passed."""
        self.any_music = True
        voice.after_end_repeat = False
        if not voice.has_music:
            voice.has_music = True
            voice.measure_meter = voice.meter
            voice.line_break_before = self.fresh_line
        self.fresh_line = False

    def _multi_measure_rest(self, voice: _Voice, line: str, i: int) -> int:
        """Z4 or X4: rest for four whole bars."""
        j = i
        while j < len(line) and line[j] in _DIGITS:
            j += 1
        count = int(line[i:j]) if 0 < j - i <= 4 else 1
        self._begin_music(voice)
        voice.rest_bars += max(count, 1)
        return j

    def _broken_rhythm(self, voice: _Voice, line: str, i: int) -> int:
        """A>B dots A and halves B (>> and >>> more so); A<B is the reverse."""
        j = i
        while j < len(line) and line[j] == line[i]:
            j += 1
        count = j - i
        if voice.last_duration is None or count > 3:
            problem = "has more than three signs" if count > 3 else "does not follow a note of the same bar"
            self.add(
                "bad-symbol",
                f"broken rhythm {_excerpt(line[i:j])} in {voice.where(voice.current_bar)} {problem}",
                voice.current_bar,
            )
            return j
        short = Fraction(1, 2**count)
        first, second = (2 - short, short) if line[i] == ">" else (short, 2 - short)
        voice.duration += voice.last_duration * (first - 1)
        voice.next_factor = second
        voice.last_duration = None
        return j

    # Brackets of all kinds

    def _bracket(self, voice: _Voice, line: str, i: int) -> int:
        """At [: an ending [2, an inline field [M:3/4], or a chord [CEG]."""
        nxt = line[i + 1 : i + 2]
        if nxt in _DIGITS:
            return self._ending(voice, line, i + 1)
        if nxt.isascii() and nxt.isalpha() and line[i + 2 : i + 3] == ":":
            match = _INLINE_FIELD_RE.match(line, i)
            if match is None:
                self.add(
                    "unclosed-bracket",
                    f"inline field {_excerpt(line[i : i + 12])} in {voice.where(voice.current_bar)} is not closed by ]",
                    voice.current_bar,
                )
                return i + 3
            self._apply_field(nxt, match.group(2).strip())
            return match.end()
        return self._chord(voice, line, i + 1, "]")

    def _chord(self, voice: _Voice, line: str, i: int, close: str) -> int:
        """Read chord notes up to close; the chord lasts as long as its first note times its suffix."""
        n = len(line)
        bar = voice.current_bar
        first: Fraction | None = None
        j = i
        while j < n and line[j] != close:
            c = line[j]
            if c in _PITCHES or c in _ACCIDENTALS or c in "zx":
                length, j = self._pitch(line, j) if c not in "zx" else self._length(line, j + 1)
                first = length if first is None else first
            elif c in _SPACING or c in _DECORATIONS or c == "-":
                j += 1
            elif c == "!":
                j = self._bang_decoration(voice, line, j)
            elif c == '"':
                j = self._quoted(voice, line, j)
            else:
                break
        if j >= n or line[j] != close:
            self.add("unclosed-chord", f"the chord opened in {voice.where(bar)} is not closed by {close}", bar)
        else:
            j += 1
        suffix, j = self._length(line, j)
        if first is None:
            self.add("bad-symbol", f"a chord in {voice.where(bar)} has no notes", bar)
        else:
            self._sound(voice, first * suffix)
        return j

    def _paren(self, voice: _Voice, line: str, i: int) -> int:
        """At (: a tuplet (3, (3:2, (3:2:3, or the start of a slur."""
        match = _TUPLET_RE.match(line, i)
        if match is None:
            voice.slurs.append(voice.current_bar)
            return i + 1
        bar = voice.current_bar
        texts = match.groups(default="")
        if any(len(text) > 2 for text in texts):
            self.add("bad-tuplet", f"tuplet {_excerpt(match.group())} in {voice.where(bar)} is too large", bar)
            return match.end()
        p = int(texts[0])
        q = int(texts[1]) if texts[1] else tuplet_time(p, voice.meter.compound)
        r = int(texts[2]) if texts[2] else p
        if p < 2 or q < 1 or r < 1:
            self.add("bad-tuplet", f"tuplet {_excerpt(match.group())} in {voice.where(bar)} is not valid", bar)
        elif voice.tuplet_left:
            self.add(
                "bad-tuplet",
                f"tuplet {_excerpt(match.group())} in {voice.where(bar)} starts before the tuplet of "
                f"{voice.where(voice.tuplet_bar)} has its notes",
                bar,
            )
        else:
            voice.tuplet_left, voice.tuplet_factor, voice.tuplet_bar = r, Fraction(q, p), bar
        return match.end()

    def _grace(self, voice: _Voice, line: str, i: int) -> int:
        """Skip grace notes {...}: they take no time, but must close on the same bar."""
        j = i + 1
        while j < len(line) and line[j] not in "{}|":
            j += 1
        if j < len(line) and line[j] == "}":
            return j + 1
        self.add(
            "unclosed-bracket",
            f"grace notes opened with {{ in {voice.where(voice.current_bar)} are not closed by }}",
            voice.current_bar,
        )
        return j

    def _quoted(self, voice: _Voice, line: str, i: int) -> int:
        """Skip a chord symbol or annotation "Am"; it takes no time."""
        close = line.find('"', i + 1)
        if close < 0:
            self.add(
                "unclosed-bracket",
                f"the quote opened in {voice.where(voice.current_bar)} is not closed on its line",
                voice.current_bar,
            )
            return len(line)
        return close + 1

    def _decoration_end(self, voice: _Voice, line: str, i: int) -> int | None:
        """Index of the sign that closes a decoration !trill! or +trill+ opened at i; reported if none."""
        close = line.find(line[i], i + 1, i + 2 + _MAX_DECORATION)
        if close > i + 1 and _DECORATION_NAME_RE.fullmatch(line, i + 1, close):
            return close
        self.add(
            "unclosed-bracket",
            f"decoration {_excerpt(line[i : i + 12])} in {voice.where(voice.current_bar)} is not closed by {line[i]}",
            voice.current_bar,
        )
        return None

    def _bang_decoration(self, voice: _Voice, line: str, i: int) -> int:
        """Skip a decoration !trill!."""
        close = self._decoration_end(voice, line, i)
        return i + 1 if close is None else close + 1

    def _plus(self, voice: _Voice, line: str, i: int) -> int:
        """An old-style chord +CEG+ (ABC 1.6) or decoration +trill+."""
        close = self._decoration_end(voice, line, i)
        if close is None:
            return i + 1
        if _OLD_CHORD_RE.fullmatch(line, i + 1, close):
            return self._chord(voice, line, i + 1, "+")
        return close + 1

    # Bar lines, repeats, endings

    def _bar(self, voice: _Voice, line: str, i: int) -> int:
        """Read a bar line such as |, ||, |], [|, |:, :|, ::, :|2, then apply it."""
        n = len(line)
        j = i + 1 if line[i] == "[" else i
        while j < n and line[j] in "|:":
            j += 1
        if j < n and line[j] == "]" and line[j - 1] == "|":
            j += 1
        text = line[i:j]
        after_music = voice.has_music
        self._close_measure(voice)
        if "|" in text:
            end, start = ":|" in text, "|:" in text
        elif len(text) > 1:  # :: alone
            end = start = True
        else:  # a lone ":" finishes a |: or :| split across lines, e.g. "||\" then ":abc"
            end, start = after_music, not after_music
        double = text != "[|]" and ("||" in text or text.startswith("[|") or text.endswith("|]"))
        self._repeat_signs(voice, end, start)
        if end or start or double:
            self._boundary(voice)
            self._close_section(voice)
        if j < n and (line[j] in _DIGITS or (line[j] == "[" and line[j + 1 : j + 2] in _DIGITS)):
            return self._ending(voice, line, j + 1 if line[j] == "[" else j)
        return j

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

    def _ending(self, voice: _Voice, line: str, i: int) -> int:
        """An ending |1, :|2, [1, [2 or [1,3: a first ending must reach a :|, a later one follow it.

        A first ending may start mid-bar ("G2G [1 G2 :| [2 G3 ||"); a later ending then takes over
        the bar time written before the first one.
        """
        match = _ENDING_RE.match(line, i)
        assert match is not None
        numbers = {int(n) for n in re.findall(r"\d+", match.group())}
        bar = voice.current_bar
        if 1 in numbers:
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
                f"ending {match.group()} in {voice.where(bar)} does not follow the :| of a first ending",
                bar,
            )
        self._boundary(voice)
        return match.end()

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
        if voice.next_factor != 1:
            self.add(
                "bad-symbol",
                f"broken rhythm at the end of {voice.where(voice.current_bar)} has no note after it",
                voice.current_bar,
            )
            voice.next_factor = Fraction(1)
        voice.last_duration = None
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
