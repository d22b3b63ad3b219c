"""The Generate tab: any model, a prime and the decoding settings; the text streams in, with a Stop button."""

from __future__ import annotations

import gradio as gr

from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, slider, user_errors


def build(page: Page) -> None:
    """Lay out the Generate tab and wire its events (API: generate, generate_stop)."""
    service = page.service

    @user_errors
    def generate(model, prime, length, mode, temperature, top_k, top_p, seed, beam):
        """Stream generated text and a line of statistics (characters per second)."""
        for update in service.generate(model, prime, length, mode, temperature, top_k, top_p, seed, beam):
            yield update.text, views.generation_stats(update)

    with gr.Tab("Generate", id="generate"):
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model = page.model_menu(None, "shakespeare")
                mode = gr.Radio(list(svc.MODES), value="sample", label="Decoding",
                                info="sample: draw each character; greedy: always the likeliest; "
                                     "beam: the likeliest whole text")
                length = slider(limits.LENGTH, 1, label="Length (characters)")
                temperature = slider(limits.TEMPERATURE, 0.05, label="Temperature", elem_id="gen-temperature",
                                     info="0 is greedy; higher is wilder")
                with gr.Row():
                    # (the service takes any k up to the model's vocabulary; the slider offers the useful ones)
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k", info="0 = off", elem_id="gen-top-k")
                    top_p = slider(limits.TOP_P, 0.01, label="Top-p", info="1 = off", elem_id="gen-top-p")
                with gr.Row():
                    seed = gr.Number(-1, label="Seed", info="-1 = random", precision=0, minimum=-1,
                                     maximum=limits.MAX_SEED, elem_id="gen-seed")
                    beam = slider(limits.BEAM, 1, label="Beam width", visible=False,
                                  elem_id="gen-beam")  # shown in beam mode only
                mode_note = gr.Markdown(views.mode_note("sample"), elem_id="gen-mode-note")
            with gr.Column(scale=2):
                prime = gr.Textbox(label="Prime text", value="ROMEO:", lines=2, max_length=limits.MAX_PRIME,
                                   placeholder="The text the model continues (may be empty)")
                with gr.Row():
                    button = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                output = gr.Textbox(label="Output", lines=18, max_lines=30, elem_id="gen-output",
                                    autoscroll=True, interactive=False, buttons=["copy"])
                stats = gr.Markdown(elem_id="gen-stats", label="Statistics")

    drawing = [temperature, top_k, top_p, seed]  # what only sampling uses: greedy and beam search draw nothing
    mode.change(lambda chosen: (gr.Slider(visible=chosen == "beam"),
                                *[gr.update(interactive=chosen == "sample") for _ in drawing],
                                views.mode_note(chosen)),
                mode, [beam, *drawing, mode_note], api_name=False, queue=False, show_progress="hidden")
    event = button.click(generate, [model, prime, length, mode, temperature, top_k, top_p, seed, beam],
                         [output, stats], api_name="generate", show_progress="minimal", **page.workers("generate"))
    page.keep_errors(event, lambda message: ("", views.error_markdown(message)), [output, stats])
    stop.click(None, None, None, cancels=[event], api_name="generate_stop", queue=False)
