"""The notes of a checked tune as played, as MIDI and as audio; offline, numpy alone.

`performance` reads the notes through charrnn.folk.reader, repeats and first/second endings played as
written; the audio is a plucked string (Karplus-Strong). Tempo counts quarter notes per minute in every
meter, as MIDI does: at 120, a 4/4 bar lasts 2 s and a 6/8 bar 1.5 s.
"""

from __future__ import annotations

import functools
import io
import math
import wave
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.folk.check import TuneReport, require_passed
from charrnn.folk.reader import FREE_METER, Token, Voice, bar_signs, default_unit, parse_field, parse_meter, tokenize

DEFAULT_TEMPO = 120.0  # quarter notes per minute
TEMPO_RANGE = (20.0, 400.0)
SAMPLE_RATE = 22_050
MIDI_PROGRAM = 40  # General MIDI's violin
_TICKS_PER_QUARTER = 480


def _check_tempo(tempo: float) -> None:
    low, high = TEMPO_RANGE
    if not (math.isfinite(tempo) and low <= tempo <= high):
        raise CharRNNError(f"tempo must be between {low:g} and {high:g} quarter notes per minute; got {tempo}")


@dataclass
class Note:
    """One sounding note; times in quarter notes from the start of the performance."""

    start: Fraction
    length: Fraction
    pitch: int  # MIDI key number: ABC's C is middle C, 60
    tied: bool = False  # held on into the next note of the same pitch (a tie between two pitches is not)


@dataclass(frozen=True)
class Performance:
    """A tune's notes in playing order, repeats expanded, ties merged, and its length in quarter notes."""

    notes: list[Note]
    length: Fraction

    def seconds(self, tempo: float = DEFAULT_TEMPO) -> float:
        return float(self.length) * 60 / tempo


@dataclass
class _Segment:
    """Music between two bar lines (or an ending mark): what the repeats replay."""

    notes: list[Note] = field(default_factory=list)  # start relative to the segment
    length: Fraction = Fraction(0)
    repeat_start: bool = False  # |: before it
    repeat_end: bool = False  # :| after it
    section_end: bool = False  # a double bar after it
    endings: frozenset[int] = frozenset()  # the passes it is played on, when it is in an ending


