"""The one reader of ABC music: fields, comments, meters and unit lengths, the tokens of a line of music,
and the running time and pitch of a voice. The checker (check.py) and the performer (perform.py) both
read tunes through it, so that a note lasts and sounds the same for both.

`tokenize` never raises and is linear in the line: what is not ABC becomes a "problem" token, whose
message the caller completes with the place (`WHERE`) it knows, e.g. "bar 3 of voice 2".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from charrnn.folk.spelling import canonical_key

_DIGITS = frozenset("0123456789")
_PITCHES = frozenset("ABCDEFGabcdefg")
_ACCIDENTAL_SIGNS = frozenset("^_=")
_ACCIDENTALS = {"": None, "^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}  # semitones; None: as the key says
# Symbols that decorate the next note and take no time: ABC 2.1 predefines ~ . H L M O P S T u v,
# and U: may define any other letter from H-W and h-w.
_DECORATIONS = frozenset("~.HIJKLMNOPQRSTUVWhijklmnopqrstuvw")
# Spaces, beam breaks (`), line continuation (\) and the score line break ($) take no time.
_SPACING = frozenset(" \t`\\$")
# re.ASCII: \d must not match other scripts' digits.
_FIELD_RE = re.compile(r"\s*([A-Za-z+]):", re.ASCII)
COMMENT_RE = re.compile(r"(?<!\\)%.*")  # "\%" is a literal percent sign
_METER_RE = re.compile(r"\(?(\d{1,3}(?:\+\d{1,3}){0,7})\)?/(\d{1,3})", re.ASCII)
_UNIT_RE = re.compile(r"(\d{1,3})(?:/(\d{1,3}))?", re.ASCII)
_TUPLET_RE = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?", re.ASCII)
_ENDING_RE = re.compile(r"\d{1,2}(?:[,-]\d{1,2}){0,8}", re.ASCII)
_DECORATION_NAME_RE = re.compile(r"[^\s!+|\"]+")
# An inline field [M:3/4]; stopping at | and [ keeps it from swallowing music and scanning twice.
INLINE_FIELD_RE = re.compile(r"\[([A-Za-z]):([^\]|\[]*)\]")
_NOTES_AND_RESTS = _PITCHES | {"z", "x"}
# The notes of an old-style chord +CEG+, written so that no text can be matched two ways.
_OLD_CHORD_RE = re.compile(r"(?:[_^=]{0,2}[A-Ga-g][',]*[0-9]*(?:/+[0-9]*)?)+")
# Longer !...! or +...+ names are not decorations; the bound keeps scanning of junk linear.
_MAX_DECORATION = 40
_ONE_SIGN = {"-": "tie", ")": "slur_close", "&": "overlay"}  # tokens of one character
WHERE = "\0"  # stands for the place in a problem's message; repr() never leaves a NUL in quoted text


# ---- fields, meters, lengths ----------------------------------------------------------------------------


def strip_comment(line: str) -> str:
    """The line without its % comment."""
    return COMMENT_RE.sub("", line)


def parse_field(line: str) -> tuple[str, str] | None:
    """(letter, value) when a line is a field such as "M:6/8"; a bar line like "A:|" is music."""
    match = _FIELD_RE.match(line)
    if not match:
        return None
    rest = line[match.end() :]
    if match.group(1) in _NOTES_AND_RESTS and rest[:1] in ("|", ":"):  # "A:|" is a note and a repeat
        return None
    return match.group(1), strip_comment(rest).strip()


@dataclass(frozen=True)
class Meter:
    """A parsed M: field."""

    text: str
    value: Fraction | None  # bar length in whole notes; None for free meter
    denominator: int  # durations are shown in these units, as "5/8"
    compound: bool  # 6/8, 9/8, 12/8 ...: decides the default tuplet timing

    def show(self, duration: Fraction) -> str:
        """Write a duration in the meter's own units, e.g. 7/8 under 6/8."""
        units = duration * self.denominator
        return f"{units.numerator}/{self.denominator}" if units.denominator == 1 else str(duration)


FREE_METER = Meter("none", None, 8, False)


def parse_meter(text: str) -> Meter | None:
    """Parse an M: value such as 6/8, C, C|, 2+3/8 or none; None when it is not a meter."""
    text = text.strip()
    if text == "C":
        return Meter(text, Fraction(1), 4, False)
    if text == "C|":
        return Meter(text, Fraction(1), 2, False)
    if text.lower() == "none":
        return FREE_METER
    match = _METER_RE.fullmatch(text.replace(" ", ""))
    if not match:
        return None
    numerator = sum(int(part) for part in match.group(1).split("+"))
    denominator = int(match.group(2))
    if numerator == 0 or denominator == 0:
        return None
    return Meter(text, Fraction(numerator, denominator), denominator, numerator % 3 == 0 and numerator > 3)


