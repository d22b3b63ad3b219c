"""Each event's values checked against its components before Gradio preprocesses them (charrnn/web/payloads.py).

Here on a small page of every kind of input the app's events take; tests/test_app.py and tests/test_properties.py
send such values to the real app and read its log.
"""

from __future__ import annotations

import json

import pytest

gr = pytest.importorskip("gradio")
from charrnn.web.payloads import Calls, rule_of  # noqa: E402

LABELS = "Temperature, Seed, Decoding, Model, Meter, Text, Flag"
GOOD = [0.8, 7, "beam", "any model", "4/4", "hi", True]  # the state's value left out, as /call allows


@pytest.fixture(scope="module")
def calls() -> Calls:
    with gr.Blocks() as demo:
        inputs = [gr.Slider(0, 2, label="Temperature"), gr.Number(-1, label="Seed", precision=0, minimum=-1),
                  gr.Radio(["sample", "beam"], label="Decoding"),
                  gr.Dropdown(["a", "b"], label="Model", allow_custom_value=True),
                  gr.Dropdown(["6/8", "4/4"], label="Meter"), gr.Textbox(label="Text"), gr.Checkbox(label="Flag"),
                  gr.State([])]
        upload, out = gr.File(label="Upload"), gr.Textbox()
        def go(temperature, seed, decoding, model, meter, text, flag, state):
            return ""

        gr.on([], go, inputs, out, api_name="go")
        gr.on([], lambda file: "", upload, out, api_name="file")
        gr.on([], lambda *values: "", inputs, out, api_name=False)  # the page's own: by index only
    return Calls.of(demo)


def problem(calls: Calls, values, route: str = "call/go", **body) -> str | None:
    refusal = calls.problem(f"/gradio_api/{route}", json.dumps({"data": values, **body}).encode())
    return None if refusal is None else refusal.message


def test_right_values_pass(calls):
    assert problem(calls, GOOD) is None
    assert problem(calls, [*GOOD, ["a state"]]) is None  # the state's value given: Gradio ignores it
    assert problem(calls, [0.8, None, None, None, None, None, None]) is None  # what a cleared field sends
    assert problem(calls, [*GOOD, None, "an extra value"], route="run/go") is None  # Gradio ignores extras
    assert problem(calls, [2, -1, "sample", "", "6/8", "", False]) is None  # bounds are inclusive


@pytest.mark.parametrize(("at", "value", "says"), [
    (0, {"a": 1}, "value 1 (Temperature) must be a number from 0 to 2, not an object"),
    (0, None, "value 1 (Temperature) must be a number from 0 to 2, not null"),  # Gradio compares it to the bounds
    (0, "0.5", "value 1 (Temperature) must be a number from 0 to 2, not '0.5'"),
    (0, 2.5, "value 1 (Temperature) must be a number from 0 to 2, not 2.5"),
    (0, True, "value 1 (Temperature) must be a number from 0 to 2, not true"),
    (0, float("nan"), "value 1 (Temperature) must be a number from 0 to 2, not nan"),
    (1, [1], "value 2 (Seed) must be a number of at least -1, not a list"),
    (1, float("inf"), "value 2 (Seed) must be a number of at least -1, not inf"),
    (2, "greedy", 'value 3 (Decoding) must be one of "sample", "beam", not \'greedy\''),
    (3, {"name": "a"}, "value 4 (Model) must be a text, not an object"),
    (3, 5, "value 4 (Model) must be a text, not 5"),  # its choices are texts
    (4, "5/4", 'value 5 (Meter) must be one of "6/8", "4/4", not \'5/4\''),
    (5, 5, "value 6 (Text) must be a text, not 5"),
    (5, ["x" * 100], "value 6 (Text) must be a text, not a list"),
    (6, "yes", "value 7 (Flag) must be true or false, not 'yes'"),
])
def test_a_wrong_value_is_named_in_one_line(calls, at, value, says):
    values = list(GOOD)
    values[at] = value
    assert problem(calls, values) == f"/go: {says}"


