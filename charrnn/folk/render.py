"""What users call to hear and see a tune that passed the checks: MIDI, audio (WAV) and sheet music (SVG).

The notes as played live in charrnn.folk.perform, the verovio worker in charrnn.folk.engrave; this module
gathers their public functions under one name and writes their results to files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charrnn.errors import CharRNNError
from charrnn.folk.engrave import ENGRAVE_TIMEOUT, ENGRAVER, Engraver, to_svg
from charrnn.folk.perform import (
    DEFAULT_TEMPO,
    SAMPLE_RATE,
    TEMPO_RANGE,
    Note,
    Performance,
    midi_bytes,
    performance,
    synthesize,
    wav_bytes,
)

__all__ = ["DEFAULT_TEMPO", "ENGRAVER", "ENGRAVE_TIMEOUT", "SAMPLE_RATE", "TEMPO_RANGE", "Engraver", "Note",
           "Performance", "midi_bytes", "performance", "synthesize", "to_svg", "wav_bytes", "write_midi",
           "write_svg", "write_wav"]


def _write(path: str | Path, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise CharRNNError(f"cannot write {path}: {e.strerror or e}") from None


def write_midi(path: str | Path, abc: str, tempo: float = DEFAULT_TEMPO) -> None:
    """Write the tune as a standard MIDI file."""
    _write(path, midi_bytes(abc, tempo))


def write_wav(path: str | Path, audio: tuple[int, np.ndarray]) -> None:
    """Write (sample_rate, int16 samples), as `synthesize` returns them, as a mono WAV file."""
    _write(path, wav_bytes(audio))


def write_svg(path: str | Path, abc: str, timeout: float = ENGRAVE_TIMEOUT) -> None:
    """Write the tune's sheet music as an SVG file."""
    _write(path, to_svg(abc, timeout).encode("utf-8"))
