"""The Look inside tab: a text coloured by the model's surprise, its guesses on hover, the cells the
finder found (or any cell) as colour over the text, and the gates' saturation."""

from __future__ import annotations

import gradio as gr

from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, user_errors

# The Generate tab's output, read in the browser: copying it costs no round trip to the server.
LAST_SAMPLE_JS = "() => document.querySelector('#gen-output textarea')?.value ?? ''"
EMPTY = "<p style='color:#555'>Paste a text (or take the last generated sample) and press Look inside.</p>"


def build(page: Page) -> None:
    """Lay out the Look inside tab and wire its events (API: inspect, inspect_cell)."""
    service = page.service

    @user_errors
    def inspect(model, text):
        """Surprise-coloured text, the finder's best cells (a menu), the saturation plot (SVG)."""
        report = service.inspect(model, text)
        choices = views.cell_choices(report, svc.INSPECT_BEST)
        return (views.inspection_summary(report), views.inspection_text(report),
                gr.Dropdown(choices=choices, value=""), views.saturation(report))

    @user_errors
    def recolour(model, text, cell):
        """The text coloured by one cell (LAYER:INDEX[:KIND]), or by surprise for an empty cell."""
        report = service.inspect(model, text, cell, find=False)
        return views.inspection_text(report, next(iter(report.cells), None))

    with gr.Tab("Look inside", id="inside"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model = page.model_menu(None, "shakespeare")
                button = gr.Button("Look inside", variant="primary", elem_id="inside-go")
                last = gr.Button("Use the last generated sample", elem_id="inside-last")
                # Any cell is a valid value (API clients may ask for one the menu does not list).
                best = gr.Dropdown(label="Colour by a cell the finder found", choices=[("surprise", "")], value="",
                                   elem_id="inside-best", info="the best cells for each feature, with their scores",
                                   allow_custom_value=True)
                with gr.Row():
                    free = gr.Textbox(label="... or any cell", placeholder="layer:index[:kind], e.g. 1:137 or 0:5:f",
                                      max_length=limits.MAX_CELL, elem_id="inside-cell", scale=3)
                    show = gr.Button("Colour", elem_id="inside-show", scale=1, min_width=60)
            with gr.Column(scale=2):
                text = gr.Textbox(label="Text", lines=8, max_lines=16, max_length=limits.MAX_INSPECT,
                                  elem_id="inside-input", placeholder="The text for the model to read")
                summary = gr.Markdown(elem_id="inside-summary", label="Summary")
        coloured = gr.HTML(EMPTY, elem_id="inside-out", label="The text as the model read it")
        gr.Markdown("**Gate saturation**: a dot per cell, at the share of characters where its gate is below "
                    "0.1 (left) and above 0.9 (right); a gate near the right edge stays open (Karpathy, Johnson "
                    "& Fei-Fei 2015, figure 3).")
        plot = gr.HTML(elem_id="inside-plot", label="Gate saturation")

    last.click(None, None, text, js=LAST_SAMPLE_JS, queue=False)
    looked = button.click(inspect, [model, text], [summary, coloured, best, plot], api_name="inspect",
                          **page.workers("inspect"))
    page.keep_errors(looked, lambda message: (views.error_markdown(message), views.error_html(message), ""),
                     [summary, coloured, plot])
    workers = page.workers("inspect")
    for event in (best.input(recolour, [model, text, best], coloured, api_name="inspect_cell", **workers),
                  show.click(recolour, [model, text, free], coloured, api_name=False, **workers),
                  free.submit(recolour, [model, text, free], coloured, api_name=False, **workers)):
        page.keep_errors(event, lambda message: (views.error_html(message),), [coloured])
