"""What every tab is given: the service, the model menus, and the page-wide events a tab takes part in.

Two events belong to the whole page rather than to one tab: `refresh` (a page that just opened gets fresh
model menus and the training job's state) and `train_poll` (every second while a job runs: its progress,
and fresh menus once its model appears). A tab adds its share to them with `on_load` and `on_job`;
`wire` makes the two events once every tab is built.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gradio as gr
from gradio.context import LocalContext

from charrnn.errors import CharRNNError
from charrnn.serve.limits import Range
from charrnn.serve.service import Service
from charrnn.web import views

POLL_S = 1.0
RUNNING = ("starting", "running", "stopping")  # job states worth polling for


class Failures:
    """The last error each browser session met, for the `.failure` event that shows it where the result
    would be: Gradio's toast fades after seconds and leaves the previous result looking current."""

    KEPT = 1_000  # sessions remembered; an older one's message is replaced by a general line

    def __init__(self) -> None:
        self._messages: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _session() -> str | None:
        request = LocalContext.request.get(None)  # the event's request (Gradio sets it for its function)
        return getattr(request, "session_hash", None)

    def put(self, message: str) -> None:
        if (session := self._session()) is not None:
            with self._lock:
                self._messages[session] = message
                self._messages.move_to_end(session)
                while len(self._messages) > self.KEPT:
                    self._messages.popitem(last=False)

    def take(self, request: gr.Request) -> str:
        """The message of the failure just seen in this request's session."""
        with self._lock:
            return self._messages.pop(getattr(request, "session_hash", None), "the request failed")


FAILURES = Failures()


def user_errors(fn: Callable) -> Callable:
    """CharRNNErrors become Gradio errors: the page shows the message, without the flags a command-line user
    would give (and keeps it: Page.keep_errors); API clients get it too."""

    def error(e: CharRNNError) -> gr.Error:
        FAILURES.put(e.problem)
        return gr.Error(e.problem, print_exception=False)

    if inspect.isgeneratorfunction(fn):  # Gradio streams a generator function's updates: stay one
        @functools.wraps(fn)
        def stream(*a, **kw):
            try:
                yield from fn(*a, **kw)
            except CharRNNError as e:
                raise error(e) from None

        return stream

    @functools.wraps(fn)  # keeps the signature: Gradio reads it (gr.SelectData arguments)
    def call(*a, **kw):
        try:
            return fn(*a, **kw)
        except CharRNNError as e:
            raise error(e) from None

    return call


def slider(bound: Range, step: float, **kwargs) -> gr.Slider:
    """A slider over a request bound (serve/limits.py), starting at its default."""
    return gr.Slider(bound.lo, bound.hi, value=bound.default, step=step, **kwargs)


def polling(snapshot: dict) -> gr.Timer:
    """The page's timer, on while the job in `snapshot` runs."""
    return gr.Timer(active=snapshot.get("status") in RUNNING)


@dataclass
class Menu:
    """A model menu: which models it offers (folk, text or all) and which it prefers."""

    dropdown: gr.Dropdown
    folk: bool | None
    prefer: str
    kind: str = "lm"


@dataclass
class Share:
    """A tab's part of a page-wide event: `fn` gives the values of `outputs`."""

    fn: Callable
    outputs: Sequence[gr.components.Component]


