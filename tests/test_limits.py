"""serve/limits.py: each request bound defined once, applied by the service and shown by the page's sliders."""

from __future__ import annotations

import math

import pytest

from charrnn.serve import limits
from charrnn.serve.limits import Range

from conftest import REPO


@pytest.mark.parametrize(("value", "expected"), [(7, 7), (0, 1), (99, 10), (None, 3), ("x", 3), (math.nan, 3),
                                                 ("4", 4), (2.6, 3)])
def test_a_range_clamps_and_defaults(value, expected):
    assert Range(1, 10, 3).clamp_int(value) == expected


def test_the_page_sliders_are_the_limits(tmp_path):
    """The tabs size their sliders by the same Range the service clamps to (the Train tab's budget, once)."""
    import app
    from charrnn.web.app import build

    args = app.parse_args(["--models", str(REPO / "models"), "--runs", str(tmp_path / "runs")])
    args.credentials = []
    demo, _, _ = build(args)
    sliders = {}
    for c in demo.get_config_file()["components"]:
        if c.get("type") == "slider":
            props = c["props"]
            sliders.setdefault(props["label"], []).append((props["minimum"], props["maximum"], props["value"]))
    bound = {"Length (characters)": limits.LENGTH, "Longest completion": limits.COMPLETION_LENGTH,
             "Candidates": limits.FOLK_CANDIDATES, "Tempo (quarter notes a minute)": limits.TEMPO,
             "Pronunciations per word": limits.PRONOUNCE_NUM, "Time budget (seconds)": limits.BUDGET_S,
             "Top-p": limits.TOP_P}
    for label, r in bound.items():
        assert sliders[label] == [(r.lo, r.hi, r.default)], label
    assert sorted(sliders["Beam width"]) == sorted([(r.lo, r.hi, r.default) for r in (limits.BEAM,
                                                                                       limits.PRONOUNCE_BEAM)])
    assert sorted(sliders["Temperature"]) == sorted([(r.lo, r.hi, r.default) for r in (limits.TEMPERATURE,
                                                                                        limits.FOLK_TEMPERATURE)])
