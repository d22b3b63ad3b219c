"""The Autocomplete tab: completions float beside the caret as you type (static/autocomplete.js)."""

from __future__ import annotations

import gradio as gr

from charrnn.decoding.suggest import SuggestSettings
from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, slider, user_errors

# static/autocomplete.js comes in through the page's <head>, which may still be loading when the popup
# mounts: wait for it, then hand it Gradio's element, props and watch.
START_JS = ("(function start() { if (window.charrnnAutocomplete) window.charrnnAutocomplete(element, props, watch);"
            " else setTimeout(start, 20); })();")
ASK_JS = "(...settings) => { window.charrnnAutocompleteAsk?.(...settings); }"
FORGET_JS = "() => { window.charrnnAutocompleteForget?.(); }"


def build(page: Page) -> None:
    """Lay out the Autocomplete tab and wire its event (API: complete)."""
    service = page.service

    @user_errors
    def complete(model, text, num, until, max_len, phrases, phrase_prob, auto_space, adapt, session):
        """The best completions of the text: {text_len, tail, ms, cache, status, completions: [{text, pct, ...}]}."""
        answer = service.complete(model, text, num, until, max_len, SuggestSettings.phrases if phrases else "off",
                                  phrase_prob, adapt, session, auto_space)
        return views.completions({**answer, "auto_space": bool(auto_space)}), answer.get("session", session)

    @user_errors
    def forget(session):
        service.forget(session)
        return views.AC_EMPTY

    with gr.Tab("Autocomplete", id="autocomplete"):
        with gr.Row():
            model = page.model_menu(False, "shakespeare", scale=2)
            until = gr.Radio(list(svc.UNTILS), value="word", label="Complete to the end of")
            # the popup has room for 5 of the COMPLETIONS.hi an API client may ask for
            num = gr.Slider(limits.COMPLETIONS.lo, 5, value=limits.COMPLETIONS.default, step=1, label="Completions")
            max_len = slider(limits.COMPLETION_LENGTH, 1, label="Longest completion")
        with gr.Row():
            phrases = gr.Checkbox(value=True, label="Suggest a phrase when the model is confident")
            phrase_prob = slider(limits.PHRASE_PROB, 0.01, label="Phrase: each further word at least this likely")
            auto_space = gr.Checkbox(value=True, label="Type a space after an accepted word")
            adapt = gr.Checkbox(value=False, label="Learn from my text (this session only, kept in memory)")
            forget_button = gr.Button("Forget what it learned", size="sm", scale=0)
        text = gr.Textbox(label="Type here", lines=10, max_lines=20, elem_id="ac-input",
                          placeholder="Start typing, e.g. 'To be, or not to b' - completions appear "
                                      "beside the cursor; Tab accepts the highlighted one.")
        popup = gr.HTML(value=views.AC_EMPTY, elem_id="ac-popup", label="Completions",
                        html_template=views.AC_TEMPLATE, js_on_load=START_JS)
        session = gr.State("")  # the key of this page's adapted model (serve/adaptation.py issues it)
        gr.Markdown("Each pause in your typing asks the model for the likeliest ends of the current word, or "
                    "the next words at a word start (beam search); the percentages are their probabilities "
                    "given the text so far. With *Learn from my text* the model takes a small training step on "
                    "every 64 characters you type or paste (dynamic evaluation), in a copy of its own for this "
                    "page: your names and words come up sooner. Nothing is saved.", elem_id="ac-help")

    inputs = [model, text, num, until, max_len, phrases, phrase_prob, auto_space, adapt]
    # Typing runs in the browser only: static/autocomplete.js asks web/rest.py's /api/page/complete, which
    # skips Gradio's queue and per-call session (~12 ms of server CPU a call: with 50 typists and a training
    # job, 17-24 answers/s through it against ~100 through the JSON route) but keeps its workers, its
    # 'queue is full' refusal and the login. The script keeps the adapted session's key the answers give.
    # The events stay, triggered by nothing on the page, for API clients (their session is a gr.State).
    text.input(None, inputs, None, js=ASK_JS, queue=False, show_progress="hidden")
    forget_button.click(None, None, None, js=FORGET_JS, queue=False, show_progress="hidden")
    gr.on([], complete, [*inputs, session], [popup, session], api_name="complete", show_progress="hidden",
          **page.workers("autocomplete"))
    gr.on([], forget, session, popup, api_name="forget", show_progress="hidden", **page.workers("autocomplete"))