class Page:
    """The services and the page-wide parts of the page; made inside the Blocks, before the tabs."""

    def __init__(self, service: Service, max_upload_mb: float, notice: gr.Markdown,
                 concurrency: dict[str, int | None]):
        self.service = service
        self.registry = service.registry
        self.max_upload_mb = max_upload_mb
        self.notice = notice
        self.concurrency = concurrency
        self.timer = gr.Timer(POLL_S, active=False)  # on while a training job runs
        self.menus: list[Menu] = []
        self.loads: list[Share] = []
        self.jobs: list[Share] = []

    def workers(self, name: str) -> dict:
        """An event's concurrency arguments: it shares the workers of `name` (one of app.CONCURRENCY's)."""
        return {"concurrency_id": name, "concurrency_limit": self.concurrency[name]}

    def model_menu(self, folk: bool | None, prefer: str, kind: str = "lm", **kwargs) -> gr.Dropdown:
        """A model menu of `kind` that the page keeps up to date (new models appear in it)."""
        dropdown = gr.Dropdown(label="Model", choices=self.registry.choices(folk, kind), allow_custom_value=True,
                               value=self.registry.default(folk, prefer, kind), **kwargs)
        self.menus.append(Menu(dropdown, folk, prefer, kind))
        return dropdown

    @staticmethod
    def keep_errors(event, shown: Callable[[str], tuple], outputs: Sequence) -> None:
        """When `event` fails, `shown(message)` replaces its results in `outputs`: the error stays where
        the result would be, and no earlier result is left looking current."""

        def failed(request: gr.Request):
            return shown(FAILURES.take(request))

        event.failure(failed, None, outputs, api_visibility="private", queue=False, show_progress="hidden")

    def on_load(self, fn: Callable[[], tuple], outputs: Sequence) -> None:
        """When a page opens, `fn()` gives fresh values for `outputs`."""
        self.loads.append(Share(fn, outputs))

    def on_job(self, fn: Callable[[dict], tuple], outputs: Sequence) -> None:
        """When a page opens and while a job runs, `fn(snapshot)` shows the training job's state in `outputs`."""
        self.jobs.append(Share(fn, outputs))

    def _menus(self, current: Sequence[str | None]) -> list[gr.Dropdown]:
        updates = []
        for menu, value in zip(self.menus, current, strict=True):
            choices = self.registry.choices(menu.folk, menu.kind)
            names = [name for _, name in choices]
            if value in names:  # no value sent: a choice the user made since the page read `current` stays
                updates.append(gr.Dropdown(choices=choices))
            else:
                updates.append(gr.Dropdown(choices=choices, value=self.registry.default(menu.folk, menu.prefer,
                                                                                         menu.kind)))
        return updates

    def _job_views(self, snapshot: dict) -> list:
        return [value for share in self.jobs for value in share.fn(snapshot)]

    def wire(self, demo: gr.Blocks) -> None:
        """The page-wide events, once every tab has added its share."""
        menus = [m.dropdown for m in self.menus]
        job_outputs = [o for share in self.jobs for o in share.outputs]
        load_outputs = [o for share in self.loads for o in share.outputs]
        seen = gr.State(None)  # what this page last showed: the list of models and the job's progress

        def refresh(*current):
            """Fresh menus and training status for a page that just opened."""
            snapshot = self.service.training_status()
            loads = [value for share in self.loads for value in share.fn()]
            return (*self._menus(current), views.notice(bool(self.registry.entries())), *loads,
                    *self._job_views(snapshot), polling(snapshot))

        def poll(last, *current):
            """The job's progress; fresh model menus when the list of models changed."""
            snapshot = self.service.training_status()
            signature = self.registry.signature()
            key = [signature, [snapshot.get("status"), snapshot.get("step"), len(snapshot.get("history", [])),
                               snapshot.get("name")]]
            if last == key:
                return (gr.skip(),) * (len(job_outputs) + 1 + len(menus) + 1)
            fresh = self._menus(current) if not last or last[0] != signature else (gr.skip(),) * len(menus)
            return (*self._job_views(snapshot), key, *fresh, polling(snapshot))

        # The page's own plumbing (its results include the unlabelled timer): callable, but not in view_api().
        demo.load(refresh, menus, [*menus, self.notice, *load_outputs, *job_outputs, self.timer], api_name="refresh",
                  show_progress="hidden", api_visibility="undocumented", **self.workers("poll"))
        if self.jobs:  # a tab shows the training job (--read-only has none: no training API at all)
            self.timer.tick(poll, [seen, *menus], [*job_outputs, seen, *menus, self.timer], api_name="train_poll",
                            show_progress="hidden", api_visibility="undocumented", **self.workers("poll"))
