"""The Folk tunes tab: write a tune; see its sheet music and form, hear it, read its checks; this session's tunes."""

from __future__ import annotations

import gradio as gr

from charrnn.errors import CharRNNError
from charrnn.serve import limits
from charrnn.serve import service as svc
from charrnn.web import views
from charrnn.web.page import Page, slider, user_errors


def build(page: Page) -> None:
    """Lay out the Folk tunes tab and wire its events (API: folk, folk_show(row, tempo))."""
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

    def pick(evt: gr.SelectData) -> int:
        """The history row that was clicked (the page's step before folk_show)."""
        return evt.index[0] if isinstance(evt.index, list | tuple) else evt.index

    @user_errors
    def folk_show(history, row, tempo):
        """Show the tune of row `row` (from 0, oldest first) of the session's history again, at `tempo`."""
        history = history or []
        if not isinstance(row, int | float) or not 0 <= row < len(history) or row != int(row):
            tunes = f"rows 0 to {len(history) - 1}" if history else "none yet: write one with /folk first"
            raise CharRNNError(f"no tune {row} in this session's history ({tunes})")
        return show(service.rerender(history[int(row)], tempo), history)

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
                start = gr.Textbox(label="First bars (optional)", max_length=limits.MAX_FOLK_START,
                                   placeholder="e.g. |:A2B c2d|")
                temperature = slider(limits.FOLK_TEMPERATURE, 0.05, label="Temperature")
                with gr.Row():
                    seed = gr.Number(-1, label="Seed", info="-1 = random", precision=0, minimum=-1,
                                     maximum=limits.MAX_SEED)
                    candidates = slider(limits.FOLK_CANDIDATES, 1,
                                           label="Candidates", info="the best that passes is kept")
                tempo = slider(limits.TEMPO, 5, label="Tempo (quarter notes a minute)")
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
        row = gr.Number(visible=False, precision=0, label="Row")  # the clicked row, for folk_show

    outputs = [sheet, audio, abc, findings, files, history, table, form]  # form last: the API's order stays

    def failed(message: str) -> tuple:
        """The error where the sheet music and the checks would be; no earlier tune's audio, ABC or files."""
        return views.error_html(message), None, "", views.error_markdown(message), None

    written = button.click(folk, [model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo,
                                  history], outputs, api_name="folk", **page.workers("folk"))
    page.keep_errors(written, failed, outputs[:5])
    # A click picks the row, then folk_show shows it: API clients call folk_show with the row themselves.
    shown = table.select(pick, None, row, api_visibility="private", queue=False, show_progress="hidden").then(
        folk_show, [history, row, tempo], outputs, api_name="folk_show", **page.workers("folk"))
    page.keep_errors(shown, failed, outputs[:5])
