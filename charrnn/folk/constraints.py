"""Generation that keeps a tune's form: logits processors that steer the model while it writes.

`FormPlan` says how many parts and how many bars each (`--parts 2 --bars 8`, a form string such as
AABB, or a layout the corpus uses for the tune's type and meter). `FormTracker` reads the music written
so far into where the tune stands: the part, its bars as musicians count them, endings. Two processors
use it, each `processor(ids, logits) -> logits` with ids (B, T) the characters written so far:

- `PartEnds`: no part ends before its last bar, and the bar line after its last bar ends it (a repeat or
  double bar, or a first ending's :| and a second ending as long); once every part is written the tune ends.
- `HomeNote`: the note that ends the last bar of the last part is the key's tonic.

They only forbid characters (their logits become -inf); what remains is the model's own choice.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from copy import copy
from dataclasses import dataclass, replace
from fractions import Fraction

import torch

from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.folk.form import PartCounter
from charrnn.folk.melody import Bar, read_melody, tonic_pitch_class
from charrnn.folk.reader import Token, Voice, key_signature, parse_meter, parse_unit, tokenize
from charrnn.folk.spelling import canonical_key

MAX_PARTS = 8
MAX_BARS = 32
DEFAULT_LAYOUT = (8, 8)  # two parts of eight bars, when the corpus says nothing about a type and meter
# A part shorter than this is a fragment (a coda, or a bar line read as a part's end: "8+7+1", "6+2+8", under 1% of
# the corpus's tunes), not a part to write; every other layout is drawn as often as the corpus has it.
MIN_PART_BARS = 4
_LETTERS = "ABCDEFGabcdefg"
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])")
_ACCIDENTAL_SHIFT = {"^^": 2, "^": 1, "__": -2, "_": -1, "=": 0}
_BARE_NOTE = re.compile(r"[\^_=]*[A-Ga-g][',]*")  # a note whose length is not written yet
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class FormPlan:
    """The parts a tune is to have: bars of each, and whether each is repeated (None: the model decides)."""

    bars: tuple[int, ...]
    repeats: tuple[bool | None, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.bars) <= MAX_PARTS:
            raise CharRNNError(f"a tune has 1 to {MAX_PARTS} parts; got {len(self.bars)}")
        if not all(1 <= bars <= MAX_BARS for bars in self.bars):
            raise CharRNNError(f"a part has 1 to {MAX_BARS} bars; got {', '.join(map(str, self.bars))}")
        if len(self.repeats) != len(self.bars):
            raise CharRNNError("give one repeat choice per part")

    @property
    def parts(self) -> int:
        return len(self.bars)

    def text(self) -> str:
        """The plan as the form reading writes a tune's layout: "AABB 8+8" ("A?" where repeats are free)."""
        letters = "".join(chr(ord("A") + i) * (2 if r else 1) + ("?" if r is None else "")
                          for i, r in enumerate(self.repeats))
        return f"{letters} {'+'.join(map(str, self.bars))}"


def form_plan(parts: int | None = None, bars: int | None = None, form: str | None = None,
              layouts: Mapping[str, int] | None = None, seed: int = 0, given: Sequence[int] = ()) -> FormPlan:
    """The plan from a musician's choices: a form string ("AABB": each doubled letter a repeated part)
    or a number of parts, and bars per part; what is not given comes from `layouts`, the corpus's counts
    of part layouts ({"8+8": 1423, ...}) for the tune's type and meter, drawn with `seed`. `given` are
    the bars of the parts the first bars already hold: they stay as written."""
    repeats = parse_form(form) if form is not None else None
    if repeats is not None:
        if parts is not None and parts != len(repeats):
            raise CharRNNError(f"form {form!r} has {len(repeats)} parts, not {parts}")
        parts = len(repeats)
    if bars is not None and parts is not None:
        layout = (bars,) * parts
    else:
        layout = _drawn_layout(layouts or {}, parts, seed)
        if bars is not None:
            layout = (bars,) * len(layout)
    layout = (tuple(given) + layout[len(given):])[: len(repeats) if repeats else None]
    return FormPlan(layout, repeats or (None,) * len(layout))


def parse_form(form: str) -> tuple[bool, ...]:
    """Whether each part of a form string is repeated: "AABB" -> (True, True), "AAB" -> (True, False)."""
    spelled, repeats = form.replace(" ", "").upper(), []
    i = 0
    while i < len(spelled) and len(repeats) < MAX_PARTS:
        letter = chr(ord("A") + len(repeats))
        if spelled[i] != letter:
            break
        repeated = spelled[i + 1 : i + 2] == letter
        repeats.append(repeated)
        i += 2 if repeated else 1
    if not spelled or i < len(spelled):
        raise CharRNNError(f"form {form!r} is not a form string: parts A, B, C... in order, each written twice "
                           f"if it is repeated (AABB, AB, AABBCC, AAB), at most {MAX_PARTS} parts")
    return tuple(repeats)


