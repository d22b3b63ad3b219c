"""Folk tunes in ABC: spelling, the one reader of the music, the checker, the corpus build, generation, and
rendering (render: perform's MIDI and audio, engrave's sheet music)."""

from charrnn.folk.generate import Conditions, FolkModel, FolkTune

__all__ = ["Conditions", "FolkModel", "FolkTune"]
