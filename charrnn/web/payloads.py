"""What a call's data must be: every value an event is sent, checked against its component before Gradio sees it.

Gradio preprocesses an event's values in its queue, where a value of the wrong type (an object for a slider,
a word for a number, too few values) fails inside the component and is logged with a traceback, although
the caller only gets an error event. `CheckedCalls` is the ASGI middleware that first reads the body of each
call (`/gradio_api/call/NAME`, `/gradio_api/run/NAME`, `/gradio_api/api/NAME`, and the page's own
`/gradio_api/queue/join`) and answers a value its component would not take with HTTP 422 and one line,
`{"error": "..."}`, naming the event, the value and what it must be (and `detail`, the same in the format of
Gradio's own validators, so that gradio_client and the page show it too). `Calls.of(blocks)` reads each event's
inputs once, after the page is built; each value is checked against its component as the call's session
has it, as Gradio will read it (an event may have changed a menu's choices or a slider's range for that
session). A component this module has no rule for stops the app at start-up, so a new kind of input cannot
go unchecked.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import ValidationError

Component = gr.components.Component
# A rule reads one value and the component that will take it: None if it would, else what the value must be.
Rule = Callable[[Any, Component], str | None]
CALLS = re.compile(r"/gradio_api/(?:(call|run|api)/([^/]+)|queue/join)/?$")  # by API name, or the page's by index
SHOWN = 40  # characters of a refused text value quoted back


def shown(value: Any) -> str:
    """A value as an error message names it, on one line."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "...'"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, component: gr.Slider | gr.Number) -> str | None:
    """A finite number within the component's bounds; a Number may be empty (Gradio compares a Slider's None
    to its bounds)."""
    lo, hi = component.minimum, component.maximum
    if value is None and isinstance(component, gr.Number):
        return None
    if _is_number(value) and math.isfinite(value) and (lo is None or value >= lo) and (hi is None or value <= hi):
        return None
    return "a number" + (f" from {_bound(lo)} to {_bound(hi)}" if lo is not None and hi is not None else
                         f" of at least {_bound(lo)}" if lo is not None else
                         f" of at most {_bound(hi)}" if hi is not None else "")


def _bound(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _text(value: Any, component: Component) -> str | None:
    return None if value is None or isinstance(value, str) else "a text"


def _flag(value: Any, component: Component) -> str | None:
    return None if value is None or isinstance(value, bool) else "true or false"


def _choice(value: Any, component: gr.Radio | gr.Dropdown) -> str | None:
    """One of the component's choices, or where it takes values of its own any value of their kind (a text, or
    a number where a choice is one); a list of them for a multiple choice."""
    many, free = getattr(component, "multiselect", False), getattr(component, "allow_custom_value", False)
    choices = [choice for _, choice in component.choices]
    numbers = any(map(_is_number, choices))

    def takes(one: Any) -> bool:
        return (free and (isinstance(one, str) or numbers and _is_number(one))) or (
            (isinstance(one, str) or _is_number(one)) and one in choices)

    if value is None or (all(map(takes, value)) if many and isinstance(value, list) else not many and takes(value)):
        return None
    if free:
        kind = "texts or numbers" if numbers else "texts"
        return f"a list of {kind}" if many else "a text or a number" if numbers else "a text"
    return f"{'a list of' if many else 'one of'} {', '.join(json.dumps(choice) for choice in choices)}"


def _model(value: Any, component: Component) -> str | None:
    """What Gradio itself validates the value against (a file's FileData, ...)."""
    if value is None:
        return None
    try:
        component.data_model.model_validate(value, context={"validate_meta": True})
    except ValidationError:
        return f"a {component.data_model.__name__} object"
    return None


def rule_of(component: Component) -> Rule | None:
    """The rule for a component's values (None: its value is not read, as a gr.State's); raises for a kind of
    component with no rule here."""
    if component.stateful:
        return None
    if isinstance(component, gr.Slider | gr.Number):
        return _number
    if isinstance(component, gr.Checkbox):
        return _flag
    if isinstance(component, gr.Textbox | gr.Code):
        return _text
    if isinstance(component, gr.Radio | gr.Dropdown):
        return _choice
    if getattr(component, "data_model", None) is not None:
        return _model
    raise TypeError(f"web/payloads.py has no rule for the values of {type(component).__name__} "
                    f"({getattr(component, 'label', None) or 'no label'}): add one")


@dataclass(frozen=True)
class Input:
    component: Component
    rule: Rule | None
    parameter: str  # the event function's name for it, as Gradio's own validation errors name it

    @property
    def label(self) -> str:
        return getattr(self.component, "label", None) or f"an unlabelled {type(self.component).__name__}"


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused: one line, and the same in Gradio's validation format (one entry per value, as its
    validators answer), which gradio_client raises as a ValidationError and the page shows at the input."""

    message: str
    detail: list[dict]


def _validation(parameter: str, message: str = "") -> dict:
    return {"__type__": "validate", "is_valid": not message, "message": message, "parameter_name": parameter}


@dataclass(frozen=True)
class Event:
    """An event's inputs in the order its data lists them."""

    name: str
    inputs: tuple[Input, ...]

    def problem(self, data: list, simple: bool, session: Callable[[Component], Component]) -> Refusal | None:
        """What is wrong with `data`, or None. `simple`: /call's form, which may leave out the values of gr.State
        inputs; `session`: the component as the call's session has it."""
        inputs = self.inputs
        read = tuple(i for i in inputs if i.rule is not None)
        if simple and len(data) == len(read) < len(inputs):
            inputs = read  # Gradio puts None where the states' values were left out
        elif len(data) < len(inputs):
            wanted = read if simple else inputs
            message = (f"/{self.name} takes {len(wanted)} value{'s' * (len(wanted) != 1)} "
                       f"({', '.join(i.label for i in wanted)}), got {len(data)}")
            return Refusal(message, [_validation("data", message)])
        for n, (one, value) in enumerate(zip(inputs, data, strict=False), 1):
            if one.rule is not None and (what := one.rule(value, session(one.component))) is not None:
                said = f"must be {what}, not {shown(value)}"
                return Refusal(f"/{self.name}: value {n} ({one.label}) {said}",
                               [_validation(other.parameter, said if other is one else "") for other in inputs])
        return None


