"""The web app's page: the tabs of TABS in order, the queue and concurrency settings, and launch().

Each tab is a module of charrnn.web.tabs with a `build(page)` that lays it out and wires its events;
adding a tab is adding such a module and naming it in TABS. The work is done by charrnn.serve.service,
which bounds every argument on the server. Nothing here reaches the network: Gradio's analytics are off,
there is no share link, and the page's own styles and scripts (static/) are served by the app itself.
"""

from __future__ import annotations

import argparse
import threading
import time
import urllib.parse
from pathlib import Path

import gradio as gr
import torch

from charrnn.decoding.autocomplete import Autocompleter
from charrnn.errors import CharRNNError
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry, default_runs_dir
from charrnn.serve.service import Service
from charrnn.web import views
from charrnn.web.page import Page
from charrnn.web.tabs import autocomplete, folk, generate, train

TABS = (generate, autocomplete, folk, train)
STATIC = Path(__file__).resolve().parent / "static"  # public: everything in it is served
TITLE = ("# charrnn\nCharacter-level RNN language models: generate text, autocomplete as you type, "
         "write folk tunes, and train your own model, all on this machine.")
# Events that name the same id share its workers (None: no limit); the queue holds what waits for them.
# Autocomplete and the polls must never wait behind a generation, a tune or a training job's start.
CONCURRENCY = {"generate": 2, "autocomplete": 4, "folk": 1, "train_control": 1, "corpus_build": 1, "poll": None}
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
    """The Blocks, the keyword arguments for launch(), and the service behind them."""
    torch.set_num_threads(1)  # inference: one thread per request (a training job sets its own thread's count)
    models_dir = Path(args.models)
    runs_dir = Path(args.runs) if args.runs else default_runs_dir(models_dir)
    max_upload = int(args.max_upload_mb * 1024 * 1024)
    jobs = JobManager(runs_dir, threads=args.train_threads, device=args.train_device, max_upload_bytes=max_upload)
    service = Service(Registry(models_dir, runs_dir, hidden=jobs.active_dirs), jobs, Autocompleter())

    gr.set_static_paths([STATIC])
    with gr.Blocks(title="charrnn", delete_cache=DELETE_CACHE) as demo:
        with gr.Column(elem_id="title"):
            gr.Markdown(TITLE)
        notice = gr.Markdown(views.notice(bool(service.registry.entries())), label="Notice")
        page = Page(service, args.max_upload_mb, notice, CONCURRENCY)
        with gr.Tabs():
            for tab in TABS:
                tab.build(page)
        page.wire(demo)
        gr.api(service.models, api_name="models", **page.workers("poll"))

    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
    launch = dict(server_name=args.host, server_port=args.port, max_file_size=max_upload, ssr_mode=False,
                  share=False, show_error=True, theme=theme, head=head(), footer_links=["api", "settings"],
                  quiet=True, run_history=False, state_session_capacity=args.max_sessions)
    return demo, launch, service


def warm_up(service: Service) -> None:
    """After launch, in the background: load the default models and start the sheet-music worker."""
    for folk_models, prefer in ((False, "shakespeare"), (True, "folk")):
        name = service.registry.default(folk_models, prefer)
        if name:
            try:
                service.registry.load(name)
            except CharRNNError:
                pass
    try:
        from charrnn.folk import render  # music21 and verovio: slow imports, optional

        render.ENGRAVER.start()
    except (ImportError, CharRNNError):
        pass


def serve(args: argparse.Namespace, started: float | None = None) -> int:
    """Build the page, serve it until Ctrl-C, then let a running training job save and stop.

    `started` (a time.perf_counter() reading) is when the launcher began, for the "ready in" line.
    """
    started = time.perf_counter() if started is None else started
    demo, launch, service = build(args)
    demo.launch(prevent_thread_lock=True, **launch)
    # Gradio's own lines are off (quiet): they tell users to set share=True, which this app never does.
    print(f"charrnn app ready in {time.perf_counter() - started:.1f}s on {demo.local_url}", flush=True)
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
