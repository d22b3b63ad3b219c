"""Tests for charrnn.folk and `charrnn folk`: conditioning, seeds, clear errors, candidates, end to end.

The model is tiny and trained in seconds on a few hand-written tunes: enough for the pipeline, not for
quality. Each tune is one line of music, so that even this model learns where a tune ends.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from folk_tunes import train_tiny_folk

from charrnn.cli import main
from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.folk.check import Finding, TuneReport, check_tune
from charrnn.folk.generate import (
    MAX_REJECTED_LINES,
    Conditions,
    FolkModel,
    FolkTune,
    agreeing_title,
    choose,
    conditions,
    title_type,
)
from charrnn.models.rnn import CharRNN, ModelConfig
from charrnn.runfile import CorpusInfo, RunFile

from conftest import REPO

# Hand-written for these tests; not tunes from any collection.
TUNES = (
    "T:The Test Reel\nR:reel\nM:4/4\nL:1/8\nK:D\n|:A2FA dAFA|B2GB dBGB|A2FA d2fe|1 dBAF D4:|2 dBAF D2de||",
    "T:Jig for Testing\nR:jig\nM:6/8\nL:1/8\nK:G\n|:GAB dBG|AGA BGE|GAB dBd|edB A3:|",
    "T:A Made-up Waltz\nR:waltz\nM:3/4\nL:1/8\nK:Ador\n|:A2 c2 e2|d2 B2 G2|A2 B2 G2|A6:|",
    "T:Slip Jig Trial\nR:slip jig\nM:9/8\nL:1/8\nK:Em\n|:E2B B2A BAG|F2A A2G AFD|FAF DEF E3:|",
    "T:Hornpipe Attempt\nR:hornpipe\nM:4/4\nL:1/8\nK:Gmix\n|:d>c|B>GA>F G2 B>d|c>AB>G A2 d>c|d>fe>c d2:|",
    "T:Two Four Test\nR:reel\nM:2/4\nL:1/16\nK:Bb\n|:B2dB F2dB|c2ec A2ec|c2A2 B4:|",
)
JIG = "|:GAB dBG|AGA BGE|GAB dBd|edB A3:|\n"  # the whole jig: the model has only to end it


@pytest.fixture(scope="module")
def folk_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_folk(tmp_path_factory.mktemp("folk"), TUNES, 60)


@pytest.fixture(scope="module")
def folk(folk_run: Path) -> FolkModel:
    return FolkModel.load(folk_run)


def test_the_training_tunes_pass_the_checks() -> None:
    assert all(check_tune(f"X:1\n{tune}").passed for tune in TUNES)


# ---- choices --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "chosen"),
    [
        (("6/8", "D mixolydian", "Jig"), Conditions("6/8", "Dmix", "1/8", "jig")),
        (("C", "E minor"), Conditions("4/4", "Em", "1/8")),
        (("C|", "A Dorian", "slip-jig"), Conditions("2/2", "Ador", "1/8", "slip jig")),
        (("2/4", "Bb"), Conditions("2/4", "Bb", "1/16")),  # what the folk corpus mostly writes in 2/4
        (("2/4", "bb", None, "|:B2dB", "1/8"), Conditions("2/4", "Bb", "1/8", None, "|:B2dB")),
        (("9/8", "Gmaj", "Double Jig"), Conditions("9/8", "G", "1/8", "jig")),
    ],
)
def test_choices_are_spelled_as_the_corpus_spells_them(args: tuple, chosen: Conditions) -> None:
    assert conditions(*args) == chosen


def test_the_forced_header() -> None:
    assert Conditions("6/8", "Dmix", "1/8", "jig", "|:A").header() == "R:jig\nM:6/8\nL:1/8\nK:Dmix\n|:A"
    assert Conditions("4/4", "D", "1/8").header() == "M:4/4\nL:1/8\nK:D\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"meter": "7/5"}, r"^unknown meter '7/5': give a time signature such as 4/4, 2/2, 6/8"),
        ({"meter": "jig"}, "^unknown meter 'jig'"),
        ({"meter": "2+3/8"}, "^unknown meter"),
        ({"key": "H"}, r"^unknown key 'H': give a tonic A-G .* the modes are major, minor, dorian"),
        ({"key": "D major seventh"}, "^unknown key"),
        ({"tune_type": "tango"}, r"^unknown tune type 'tango': the folk corpus has reel, jig, hornpipe, slip jig"),
        ({"unit": "1/3"}, r"^unit note length '1/3' is not one of 1/1, 1/2, 1/4, 1/8, 1/16, 1/32$"),
        ({"start": "|:GAB dBG|\n\nX:2"}, "^the first bars must be music only"),
        ({"start": "K:D\nGAB"}, "^the first bars must be music only"),
    ],
)
def test_bad_choices_get_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(CharRNNError, match=message):
        conditions(**kwargs)


# ---- generation -----------------------------------------------------------------------------------------


def test_the_chosen_header_is_in_the_tune_exactly(folk: FolkModel) -> None:
    tune = folk.generate("6/8", "G major", "jig", start="|:GAB", seed=3)
    lines = tune.abc.split("\n")
    assert lines[0] == "X:1" and lines[1].startswith("T:")
    assert lines[2:6] == ["R:jig", "M:6/8", "L:1/8", "K:G"] and lines[6].startswith("|:GAB")
    assert tune.report.headers["K"] == "G" and tune.seed == 3 and tune.candidates == 1

    titled = folk.generate("3/4", "A dorian", title="A Test Waltz", seed=3)
    assert titled.abc.split("\n")[:5] == ["X:1", "T:A Test Waltz", "M:3/4", "L:1/8", "K:Ador"]


def test_a_tune_ends_at_the_blank_line_and_passes(folk: FolkModel) -> None:
    tune = folk.generate("6/8", "G", "jig", JIG, title="Ended", temperature=0.5, seed=1)
    assert tune.abc == f"X:1\nT:Ended\nR:jig\nM:6/8\nL:1/8\nK:G\n{JIG.rstrip()}"
    assert tune.ended and tune.passed and tune.report.bars == 4 and tune.logprob < 0


def test_same_seed_same_tune(folk: FolkModel) -> None:
    def write(seed: int):
        return folk.generate("4/4", "D", "reel", seed=seed, temperature=1.0)

    first, again = write(11), write(11)
    assert (first.abc, first.logprob, first.report) == (again.abc, again.logprob, again.report)
    assert len({write(seed).abc for seed in range(4)}) > 1


def test_the_length_limit_leaves_a_tune_unfinished(folk: FolkModel) -> None:
    tune = folk.generate("6/8", "G", "jig", seed=0, max_chars=3)
    assert not tune.ended and not tune.passed and len(tune.abc.split("K:G\n")[1]) == 3


def test_candidates_keep_the_likeliest_that_passes(folk: FolkModel) -> None:
    choices = {"meter": "6/8", "key": "G", "tune_type": "jig", "temperature": 1.0}
    singles = [folk.generate(**choices, seed=seed) for seed in range(20, 26)]
    best = folk.generate(**choices, seed=20, candidates=6)
    expected = max(singles, key=lambda tune: (tune.passed, not tune.copies, tune.form_score(), tune.logprob))
    assert (best.abc, best.seed, best.logprob, best.candidates) == (expected.abc, expected.seed, expected.logprob, 6)


def test_choose_keeps_the_likeliest_that_passes() -> None:
    passes, fails = check_tune(f"X:1\n{TUNES[1]}"), check_tune("X:1\nM:6/8\nL:1/8\nK:G\n|:GAB dBG|")
    written = [FolkTune("fails, likeliest", fails, 0, True, -0.1, 0.0),
               FolkTune("passes", passes, 1, True, -0.9, 0.0),
               FolkTune("passes, likelier", passes, 2, True, -0.5, 0.0),
               FolkTune("passes, but unfinished", passes, 3, False, -0.2, 0.0),
               FolkTune("passes, as likely but later", passes, 4, True, -0.5, 0.0)]
    assert choose(written).abc == "passes, likelier"
    assert choose(written[3:4]).abc == "passes, but unfinished"  # none passes: the likeliest of all
    assert choose([written[0], written[3]]).abc == "fails, likeliest"
    with pytest.raises(CharRNNError, match="^there is no candidate tune to choose from$"):
        choose([])


# ---- guided sampling ------------------------------------------------------------------------------------


def _checks_that_fail(times: int) -> Callable[[str], TuneReport]:
    """A stand-in for check_tune: the first `times` calls find a bad bar 1, later ones find nothing."""
    calls = []

    def check(abc: str) -> TuneReport:
        calls.append(abc)
        findings = (Finding("bar-duration", "made up", 1),) if len(calls) <= times else ()
        return TuneReport(findings, {}, None, None, 4, 1)

    return check


def test_a_line_that_fails_the_checks_is_drawn_again(folk: FolkModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("charrnn.folk.generate.check_tune", _checks_that_fail(3))
    tune = folk.generate("6/8", "G", "jig", temperature=1.0, seed=2)
    assert tune.redrawn == 3 and tune.ended and tune.passed


def test_guiding_gives_up_after_max_rejected_lines(folk: FolkModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("charrnn.folk.generate.check_tune", _checks_that_fail(10**9))
    tune = folk.generate("6/8", "G", "jig", temperature=1.0, seed=2)
    assert tune.redrawn == MAX_REJECTED_LINES and not tune.passed


def test_unguided_and_greedy_tunes_redraw_nothing(folk: FolkModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("charrnn.folk.generate.check_tune", _checks_that_fail(10**9))
    assert folk.generate("6/8", "G", "jig", temperature=1.0, seed=2, guided=False).redrawn == 0
    assert folk.generate("6/8", "G", "jig", temperature=0, seed=2).redrawn == 0


def _first_music_line(tune: FolkTune) -> str:
    return tune.abc.split("\nK:", 1)[1].split("\n")[1]


@pytest.mark.parametrize(("fault_in", "first_line_kept"), [("first line", False), ("second line", True)])
def test_a_fault_is_redrawn_from_the_line_that_holds_it(monkeypatch: pytest.MonkeyPatch, fault_in: str,
                                                        first_line_kept: bool) -> None:
    """The check after the second line reports a bad bar: in the first line, both lines are drawn again;
    in the second, the first line stays as the model wrote it."""
    shipped = FolkModel.load(REPO / "models" / "folk")
    choices = {"meter": "4/4", "key": "D", "tune_type": "reel", "temperature": 1.0, "seed": 3}
    unguided = shipped.generate(**choices, guided=False)
    calls = []

    def check(abc: str) -> TuneReport:
        report = check_tune(abc)
        calls.append(report.bars)
        if len(calls) == 2:
            bar = 1 if fault_in == "first line" else report.bars
            return dataclasses.replace(report, findings=(Finding("bar-duration", "made up", bar),))
        return dataclasses.replace(report, findings=())

    monkeypatch.setattr("charrnn.folk.generate.check_tune", check)
    guided = shipped.generate(**choices)
    assert guided.redrawn == 1 and calls[0] < calls[1]  # the fault came after a second line of bars
    assert (_first_music_line(guided) == _first_music_line(unguided)) == first_line_kept


def test_the_shipped_model_passes_more_often_guided() -> None:
    """Sampled at temperature 1.0: guided, every line is the model's own draw, so where no line had to be
    drawn again the tune is the unguided tune of the same seed."""
    shipped = FolkModel.load(REPO / "models" / "folk")
    choices = {"meter": "4/4", "key": "D", "tune_type": "reel", "temperature": 1.0}
    guided = [shipped.generate(**choices, seed=seed) for seed in range(8)]
    unguided = [shipped.generate(**choices, seed=seed, guided=False) for seed in range(8)]
    assert all(tune.passed for tune in guided)
    assert sum(tune.passed for tune in unguided) < len(unguided)
    assert all(g.abc == u.abc for g, u in zip(guided, unguided, strict=True) if g.redrawn == 0)
    assert any(g.redrawn == 0 for g in guided) and any(g.redrawn > 0 for g in guided)


@pytest.mark.parametrize(("title", "tune_type", "agreeing"), [
    ("LANIGAN'S BALL -- REEL", "jig", "LANIGAN'S BALL -- JIG"),
    ("Minstrel's Fancy -- Clog", "slip jig", "Minstrel's Fancy -- Slip Jig"),
    ("The Old -- HIGHLAND FLING.", "reel", "The Old -- REEL."),
    ("Corks Lasses -- Jig", "jig", "Corks Lasses -- Jig"),
    ("Corks Lasses -- hornpipe, THE", "reel", "Corks Lasses -- reel, THE"),
    ("Corks Lasses -- Jig", None, "Corks Lasses"),
    ("CARRY THE NEWS -- TO MARY.", "jig", "CARRY THE NEWS -- TO MARY."),  # a subtitle, not a type
    ("Rocky Road to Dublin", "jig", "Rocky Road to Dublin"),
])
def test_a_titles_type_suffix_names_the_tunes_type(title: str, tune_type: str | None, agreeing: str) -> None:
    assert agreeing_title(title, tune_type) == agreeing
    named = title_type(agreeing)
    assert (named[2] if named else None) in (tune_type, None)


def test_the_shipped_models_titles_agree_with_the_type_and_never_begin_with_a_bar() -> None:
    """The shipped model, left alone, titles most jigs "... -- Reel" or "... -- Hornpipe" (bench_folk --titles)."""
    shipped, barred = FolkModel.load(REPO / "models" / "folk"), FolkModel.load(REPO / "models" / "folk")
    with torch.no_grad():  # a model that would begin every title (and line) with a bar line
        barred.model.head.bias[barred.vocab.index["|"]] += 30.0
    titles = [barred.generate("6/8", "D", "jig", seed=seed, max_chars=1, guided=False).abc.split("\n")[1]
              for seed in range(3)]
    assert all(title.startswith("T:") and not title.startswith("T:|") for title in titles)
    named = [title_type(shipped.generate("6/8", "D", "jig", seed=seed, max_chars=1, guided=False).abc.split("\n")[1])
             for seed in range(12)]
    assert sum(n is not None for n in named) >= 3 and all(n[2] == "jig" for n in named if n)


def test_what_the_model_cannot_write_is_refused(folk: FolkModel) -> None:
    with pytest.raises(CharRNNError, match=r"^this model cannot write the key 'K:F#m': it never saw '#'$"):
        folk.generate("4/4", "F# minor")
    with pytest.raises(CharRNNError, match=r"^this model cannot write the first bars '\{g\}A': it never saw '\{\}'$"):
        folk.generate("6/8", "G", start="{g}A")
    with pytest.raises(CharRNNError, match="^this model cannot write the title 'Caf\u00e9'"):
        folk.generate("6/8", "G", title="Caf\u00e9")
    with pytest.raises(CharRNNError, match="^the title must be one line$"):
        folk.generate("6/8", "G", title="Two\nlines")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"candidates": 0}, "^candidates must be between 1 and 100; got 0$"),
     ({"temperature": -1.0}, "^temperature must be a number >= 0"),
     ({"max_chars": 0}, "^the length limit must be between 1 and 1,000,000 characters; got 0$")],
)
def test_bad_sampling_settings(folk: FolkModel, kwargs: dict, message: str) -> None:
    with pytest.raises(CharRNNError, match=message):
        folk.generate("6/8", "G", seed=0, **kwargs)


def test_a_model_that_cannot_write_abc_is_refused() -> None:
    vocab = Vocab(list(" abcdefghijklmnopqrstuvwxyz\n"))
    model = CharRNN(ModelConfig(len(vocab), hidden=8, embed=4)).eval()
    with pytest.raises(CharRNNError, match=r"^runs/poems is not a folk model: it was trained on shakespeare, and its "
                                           r"vocabulary lacks 'X:1TMLK/\|', which ABC needs; train one with "):
        FolkModel(model, vocab, RunFile("lm", model.cfg.to_dict(), vocab.chars,
                                        corpus=CorpusInfo("shakespeare", "s.txt", "0" * 64, 1)), name="runs/poems")


# ---- the command line -----------------------------------------------------------------------------------


def test_cli_prints_the_tune_and_the_verdict(folk_run: Path, capsys: pytest.CaptureFixture) -> None:
    threads = torch.get_num_threads()
    try:
        code = main(["folk", str(folk_run), "--meter", "6/8", "--key", "G", "--type", "jig", "--start", JIG,
                     "--title", "Trial", "--seed", "7"])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert code == 0 and out == f"X:1\nT:Trial\nR:jig\nM:6/8\nL:1/8\nK:G\n{JIG}"
    # The jig is one repeated part of 4 bars ending on A, the second degree of G; this model has no corpus index.
    assert err.startswith("[seed 7, ") and err.endswith(": passed the checks; AA 4; ends on 2 of G; range 12 "
                                                        "semitones]\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--key", "H"], "charrnn: error: unknown key 'H'"),
     (["--max-chars", "2", "--seed", "5"], "charrnn: error: the tune (seed 5, "),
     (["--key", "F#m"], "charrnn: error: this model cannot write the key 'K:F#m'")],
)
def test_cli_errors_are_one_line(folk_run: Path, capsys: pytest.CaptureFixture, args: list, message: str) -> None:
    threads = torch.get_num_threads()
    try:
        assert main(["folk", str(folk_run), *args]) == 1
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.slow
def test_cli_writes_abc_midi_wav_and_svg(folk_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("verovio")
    out = {suffix: tmp_path / f"tune.{suffix}" for suffix in ("abc", "mid", "wav", "svg")}
    result = subprocess.run(
        [sys.executable, "-m", "charrnn", "folk", str(folk_run), "--meter", "6/8", "--key", "G", "--type", "jig",
         "--start", JIG, "--seed", "7", "--tempo", "90", "--out", str(out["abc"]), "--midi", str(out["mid"]),
         "--wav", str(out["wav"]), "--svg", str(out["svg"])],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "passed the checks" in result.stderr
    abc = out["abc"].read_text(encoding="utf-8")
    assert abc.endswith(f"R:jig\nM:6/8\nL:1/8\nK:G\n{JIG}") and check_tune(abc).passed
    assert out["mid"].read_bytes()[:4] == b"MThd"
    with wave.open(str(out["wav"])) as wav:
        assert wav.getnframes() / wav.getframerate() == 8 * 3 * 60 / 90  # 4 bars of 6/8, repeated, at 90
    notes = [e for e in ET.fromstring(out["svg"].read_text(encoding="utf-8")).iter() if e.get("class") == "note"]
    assert len(notes) == len(re.findall("[A-Ga-g]", JIG))


# ---- charrnn folk check ---------------------------------------------------------------------------------


def _folk_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charrnn", "folk", "check", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_folk_check_a_clean_file_prints_one_summary_line(tmp_path: Path) -> None:
    path = tmp_path / "clean.abc"
    path.write_text("\n\n".join(f"X:{i + 1}\n{tune}" for i, tune in enumerate(TUNES)) + "\n", encoding="utf-8")
    result = _folk_check(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: 6 tunes checked, 0 errors, 0 warnings\n"


def test_folk_check_prints_each_finding_on_a_line_and_fails_on_errors(tmp_path: Path) -> None:
    path = tmp_path / "faulty.abc"
    path.write_text(f"X:1\n{TUNES[1]}\n\nX:2\nT:Long Bar\nM:2/4\nK:D\nDE FG|A2 A2 B2|A4|]\n\n"
                    "X:3\nT:Tied Apart\nM:2/4\nL:1/8\nK:D\nDE FA-|G2 A2|]\n", encoding="utf-8")
    result = _folk_check(path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: tune 2 (Long Bar): header: warning: the header has no L: field, so the unit is 1/16 by the "
        "ABC default [missing-header]",
        f"{path}: tune 2 (Long Bar): bar 2: error: bar 2 lasts 3/8, the meter 2/4 needs 2/4 [bar-duration]",
        f"{path}: tune 3 (Tied Apart): bar 1: error: the tie in bar 1 joins A to G2, a note of another pitch [bad-tie]",
        f"{path}: 3 tunes checked, 2 errors, 1 warning",
    ]


def test_folk_check_an_unreadable_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "latin1.abc").write_bytes(b"X:1\nT:Caf\xe9\nM:2/4\nL:1/8\nK:D\nDE FG|\n")
    for path in (tmp_path / "missing.abc", tmp_path / "latin1.abc"):
        result = _folk_check(path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith("charrnn: error: ") and result.stderr.count("\n") == 1
