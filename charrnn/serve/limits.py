"""Every bound a request to the server is held to, defined once: the service and the training jobs apply
them, the JSON routes take their defaults from them, and the tabs size their sliders and boxes by them.

Nothing a browser or an API client sends can be trusted to respect the page's sliders and max lengths,
so a number is clamped into its range (a missing or non-numeric one takes the default), a text is cut
to its length, and a choice outside its list is a one-line error.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from charrnn.decoding.processors import DEFAULT_TEMPERATURE
from charrnn.errors import CharRNNError


@dataclass(frozen=True)
class Range:
    """A number a request may give: clamped into [lo, hi]; `default` where it is missing or not a number."""

    lo: float
    hi: float
    default: float

    def clamp(self, value: Any) -> float:
        return clamp_float(value, self.lo, self.hi, self.default)

    def clamp_int(self, value: Any) -> int:
        return clamp_int(value, self.lo, self.hi, self.default)


# --- generation (the Generate tab, /generate) ------------------------------------------------------------
LENGTH = Range(1, 5_000, 500)  # characters one sampled or greedy generation may produce
BEAM_LENGTH = Range(1, 500, 200)  # characters of a beam-search generation
BEAM = Range(1, 16, 8)  # beam width (and at most the vocabulary's size)
TEMPERATURE = Range(0.0, 3.0, DEFAULT_TEMPERATURE)
TOP_P = Range(0.01, 1.0, 1.0)  # 1 = off
MAX_PRIME = 2_000  # characters of prime kept
MAX_SEED = 2**31 - 1

# --- autocomplete (the Autocomplete tab, /complete, POST /api/complete) -----------------------------------
COMPLETIONS = Range(1, 10, 3)  # completions one request may ask for
COMPLETION_LENGTH = Range(1, 60, 30)  # characters of the longest completion
PHRASE_PROB = Range(0.01, 1.0, 0.5)  # each further word of a phrase at least this likely (decoding/suggest.py)
MAX_COMPLETE_TEXT = 10_000  # characters of text kept from a request (the last ones); the model reads far fewer

# --- pronunciation (the Pronounce tab, /translate, POST /api/translate) -----------------------------------
PRONOUNCE_BEAM = Range(1, 8, 5)
PRONOUNCE_NUM = Range(1, 5, 3)  # pronunciations per word (and at most the beam width)
MAX_PRONOUNCE_TEXT = 2_000  # characters of text read
MAX_WORDS = 40  # per request
MAX_WORD = 40  # letters of one word

# --- folk tunes (the Folk tunes tab, /folk) ---------------------------------------------------------------
FOLK_TEMPERATURE = Range(0.05, 2.0, 0.8)
FOLK_CANDIDATES = Range(1, 8, 4)  # tunes written for one request; the best that passes is kept
TEMPO = Range(40, 240, 120)  # quarter notes a minute
MAX_FOLK_START = 200  # characters of "first bars"
MAX_ABC = 20_000  # characters of a tune sent back to be shown again
MAX_TITLE = 200

# --- looking inside (the Look inside tab, /inspect) -------------------------------------------------------
MAX_INSPECT = 10_000  # characters of text the model reads (the rest is cut off)
MAX_CELL = 40  # characters of a cell's name (LAYER:INDEX[:KIND])

# --- training (the Train tab, /train_start) ---------------------------------------------------------------
BUDGET_S = Range(5, 3600, 60)  # seconds of training one job may ask for
MAX_UPLOAD_MB = 20  # the default of app.py's --max-upload-mb
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MIN_UPLOAD_CHARS = 5_000
MAX_RUN_NAME = 40  # characters of a run folder's name

# --- every request -----------------------------------------------------------------------------------------
MAX_NAME_TEXT = 200  # characters kept of any name a request gives (model, corpus, file, run) before it is checked


def clamp_float(value: Any, lo: float, hi: float, default: float) -> float:
    """A float in [lo, hi]; `default` for None, NaN or anything that is not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if not math.isfinite(number):
        return default
    return float(max(lo, min(hi, number)))


def clamp_int(value: Any, lo: int, hi: int, default: int) -> int:
    """An int in [lo, hi]; `default` for None, NaN or anything that is not a number."""
    return int(round(clamp_float(value, lo, hi, default)))


def clip(text: Any, limit: int) -> str:
    """`text` as a string of at most `limit` characters (None -> "")."""
    return "" if text is None else str(text)[:limit]


def pick(value: Any, allowed: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `allowed`; else a CharRNNError naming `what` and the choices."""
    if value not in allowed:
        raise CharRNNError(f"{what} must be one of {', '.join(allowed)}; got {str(value)[:30]!r}")
    return value


def seed_or_random(seed: Any) -> int:
    """The seed a client gave (clamped to 0 .. MAX_SEED), or a fresh one for blank or negative values."""
    if seed is None or seed == "":
        return secrets.randbelow(MAX_SEED)
    value = clamp_int(seed, -1, MAX_SEED, -1)
    return secrets.randbelow(MAX_SEED) if value < 0 else value