class _Reader:
    """Reads a checked tune's body into segments: the notes of its first voice, through charrnn.folk.reader."""

    def __init__(self, report: TuneReport):
        meter = parse_meter(report.headers.get("M", "")) or FREE_METER
        self.voice = Voice(meter, report.unit or default_unit(meter), report.headers.get("K", ""))
        self.segments: list[_Segment] = []
        self.segment = _Segment()
        self.pending_start = False
        self.ending: frozenset[int] = frozenset()
        self.ending_left: int | None = None  # segments left in a later ending, which lasts as long as the first
        self.first_ending_length = 0
        self.voice_name: str | None = None  # the first voice's name: other voices are not played
        self.other_voice = False
        self.overlay = False  # after & in a bar: a second layer, not played
        self.last: list[Note] = []  # the previous note or chord of the bar, for > < and -

    def read(self, lines: list[str]) -> list[_Segment]:
        for line in lines:
            found = parse_field(line)
            if found is not None:
                self.apply_field(*found)
                continue
            for token in tokenize(line):
                self.token(token)
        self.close_segment()
        return self.segments

    def apply_field(self, letter: str, value: str) -> None:
        if letter == "V":
            name = value.split()[0] if value.split() else ""
            self.voice_name = name if self.voice_name is None else self.voice_name
            self.other_voice = name != self.voice_name
        elif not self.other_voice:
            self.voice.set_field(letter, value)

    def token(self, token: Token) -> None:
        kind = token.kind
        if kind == "field":
            self.apply_field(token.text, token.value)
        elif kind == "bar":
            self.bar(token.text)
        elif kind == "ending":
            self.start_ending(frozenset(token.numbers))
        elif kind == "overlay":
            self.overlay = True
        elif self.other_voice or self.overlay:
            return
        elif kind in ("note", "chord"):
            pitches, _ = self.voice.play(token.notes)
            self.sound(pitches, token.length, [note.tied for note in token.notes])
        elif kind == "rest":
            self.voice.rest()
            self.sound((), token.length)
        elif kind == "bars_rest":
            self.voice.rest()
            bar = self.voice.meter.value or self.voice.unit
            self.sound((), token.numbers[0] * bar / self.voice.unit)
        elif kind == "tuplet":
            self.voice.tuplet(*token.numbers)
        elif kind == "broken":
            gained = self.voice.broken(token.text)
            if gained is not None:
                for note in self.last:
                    note.length += 4 * gained
                self.segment.length += 4 * gained
        elif kind == "tie":
            self.voice.tie()
            for note in self.last:
                note.tied = True

    def sound(self, pitches: tuple[int, ...], length: Fraction, tied: list[bool] | None = None) -> None:
        """A note, chord or rest written with `length`; lengths here are in quarter notes."""
        duration = 4 * self.voice.sound(length)
        self.last = [Note(self.segment.length, duration, pitch, tie) for pitch, tie in
                     zip(pitches, tied or [False] * len(pitches), strict=True)]
        self.segment.notes += self.last
        self.segment.length += duration

    def bar(self, text: str) -> None:
        """A bar line: |, ||, |], [|, |:, :|, ::."""
        end, start, double = bar_signs(text, bool(self.segment.length))
        self.close_segment()
        self.voice.close_bar()
        self.last, self.overlay = [], False
        if self.segments:
            self.segments[-1].repeat_end |= end
            self.segments[-1].section_end |= double
        self.pending_start |= start
        if end or start or double:
            self.ending, self.ending_left = frozenset(), None

    def start_ending(self, numbers: frozenset[int]) -> None:
        """|1, :|2, [1,3 ...: the segments up to the :| (first ending) or as many (later ones)."""
        self.close_segment()  # an ending may start mid-bar
        self.ending = numbers
        if 1 in self.ending:
            self.first_ending_length, self.ending_left = 0, None
        else:
            self.ending_left = self.first_ending_length or None

    def close_segment(self) -> None:
        segment = self.segment
        if segment.length:
            segment.repeat_start, self.pending_start = self.pending_start, False
            segment.endings = self.ending
            self.segments.append(segment)
            if 1 in self.ending:
                self.first_ending_length += 1
            elif self.ending_left is not None:
                self.ending_left -= 1
                if self.ending_left == 0:
                    self.ending, self.ending_left = frozenset(), None
        self.segment = _Segment()


def _passes(segments: list[_Segment], index: int) -> int:
    """How often the section whose :| closes segment `index` is played: 2, or more with endings 3, 4 ..."""
    numbers = set(segments[index].endings)
    for segment in segments[index + 1 :]:
        if not segment.endings:
            break
        numbers |= segment.endings
    return max(numbers | {2})


def _play_order(segments: list[_Segment]) -> list[_Segment]:
    """The segments as played: a :| returns to the last |: (or double bar, or the start), and endings
    are played on their pass."""
    order: list[_Segment] = []
    i, start, pass_number, returning = 0, 0, 1, False
    while i < len(segments):
        segment = segments[i]
        leaves_endings = not segment.endings and i > 0 and bool(segments[i - 1].endings)
        if not returning and (segment.repeat_start or leaves_endings):
            start, pass_number = i, 1
        returning = False
        if segment.endings and pass_number not in segment.endings:
            i += 1
            continue
        order.append(segment)
        if segment.repeat_end and pass_number < _passes(segments, i):
            i, pass_number, returning = start, pass_number + 1, True
            continue
        if segment.repeat_end or segment.section_end:
            start, pass_number = i + 1, 1
        i += 1
    return order


def _merge_ties(notes: list[Note]) -> list[Note]:
    """Join each tied note with the next note of its pitch that starts where it ends."""
    merged: list[Note] = []
    held: dict[int, Note] = {}
    for note in notes:
        tied_from = held.pop(note.pitch, None)
        if tied_from is not None and tied_from.start + tied_from.length == note.start:
            tied_from.length += note.length
            tied_from.tied = note.tied
            note = tied_from
        else:
            merged.append(note)
        if note.tied:
            held[note.pitch] = note
    return merged


