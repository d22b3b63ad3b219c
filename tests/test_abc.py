"""Tests for the ABC tune checker in charrnn.folk.check (all tunes here are written for these tests)."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.folk import check as abc
from charrnn.folk.check import Finding, TuneReport, check_tune, split_tunes
from charrnn.folk.reader import is_compound

KINDS = {
    "missing-header",
    "header-order",
    "bad-meter",
    "bad-length",
    "bar-duration",
    "unbalanced-repeat",
    "stray-ending",
    "unclosed-bracket",
    "unclosed-chord",
    "bad-tuplet",
    "empty-body",
    "bad-symbol",
    "bad-tie",
    "parse-error",
}


def tune(body: str, meter: str = "4/4", unit: str | None = "1/8", key: str = "D") -> str:
    """A tune with a standard header around body."""
    length = f"L:{unit}\n" if unit else ""
    return f"X:1\nT:Test\nM:{meter}\n{length}K:{key}\n{body}\n"


def errors(report: TuneReport) -> list[Finding]:
    """The findings that fail a tune."""
    return [f for f in report.findings if f.severity == "error"]


def kinds(report: TuneReport) -> set[str]:
    """The kinds of the error findings."""
    return {f.kind for f in errors(report)}


REEL = """X:1
T:Test Reel
R:reel
M:4/4
L:1/8
K:D
|:D2FA dAFA|BAGB ABde|fdec dBAF|GBAG FDEF|
D2FA dAFA|BAGB ABde|fdec dBAF|GEFD D4:|
|:d2fd adfd|gfed cBAF|d2fd adfd|gfec d4|
d2fd adfd|gfed cBAG|FGAB cdef|gfec d4:|
"""

JIG = """X:2
T:Test Jig
R:jig
M:6/8
L:1/8
K:G
D|:GBd gdB|cec BAG|FAd fed|cBA BAG|
GBd gdB|cec BAG|FAd cBA|1 G3 G2D:|2 G3 G2||
|:B|dgg gfg|ecc c2B|dBG GAB|cAF D2B|
dgg gfg|ecc c2e|dBG AFD|G3 G2:|
"""

WALTZ = """X:3
T:Test Waltz
R:waltz
M:3/4
L:1/4
K:C
C E G|c2 B|A F A|G3|E G c|e2 d|c G E|C3|]
"""

SLIP_JIG = """X:4
T:Test Slip Jig
R:slip jig
M:9/8
L:1/8
K:Ador
|:A2B c2d e2d|c2A B2G A3|A2B c2d e2g|f2d e2c A3:|
|:a2g e2d c2d|e2c d2B G3|a2g e2d c2B|A2G E2D A3:|
"""

HORNPIPE = """X:5
T:Test Hornpipe
R:hornpipe
M:C|
L:1/8
K:D
A>G|F>AD>F A>dF>A|(3Bcd e>d c>A (3ABc|d>fe>d c<ec>A|d2f2 d2:|
"""

# Decorations, chord symbols, chords, grace notes, ties, accidentals, octaves, a general tuplet,
# old-style decorations and comments, all in bars that add up.
ORNATE = r"""X:6
T:Test Ornaments
M:2/4
L:1/16
K:G
"G"!trill!G4 ~B2d2|{a}g2-g2 .f2e2|[DG]4 [CEG]2z2|(3:2:3c2d2e2 ^f2=f2| % a comment
Tg//a//b/ c'2 a,4 B,,|+fermata+[G,B,D]8|"Am"[A,2C2E2]2 H[A,CE]3/2 x/2 A,2 \
|[K:Em][L:1/8]E>F G<A|]
"""

WELL_FORMED = {"reel": REEL, "jig": JIG, "waltz": WALTZ, "slip jig": SLIP_JIG, "hornpipe": HORNPIPE, "ornate": ORNATE}


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_tunes_pass(name: str) -> None:
    report = check_tune(WELL_FORMED[name])
    assert report.findings == ()
    assert report.passed


def test_reel_report_fields() -> None:
    report = check_tune(REEL)
    assert report.headers == {"X": "1", "T": "Test Reel", "R": "reel", "M": "4/4", "L": "1/8", "K": "D"}
    assert report.meter == Fraction(1)
    assert report.unit == Fraction(1, 8)
    assert (report.bars, report.parts) == (16, 2)


def test_jig_counts_pickups_and_both_endings_as_bars_and_two_parts() -> None:
    report = check_tune(JIG)
    assert report.meter == Fraction(3, 4)
    # Part one: pickup, 7 bars, first and second ending; part two: pickup and 8 bars.
    assert (report.bars, report.parts) == (19, 2)


@pytest.mark.parametrize(
    ("text", "meter", "unit", "bars", "parts"),
    [
        (WALTZ, Fraction(3, 4), Fraction(1, 4), 8, 1),
        (SLIP_JIG, Fraction(9, 8), Fraction(1, 8), 8, 2),
        (HORNPIPE, Fraction(1), Fraction(1, 8), 5, 1),
    ],
)
def test_report_structure(text: str, meter: Fraction, unit: Fraction, bars: int, parts: int) -> None:
    report = check_tune(text)
    assert (report.meter, report.unit, report.bars, report.parts) == (meter, unit, bars, parts)


def test_a_full_second_ending_belongs_to_its_part() -> None:
    body = "|:DEFG ABcd|1 ABcd e4:|2 ABcd d4||\n|:dcBA GFED|dcBA D4:|"
    assert check_tune(tune(body)).parts == 2


def test_part_markers_count_parts() -> None:
    body = "P:A\n|:DEFG ABcd:|\n|:ABcd efga:|\nP:B\n|:dcBA GFED:|\nP:A\n"
    assert check_tune(tune(body)).parts == 2


@pytest.mark.parametrize(
    "body",
    [
        "DEFG ABcd||\\\n:ABcd efga|dcBA D4:|",  # "||" and ":" on two lines make "||:"
        "|:DEFG ABcd|ABcd e4:\n|dcBA GFED|dcBA D4|]",  # ":" and "|" on two lines make ":|"
        "|:DEFG ABcd|ABcd e4|:|",  # a final |:| ends the repeat
        "|:DEFG ABcd|ABcd e4::dcBA GFED|dcBA D4:|",
        "|:DEFG ABcd|ABcd e3\nA:|",  # a line "A:|" is music, not a field
    ],
)
def test_repeat_signs_written_loosely_balance(body: str) -> None:
    report = check_tune(tune(body))
    assert report.passed, report.findings


def test_missing_unit_is_a_warning_and_uses_the_abc_default() -> None:
    report = check_tune(tune("DEFG ABcd|dcBA GFED|", meter="2/4", unit=None))
    assert report.passed
    assert report.unit == Fraction(1, 16)
    assert [(f.kind, f.severity) for f in report.findings] == [("missing-header", "warning")]
    assert check_tune(tune("DEF GAB|", meter="6/8", unit=None)).unit == Fraction(1, 8)


@pytest.mark.parametrize(
    ("meter", "value"),
    [("C", 1), ("C|", 1), ("2/4", Fraction(1, 2)), ("2+3/8", Fraction(5, 8)), ("12/8", Fraction(3, 2))],
)
def test_meters_parse(meter: str, value: Fraction) -> None:
    assert check_tune(tune("z8", meter=meter, unit="1/1")).meter == value


@pytest.mark.parametrize(("meter", "compound"), [("6/8", True), ("9/8", True), ("12/8", True), ("(3+3)/8", True),
                                                ("3/4", False), ("C", False), ("C|", False), ("2+3/8", False),
                                                ("none", False), ("junk", False), (None, False)])
def test_is_compound(meter: str | None, compound: bool) -> None:
    assert is_compound(meter) is compound


def test_free_meter_checks_no_bar_durations() -> None:
    report = check_tune(tune("DEF|GABcd|e", meter="none"))
    assert report.passed
    assert report.meter is None


def test_inline_and_body_meter_changes_set_the_expected_bar_length() -> None:
    assert check_tune(tune("DEFG ABcd|[M:3/4]DEF GAB|\nM:2/4\nDEFG|ABcd|]")).passed
    report = check_tune(tune("DEFG ABcd|[M:3/4]DEFG ABcd|DEF GAB|]"))
    assert [f.message for f in errors(report)] == ["bar 2 lasts 4/4, the meter 3/4 needs 3/4"]


@pytest.mark.parametrize(
    ("body", "bars"),
    [
        ("D2|DEFG ABcd|ABcd efge|d6|]", 4),  # a pickup and a short last bar
        ("|:DEFG ABcd|ABcd e2:|\n|:AB|dcBA GFED|ABcd e4:|", 5),  # the second part's pickup completes bar 2
        ("|:DEFG ABcd|ABcd e2::AB|dcBA GFED|ABcd e4:|", 5),  # the same within a line
        ("A2|:DEFG ABcd|ABcd e2:|\n|:dcBA GFED|ABcd e4:|", 5),  # the repeat returns to the pickup
        ("DEFG ABcd|ABcd e2|\nAB|cdef gfed|", 4),  # a line-initial pickup completes the short bar above
        ("|:DEFG ABcd|ABcd [1 e4:| [2 d4||DEFG ABcd|]", 4),  # endings that start mid-bar
        ("DEFG ABcd|Z4|ABcd efga|", 6),  # a multi-bar rest counts its bars
        # An end repeat with no |: returns to the last double bar, where a pickup completes its bar.
        ("DEFG ABcd|ABcd e4||AB|cdef gfed|cdef g2:|\n|:dcBA GFED|dcBA D4:|", 7),
        ("DEFG ABcd & D8|ABcd e4 & A4 A4|]", 2),  # a voice overlay lasts as long as its bar
    ],
)
def test_legitimately_short_bars_pass(body: str, bars: int) -> None:
    report = check_tune(tune(body))
    assert report.passed, report.findings
    assert report.bars == bars


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("DEFG ABcd|DEFG ABc|DEFG ABcd|DEFG ABcd|]", "bar 2 lasts 7/8, the meter 4/4 needs 4/4"),
        ("DEFG ABcd|DEFG ABcde|DEFG ABcd|]", "bar 2 lasts 9/8, the meter 4/4 needs 4/4"),
        ("DEFG ABcd|D>EF>G A>Bc>d e|d8|]", "bar 2 lasts 9/8, the meter 4/4 needs 4/4"),
        ("DEFG ABcd|(3DEF (3GAB (3cde f|d8|]", "bar 2 lasts 7/8, the meter 4/4 needs 4/4"),
        ("DEFG ABcd|ABcd e4 & A4 A3|d8|]", "an overlay in bar 2 lasts 7/8, the bar 4/4"),
        # A short end of part that no pickup completes.
        ("|:DEFG ABcd|ABcd e2:|\n|:dcBA GFED|ABcd e4:|", "bar 2 lasts 3/4, the meter 4/4 needs 4/4"),
    ],
)
def test_wrong_bar_durations_fail(body: str, message: str) -> None:
    report = check_tune(tune(body))
    assert [(f.kind, f.message) for f in errors(report)] == [("bar-duration", message)]
    assert errors(report)[0].bar == 2


@pytest.mark.parametrize(
    "body",
    ["A4-A4|c4 c4-|c4 [CE]2-[CE]2|", "^c4-c4|F4-F4|", "[A-c]4 A4|c8-|\nc8|", "A4-(3A2B2c2|"],
)
def test_ties_between_notes_of_one_pitch_pass(body: str) -> None:
    report = check_tune(tune(body, key="D"))  # F and ^F are one pitch in D
    assert report.passed, report.findings


@pytest.mark.parametrize(
    ("body", "message"),
    [("DEFG AB-cd|", "the tie in bar 1 joins B to c, a note of another pitch"),
     ("DEFG ABc-|=c8|", "the tie in bar 1 joins c to =c8, a note of another pitch"),  # c is C# in D
     ("DEFG AB[CE]2-|[DF]8|", "the tie in bar 1 joins [CE]2 to [DF]8, a note of another pitch")],
)
def test_a_tie_between_two_pitches_is_an_error(body: str, message: str) -> None:
    report = check_tune(tune(body, key="D"))
    assert [(f.kind, f.message, f.bar) for f in errors(report)] == [("bad-tie", message, 1)]


def test_jig_bar_messages_use_eighths() -> None:
    report = check_tune(tune("DEF GAB|DEF GABc|DEF GAB|]", meter="6/8"))
    assert [f.message for f in errors(report)] == ["bar 2 lasts 7/8, the meter 6/8 needs 6/8"]


@pytest.mark.parametrize(
    ("body", "meter"),
    [
        ("A2 A/2A/ A//A//A/ A3/2A/2 A2|", "4/4"),  # length forms
        ("(3:2:3A2B2c2 (5ABcde|", "3/4"),  # general tuplet; (5 in simple meter is 5 in 2
        ("(5ABcde fgB|", "6/8"),  # (5 in compound meter is 5 in 3
        ("(2AB (4ABcd|", "6/8"),  # (2 in the time of 3, (4 in the time of 3
        ("(2AB C|", "4/8"),  # (2 in the time of 3 in simple meter too
        ("A>>B A<<B A>>>B A<<<B|", "4/4"),
        ("A2>>B4 A2>>B4|", "9/8"),  # 7/4 and 1/4 of each note
        ("A4>>>B8 A4>>>B8|", "17/8"),  # 15/8 and 1/8
        ("A{Bc}B ^A_B=c^^d __e|", "7/8"),
        ("[CEG] [C2E2G2] [CEG]2 [C/E/]2|", "6/8"),
        ("[C2E] [CE2] [C/E2]3|", "9/16"),  # a chord lasts as long as its first note
        ('"Am"A "^text"B !mf!c +trill+d|', "4/8"),
    ],
)
def test_note_lengths(body: str, meter: str) -> None:
    # The middle bar of three is neither a pickup nor a last bar, so it must fill the meter exactly.
    report = check_tune(tune(body * 3, meter=meter))
    assert report.passed, report.findings
    assert report.bars == 3


# One bad tune for each kind of finding, with the number of the bar it is reported in.
BAD_TUNES = [
    ("missing-header", "T:No X\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|", None),
    ("missing-header", "X:1\nT:No K\nM:4/4\nL:1/8\nDEFG ABcd|", None),
    ("missing-header", "X:1\nT:No M\nL:1/8\nK:D\nDEFG ABcd|", None),
    ("header-order", "T:X second\nX:1\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|", None),
    ("header-order", "X:1\nT:K too late\nM:4/4\nDEFG ABcd|\nL:1/8\nK:D\nDEFG ABcd|", None),
    ("header-order", "X:1\nT:L after K\nM:4/4\nK:D\nL:1/8\nDEFG ABcd|", None),
    ("bad-meter", tune("DEFG|", meter="4/0"), None),
    ("bad-meter", tune("DEFG ABcd|[M:waltz]DEF|"), None),
    ("bad-length", tune("DEFG|", unit="eighth"), None),
    ("bad-length", tune("DEFG ABcd|DEFG ABc0d|"), 2),
    ("bad-length", tune("DEFG ABcd|DEFG ABc/////d|"), 2),
    ("bar-duration", tune("DEFG ABcd|DEFG ABc|DEFG ABcd|]"), 2),
    ("unbalanced-repeat", tune("|:DEFG ABcd|ABcd e4|]"), 1),
    ("unbalanced-repeat", tune("|:DEFG ABcd|:ABcd e4:|"), 2),
    ("stray-ending", tune("DEFG ABcd|[2 ABcd e4|]"), 2),
    ("stray-ending", tune("|:DEFG ABcd|1 ABcd e4|]"), 2),
    ("stray-ending", tune("|:DEFG ABcd|1 ABcd e4|2 ABcd e4|]"), 3),
    ("unclosed-bracket", tune("DEFG (ABcd|DEFG ABcd|]"), 1),
    ("unclosed-bracket", tune("DEFG ABcd|DEFG ABcd)|]"), 2),
    ("unclosed-bracket", tune("DEFG {ABcd|DEFG ABcd|]"), 1),
    ("unclosed-bracket", tune('"Am DEFG ABcd|DEFG ABcd|]'), 1),
    ("unclosed-bracket", tune("DEFG !trill ABcd|]"), 1),
    ("unclosed-bracket", tune("DEFG ABcd|[K:G DEFG ABcd|]"), 2),
    ("unclosed-chord", tune("DEFG ABcd|[DFA DEF ABcd|]"), 2),
    ("bad-tuplet", tune("DEFG ABcd|DEFG A(3Bc|]"), 2),
    ("bad-tuplet", tune("DEFG ABcd|(1DEFG ABcd|]"), 2),
    ("bad-tuplet", tune("DEFG ABcd|(3D(3EFG ABcd|]"), 2),
    ("empty-body", "X:1\nT:Header only\nM:4/4\nL:1/8\nK:D\n", None),
    ("empty-body", tune('"Am" !trill! |'), None),
    ("bad-symbol", tune("DEFG ABcd|DEFG #Bcd|]"), 2),
    ("bad-symbol", tune("DEFG ABcd|DEFG ABc>|d8|]"), 2),
    ("bad-symbol", tune("DEFG ABcd|DEFG ^ ABcd|]"), 2),
    ("bad-symbol", tune("DEFG ABcd|DEFG AB^=cd|]"), 2),  # music21 refuses it too
    ("bad-tie", tune("DEFG ABcd|DEFG AB-cd|]"), 2),
]


@pytest.mark.parametrize(("kind", "text", "bar"), BAD_TUNES)
def test_each_bad_tune_fails_with_its_kind(kind: str, text: str, bar: int | None) -> None:
    report = check_tune(text)
    assert not report.passed
    found = [f for f in errors(report) if f.kind == kind]
    assert found, report.findings
    if bar is not None:
        assert bar in [f.bar for f in found], found


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [(tune("|:DEFG ABcd|ABcd e4|"), {"unbalanced-repeat"}),  # a :| may still come
     (tune("|:DEFG ABcd|1 ABcd e4|"), {"unbalanced-repeat", "stray-ending"}),
     (tune("DEFG (ABcd|DEFG ABcd|"), {"unclosed-bracket"}),
     (tune("DEFG ABcd|DEFG A(3Bc"), {"bad-tuplet"}),
     (tune("DEFG ABcd|DEFG ABc|DEFG ABcd|"), set()),  # a short bar stays short whatever follows
     (tune("|:DEFG ABcd|:ABcd e4:|"), set())],
)
def test_unfinished_marks_what_more_music_could_close(text: str, unfinished: set) -> None:
    report = check_tune(text)
    assert not report.passed
    assert {f.kind for f in errors(report) if f.unfinished} == unfinished


def test_every_finding_kind_is_tested() -> None:
    assert {kind for kind, _, _ in BAD_TUNES} | {"parse-error"} == KINDS


def test_an_internal_failure_becomes_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, line: str) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(abc._Checker, "_music", broken)
    report = check_tune(REEL)
    assert [f.kind for f in report.findings] == ["parse-error"]
    assert "boom" in report.findings[0].message
    assert report.headers["T"] == "Test Reel"


def test_voices_are_checked_separately_and_the_first_gives_the_bars() -> None:
    body = "V:1\nDEFG ABcd|ABcd e4|]\nV:2\nD8|D4 D4|]\nV:1\nd8|]"
    report = check_tune(tune(body))
    assert report.passed
    assert report.bars == 3
    bad = check_tune(tune("V:1\nDEFG ABcd|]\nV:2\nD8|D7|D8|]"))
    assert [f.message for f in errors(bad)] == ["bar 2 of voice 2 lasts 7/8, the meter 4/4 needs 4/4"]


def test_findings_are_capped_per_kind() -> None:
    report = check_tune(tune("#" * 1000))
    assert 0 < len(report.findings) <= 25


def test_split_tunes() -> None:
    text = "% file header\n\nX:1\nT:One\nK:D\nDEF|\n\nfree text\n\nX:2\nT:Two\nK:G\nGAB|\nX:3\nK:C\nC|\n"
    tunes = split_tunes(text)
    assert [t.splitlines()[0] for t in tunes] == ["X:1", "X:2", "X:3"]
    assert tunes[0] == "X:1\nT:One\nK:D\nDEF|"
    assert split_tunes("T:No X\nK:D\nDEF|\n\nT:Again\nK:D\nABC|") == ["T:No X\nK:D\nDEF|", "T:Again\nK:D\nABC|"]
    assert split_tunes(REEL + "\n" + JIG) == [REEL.strip(), JIG.strip()]
    assert split_tunes("") == []


def test_folk_check_lists_findings_in_bar_order_and_a_late_meter_once(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "late.abc"  # M: after K:, a slur left open in bar 3 (found at the end), a short bar 2
    path.write_text("X:1\nT:t\nL:1/8\nK:D\nM:6/8\n|:ABc def|ABc de|(ABc def|ABc def:|\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-m", "charrnn", "folk", "check", str(path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 1 and not done.stderr, done.stderr
    places = [line.split(": ")[2] for line in done.stdout.splitlines()[:-1]]
    assert places == ["header", "bar 2", "bar 3"], done.stdout
    assert "M: comes after K:" in done.stdout and "no M: field" not in done.stdout


def test_large_junk_input_is_checked_in_linear_time() -> None:
    junk = ('(3[{!+"|:abc>>//9999([K:\n' * 12_000)[:300_000]
    started = time.perf_counter()
    report = check_tune(tune(junk))
    assert time.perf_counter() - started < 10
    assert not report.passed


# Fuzzing: whatever the text, check_tune returns a well-formed report.


def assert_well_formed(report: TuneReport) -> None:
    """The report's shape holds for any input."""
    assert isinstance(report, TuneReport)
    assert isinstance(report.passed, bool)
    assert report.bars >= 0 and report.parts >= 0
    for finding in report.findings:
        assert finding.kind in KINDS
        assert finding.severity in ("error", "warning")
        assert finding.bar is None or finding.bar >= 1
        assert finding.message
    assert "parse-error" not in {f.kind for f in report.findings}, report.findings
    bars = [-1 if f.bar is None else f.bar for f in report.findings]
    assert bars == sorted(bars), report.findings  # the header's findings, then bar by bar


ABC_ALPHABET = st.sampled_from(list("ABCDEFGabcdefgzxZ|:[]()1234/><{}!+\"'^_=,~.-&%\\ \nKLMPVXT"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_arbitrary_text(text: str) -> None:
    assert_well_formed(check_tune(text))
    for part in split_tunes(text):
        assert_well_formed(check_tune(part))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_binary_junk(data: bytes) -> None:
    assert_well_formed(check_tune(data.decode("latin-1")))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(JIG)), st.integers(0, 3), st.text(ABC_ALPHABET, max_size=4)), max_size=6))
def test_fuzz_mutated_tune(edits: list[tuple[int, int, str]]) -> None:
    text = JIG
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted :]
    assert_well_formed(check_tune(text))


@settings(max_examples=100, deadline=None)
@given(st.text(ABC_ALPHABET, max_size=300))
def test_fuzz_abc_like_body(body: str) -> None:
    assert_well_formed(check_tune(tune(body)))
