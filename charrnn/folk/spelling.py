"""One spelling for each key, meter and tune type: what the corpus builder, the generator and the renderer share."""

from __future__ import annotations

import re

# One spelling per key, meter and tune type, so that conditioning a model on them is unambiguous.
_MODES = {"major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "dor", "mixolydian": "mix",
          "lydian": "lyd", "phrygian": "phr", "locrian": "loc"}
_KEY = re.compile(r"([A-Ga-g])([#b]?)\s*([A-Za-z]*)")
_METER = re.compile(r"(\d{1,2})/(\d{1,2})")
# The tune types (R:) of the built folk corpus, most frequent first: reel 628 tunes ... gavotte 1; 2,232 have none.
FOLK_TUNE_TYPES = ("reel", "jig", "hornpipe", "slip jig", "clog", "strathspey", "air", "highland fling", "slide",
                   "walkaround", "waltz", "gavotte")
_TUNE_TYPE_SPELLINGS = {"double jig": "jig", "slipjig": "slip jig", "fling": "highland fling"}


def canonical_key(text: str) -> str | None:
    """A key in the short ABC form the folk corpus uses (D, Em, Ador, Gmix, Bblyd), or None if it is not one.

    As in ABC 2.1 the mode's case does not matter, and it may be shortened to three letters or more
    (minor also to m): "E Minor", "EMin" and "em" are all Em; major is the bare tonic.
    """
    match = _KEY.fullmatch(text.strip())
    if not match:
        return None
    tonic, accidental, mode = match[1].upper(), match[2], match[3].lower()
    if mode in ("", "m"):
        return tonic + accidental + mode
    names = [name for name in _MODES if len(mode) >= 3 and name.startswith(mode)]
    return tonic + accidental + _MODES[names[0]] if names else None


def canonical_meter(text: str) -> str | None:
    """A meter as a fraction, with C as 4/4 and C| as 2/2; None for anything else (free or complex meters)."""
    text = text.replace(" ", "")
    match = _METER.fullmatch({"C": "4/4", "C|": "2/2"}.get(text, text))
    if not match or not int(match[1]) or not int(match[2]):
        return None
    return f"{int(match[1])}/{int(match[2])}"


def canonical_tune_type(text: str) -> str:
    """A tune type (R:) in lower case with one spelling: "Slip-Jig" and "slipjig" become "slip jig"."""
    name = " ".join(text.lower().replace("-", " ").strip(" .").split())
    return _TUNE_TYPE_SPELLINGS.get(name, name)
