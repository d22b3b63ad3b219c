"""The Pronounce tab: words through a grapheme-to-phoneme model, N-best, with the dictionary's and attention."""

from __future__ import annotations

import gradio as gr

from charrnn.serve import limits
from charrnn.web import views
from charrnn.web.page import Page, slider, user_errors


def build(page: Page) -> None:
    """Lay out the Pronounce tab and wire its event (API: translate)."""
    service = page.service  # concurrent requests share decoding steps (its batcher)

    @user_errors
    def translate(model, text, beam, num):
        """Pronunciations of each word of the text: (HTML for the page, the data as JSON)."""
        result = service.pronounce(model, text, beam, num)
        return views.pronunciations_html(result), result

    with gr.Tab("Pronounce", id="pronounce"):
        with gr.Row():
            model = page.model_menu(None, "g2p", kind="seq2seq", scale=2)
            beam = slider(limits.PRONOUNCE_BEAM, 1, label="Beam width")
            num = slider(limits.PRONOUNCE_NUM, 1, label="Pronunciations per word")
        text = gr.Textbox(label="Words or a sentence", value="pytorch gradio charrnn", lines=2,
                          max_length=limits.MAX_PRONOUNCE_TEXT, elem_id="pronounce-input")
        go = gr.Button("Pronounce", variant="primary")
        shown = gr.HTML(label="Pronunciations", elem_id="pronounce-output")
        data = gr.JSON(label="As data", visible=False)
        gr.Markdown("The model reads the letters and writes ARPAbet phonemes (stress: 1 primary, 2 secondary, "
                    "0 none); the heatmap shows which letters each phoneme attended to.")
    inputs, outputs = [model, text, beam, num], [shown, data]

    def failed(message: str) -> tuple:
        return views.error_html(message), None

    for event in (go.click(translate, inputs, outputs, api_name="translate", **page.workers("pronounce")),
                  text.submit(translate, inputs, outputs, api_name=False, **page.workers("pronounce"))):
        page.keep_errors(event, failed, outputs)
