"""One reading of a source for a seq2seq model, used by the CLI and the app alike.

A symbol the model knows is read as written. One it does not know is read as its other case, its letter
without accents (é as e), or its plain form (’ as '), when the model knows that; punctuation and other
signs are left out; digits are refused (a pronunciation model has no way to say "123": write numbers as
words); anything else is an error, or with unknown="skip" left out. What was read otherwise or left out
is said in `notes`, never silently.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Container
from dataclasses import dataclass

from charrnn.errors import CharRNNError

UNKNOWN = ("error", "skip")  # what to do with a symbol the model cannot read in any form
PLAIN = {"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
         "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i"}  # letters that NFKD keeps whole


@dataclass(frozen=True)
class Reading:
    """What the model reads of a source, and what was read otherwise or left out (for the user)."""

    tokens: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _without_marks(symbol: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", symbol) if not unicodedata.combining(c))


def alternative(symbol: str, known: Container[str]) -> str | None:
    """The form of an unknown symbol the model knows: its other case, without accents, its plain or
    compatibility form (a full-width Ａ as A); None if none is known."""
    bare = _without_marks(symbol)
    for form in (symbol.lower(), symbol.upper(), bare, bare.lower(), bare.upper(), PLAIN.get(symbol, ""),
                 unicodedata.normalize("NFKC", symbol)):
        if form and form != symbol and form in known:
            return form
    return None


def is_sign(symbol: str) -> bool:
    """Punctuation and other signs (, ! ? « $ ...): left out when the model does not know them."""
    return all(unicodedata.category(c)[0] in "PS" for c in symbol)


def normalize(source: str, tokens: tuple[str, ...], known: Container[str], unknown: str = "error") -> Reading:
    """The tokens of `source` as the model reads them (see the module's docstring); a CharRNNError for
    digits the model does not know and, with unknown="error", for other symbols it cannot read."""
    if unknown not in UNKNOWN:
        raise CharRNNError(f"unknown must be {' or '.join(UNKNOWN)}, not {unknown!r}")
    read, changed, signs, skipped, missing = [], {}, [], [], []
    for token in tokens:
        if token in known:
            read.append(token)
        elif (form := alternative(token, known)) is not None:
            read.append(form)
            if form.lower() != token.lower():  # case alone goes without saying
                changed[token] = form
        elif any(c.isdigit() for c in token):
            raise CharRNNError(f"{source[:40]!r} has digits, which this model does not read: write numbers as "
                               f"words (e.g. 'twenty one' for 21)")
        elif is_sign(token):
            signs.append(token)
        elif unknown == "skip":
            skipped.append(token)
        else:
            missing.append(token)
    if missing:
        shown = ", ".join(repr(t) for t in dict.fromkeys(missing))
        raise CharRNNError(f"{source[:40]!r} has symbols the model does not know: {shown[:200]}",
                           " (use --unknown skip)")
    notes = [f"read {' '.join(f'{a} as {b}' for a, b in changed.items())}"] if changed else []
    notes += [f"left out {kind}: {' '.join(dict.fromkeys(found))}" for kind, found in
              (("punctuation", signs), ("symbols the model does not know", skipped)) if found]
    return Reading(tuple(read), tuple(notes))