def parse_unit(text: str) -> Fraction | None:
    """Parse an L: value such as 1/8; None when it is not a length."""
    match = _UNIT_RE.fullmatch(text.strip())
    if not match:
        return None
    numerator, denominator = int(match.group(1)), int(match.group(2) or 1)
    return Fraction(numerator, denominator) if numerator and denominator else None


def default_unit(meter: Meter | None) -> Fraction:
    """The unit length ABC 2.1 implies when L: is absent: 1/16 below a meter of 3/4, else 1/8."""
    value = meter.value if meter is not None else None
    return Fraction(1, 16) if value is not None and value < Fraction(3, 4) else Fraction(1, 8)


def is_compound(meter: str | None) -> bool:
    """Whether an M: value is compound (6/8, 9/8, 12/8 ...), which decides the default tuplet timing."""
    parsed = parse_meter(meter) if meter else None
    return parsed is not None and parsed.compound


def tuplet_time(p: int, compound: bool) -> int:
    """The ABC 2.1 default q of a tuplet (p:q: p notes in the time of q)."""
    if p in (2, 4, 8):
        return 3
    if p in (3, 6):
        return 2
    return 3 if compound else 2


def ending_numbers(text: str) -> frozenset[int]:
    """The passes of an ending such as 1, 2, 1,3 or 1-3."""
    numbers: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return frozenset(numbers)


def bar_signs(text: str, after_music: bool) -> tuple[bool, bool, bool]:
    """(ends a repeat, starts one, is a double bar) for a bar line such as |, ||, |], [|, |:, :|, ::.

    A lone ":" finishes a |: or :| split across lines ("||\\" then ":abc"): after music it ends a repeat.
    """
    if "|" in text:
        end, start = ":|" in text, "|:" in text
    elif len(text) > 1:  # :: alone
        end = start = True
    else:
        end, start = after_music, not after_music
    double = text != "[|]" and ("||" in text or text.startswith("[|") or text.endswith("|]"))
    return end, start, double