def _drawn_layout(layouts: Mapping[str, int], parts: int | None, seed: int) -> tuple[int, ...]:
    """A layout drawn from the corpus's counts, in proportion to them, so that generated tunes vary as the
    corpus's do (of those with `parts` parts, if given, and no fragment, that a plan can hold); DEFAULT_LAYOUT
    if none fits."""
    fitting = {tuple(map(int, text.split("+"))): count for text, count in layouts.items()}
    fitting = {layout: count for layout, count in fitting.items() if (parts is None or len(layout) == parts)
               and len(layout) <= MAX_PARTS and all(MIN_PART_BARS <= bars <= MAX_BARS for bars in layout)}
    if not fitting:
        return (DEFAULT_LAYOUT[0],) * (parts or len(DEFAULT_LAYOUT))
    choices = sorted(fitting)
    return random.Random(seed).choices(choices, weights=[fitting[c] for c in choices])[0]


@dataclass
class _Position:
    """Where a tune being written stands, after the characters read so far."""

    counter: PartCounter  # the parts and bars of the closed bars, with the open bar and a trailing bar line
    bar: Fraction  # the written time of the open bar
    sign: str  # a bar line still being written at the end ("|", ":", ":|", "[") or ""
    last: str  # the last character ("" at the start)
    note: str  # the note being written at the end ("F", "^f'") or ""
    last_note: str  # the open bar's last note or chord as written ("d2", "[Ac]"), "" if none


class FormTracker:
    """Reads the music written so far (the ids after the forced header) into a `_Position`; cheap per
    character: the closed bars are read again only when a bar line has been written."""

    def __init__(self, vocab: Vocab, header: str, plan: FormPlan, start: str = "") -> None:
        self.vocab, self.plan, self.start = vocab, plan, start
        self.header = header.rstrip("\n") + "\n"
        fields = dict(line.split(":", 1) for line in header.splitlines() if line[1:2] == ":")
        self.meter = parse_meter(fields.get("M", "")) or parse_meter("4/4")
        self.unit = parse_unit(fields.get("L", "")) or Fraction(1, 8)
        self.key = fields.get("K", "").strip()
        self._rows: list[tuple[list[int], str]] = []
        self._closed: tuple[str, PartCounter] = ("", PartCounter(self.meter.value))
        self._last: tuple[str, _Position | None] = ("", None)
        self._line: tuple[str, list[Token]] = ("", [])  # the line last read, and its tokens

    def text(self, ids: torch.Tensor, row: int) -> str:
        """The music of one row (the first bars given, then what the model wrote), decoded once per new
        character."""
        while len(self._rows) <= row:
            self._rows.append(([], self.start))
        known, text = self._rows[row]
        new = ids[row].tolist()
        if new[: len(known)] == known:
            text += "".join(self.vocab.chars[i] for i in new[len(known):])
        else:
            text = self.start + "".join(self.vocab.chars[i] for i in new)
        self._rows[row] = (new, text)
        return text

    def position(self, text: str) -> _Position:
        """Where the tune stands after `text` (the last answer is kept: both processors ask for it)."""
        if self._last[0] == text and self._last[1] is not None:
            return self._last[1]
        start = text.rfind("\n") + 1
        line = text[start:]
        tokens = self._tokens(line)
        # A bar line still being written: the bar lines and endings that end the line, with nothing between
        # them ("| |" is two bar lines, the first one written: an empty bar, not one sign).
        group = len(tokens)
        while group and tokens[group - 1].kind in ("bar", "ending") and \
                (group == len(tokens) or _end(tokens[group - 1]) == tokens[group].start):
            group -= 1
        trailing = group < len(tokens) and _end(tokens[-1]) == len(line)
        sign = line[tokens[group].start:] if trailing else "[" if line.endswith("[") else ""
        # The closed bars: the text up to the last bar line that music, a space or a line end follows.
        before = group if trailing else len(tokens)
        last = next((i for i in range(before, 0, -1) if tokens[i - 1].kind in ("bar", "ending")), 0)
        open_tokens = tokens[last:before]
        if last:
            closed_end = start + _end(tokens[last - 1])
        else:  # the open bar began on an earlier line
            closed_end, earlier = _last_bar_line(text, start)
            open_tokens = earlier + open_tokens
        counter = copy(self._counter(text[:closed_end]))
        counter.parts = list(counter.parts)
        bar = self._time(open_tokens)
        # A lone ":" or "|" may yet become :|, ::, || or |]: the bar it closes is read as still open.
        counter.add(Bar(duration=bar, closing="" if sign in ("[", ":", "|", "[|") else sign))
        note = tokens[-1].text if tokens and not sign and tokens[-1].kind == "note" and \
            _end(tokens[-1]) == len(line) else ""
        last_note = next((t.text for t in reversed(open_tokens) if t.kind in ("note", "chord")), "")
        position = _Position(counter, bar, sign, text[-1:], note, last_note.lstrip("["))
        self._last = (text, position)
        return position

    def _tokens(self, line: str) -> list[Token]:
        """The tokens of the line being written; when it only grew, the tokens before the last two of the
        line as last read stand (a token ends where the next begins), and only the rest is read again."""
        known, tokens = self._line
        keep = len(tokens) - 2
        while keep > 0 and tokens[keep].kind in _CONTEXT_TOKENS:
            keep -= 1
        if keep > 0 and line.startswith(known) and "+" not in known:  # +...+ may be an old-style chord
            at = tokens[keep].start
            tokens = tokens[:keep] + [replace(t, start=t.start + at) for t in tokenize(line[at:])]
        else:
            tokens = tokenize(line)
        self._line = (line, tokens)
        return tokens

    def _time(self, tokens: list[Token]) -> Fraction:
        """The written time of a bar's tokens, at the header's meter and unit."""
        voice, time = Voice(self.meter, self.unit), Fraction(0)
        for token in tokens:
            if token.kind in ("note", "chord", "rest"):
                time += voice.sound(token.length)
            elif token.kind == "broken":
                time += voice.broken(token.text) or 0
            elif token.kind == "tuplet":
                voice.tuplet(*token.numbers)
        return time

    def _counter(self, closed: str) -> PartCounter:
        """The part counter after the closed bars; only the bars closed since the last call are read."""
        known, counter = self._closed
        if closed == known:
            return counter
        if known and closed.startswith(known):
            counter, closed_now = copy(counter), closed[len(known):]
            counter.parts = list(counter.parts)
        else:
            counter, closed_now = PartCounter(self.meter.value), closed
        melody = read_melody(self.header + closed_now)
        if melody.lead:
            counter.close(melody.lead)
        for bar in melody.bars:
            counter.add(bar)
        self._closed = (closed, counter)
        return counter


