"""JSON routes beside Gradio's: the cheap path for API clients that call often (a page of typists, a script).

`POST /api/complete`, `POST /api/forget` and `POST /api/translate` take the same arguments, by name, as the
Gradio events of the same API names (`/complete`, `/forget`, `/translate`) and answer the service's own
dicts. They skip Gradio's queue and its per-call session, which cost ~12 ms of server CPU per call and,
with 50 clients, most of the machine. What Gradio's queue gives, they keep:
- the same workers: each route runs on the worker count its event has in app.CONCURRENCY;
- the same refusal: beyond those workers and --queue-size waiting, HTTP 503 "Queue is full";
- the same login: a Gradio session cookie (the page, gradio_client) or HTTP Basic with an --auth pair.
Errors in the request, a malformed body too, are HTTP 400 with {"error": one line}.
`POST /api/page/complete` is the Autocomplete tab's own path (static/autocomplete.js asks it as you type): the
same arguments, workers and login as /api/complete, answered with what the popup shows (views.completions).
`GET /api/health` says whether the server is warm (its default models and the dictionary loaded).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from charrnn.decoding.suggest import SuggestSettings
from charrnn.errors import CharRNNError
from charrnn.serve import limits
from charrnn.serve.service import Service
from charrnn.web import views

QUEUE_FULL = "Queue is full. Please try again later."  # Gradio's own words for its full queue


class Gate:
    """At most `workers` calls at once and `waiting` more in line; the rest are refused at once (503)."""

    def __init__(self, workers: int, waiting: int):
        self.limiter = anyio.CapacityLimiter(workers)
        self.room = workers + waiting
        self.inside = 0  # counted on the event loop's one thread: no lock needed

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.inside >= self.room:
            raise HTTPException(503, QUEUE_FULL)
        self.inside += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        finally:
            self.inside -= 1


class Login:
    """Who may call: anyone where the app has no login; else a Gradio session or an --auth pair (HTTP Basic)."""

    def __init__(self, credentials: Sequence[tuple[str, str]]):
        self.credentials = list(credentials)

    def __call__(self, request: Request) -> None:
        if self.admits_request(request):
            return
        raise HTTPException(401, "not logged in: log in on the page, or send HTTP Basic credentials",
                            headers={"WWW-Authenticate": 'Basic realm="charrnn"'})

    def admits_request(self, request: Request) -> bool:
        """Whether the request may call: no login needed, a logged-in page's cookie, or an --auth pair."""
        return not self.credentials or self._session(request) or self._basic(request.headers.get("authorization", ""))

    def admits(self, scope: dict) -> bool:
        """Whether the caller of an ASGI request (its scope, under Gradio's app) may call."""
        return self.admits_request(Request(scope))

    @staticmethod
    def _session(request: Request) -> bool:
        """Whether the request carries a login cookie of Gradio's page.

        Gradio 6 has no public call for this: the logged-in user reaches only its own event handlers
        (gr.Request.username) and its HTTP route /gradio_api/user, and launch(auth_dependency=...), the public
        hook, replaces the login form that --auth needs (Gradio refuses both at once). So this reads what that
        route reads (routes.py, get_current_user: the cookie names a token in App.tokens), and refuses the
        request if a later Gradio keeps them elsewhere; tests/test_app_access.py logs in on the page and calls
        the JSON routes with its cookie, so such a change fails a test instead of locking users out silently.
        """
        app = request.app
        cookie_id, tokens = getattr(app, "cookie_id", None), getattr(app, "tokens", None)
        if cookie_id is None or not isinstance(tokens, dict):
            return False
        token = (request.cookies.get(f"access-token-{cookie_id}")
                 or request.cookies.get(f"access-token-unsecure-{cookie_id}"))
        return token is not None and tokens.get(token) is not None

    def _basic(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Every pair is compared, in constant time, so timing tells nothing about which part was wrong.
        found = [hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
                 for u, p in self.credentials]
        return any(found)


class CompleteBody(BaseModel):
    model: str
    text: str = ""
    num: int = limits.COMPLETIONS.default
    until: str = "word"
    max_len: int = limits.COMPLETION_LENGTH.default
    phrases: str = SuggestSettings.phrases
    phrase_prob: float = limits.PHRASE_PROB.default
    adapt: bool = False
    session: str = ""
    auto_space: bool = True  # whether accepting a word types the space after it: the ranking counts it


class ForgetBody(BaseModel):
    session: str


class TranslateBody(BaseModel):
    model: str
    text: str
    beam: int = limits.PRONOUNCE_BEAM.default
    num: int = limits.PRONOUNCE_NUM.default


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _answer(fn: Callable[[], dict]) -> dict | JSONResponse:
    try:
        return fn()
    except CharRNNError as e:
        return _error(e.problem)  # no command-line flags: an API client cannot pass them


async def _body(request: Request, schema: type[BaseModel]) -> BaseModel | JSONResponse:
    """The request's JSON body as `schema`, or the 400 answer that says in one line what is wrong with it."""
    try:
        return schema.model_validate_json(await request.body())
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "json_invalid":
            return _error(f"the body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}")
        where = ".".join(map(str, first["loc"])) or "the body"
        fields = ", ".join(schema.model_fields)
        return _error(f"{where}: {first['msg'].lower()} (a JSON object with {fields})")


def routes(service: Service, concurrency: dict[str, int | None], waiting: int, login: Login) -> list[APIRoute]:
    """The JSON routes, for FastAPI(routes=...) under Gradio (launch's app_kwargs)."""
    complete_gate = Gate(concurrency["autocomplete"] or 1, waiting)
    translate_gate = Gate(concurrency["pronounce"] or 1, waiting)

    async def completions(request: Request, shown: Callable[[CompleteBody, dict], dict]):
        if isinstance(body := await _body(request, CompleteBody), JSONResponse):
            return body
        return await complete_gate.run(_answer, lambda: shown(body, service.complete(
            body.model, body.text, body.num, body.until, body.max_len, body.phrases, body.phrase_prob, body.adapt,
            body.session, body.auto_space)))

    async def complete(request: Request):
        """The best completions of the text (as the /complete event, without its HTML)."""
        return await completions(request, lambda body, answer: answer)

    async def page_complete(request: Request):
        """What the Autocomplete tab's popup shows for the text: the page's own path, as cheap as /api/complete."""
        return await completions(request, lambda body, answer: views.completions({**answer,
                                                                                   "auto_space": body.auto_space}))

    async def forget(request: Request):
        """Drop what the session's adapted models learned."""
        if isinstance(body := await _body(request, ForgetBody), JSONResponse):
            return body
        return await complete_gate.run(_answer, lambda: service.forget(body.session))

    async def translate(request: Request):
        """Pronunciations of each word of the text (the /translate event's data)."""
        if isinstance(body := await _body(request, TranslateBody), JSONResponse):
            return body
        return await translate_gate.run(_answer, lambda: service.pronounce(body.model, body.text,
                                                                        body.beam, body.num))

    def health() -> dict:
        """{"warm": whether the first requests will find their models loaded, "models": how many are on offer}."""
        return {"warm": service.warm.is_set(), "models": len(service.registry.entries())}

    # The login is a dependency: FastAPI checks it before it reads the body, so strangers learn nothing.
    guarded = {"dependencies": [Depends(login)]}
    return [APIRoute("/api/health", health, methods=["GET"], **guarded),
            APIRoute("/api/complete", complete, methods=["POST"], **guarded),
            APIRoute("/api/page/complete", page_complete, methods=["POST"], **guarded),
            APIRoute("/api/forget", forget, methods=["POST"], **guarded),
            APIRoute("/api/translate", translate, methods=["POST"], **guarded)]
