"""Features of a text, one value per character, that a cell may track.

A feature is yes/no (`binary`) or a number. Each value describes the text up to and including that
character, as the model's state after reading it does: the opening quote is inside the quotes, the
closing one outside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharRNNError

BRACKETS = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}
_ABC_TUNE = re.compile(r"^X:\s*\d+\s*$.*?^K:", re.MULTILINE | re.DOTALL)  # an ABC header, X: first, K: last
_ABC_HEADER = re.compile(r"[A-Za-z+]:")  # a header or inline field line (T:, M:, K:, w: ...)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Feature:
    name: str
    binary: bool
    values: np.ndarray  # (T,) bool for binary features, float otherwise

    def constant(self) -> bool:
        """True when the feature does not vary over the text (no cell can be ranked by it)."""
        return bool(len(self.values) == 0 or (self.values == self.values[0]).all())


def _running(text: str, step) -> np.ndarray:
    """The value after each character of a left-to-right fold `value = step(value, char)` from 0."""
    out, value = np.empty(len(text)), 0
    for i, ch in enumerate(text):
        value = step(value, ch)
        out[i] = value
    return out


def _line_position(text: str) -> np.ndarray:
    return _running(text, lambda v, ch: 0 if ch == "\n" else v + 1)


def _bracket_depth(text: str) -> np.ndarray:
    return _running(text, lambda v, ch: max(0, v + BRACKETS.get(ch, 0)))


def _in_quotes(text: str) -> np.ndarray:
    return _running(text, lambda v, ch: 1 - v if ch == '"' else v).astype(bool)


def _line_start(text: str) -> np.ndarray:
    return np.array([i == 0 or text[i - 1] == "\n" for i in range(len(text))], dtype=bool)


def marks(text: str, pattern: re.Pattern) -> np.ndarray:
    """True on every character inside a match of `pattern` (multi-line mode: ^ and $ match at lines)."""
    out = np.zeros(len(text), dtype=bool)
    for m in pattern.finditer(text):
        out[m.start() : m.end()] = True
    return out


def is_abc(text: str) -> bool:
    """Whether the text holds an ABC tune (an X: line, then a K: line)."""
    return _ABC_TUNE.search(text) is not None


def _abc_features(text: str) -> list[Feature]:
    """bar_position: characters since the last bar line on a line of music (0 on header lines);
    in_repeat: between |: and :| (a :: ends one repeat and starts the next; a new tune ends it)."""
    position, repeat = np.zeros(len(text)), np.zeros(len(text), dtype=bool)
    start = 0
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith("X:"):
            inside = False
        if not _ABC_HEADER.match(line):
            bar = 0
            for i, ch in enumerate(line):
                pair = line[i - 1 : i + 1] if i else ""  # the last two characters read
                if pair in ("|:", "::"):
                    inside = True
                elif pair == ":|":
                    inside = False
                bar = 0 if ch in "|\n" else bar + 1
                position[start + i], repeat[start + i] = bar, inside
        start += len(line)
    return [Feature("bar_position", False, position), Feature("in_repeat", True, repeat)]


def builtin_features(text: str) -> list[Feature]:
    """The features every text gets, and bar_position and in_repeat for ABC."""
    found = [
        Feature("in_quotes", True, _in_quotes(text)),
        Feature("line_position", False, _line_position(text)),
        Feature("bracket_depth", False, _bracket_depth(text)),
        Feature("in_word", True, marks(text, re.compile(r"\w+(?:'\w+)*"))),
        Feature("line_start", True, _line_start(text)),
        # A run of capitals such as a speaker's name (KING RICHARD III), with the spaces inside it.
        Feature("upper_run", True, marks(text, re.compile(r"[A-Z][A-Z']+(?:[ -][A-Z][A-Z']*)*"))),
    ]
    return found + (_abc_features(text) if is_abc(text) else [])


def parse_feature(spec: str) -> tuple[str, re.Pattern]:
    """NAME=REGEX from the command line or the app, as a name and a compiled multi-line pattern."""
    name, sep, regex = spec.partition("=")
    if not sep or not _NAME.fullmatch(name) or not regex:
        raise CharRNNError(f"a feature is NAME=REGEX with a name of letters, digits and _; got {spec!r}")
    try:
        return name, re.compile(regex, re.MULTILINE)
    except re.error as e:
        raise CharRNNError(f"feature {name}: the regex {regex!r} does not compile: {e}") from None


def text_features(text: str, specs: list[str] = ()) -> list[Feature]:
    """The built-in features, then one yes/no feature per NAME=REGEX spec (a name may not repeat)."""
    found = builtin_features(text)
    for spec in specs:
        name, pattern = parse_feature(spec)
        if any(f.name == name for f in found):
            raise CharRNNError(f"feature {name} is given twice (or is a built-in feature's name)")
        found.append(Feature(name, True, marks(text, pattern)))
    return found
