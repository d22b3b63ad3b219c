"""Folk tunes in ABC: spelling, the checker, generation, and rendering (MIDI, audio, sheet music)."""

from charrnn.folk.generate import Conditions, FolkModel, FolkTune

__all__ = ["Conditions", "FolkModel", "FolkTune"]
