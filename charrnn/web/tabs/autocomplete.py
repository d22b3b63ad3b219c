"""The Autocomplete tab: completions float beside the caret as you type (static/autocomplete.js)."""

from __future__ import annotations

import gradio as gr

from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, slider, user_errors

# static/autocomplete.js comes in through the page's <head>, which may still be loading when the popup
# mounts: wait for it, then hand it Gradio's element, props and watch.
START_JS = ("(function start() { if (window.charrnnAutocomplete) window.charrnnAutocomplete(element, props, watch);"
            " else setTimeout(start, 20); })();")
ASK_JS = "(model, text, num, until, maxLen) => { window.charrnnAutocompleteAsk?.(model, text, num, until, maxLen); }"


def build(page: Page) -> None:
    """Lay out the Autocomplete tab and wire its event (API: complete)."""
    service = page.service

    @user_errors
    def complete(model, text, num, until, max_len):
        """The best completions of the text: {text_len, tail, ms, cache, status, completions: [{text, pct, ...}]}."""
        return views.completions(service.complete(model, text, num, until, max_len))

    with gr.Tab("Autocomplete", id="autocomplete"):
        with gr.Row():
            model = page.model_menu(False, "shakespeare", scale=2)
            until = gr.Radio(list(svc.UNTILS), value="word", label="Complete to the end of")
            # the popup has room for 5 of the COMPLETIONS.hi an API client may ask for
            num = gr.Slider(limits.COMPLETIONS.lo, 5, value=limits.COMPLETIONS.default, step=1, label="Completions")
            max_len = slider(limits.COMPLETION_LENGTH, 1, label="Longest completion")
        text = gr.Textbox(label="Type here", lines=10, max_lines=20, elem_id="ac-input",
                          placeholder="Start typing, e.g. 'To be, or not to b' - completions appear "
                                      "beside the cursor; Tab accepts the highlighted one.")
        popup = gr.HTML(value=views.AC_EMPTY, elem_id="ac-popup", label="Completions",
                        html_template=views.AC_TEMPLATE, js_on_load=START_JS)
        gr.Markdown("Each pause in your typing asks the model for the likeliest ends of the current word "
                    "(beam search); the percentages are their probabilities given the text so far.",
                    elem_id="ac-help")

    settings = [model, text, num, until, max_len]
    # Typing runs in the browser only: static/autocomplete.js asks web/rest.py's /api/page/complete, which
    # skips Gradio's queue and per-call session (~12 ms of server CPU a call: with 50 typists and a training
    # job, 17-24 answers/s through it against ~100 through the JSON route) but keeps its workers, its
    # 'queue is full' refusal and the login. The event stays, triggered by nothing on the page, for API clients.
    text.input(None, settings, None, js=ASK_JS, queue=False, show_progress="hidden")
    gr.on([], complete, settings, popup, api_name="complete", show_progress="hidden", **page.workers("autocomplete"))
