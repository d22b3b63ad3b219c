"""The web app's page: the tabs of TABS in order, the queue and concurrency settings, and launch().

Each tab is a module of charrnn.web.tabs with a `build(page)` that lays it out and wires its events;
adding a tab is adding such a module and naming it in TABS. The work is done by charrnn.serve.service,
which bounds every argument on the server. Nothing here reaches the network: Gradio's analytics are off,
there is no share link, and the page's own styles and scripts (static/) are served by the app itself.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
import urllib.parse
from pathlib import Path

import gradio as gr
import torch
from starlette.middleware import Middleware

from charrnn.errors import CharRNNError
from charrnn.folk import render
from charrnn.seq2seq.cmudict import Lexicon
from charrnn.serve import memory
from charrnn.serve.autocomplete import Autocompleter
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry, default_runs_dir
from charrnn.serve.service import Service
from charrnn.web import access, payloads, rest, views
from charrnn.web.page import Page
from charrnn.web.tabs import autocomplete, folk, generate, inside, pronounce, train

TABS = (generate, autocomplete, folk, inside, pronounce, train)
READ_ONLY_TABS = (generate, autocomplete, folk, inside, pronounce)  # --read-only: nothing that trains or takes a file
STATIC = Path(__file__).resolve().parent / "static"  # public: everything in it is served
TITLE = ("# charrnn\nCharacter-level RNN models: generate text, autocomplete as you type, write folk tunes, "
         "look inside a model, pronounce words, and train your own, all on this machine.")
# Events that name the same id share its workers (None: no limit); the queue holds what waits for them.
# Autocomplete and the polls must never wait behind a generation, a tune or a training job's start.
# Autocomplete's 16 workers run their searches as one (serve/batcher.py: Batcher.together): more at once, cheaper.
CONCURRENCY = {"generate": 2, "autocomplete": 16, "folk": 1, "inspect": 1, "pronounce": 2, "train_control": 1,
               "corpus_build": 1, "poll": None}
DELETE_CACHE = (3600, 86400)  # Gradio's copies of result files: checked hourly, deleted after a day


def static_url(path: Path) -> str:
    """Where the app serves a file of static/ (relative to the page, so a root path still works)."""
    return "gradio_api/file=" + urllib.parse.quote(str(path))


def head() -> str:
    """The <head> tags that load static/'s styles and scripts."""
    tags = [f'<link rel="stylesheet" href="{static_url(p)}">' for p in sorted(STATIC.glob("*.css"))]
    tags += [f'<script src="{static_url(p)}"></script>' for p in sorted(STATIC.glob("*.js"))]
    return "\n".join(tags)


def build(args: argparse.Namespace) -> tuple[gr.Blocks, dict, Service]:
    """The Blocks, the keyword arguments for launch(), and the service behind them.

    `args` are app.py's flags, with `credentials` (the (user, password) pairs of --auth and --auth-file).
    """
    torch.set_num_threads(1)  # inference: one thread per request (a training job sets its own thread's count)
    models_dir = Path(args.models)
    runs_dir = Path(args.runs) if args.runs else default_runs_dir(models_dir)
    max_upload = int(args.max_upload_mb * 1024 * 1024)
    jobs = JobManager(runs_dir, threads=args.train_threads, device=args.train_device, max_upload_bytes=max_upload)
    service = Service(Registry(models_dir, runs_dir, hidden=jobs.active_dirs), jobs, Autocompleter())

    gr.set_static_paths([STATIC])
    with gr.Blocks(title="charrnn", delete_cache=DELETE_CACHE, analytics_enabled=False) as demo:
        with gr.Column(elem_id="title"):
            gr.Markdown(TITLE)
        notice = gr.Markdown(views.notice(bool(service.registry.entries())), label="Notice")
        page = Page(service, args.max_upload_mb, notice, CONCURRENCY)
        with gr.Tabs():
            for tab in READ_ONLY_TABS if args.read_only else TABS:
                tab.build(page)
        page.wire(demo)
        gr.api(service.models, api_name="models", **page.workers("poll"))

    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
    launch = dict(server_name=args.host, server_port=args.port, max_file_size=max_upload, ssr_mode=False,
                  share=False, show_error=True, theme=theme, head=head(), footer_links=["api", "settings"],
                  quiet=True, run_history=False, state_session_capacity=args.max_sessions,
                  auth=args.credentials or None, auth_message="charrnn: log in with the user name and password "
                                                              "you were given")
    names = {fn.api_name for fn in demo.fns.values() if fn.api_name}
    login = rest.Login(args.credentials)
    app_kwargs = {"routes": rest.routes(service, CONCURRENCY, args.queue_size, login),
                  "middleware": [Middleware(access.KnownEndpoints, names=names, read_only=args.read_only),
                                 Middleware(payloads.CheckedCalls, calls=payloads.Calls.of(demo), admits=login.admits)]}
    if args.read_only:  # Gradio's upload routes stay mounted without a file component: refuse them outright
        launch["max_file_size"] = 0
        app_kwargs["middleware"].append(Middleware(access.ReadOnlyUploads))
    launch["app_kwargs"] = app_kwargs
    return demo, launch, service


def warm_up(service: Service) -> None:
    """After launch, in the background: load the default models and the dictionary, start the sheet-music
    worker; then the service is warm (GET /api/health says so)."""
    try:
        _warm_up(service)
    finally:
        service.warm.set()


def _warm_up(service: Service) -> None:
    for folk_models, prefer, kind in ((False, "shakespeare", "lm"), (True, "folk", "lm"), (None, "g2p", "seq2seq")):
        name = service.registry.default(folk_models, prefer, kind)
        if name:
            try:
                service.registry.load(name, kind)
            except CharRNNError:
                pass
    with contextlib.suppress(CharRNNError):
        Lexicon.load()  # the Pronounce tab's dictionary: parsed once, cached
    with contextlib.suppress(CharRNNError):  # no music21 or verovio: the Folk tab says so when asked
        render.ENGRAVER.start()


def serve(args: argparse.Namespace, started: float | None = None) -> int:
    """Build the page, serve it until Ctrl-C, then let a running training job save and stop.

    `started` (a time.perf_counter() reading) is when the launcher began, for the "ready in" line.
    """
    started = time.perf_counter() if started is None else started
    memory.keep_memory_flat()
    demo, launch, service = build(args)
    try:
        demo.launch(prevent_thread_lock=True, **launch)
    except OSError as e:  # taken between the launcher's check and now (Gradio's message advises a variable)
        if "port" not in str(e):
            raise
        raise CharRNNError(access.port_in_use(args.host, args.port)) from None
    # Gradio's own lines are off (quiet): they tell users to set share=True, which this app never does.
    print(f"charrnn app ready in {time.perf_counter() - started:.1f}s on "
          f"{access.serving(args.host, args.port, demo.local_url)}", flush=True)
    threading.Thread(target=warm_up, args=(service,), daemon=True, name="warm-up").start()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        if service.jobs.stop():
            print("stopping the training job (it saves first) ...", flush=True)
            service.jobs.wait(30)
    return 0