class Calls:
    """Each event's inputs, by API name and by index (the page's events go by index), and the sessions' own
    copies of the components."""

    def __init__(self, blocks: gr.Blocks, by_name: dict[str, Event], by_index: dict[int, Event]):
        self.blocks, self.by_name, self.by_index = blocks, by_name, by_index

    @classmethod
    def of(cls, blocks: gr.Blocks) -> Calls:
        """Read once, from the built page: every event whose values Gradio preprocesses."""
        by_name, by_index = {}, {}
        for index, fn in blocks.fns.items():
            if fn.fn is None or fn.cancels or not fn.preprocess:  # no values to check: JS only, or replaced by Gradio
                continue
            names = list(fn.input_parameter_names or inspect.signature(fn.fn).parameters)  # as Gradio names them
            event = Event(fn.api_name or fn.name or "event",
                          tuple(Input(c, rule_of(c), names[i] if i < len(names) else f"parameter_{i}")
                                for i, c in enumerate(fn.inputs)))
            by_index[index] = event
            if fn.api_name:
                by_name[fn.api_name] = event
        return cls(blocks, by_name, by_index)

    def session(self, session_hash: Any) -> Callable[[Component], Component]:
        """The components as a session has them: Gradio keeps its own copy of each component an event updated
        for it (blocks.py, preprocess_data); a session it does not know starts from the page's own."""
        holder = getattr(self.blocks, "state_holder", None)
        if not isinstance(session_hash, str) or holder is None or session_hash not in holder:
            return lambda component: component
        blocks = holder.session_data[session_hash].blocks_config.blocks
        return lambda component: blocks.get(component._id, component)

    def problem(self, path: str, body: bytes) -> Refusal | None:
        """What is wrong with a call's body; None when it is right, or not this module's to judge (not JSON, no
        data list, an unknown event: Gradio answers those itself without a traceback)."""
        route = CALLS.search(path)
        if route is None:
            return None
        try:
            call = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(call, dict) or not isinstance(data := call.get("data"), list):
            return None
        index = call.get("fn_index")
        event = self.by_index.get(index) if isinstance(index, int) else self.by_name.get(route[2] or "")
        if event is None:
            return None
        return event.problem(data, simple=route[1] == "call", session=self.session(call.get("session_hash")))


async def _read(receive) -> tuple[bytes, bool]:
    """The whole request body, and whether the client went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), False


def _replay(body: bytes, receive) -> Callable[[], Awaitable[dict]]:
    """A receive that gives the body already read, then whatever the client sends next (a disconnect)."""
    sent = False

    async def again() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


class CheckedCalls:
    """ASGI middleware: a call whose values its event's components would not take is a 422 with one line, before
    Gradio preprocesses them (see the module's docstring). A caller that `admits` refuses is left to Gradio's
    login, so a stranger learns nothing of the events."""

    def __init__(self, app, calls: Calls, admits: Callable[[dict], bool]):
        self.app, self.calls, self.admits = app, calls, admits

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "POST" or not CALLS.search(scope["path"])
                or not self.admits(scope)):
            await self.app(scope, receive, send)
            return
        body, gone = await _read(receive)
        if gone:
            return
        problem = self.calls.problem(scope["path"], body)
        if problem is None:
            await self.app(scope, _replay(body, receive), send)
            return
        answer = json.dumps({"error": problem.message, "detail": problem.detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
