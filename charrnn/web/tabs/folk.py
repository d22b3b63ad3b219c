"""The Folk tunes tab: write a tune; see its sheet music and form, hear it, read its checks; this session's tunes."""

from __future__ import annotations

import gradio as gr

from charrnn.errors import CharRNNError
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, user_errors


def build(page: Page) -> None:
    """Lay out the Folk tunes tab and wire its events (API: folk, folk_show)."""
    service = page.service

    def show(result: svc.FolkResult, history: list) -> tuple:
        return (views.sheet(result), result.audio, result.abc, views.findings_markdown(result), result.files or None,
                history, views.history_rows(history), views.form_markdown(result))

    @user_errors
    def folk(model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo, history):
        """Write a tune; show its sheet music, audio, ABC, findings and files; add it to the session's history."""
        result = service.folk_tune(model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo)
        record = {**result.summary(), "meter": meter, "key": f"{tonic} {mode}", "type": tune_type, "tempo": tempo}
        return show(result, [*(history or []), record][-svc.MAX_HISTORY:])

    @user_errors
    def folk_show(history, tempo, evt: gr.SelectData):
        """Show a tune of the session's history again (the row that was clicked)."""
        history = history or []
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(history):
            raise CharRNNError("no such tune in this session's history")
        return show(service.rerender(history[index], tempo), history)

    with gr.Tab("Folk tunes", id="folk"):
        history = gr.State([])
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model = page.model_menu(True, "folk")
                with gr.Row():
                    meter = gr.Dropdown(list(svc.METERS), value="6/8", label="Meter")
                    tune_type = gr.Dropdown([svc.ANY_TYPE, *svc.FOLK_TYPES], value="jig", label="Tune type")
                with gr.Row():
                    tonic = gr.Dropdown(list(svc.TONICS), value="D", label="Key")
                    mode = gr.Dropdown(list(svc.MODES_MUSIC), value="major", label="Mode")
                start = gr.Textbox(label="First bars (optional)", max_length=svc.MAX_FOLK_START,
                                   placeholder="e.g. |:A2B c2d|")
                temperature = gr.Slider(0.05, 2, value=0.8, step=0.05, label="Temperature")
                with gr.Row():
                    seed = gr.Number(-1, label="Seed", info="-1 = random", precision=0, minimum=-1,
                                     maximum=svc.MAX_SEED)
                    candidates = gr.Slider(1, svc.MAX_FOLK_CANDIDATES, value=4, step=1,
                                           label="Candidates", info="the best that passes is kept")
                tempo = gr.Slider(40, 240, value=120, step=5, label="Tempo (quarter notes a minute)")
                button = gr.Button("Write a tune", variant="primary")
            with gr.Column(scale=2):
                with gr.Row():
                    sheet = gr.HTML(elem_id="sheet", label="Sheet music", value=views.SHEET_EMPTY, js_on_load=None)
                    form = gr.Markdown(elem_id="folk-form", label="Form")
                audio = gr.Audio(label="Listen", type="numpy", interactive=False, elem_id="folk-audio")
                findings = gr.Markdown(elem_id="folk-findings", label="Checks")
                with gr.Row():
                    abc = gr.Code(label="ABC", language=None, lines=8, elem_id="folk-abc", scale=3)
                    files = gr.File(label="Downloads (.abc, .mid, .wav)", file_count="multiple",
                                    interactive=False, scale=2)
        table = gr.Dataframe(headers=views.HISTORY_HEADERS, label="This session's tunes (click one to show it again)",
                             interactive=False, wrap=True)

    outputs = [sheet, audio, abc, findings, files, history, table, form]  # form last: the API's order stays
    button.click(folk, [model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo, history],
                 outputs, api_name="folk", **page.workers("folk"))
    table.select(folk_show, [history, tempo], outputs, api_name="folk_show", **page.workers("folk"))
