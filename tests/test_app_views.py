"""How the app shows its results (charrnn.web.views): statistics, completions, checks, sheet music, training."""

from __future__ import annotations

import dataclasses

import pytest

from charrnn.errors import CharRNNError
from charrnn.serve.service import NO_MODELS, FolkResult, Generation
from charrnn.web import views

FINDING = {"kind": "bar-length", "message": "bar 3 is 5/8 long, not 6/8", "bar": 3, "severity": "error"}


def tune(**changes) -> FolkResult:
    return dataclasses.replace(FolkResult("X:1\nT:T\nK:D\nabc|", "T", True, True, [], 1, 4, 0.5), **changes)


def test_notice_only_without_models():
    assert views.notice(True) == "" and views.notice(False) == f"**{NO_MODELS}**"


def test_generation_stats():
    going = views.generation_stats(Generation("ROMEO:abc", 3000, 1.5, 42, False))
    assert going == "generating: 3,000 characters in 1.50 s · **2,000 chars/s** · seed 42"
    done = views.generation_stats(Generation("The end", 4, 0.0, None, True, "beam width 4"))
    assert done == "done: 4 characters in 0.00 s · **0 chars/s** · beam width 4"


def test_completions_get_percentages_and_a_status_line():
    answer = {"text_len": 5, "tail": "To be", "ms": 12.4, "cache": "extend", "skipped": "☃",
              "completions": [{"text": "e", "prob": 0.764}, {"text": "ear", "prob": 0.0004}]}
    shown = views.completions(answer)
    assert [c["pct"] for c in shown["completions"]] == ["76.4%", "<0.1%"]
    assert shown["status"] == "2 completions in 12 ms · the model does not know '☃'"  # no "(extend)": cache jargon
    assert "pct" not in answer["completions"][0] and "status" not in answer  # the service's data is left as it was
    assert views.completions({**answer, "skipped": ""})["status"] == "2 completions in 12 ms"
    assert views.completions({**answer, "skipped": "", "cache": "result"})["status"] == (
        "2 completions in 12 ms · asked before, answered from memory")
    assert views.completions({**answer, "skipped": "", "learned_chars": 1280})["status"] == (
        "2 completions in 12 ms · learned from 1,280 characters of your text")


def test_findings_markdown():
    assert views.findings_markdown(tune()) == "**Passed every check.**"
    assert views.findings_markdown(tune(redrawn=2)).startswith(
        "**Passed every check.** (2 lines drawn again to get there.)")
    assert "(1 line drawn again" in views.findings_markdown(tune(redrawn=1))
    failed = views.findings_markdown(tune(passed=False, findings=[FINDING], message="Try another seed."))
    assert failed.splitlines() == ["**Fails the checks.** Try another seed.",
                                   "- ⚠️ `bar-length` (bar 3): bar 3 is 5/8 long, not 6/8"]
    many = views.findings_markdown(tune(passed=False, ended=False, findings=[FINDING] * 35))
    assert many.startswith("**Not finished**") and many.endswith("- … and 5 more")
    assert many.count("bar-length") == views.FINDINGS_SHOWN


def test_sheet_music_or_why_there_is_none():
    assert views.sheet(tune(svg="<svg></svg>")) == "<svg></svg>"
    assert "rendering failed" in views.sheet(tune())
    assert "did not pass" in views.sheet(tune(passed=False))


def test_history_rows():
    rows = views.history_rows([{"title": "T", "meter": "6/8", "key": "D major", "type": "jig", "seed": 3,
                                "passed": True}, {"title": "U"}])
    assert rows == [[1, "T", "6/8", "D major", "jig", 3, "yes"], [2, "U", "", "", "", "", "no"]]
    assert len(views.HISTORY_HEADERS) == len(rows[0])


def test_status_html_escapes_and_loss_rows():
    snap = {"status": "running", "name": "<script>x</script>", "progress": 0.5, "step": 10, "elapsed": 3,
            "time_budget": 6, "history": [], "best_val_loss": 2.5, "message": ""}
    page = views.status_html(snap)
    assert "<script>" not in page and "width:50.0%" in page
    assert 'data-status="idle"' in views.status_html({"status": "idle", "message": "<b>"})
    assert "&lt;b&gt;" in views.status_html({"status": "idle", "message": "<b>"})
    rows = views.loss_rows([{"step": 10, "train_loss": 3.0, "val_loss": 3.1}, {"step": 20, "train_loss": 2.9,
                                                                               "val_loss": None}])
    assert rows == [{"step": 10, "loss": 3.0, "split": "train"}, {"step": 10, "loss": 3.1, "split": "val"},
                    {"step": 20, "loss": 2.9, "split": "train"}]


def test_loss_frame():
    assert views.loss_frame([]) is None and views.loss_frame([{"step": 1, "train_loss": float("nan")}]) is None
    frame = views.loss_frame([{"step": 10, "train_loss": 3.0, "val_loss": 3.1}])
    assert list(frame.columns) == ["step", "loss", "split"] and str(frame["step"].dtype) == "int64"
    assert frame["split"].tolist() == ["train", "val"]


def test_an_error_is_shown_without_the_flags_a_command_line_user_would_pass():
    gr = pytest.importorskip("gradio")
    from charrnn.web.page import user_errors

    @user_errors
    def fails():
        raise CharRNNError("upload.txt: not valid utf-8 at byte offset 3", "; pass --encoding if it is not UTF-8")

    with pytest.raises(gr.Error) as shown:
        fails()
    assert shown.value.message == "upload.txt: not valid utf-8 at byte offset 3"