def excerpt(text: str, limit: int = 24) -> str:
    """Quote text for a message, shortened so junk input keeps messages short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- tokens ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """A written note: accidental ("", ^, ^^, _, __ or =), letter, octave (0 for C-B, 1 for c-b, ' and , add)."""

    accidental: str
    letter: str
    octave: int
    tied: bool = False  # a - right after it inside a chord


@dataclass(frozen=True)
class Token:
    """One symbol of music that matters to timing, pitch or structure; what takes no time is not a token.

    kind: note, chord, rest, bars_rest, tuplet, broken, tie, slur_open, slur_close, bar, ending, field,
    overlay, or problem (then `finding` is the kind of finding and `message` says what, with WHERE in it).
    """

    kind: str
    text: str
    start: int  # index in the line
    length: Fraction = Fraction(1)  # note, chord, rest: the multiple of the unit length it is written with
    notes: tuple[Note, ...] = ()  # note, chord
    numbers: tuple[int, ...] = ()  # tuplet (p, q, r; 0: the default); ending (its passes); bars_rest (bars)
    value: str = ""  # field: its value (text is the letter)
    finding: str = ""
    message: str = ""


def tokenize(line: str) -> list[Token]:
    """The tokens of one line of music, up to its % comment."""
    return _Scanner(line).run()


class _Scanner:
    """Reads one line symbol by symbol; every branch moves forward, so scanning is linear."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.tokens: list[Token] = []

    def emit(self, kind: str, start: int, end: int, **extra) -> None:
        self.tokens.append(Token(kind, self.line[start:end], start, **extra))

    def problem(self, finding: str, message: str, at: int) -> None:
        self.tokens.append(Token("problem", "", at, finding=finding, message=message))

    def run(self) -> list[Token]:
        line, n, i = self.line, len(self.line), 0
        # Signs that open something longer, each read by its own method.
        openers = {"[": self.bracket, "(": self.paren, "{": self.grace, '"': self.quoted, "!": self.bang_decoration,
                   "+": self.plus}
        while i < n:
            c = line[i]
            if c in _SPACING:
                i += 1
            elif c in _ONE_SIGN:
                self.emit(_ONE_SIGN[c], i, i + 1)
                i += 1
            elif c == "%":
                break
            elif c in _PITCHES or c in _ACCIDENTAL_SIGNS:
                start = i
                note, length, i = self.note(i)
                if note is not None:
                    self.emit("note", start, i, length=length, notes=(note,))
            elif c in "zx":
                length, j = self.length(i + 1)
                self.emit("rest", i, j, length=length)
                i = j
            elif c in "ZX":
                j = i + 1
                while j < n and line[j] in _DIGITS:
                    j += 1
                count = int(line[i + 1 : j]) if 0 < j - i - 1 <= 4 else 1
                self.emit("bars_rest", i, j, numbers=(max(count, 1),))
                i = j
            elif c == "y":
                i += 1
                while i < n and line[i] in _DIGITS:
                    i += 1
            elif c in _DECORATIONS:
                i += 1
            elif c in "|:" or (c == "[" and line[i + 1 : i + 2] == "|"):
                i = self.bar(i)
            elif c in openers:
                i = openers[c](i)
            elif c in "><":
                j = i
                while j < n and line[j] == c:
                    j += 1
                self.emit("broken", i, j)
                i = j
            elif c in "]}":
                self.problem("unclosed-bracket", f"{c} in {WHERE} closes nothing", i)
                i += 1
            else:
                self.problem("bad-symbol", f"{excerpt(c)} in {WHERE} is not ABC music", i)
                i += 1
        return self.tokens

    # Notes and their lengths

    def length(self, i: int) -> tuple[Fraction, int]:
        """Read a length multiplier (2, /2, /, //, 3/2) at i; a malformed one is reported and read as 1."""
        line, n, j = self.line, len(self.line), i
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
            self.problem("bad-length", f"note length {excerpt(line[i:j])} in {WHERE} is not valid", i)
            return Fraction(1), j
        return value, j

    def note(self, i: int) -> tuple[Note | None, Fraction, int]:
        """Read accidentals, a note letter, octave marks and a length; no note if no note letter follows."""
        line, n, j = self.line, len(self.line), i
        while j < n and line[j] in _ACCIDENTAL_SIGNS:
            j += 1
        accidental = line[i:j]
        if accidental not in _ACCIDENTALS:
            self.problem("bad-symbol", f"accidental {excerpt(accidental)} in {WHERE} is not one of ^ ^^ _ __ =", i)
            accidental = ""
        while j < n and j - i < 12 and (line[j] in _DIGITS or line[j] == "/"):  # microtone, as ^3/4c
            j += 1
        if j >= n or line[j] not in _PITCHES:
            self.problem("bad-symbol", f"accidental {excerpt(line[i:j])} in {WHERE} has no note", i)
            return None, Fraction(1), max(j, i + 1)
        letter = line[j]
        j += 1
        octave = int(letter.islower())
        while j < n and line[j] in "',":
            octave += 1 if line[j] == "'" else -1
            j += 1
        length, j = self.length(j)
        return Note(accidental, letter, octave), length, j

    # Brackets of all kinds

    def bracket(self, i: int) -> int:
        """At [: an ending [2, an inline field [M:3/4], or a chord [CEG]."""
        line = self.line
        nxt = line[i + 1 : i + 2]
        if nxt in _DIGITS:
            return self.ending(i + 1)
        if nxt.isascii() and nxt.isalpha() and line[i + 2 : i + 3] == ":":
            match = INLINE_FIELD_RE.match(line, i)
            if match is None:
                self.problem("unclosed-bracket", f"inline field {excerpt(line[i : i + 12])} in {WHERE} is not "
                                                 "closed by ]", i)
                return i + 3
            self.emit("field", i + 1, i + 2, value=match.group(2).strip())
            return match.end()
        return self.chord(i, i + 1, "]")

    def chord(self, start: int, i: int, close: str) -> int:
        """Read chord notes up to close; the chord lasts as long as its first note times its suffix."""
        line, n, j = self.line, len(self.line), i
        first: Fraction | None = None
        notes: list[Note] = []
        while j < n and line[j] != close:
            c = line[j]
            if c in _PITCHES or c in _ACCIDENTAL_SIGNS:
                note, length, j = self.note(j)
                if note is not None:
                    notes.append(note)
                    first = length if first is None else first
            elif c in "zx":
                length, j = self.length(j + 1)
                first = length if first is None else first
            elif c == "-" and notes:
                notes[-1] = Note(notes[-1].accidental, notes[-1].letter, notes[-1].octave, tied=True)
                j += 1
            elif c in _SPACING or c in _DECORATIONS or c == "-":
                j += 1
            elif c == "!":
                j = self.bang_decoration(j)
            elif c == '"':
                j = self.quoted(j)
            else:
                break
        if j >= n or line[j] != close:
            self.problem("unclosed-chord", f"the chord opened in {WHERE} is not closed by {close}", start)
        else:
            j += 1
        suffix, j = self.length(j)
        if first is None:
            self.problem("bad-symbol", f"a chord in {WHERE} has no notes", start)
        else:
            self.emit("chord", start, j, length=first * suffix, notes=tuple(notes))
        return j

    def paren(self, i: int) -> int:
        """At (: a tuplet (3, (3:2, (3:2:3, or the start of a slur."""
        match = _TUPLET_RE.match(self.line, i)
        if match is None:
            self.emit("slur_open", i, i + 1)
            return i + 1
        texts = match.groups(default="")
        if any(len(text) > 2 for text in texts):
            self.problem("bad-tuplet", f"tuplet {excerpt(match.group())} in {WHERE} is too large", i)
            return match.end()
        p, q, r = (int(text) if text else None for text in texts)
        if p < 2 or q == 0 or r == 0:
            self.problem("bad-tuplet", f"tuplet {excerpt(match.group())} in {WHERE} is not valid", i)
        else:
            self.emit("tuplet", i, match.end(), numbers=(p, q or 0, r or 0))
        return match.end()

    def grace(self, i: int) -> int:
        """Skip grace notes {...}: they take no time, but must close on the same bar."""
        line, j = self.line, i + 1
        while j < len(line) and line[j] not in "{}|":
            j += 1
        if j < len(line) and line[j] == "}":
            return j + 1
        self.problem("unclosed-bracket", f"grace notes opened with {{ in {WHERE} are not closed by }}", i)
        return j

    def quoted(self, i: int) -> int:
        """Skip a chord symbol or annotation "Am"; it takes no time."""
        close = self.line.find('"', i + 1)
        if close < 0:
            self.problem("unclosed-bracket", f"the quote opened in {WHERE} is not closed on its line", i)
            return len(self.line)
        return close + 1

    def decoration_end(self, i: int) -> int | None:
        """Index of the sign that closes a decoration !trill! or +trill+ opened at i; reported if none."""
        line = self.line
        close = line.find(line[i], i + 1, i + 2 + _MAX_DECORATION)
        if close > i + 1 and _DECORATION_NAME_RE.fullmatch(line, i + 1, close):
            return close
        self.problem("unclosed-bracket", f"decoration {excerpt(line[i : i + 12])} in {WHERE} is not closed by "
                                         f"{line[i]}", i)
        return None

    def bang_decoration(self, i: int) -> int:
        """Skip a decoration !trill!."""
        close = self.decoration_end(i)
        return i + 1 if close is None else close + 1

    def plus(self, i: int) -> int:
        """An old-style chord +CEG+ (ABC 1.6) or decoration +trill+."""
        close = self.decoration_end(i)
        if close is None:
            return i + 1
        if _OLD_CHORD_RE.fullmatch(self.line, i + 1, close):
            return self.chord(i, i + 1, "+")
        return close + 1

    # Bar lines and endings

    def bar(self, i: int) -> int:
        """A bar line such as |, ||, |], [|, |:, :|, ::, and the ending (:|2, |[1) right after it."""
        line, n = self.line, len(self.line)
        j = i + 1 if line[i] == "[" else i
        while j < n and line[j] in "|:":
            j += 1
        if j < n and line[j] == "]" and line[j - 1] == "|":
            j += 1
        self.emit("bar", i, j)
        if j < n and (line[j] in _DIGITS or (line[j] == "[" and line[j + 1 : j + 2] in _DIGITS)):
            return self.ending(j + 1 if line[j] == "[" else j)
        return j

    def ending(self, i: int) -> int:
        """An ending's numbers: 1, 2, 1,3, 1-3."""
        match = _ENDING_RE.match(self.line, i)
        assert match is not None
        self.emit("ending", i, match.end(), numbers=tuple(sorted(ending_numbers(match.group()))))
        return match.end()


# ---- a voice's time and pitch ---------------------------------------------------------------------------

_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_MODE_FIFTHS = {"": 0, "m": -3, "dor": -2, "phr": -4, "lyd": 1, "mix": -1, "loc": -5}


def key_signature(value: str) -> dict[str, int]:
    """Semitones a K: value adds to each note letter; a key without a plain name (K:Hp) adds none."""
    words = value.split()  # the key may be followed by more: "A Dorian clef=treble"
    key = next(filter(None, (canonical_key(" ".join(words[:n])) for n in range(len(words), 0, -1))), None)
    if key is None:
        return {}
    tonic, mode = (key[:2], key[2:]) if key[1:2] in ("#", "b") else (key[:1], key[1:])
    fifths = _FIFTHS[tonic[0]] + 7 * {"#": 1, "b": -1}.get(tonic[1:], 0) + _MODE_FIFTHS[mode]
    fifths = max(-7, min(7, fifths))
    return dict.fromkeys("FCGDAEB"[:fifths], 1) if fifths >= 0 else dict.fromkeys("BEADGCF"[:-fifths], -1)


class Voice:
    """The running state of one voice as its tokens are read: meter, unit, key and the bar's accidentals,
    the rhythm that reaches forward (broken rhythm, tuplets) and the tie into the next note."""

    def __init__(self, meter: Meter, unit: Fraction, key: str = "") -> None:
        self.meter = meter
        self.unit = unit
        self.key = key_signature(key)
        self.bar_accidentals: dict[tuple[str, int], int] = {}
        self.last_duration: Fraction | None = None  # the previous note of this bar, for > and <
        self.next_factor = Fraction(1)
        self.tuplet_left = 0
        self.tuplet_factor = Fraction(1)
        self.last_pitches: tuple[int, ...] = ()  # the previous note or chord, which a - ties on
        self.tied: tuple[int, ...] = ()  # the pitches a tie holds into the next note

    def set_field(self, letter: str, value: str) -> bool:
        """Apply a K:, M: or L: field; False when its value is not a meter or a length."""
        if letter == "K":
            self.key = key_signature(value)
            self.bar_accidentals.clear()
        elif letter == "M":
            meter = parse_meter(value)
            if meter is None:
                return False
            self.meter = meter
        elif letter == "L":
            unit = parse_unit(value)
            if unit is None:
                return False
            self.unit = unit
        return True

    def pitch(self, note: Note) -> int:
        """The MIDI key of a note (ABC's C is middle C, 60), after the key and the bar's earlier accidentals."""
        step = note.letter.upper()
        shift = _ACCIDENTALS[note.accidental]
        if shift is not None:
            self.bar_accidentals[(step, note.octave)] = shift
        shift = self.bar_accidentals.get((step, note.octave), self.key.get(step, 0))
        return max(0, min(127, 60 + 12 * note.octave + _STEPS[step] + shift))

    def play(self, notes: tuple[Note, ...]) -> tuple[tuple[int, ...], bool]:
        """The pitches of a note or chord, and whether it continues the tie before it (True if none)."""
        pitches = tuple(self.pitch(note) for note in notes)
        joined = not self.tied or bool(set(self.tied) & set(pitches))
        self.last_pitches = pitches
        self.tied = tuple(p for p, note in zip(pitches, notes, strict=True) if note.tied)
        return pitches, joined

    def tie(self) -> None:
        """A - after a note or chord: it is held into the next one."""
        self.tied = self.last_pitches

    def sound(self, length: Fraction) -> Fraction:
        """The duration, in whole notes, of a note, chord or rest written with `length`, through broken
        rhythm and tuplets."""
        duration = self.unit * length * self.next_factor
        self.next_factor = Fraction(1)
        if self.tuplet_left:
            duration *= self.tuplet_factor
            self.tuplet_left -= 1
        self.last_duration = duration
        return duration

    def rest(self) -> None:
        """A rest ends any tie (it sounds nothing to hold)."""
        self.last_pitches = self.tied = ()

    def broken(self, signs: str) -> Fraction | None:
        """A>B dots A and halves B (>> and >>> more so); A<B is the reverse. Returns the time the previous
        note gains (negative for <), or None when there is no previous note in the bar."""
        if self.last_duration is None:
            return None
        short = Fraction(1, 2 ** len(signs))
        first, second = (2 - short, short) if signs[0] == ">" else (short, 2 - short)
        gained = self.last_duration * (first - 1)
        self.next_factor = second
        self.last_duration = None
        return gained

    def tuplet(self, p: int, q: int, r: int) -> None:
        """(p:q:r: the next r notes take the time of q; q and r (0: not written) default as ABC 2.1 says."""
        self.tuplet_left = r or p
        self.tuplet_factor = Fraction(q or tuplet_time(p, self.meter.compound), p)

    def close_bar(self) -> bool:
        """A bar line: the bar's accidentals end, and so does broken rhythm; True if a > or < was left
        without its second note."""
        dangling = self.next_factor != 1
        self.next_factor = Fraction(1)
        self.last_duration = None
        self.bar_accidentals.clear()
        return dangling

    def overlay(self) -> None:
        """& starts another layer of the bar: nothing reaches across it."""
        self.last_duration = None
        self.last_pitches = self.tied = ()
