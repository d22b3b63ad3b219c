"""The Train tab: train a model on a catalogued corpus or an uploaded text, watch its loss curve, stop it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from charrnn.errors import CharRNNError
from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.serve.jobs import PRESETS
from charrnn.web import views
from charrnn.web.page import Page, polling, slider, user_errors

UPLOAD = ("My own text file (upload it below)", "upload")
UPLOAD_TYPES = [".txt", ".abc", ".md", ".csv", ".tsv", ".json", ".py", ".html", ".xml", ".tex", ".rst"]


def build(page: Page) -> None:
    """Lay out the Train tab and wire its events (API: train_start, train_stop, train_status)."""
    service = page.service

    def sources() -> list[tuple[str, str]]:
        return [*service.corpora(), UPLOAD]

    def corpora_view() -> tuple:
        """The corpus list, what is missing and how to add it, and a build button for each missing buildable one."""
        missing = service.missing_corpora()
        names = {c["name"] for c in missing}
        return (gr.Radio(choices=sources()), views.missing_corpora(missing),
                *(gr.Button(visible=corpus in names, interactive=True) for corpus in svc.BUILDABLE))

    def view(snapshot: dict) -> tuple:
        return views.status_html(snapshot), views.loss_frame(snapshot.get("history", [])), snapshot

    @user_errors
    def train_start(source, upload, name, core, size, budget):
        """Start this server's training job on a corpus or an uploaded file; one job at a time."""
        if source == "upload":
            if not upload:
                raise CharRNNError("upload a text file first (or pick a corpus)")
            snapshot = service.start_training(upload=upload, upload_name=Path(str(upload)).name, name=name,
                                              core=core, size=size, time_budget=budget)
        else:
            snapshot = service.start_training(corpus=source, name=name, core=core, size=size, time_budget=budget)
        return view(snapshot)

    def corpus_builder(corpus: str):
        @user_errors
        def build_corpus():
            """Build a catalogued corpus offline (folk); the Training text list then offers it."""
            message = service.build_corpus(corpus)
            return (*corpora_view(), message)

        return build_corpus

    def train_stop():
        """Ask the running job to save and stop."""
        return view(service.stop_training())

    with gr.Tab("Train", id="train"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                choices = sources()
                source = gr.Radio(choices, value=choices[0][1], label="Training text")
                missing = service.missing_corpora()
                absent = gr.Markdown(views.missing_corpora(missing), elem_id="train-missing", label="Missing corpora")
                builds = [gr.Button(f"Build the {corpus} corpus", size="sm", elem_id=f"build-{corpus}",
                                    visible=corpus in {c["name"] for c in missing}) for corpus in svc.BUILDABLE]
                built = gr.Markdown(elem_id="train-built", label="Corpus build")
                upload = gr.File(label=f"Text file (UTF-8, {limits.MIN_UPLOAD_CHARS:,} characters to "
                                       f"{page.max_upload_mb:g} MB)", file_types=UPLOAD_TYPES, type="filepath",
                                 elem_id="train-upload")
                name = gr.Textbox(label="Name (optional)", max_length=limits.MAX_RUN_NAME,
                                  placeholder="letters, digits, - and _")
                core = gr.Radio([("LSTM", "lstm"), ("GRU", "gru"), ("RNN", "rnn")], value="lstm", label="Core")
                size = gr.Radio([("auto (best for the budget)", "auto"),
                                 *((f"{k} ({v[0]}×{v[1]})", k) for k, v in PRESETS.items())], value="auto",
                                label="Size (layers × hidden)")
                budget = slider(limits.BUDGET_S, 5, label="Time budget (seconds)")
                with gr.Row():
                    start = gr.Button("Start training", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                status = gr.HTML(views.status_html(service.training_status()), elem_id="train-status", label="Status",
                                 js_on_load=None)
                plot = gr.LinePlot(views.loss_frame([]), x="step", y="loss", color="split",
                                   color_map={"train": "#6366f1", "val": "#f97316"},
                                   title="Loss (nats per character)", height=340, elem_id="loss-plot",
                                   label="Loss curve", show_label=False,
                                   x_label_angle=-45)  # upright, "1,500" and "1,600" ran into each other
                with gr.Accordion("Job details", open=False):
                    details = gr.JSON(elem_id="train-details", label="Job")
        # inside the tab: gr.Tabs holds only tabs
        gr.api(service.training_status, api_name="train_status", **page.workers("poll"))

    outputs = [status, plot, details]
    page.on_load(corpora_view, [source, absent, *builds])
    for corpus, button in zip(svc.BUILDABLE, builds, strict=True):
        button.click(corpus_builder(corpus), None, [source, absent, *builds, built], api_name=f"corpus_build_{corpus}",
                     show_progress="minimal", show_progress_on=[built], **page.workers("corpus_build"))
    page.on_job(view, outputs)
    start.click(train_start, [source, upload, name, core, size, budget], outputs,
                api_name="train_start", show_progress="hidden", **page.workers("train_control")
                ).success(lambda: polling(service.training_status()), None, page.timer, api_visibility="private",
                          show_progress="hidden", **page.workers("poll"))  # the page's timer: not an API result
    stop.click(train_stop, None, outputs, api_name="train_stop", show_progress="hidden",
               **page.workers("train_control"))