def _end(token) -> int:
    return token.start + len(token.text)


def _last_bar_line(text: str, before: int) -> tuple[int, list[Token]]:
    """Where the last bar line before `before` ends, and the tokens of the music from there to `before`."""
    tokens: list[Token] = []
    end = before
    while end > 0:
        start = text.rfind("\n", 0, end - 1) + 1
        line = tokenize(text[start:end])
        bars = [i for i, token in enumerate(line) if token.kind in ("bar", "ending")]
        if bars:
            return start + _end(line[bars[-1]]), line[bars[-1] + 1:] + tokens
        tokens = line + tokens
        end = start
    return 0, tokens


class _Processor:
    """A processor that forbids characters, row by row; one tracker per tune."""

    def __init__(self, tracker: FormTracker) -> None:
        if not isinstance(tracker, FormTracker):
            raise CharRNNError("a form processor needs a FormTracker")
        self.tracker = tracker
        self.index = tracker.vocab.index

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or logits.dim() != 2 or ids.shape[0] != logits.shape[0]:
            raise CharRNNError(f"ids must be (B, T) and logits (B, V) with the same B; got {tuple(ids.shape)} "
                               f"and {tuple(logits.shape)}")
        for row in range(ids.shape[0]):
            forbidden = self.forbidden(self.tracker.position(self.tracker.text(ids, row)))
            columns = [self.index[c] for c in forbidden if c in self.index]
            if columns:
                allowed = logits[row].clone()
                allowed[columns] = -math.inf
                if torch.isfinite(allowed).any():  # never leave the model nothing to write
                    logits = logits.clone() if logits.data_ptr() == allowed.data_ptr() else logits
                    logits[row] = allowed
        return logits

    def forbidden(self, position: _Position) -> str:
        raise NotImplementedError


_DIGITS = "0123456789"
# Tokens that are read as they are only after what precedes them (an ending after its bar line) or that
# may swallow more than they show (a chord or a problem): a line is never read again from one of them.
_CONTEXT_TOKENS = ("ending", "problem", "chord", "field")