def performance(abc: str) -> Performance:
    """The notes of a tune that passed the checks, in playing order, with repeats and endings as written."""
    report = require_passed(abc)
    lines = abc.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("K:")) + 1 :]
    notes: list[Note] = []
    time = Fraction(0)
    for segment in _play_order(_Reader(report).read(body)):
        notes += [Note(time + note.start, note.length, note.pitch, note.tied) for note in segment.notes]
        time += segment.length
    return Performance(_merge_ties(notes), time)


# ---- MIDI -----------------------------------------------------------------------------------------------


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, high bit set on all but the last."""
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def midi_bytes(abc: str, tempo: float = DEFAULT_TEMPO, program: int = MIDI_PROGRAM) -> bytes:
    """A standard MIDI file (format 0, one track) of a tune that passed the checks."""
    _check_tempo(tempo)
    events = []  # (tick, note-offs before note-ons at the same tick, message)
    for note in performance(abc).notes:
        on = round(note.start * _TICKS_PER_QUARTER)
        off = round((note.start + note.length) * _TICKS_PER_QUARTER)
        events += [(on, 1, bytes([0x90, note.pitch, 80])), (off, 0, bytes([0x80, note.pitch, 0]))]
    track = bytearray(b"\x00\xff\x51\x03" + round(60_000_000 / tempo).to_bytes(3, "big"))  # microseconds a beat
    track += bytes([0x00, 0xC0, program])
    now = 0
    for tick, _, message in sorted(events, key=lambda event: event[:2]):
        track += _varlen(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    return header + _TICKS_PER_QUARTER.to_bytes(2, "big") + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


# ---- audio ----------------------------------------------------------------------------------------------

_DECAY = 0.996  # energy a plucked string keeps per period, on top of the averaging filter's loss
_FADE_S = 0.01  # each note ends with a short fade, so that it stops without a click
_PEAK = 0.8  # of full scale


@functools.lru_cache(maxsize=1024)
def _pluck(pitch: int, samples: int, sample_rate: int) -> np.ndarray:
    """A Karplus-Strong plucked string: a burst of noise circulating in a delay line through a low-pass.

    Each period is computed from the one before in a single numpy operation; tunes repeat their notes,
    hence the cache.
    """
    frequency = 440.0 * 2 ** ((pitch - 69) / 12)
    period = max(2, round(sample_rate / frequency - 0.5))  # the two-point average adds half a sample of delay
    blocks = -(-samples // period)
    line = np.zeros(blocks * period + 1)  # line[k + 1] is sample k; line[0] is the silence before
    noise = np.random.default_rng(pitch).uniform(-1.0, 1.0, period)
    line[1 : period + 1] = noise - noise.mean()
    for b in range(1, blocks):
        before = line[(b - 1) * period : b * period + 1]
        line[b * period + 1 : (b + 1) * period + 1] = _DECAY * 0.5 * (before[1:] + before[:-1])
    sound = line[1 : samples + 1].copy()
    fade = min(samples, round(_FADE_S * sample_rate))
    sound[samples - fade :] *= np.linspace(1.0, 0.0, fade)
    sound.flags.writeable = False
    return sound


def synthesize(abc: str, tempo: float = DEFAULT_TEMPO, sample_rate: int = SAMPLE_RATE) -> tuple[int, np.ndarray]:
    """(sample_rate, mono int16 samples) of a tune that passed the checks: what gr.Audio plays."""
    _check_tempo(tempo)
    played = performance(abc)
    per_beat = 60.0 / tempo * sample_rate
    mix = np.zeros(round(float(played.length) * per_beat))
    for note in played.notes:
        first = round(float(note.start) * per_beat)
        samples = min(round(float(note.length) * per_beat), len(mix) - first)
        if samples > 0:
            mix[first : first + samples] += _pluck(note.pitch, samples, sample_rate)
    peak = float(np.abs(mix).max(initial=0.0))
    if peak > 0:
        mix *= _PEAK * 32767 / peak
    return sample_rate, mix.round().astype(np.int16)


def wav_bytes(audio: tuple[int, np.ndarray]) -> bytes:
    """A mono 16-bit WAV file of (sample_rate, int16 samples)."""
    sample_rate, samples = audio
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()
