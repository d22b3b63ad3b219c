"""The form of many tunes at once: one line per tune, and shares of tunes that have two parts, parts of
4k bars, a part of 7 or 9 bars, every part 8 bars, the tonic at the end, a copied run of 4 bars or more.
`charrnn folk stats` and `benchmarks/bench_folk.py --form` both count with these.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from charrnn.folk.form import Form
from charrnn.folk.originality import COPY_LIMIT_BARS, Copied


@dataclass(frozen=True)
class Reading:
    """One tune's form, and (with a corpus index) its longest run shared with a corpus tune."""

    form: Form
    copied: Copied | None = None

    @property
    def copied_bars(self) -> float | None:
        return None if self.copied is None else self.copied.bars


def _share(rows: Sequence, test: Callable) -> float:
    return 100 * sum(map(test, rows)) / len(rows) if rows else float("nan")


# What each measure says of a list of rows (each with .form and .copied_bars), shares in % of the tunes.
MEASURES: dict[str, Callable[[Sequence], float]] = {
    "tunes": len,
    "two parts": lambda rows: _share(rows, lambda r: len(r.form.parts) == 2),
    "parts of 4k bars": lambda rows: _share(rows, lambda r: r.form.parts_of_four),
    "a part of 7 or 9": lambda rows: _share(rows, lambda r: r.form.odd_part),
    "every part 8": lambda rows: _share(rows, lambda r: r.form.every_part(8)),
    "ends on tonic": lambda rows: _share(rows, lambda r: r.form.ends_on_tonic),
    "median range": lambda rows: statistics.median(r.form.range for r in rows) if rows else float("nan"),
    "copies 4+ bars": lambda rows: _share([r for r in rows if r.copied_bars is not None],
                                          lambda r: r.copied_bars >= COPY_LIMIT_BARS),
    "longest copy": lambda rows: max((r.copied_bars for r in rows if r.copied_bars is not None),
                                     default=float("nan")),
}


def cell(value: float) -> str:
    """A table cell: "-" for no value, whole numbers bare, others to one decimal."""
    return "-" if value != value else f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def table(columns: dict[str, Sequence], measures: Sequence[str] = tuple(MEASURES),
          extra: dict[str, Callable[[Sequence], float]] | None = None) -> str:
    """A markdown table of measures (rows) for each named set of tunes (columns)."""
    known = {**MEASURES, **(extra or {})}
    lines = ["| measure | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {m} | " + " | ".join(cell(known[m](rows)) for rows in columns.values()) + " |" for m in measures]
    return "\n".join(lines)


def describe(reading: Reading) -> str:
    """One tune's form on one line: parts and bars, pickups and endings, the last note, range, copied run."""
    form = reading.form
    marks = [mark for mark, present in (("pickups", any(p.pickup for p in form.parts)),
                                        ("endings", any(p.endings for p in form.parts))) if present]
    ending = f"ends on {form.degree}" + (" (the tonic)" if form.ends_on_tonic else "") if form.degree else "no key"
    line = f"{form.layout}{' (' + ', '.join(marks) + ')' if marks else ''}; {ending} of {form.key or '?'}; " \
           f"range {form.range} semitones"
    if reading.copied is not None:
        copied = reading.copied
        line += f"; longest run shared with the corpus: {copied.bars:g} bars" + \
            (f" (tune {copied.tune})" if copied.tune is not None else "")
    return line


def summary(reading: Reading) -> dict:
    """One tune's form as plain data (for the app and its API): parts x bars, repeats, the ending, the
    range, the copied run (None where no corpus index was at hand)."""
    form, copied = reading.form, reading.copied
    return {"layout": form.layout, "parts": [part.bars for part in form.parts],
            "repeated": [part.repeated for part in form.parts], "endings": any(p.endings for p in form.parts),
            "key": form.key, "ends_on": form.degree, "ends_on_tonic": form.ends_on_tonic, "range": form.range,
            "copied_bars": None if copied is None else copied.bars,
            "copied_tune": None if copied is None else copied.tune}