class PartEnds(_Processor):
    """Each part ends (a repeat or double bar) at its last bar and not before; the tune ends after the last.
    A bar that is full takes no more notes: its bar line comes next."""

    def __init__(self, tracker: FormTracker) -> None:
        super().__init__(tracker)
        self._full = _LETTERS + "zx^_=([{~<>0123456789"  # what would make a full bar longer

    def forbidden(self, p: _Position) -> str:
        plan, counter = self.tracker.plan, p.counter
        if len(counter.parts) >= plan.parts:
            return self._all_but("\n")
        blank = "\n" if p.last == "\n" else ""  # no blank line (the end of a tune) before every part is written
        target, repeat = plan.bars[len(counter.parts)], plan.repeats[len(counter.parts)]
        repeat = True if counter.repeat_open else repeat  # a part that opened with |: closes with :|
        music = p.bar > 0
        at_end = music and (counter.later_left <= 0 if counter.in_later_ending else counter.count >= target)
        if counter.awaiting_later_ending:  # after the :| that closes a first ending comes the second's mark
            if p.sign.endswith(("|", "[")) and not p.sign.endswith(":|"):
                return self._all_but("2")
            return self._all_but("2[| " + ("" if blank else "\n"))
        if not p.sign:
            full = self._full if self.tracker.meter.value is not None and p.bar >= self.tracker.meter.value else ""
            if not at_end:
                return ":" + blank + full  # no :| or :: before the part's last bar
            if counter.in_first_ending or (repeat and not counter.in_later_ending):
                return "|" + blank + full  # the part's last bar line is a :|
            # After a second ending, or in a part not to be repeated, a double bar.
            return (":" if repeat is False or counter.in_later_ending else "") + blank + full
        if p.sign == ":":
            return self._all_but("|:")
        if p.sign.endswith("[|") or p.sign == "|":
            if not music:  # a bar line before the part's first note: |: opens a repeat, if the plan allows it;
                # within a part (an empty bar: "|\n|"), |: would end it early.
                return "|]" + _DIGITS + blank + (":" if repeat is False or counter.count else "")
            if at_end:
                return self._all_but("|]:")  # ||, |] or |: : the part ends
            may_open_ending = not counter.endings and target - 2 <= counter.count < target
            return "|]:" + ("023456789" if may_open_ending else _DIGITS) + blank
        return _DIGITS + blank

    def _all_but(self, allowed: str) -> str:
        return "".join(c for c in self.tracker.vocab.chars if c not in allowed)


class HomeNote(_Processor):
    """The last note of the last part is the key's tonic: near the end of that bar, other notes may not
    be written, and a note that is not the tonic may not be made long enough to end the bar."""

    def __init__(self, tracker: FormTracker) -> None:
        super().__init__(tracker)
        self.tonic = tonic_pitch_class(canonical_key(tracker.key) or "")
        self.signature = key_signature(tracker.key)
        self.others = "".join(c for c in _LETTERS if self.tonic is not None and self._pitch_class(c) != self.tonic)
        self.units = {d: int(d) * tracker.unit for d in "123456789"}

    def _pitch_class(self, note: str) -> int | None:
        """The pitch class of a written note ("^f", "B,", "d2"), by its own accidental or the key's."""
        match = _NOTE.match(note)
        if match is None:
            return None
        accidental, letter = match.groups()
        shift = _ACCIDENTAL_SHIFT[accidental] if accidental else self.signature.get(letter.upper(), 0)
        return (_STEPS[letter.upper()] + shift) % 12

    def forbidden(self, p: _Position) -> str:
        plan, counter = self.tracker.plan, p.counter
        if not self.others or p.sign or len(counter.parts) != plan.parts - 1 or counter.in_first_ending:
            return ""
        this_bar = 0 if p.bar else 1  # a bar with music is counted already; an empty one is about to begin
        if counter.in_later_ending:
            final = counter.later_left - this_bar <= 0
        else:
            final = counter.count + this_bar >= plan.bars[-1]
        if not final:
            return ""
        meter, unit = self.tracker.meter.value or Fraction(1), self.tracker.unit
        # The last bar is full, or, in a part that began with a pickup, as short as the bar it completes.
        ends = {meter, meter - counter.pickup}
        # Not on this note: no bar line, and no rest to end on, after a note that is not the tonic (but a full
        # bar is let end however it ends, rather than left with nothing it may take).
        off = p.bar and self._pitch_class(p.last_note) != self.tonic and p.bar < meter
        forbidden = "|:\nzx" if off else ""
        if _BARE_NOTE.fullmatch(p.note) and self._pitch_class(p.note) != self.tonic:
            # A note whose length is still to be written may not be made long enough to end the bar.
            before = p.bar - unit
            forbidden += "".join(d for d, units in self.units.items()
                                 if before + units in ends or before + units > meter)
        if any(end - p.bar == unit for end in ends) or 0 < meter - p.bar <= unit:
            forbidden += self.others + "^_=zx["  # a note of the unit length would end the bar: the last note
        return forbidden


def form_processors(vocab: Vocab, header: str, plan: FormPlan, start: str = "") -> tuple[PartEnds, HomeNote]:
    """The processors that keep `plan` for a tune with this header (X: to K:) and first bars."""
    tracker = FormTracker(vocab, header, plan, start)
    return PartEnds(tracker), HomeNote(tracker)