def test_the_refusal_is_also_in_gradios_validation_format_for_its_client_and_page(calls):
    refusal = calls.problem("/gradio_api/call/go", json.dumps({"data": [0.8, "x", *GOOD[2:]]}).encode())
    assert [(d["parameter_name"], d["is_valid"], d["message"]) for d in refusal.detail] == [
        ("temperature", True, ""), ("seed", False, "must be a number of at least -1, not 'x'"),
        *((name, True, "") for name in ("decoding", "model", "meter", "text", "flag"))]
    assert all(d["__type__"] == "validate" for d in refusal.detail)
    short = calls.problem("/gradio_api/call/go", json.dumps({"data": [0.8]}).encode())
    assert short.detail == [{"__type__": "validate", "is_valid": False, "message": short.message,
                             "parameter_name": "data"}]


def test_a_long_or_multiline_value_is_quoted_short_on_one_line(calls):
    message = problem(calls, [0.8, 7, "line one\nline two " * 50, *GOOD[3:]])
    assert "\n" not in message and len(message) < 160 and "'line one\\nline two" in message


def test_too_few_values_say_how_many_and_which(calls):
    assert problem(calls, GOOD[:3]) == f"/go takes 7 values ({LABELS}), got 3"
    # /run and the queue read the data as given: the state's place counts
    assert problem(calls, GOOD, route="run/go") == f"/go takes 8 values ({LABELS}, an unlabelled State), got 7"


def test_each_value_is_checked_against_the_component_as_its_session_has_it(calls):
    """An event may give one session other choices or bounds (Gradio keeps that session's own copy of the
    component): its calls are judged by them, a call in any other session by the page's own."""
    from gradio.state_holder import StateHolder

    holder = StateHolder()
    holder.set_blocks(calls.blocks)
    page = next(i for i, event in calls.by_index.items() if event.name not in ("go", "file"))  # by index only
    decoding = calls.by_index[page].inputs[2].component
    holder["s1"][decoding._id] = gr.Radio(["sample", "beam", "greedy"], label="Decoding")  # as an event's update
    greedy = [0.8, 7, "greedy", "a", "4/4", "hi", True, None]
    assert problem(calls, greedy, route="queue/join", fn_index=page, session_hash="s1") is None
    for session in ("s2", None):  # another session, a made-up one, none: the page's own choices
        assert problem(calls, greedy, route="queue/join", fn_index=page, session_hash=session) == \
            f'/{calls.by_index[page].name}: value 3 (Decoding) must be one of "sample", "beam", not \'greedy\''
    assert problem(calls, greedy[:7], session_hash="s2") is not None  # /call by name, the same
    assert problem(calls, [{"a": 1}, *greedy[1:]], route="queue/join", fn_index=page, session_hash="s1") == \
        f"/{calls.by_index[page].name}: value 1 (Temperature) must be a number from 0 to 2, not an object"
    # a body's fn_index names the event, whatever the path's name (Gradio goes by the index)
    assert problem(calls, [None], route="run/go", fn_index=next(i for i, e in calls.by_index.items()
                                                                if e.name == "file")) is None


def test_a_file_is_checked_as_gradio_reads_it(calls):
    assert problem(calls, [{"path": "/tmp/x.txt", "meta": {"_type": "gradio.FileData"}}], route="call/file") is None
    assert problem(calls, [None], route="call/file") is None
    assert problem(calls, [{"path": 1}], route="call/file") == "/file: value 1 (Upload) must be a FileData object, " \
                                                               "not an object"
    assert problem(calls, ["/etc/passwd"], route="call/file").startswith("/file: value 1 (Upload) must be a FileData")


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'{"data": 5}', b'{"nodata": []}', b"[" * 5000 + b"]" * 5000,
                                  b'{"data": [1], "fn_index": 999}'])
def test_what_is_not_this_modules_to_judge_goes_on_to_gradio(calls, body):
    assert calls.problem("/gradio_api/call/go", body) is None
    assert calls.problem("/gradio_api/call/nosuchevent", json.dumps({"data": [{"a": 1}]}).encode()) is None
    assert calls.problem("/gradio_api/upload", json.dumps({"data": [{"a": 1}]}).encode()) is None


def test_an_input_with_no_rule_stops_the_app_at_start_up():
    with pytest.raises(TypeError, match="no rule for the values of ColorPicker"):
        rule_of(gr.ColorPicker(label="Colour", render=False))
