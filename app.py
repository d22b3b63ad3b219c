"""The charrnn web app: `python app.py` serves Generate, Autocomplete, Folk tunes and Train on 127.0.0.1:7860.

This file lays out the page and wires its events; the work is done by charrnn.serve.service (and the
registry, jobs and autocomplete modules behind it), which bound every argument on the server.
Nothing here reaches the network: Gradio's analytics are off, there is no share link, and the
page loads nothing from outside the server.
"""

import argparse
import functools
import os
import sys
import threading
import time
from pathlib import Path

# Before gradio (and huggingface_hub, which it imports) is imported: no analytics, no telemetry, no hub.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parent
DEFAULT_MODELS = REPO / "models"
MAX_UPLOAD_MB = 20
MAX_SESSIONS = 256  # each holds ~150 KB of Gradio state; see --max-sessions

CSS = """
.gradio-container { width: 100% !important; max-width: 1280px !important; margin: 0 auto !important; }
#title h1 { margin-bottom: 0; }
#title p { margin-top: 4px; opacity: .8; }
#gen-output textarea, #ac-input textarea { font-family: ui-monospace, 'IBM Plex Mono', Consolas, monospace;
  font-size: 15px; line-height: 1.5; }
#gen-stats, #ac-help { font-size: 13px; opacity: .85; }
.ac-pop { position: fixed; z-index: 1000; display: none; min-width: 180px; max-width: 460px;
  background: var(--background-fill-primary); border: 1px solid var(--color-accent);
  border-radius: 8px; box-shadow: 0 6px 24px rgba(0,0,0,.18); padding: 4px; font-size: 14px; }
.ac-pop.ac-open { display: block; }
.ac-item { display: flex; align-items: baseline; gap: 12px; width: 100%; text-align: left;
  padding: 4px 8px; border: 0; border-radius: 6px; background: transparent; cursor: pointer;
  font-family: ui-monospace, 'IBM Plex Mono', Consolas, monospace; color: var(--body-text-color); }
.ac-item[hidden] { display: none; }
.ac-item.ac-selected, .ac-item:hover { background: var(--color-accent-soft); }
.ac-typed { opacity: .45; white-space: pre; }
.ac-rest { font-weight: 600; color: var(--color-accent); white-space: pre; flex: 1; }
.ac-p { font-size: 12px; opacity: .7; font-family: var(--font); }
.ac-foot { font-size: 11px; opacity: .6; padding: 2px 8px 0; }
.ac-status { font-size: 12px; opacity: .7; min-height: 1.2em; }
.train-status .bar { height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; }
.train-status .fill { height: 100%; background: var(--color-accent); transition: width .6s; }
.train-status.done .fill { background: #16a34a; }
.train-status.failed .fill { background: #dc2626; }
.train-status .text { margin-top: 6px; font-size: 14px; }
#sheet { background: white; border-radius: 8px; padding: 8px; min-height: 60px; }
#sheet svg { width: 100%; height: auto; }
"""

# The autocomplete box: completions float beside the caret; Tab or a click accepts one, Up/Down choose,
# Escape hides them. Gradio's Textbox fires `.input` on keypress only, so edits that make none (Backspace,
# paste, an accepted completion) get a synthetic keypress to ask for new completions.
AC_TEMPLATE = """
<div class="ac-pop" data-len="{{value.text_len}}">
{{#each value.completions}}<button type="button" class="ac-item" data-text="{{this.text}}"
><span class="ac-typed"></span><span class="ac-rest">{{this.text}}</span><span class="ac-p">{{this.pct}}</span
></button>{{/each}}
<div class="ac-foot">Tab or click accepts · ↑↓ choose · Esc hides · {{value.ms}} ms</div>
</div>
<div class="ac-status">{{value.status}}</div>
"""

AC_JS = """
const area = () => document.querySelector('#ac-input textarea');
const cps = (s) => Array.from(s || '');
let selected = 0, dismissed = null, sawKey = false;
const state = () => props.value || {};
function extra() {
  const t = area(), d = state();
  if (!t || d.text_len === undefined || d.text_len < 0) return null;
  if (t.selectionStart !== t.value.length || t.selectionEnd !== t.value.length) return null;
  const v = cps(t.value);
  if (v.length < d.text_len) return null;
  const head = v.slice(0, d.text_len), tail = cps(d.tail || '');
  if (tail.length && head.slice(-tail.length).join('') !== tail.join('')) return null;
  return v.slice(d.text_len).join('');
}
function visible() { return Array.from(element.querySelectorAll('.ac-item')).filter(b => !b.hidden); }
function caret(t) {
  const cs = getComputedStyle(t), div = document.createElement('div');
  for (const p of ['boxSizing','width','borderTopWidth','borderRightWidth','borderBottomWidth','borderLeftWidth',
    'paddingTop','paddingRight','paddingBottom','paddingLeft','fontStyle','fontVariant','fontWeight','fontSize',
    'lineHeight','fontFamily','letterSpacing','wordSpacing','tabSize','textTransform','textIndent'])
    div.style[p] = cs[p];
  Object.assign(div.style, {position: 'absolute', visibility: 'hidden', whiteSpace: 'pre-wrap',
    overflowWrap: 'break-word', top: '0', left: '-9999px'});
  div.textContent = t.value;
  const span = document.createElement('span'); span.textContent = '\\u200b'; div.appendChild(span);
  document.body.appendChild(div);
  const r = {top: span.offsetTop - t.scrollTop, left: span.offsetLeft - t.scrollLeft,
             h: parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.4};
  div.remove();
  return r;
}
function refresh() {
  const pop = element.querySelector('.ac-pop'), t = area();
  if (!pop || !t) return;
  const x = extra(), ex = cps(x);
  element.querySelectorAll('.ac-item').forEach(b => {
    const c = cps(b.dataset.text);
    const ok = x !== null && c.length > ex.length && c.slice(0, ex.length).join('') === x;
    b.hidden = !ok;
    b.querySelector('.ac-typed').textContent = ok ? x : '';
    b.querySelector('.ac-rest').textContent = ok ? c.slice(ex.length).join('') : '';
  });
  const items = visible();
  if (selected >= items.length) selected = 0;
  items.forEach((b, i) => b.classList.toggle('ac-selected', i === selected));
  const open = items.length > 0 && document.activeElement === t && dismissed !== t.value;
  pop.classList.toggle('ac-open', open);
  if (!open) return;
  const rect = t.getBoundingClientRect(), c = caret(t);
  const top = Math.min(rect.top + c.top + c.h + 2, rect.bottom + 4);
  const left = Math.max(8, Math.min(rect.left + c.left, window.innerWidth - pop.offsetWidth - 8));
  pop.style.top = top + 'px'; pop.style.left = left + 'px';
}
function accept(b) {
  const t = area(); if (!t || !b) return;
  t.focus();
  t.value = t.value + b.querySelector('.ac-rest').textContent;
  t.selectionStart = t.selectionEnd = t.value.length;
  t.dispatchEvent(new Event('input', {bubbles: true}));
  refresh();
}
function ask() {  // what Gradio's Textbox listens to for its .input event
  const t = area(); if (t) t.dispatchEvent(new KeyboardEvent('keypress', {bubbles: true, key: 'Unidentified'}));
}
element.addEventListener('mousedown', (e) => { if (e.target.closest('.ac-item')) e.preventDefault(); });
element.addEventListener('click', (e) => { const b = e.target.closest('.ac-item'); if (b) accept(b); });
watch('value', () => {
  window.__acShown = {len: state().text_len, n: visible().length, t: performance.now()};
  selected = 0; refresh();
  window.__acShown.n = visible().length;
});
if (!window.__acInstalled) {
  window.__acInstalled = true;
  document.addEventListener('keypress', (e) => {
    if (e.target === area() && e.isTrusted) { sawKey = true; window.__acKeyT = performance.now(); }
  }, true);
  document.addEventListener('input', (e) => {
    const t = area(); if (e.target !== t) return;
    dismissed = null; window.__acInputT = performance.now();
    if (e.isTrusted && sawKey) sawKey = false; else setTimeout(ask, 0);
    refresh();
  }, true);
  document.addEventListener('keydown', (e) => {
    const t = area(); if (e.target !== t) return;
    const items = visible(), open = element.querySelector('.ac-pop.ac-open');
    if (!open || !items.length) return;
    if (e.key === 'Tab' && !e.shiftKey) { e.preventDefault(); accept(items[selected]); }
    else if (e.key === 'ArrowDown') { e.preventDefault(); selected = (selected + 1) % items.length; refresh(); }
    else if (e.key === 'ArrowUp') {
      e.preventDefault(); selected = (selected + items.length - 1) % items.length; refresh();
    }
    else if (e.key === 'Escape') { e.preventDefault(); dismissed = t.value; refresh(); }
  }, true);
  for (const ev of ['selectionchange', 'focusin', 'focusout']) document.addEventListener(ev, () => refresh());
  window.addEventListener('resize', () => refresh());
  document.addEventListener('scroll', () => refresh(), true);
}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The charrnn web app: generate, autocomplete, folk tunes, training.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="default 7860")
    p.add_argument("--models", default=str(DEFAULT_MODELS),
                   help="folder of model folders (config.json + model.safetensors each); default ./models")
    p.add_argument("--runs", default=None, help="where the Train tab writes its runs (default: runs/app/ beside "
                                                "the models folder); they appear in the model menus as trained/NAME")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"default {MAX_UPLOAD_MB}")
    p.add_argument("--queue-size", type=int, default=64, help="requests waiting at most; more get 'queue is full'")
    p.add_argument("--max-sessions", type=int, default=MAX_SESSIONS,
                   help=f"browser sessions whose state (a tab's tune history) is kept; the oldest go first "
                        f"(default {MAX_SESSIONS}). Every API call without a session is a new one.")
    p.add_argument("--train-threads", type=int, default=None,
                   help="CPU threads for a training job (default: all cores but one; inference uses 1)")
    p.add_argument("--train-device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    return p.parse_args(argv)


def build(args: argparse.Namespace):
    """The Blocks, and the keyword arguments for launch()."""
    import gradio as gr
    import pandas as pd
    import torch

    from charrnn.decoding.autocomplete import Autocompleter
    from charrnn.errors import CharRNNError
    from charrnn.serve import service as svc
    from charrnn.serve.jobs import SIZES, JobManager
    from charrnn.serve.registry import Registry, default_runs_dir

    torch.set_num_threads(1)  # inference: one thread per request (a training job sets its own thread's count)
    models_dir = Path(args.models)
    runs_dir = Path(args.runs) if args.runs else default_runs_dir(models_dir)
    max_upload = int(args.max_upload_mb * 1024 * 1024)
    jobs = JobManager(runs_dir, threads=args.train_threads, device=args.train_device, max_upload_bytes=max_upload)
    registry = Registry(models_dir, runs_dir, hidden=jobs.active_dirs)
    service = svc.Service(registry, jobs, Autocompleter())

    def user_errors(fn):
        """CharRNNErrors become Gradio errors: the page shows the message; API clients get it too."""

        @functools.wraps(fn)  # keeps the signature: Gradio reads it (gr.SelectData arguments)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except CharRNNError as e:
                raise gr.Error(str(e), print_exception=False) from None

        return wrapper

    def menu(folk: bool | None, current: str | None, prefer: str | None):
        choices = registry.choices(folk)
        names = [name for _, name in choices]
        value = current if current in names else registry.default(folk, prefer)
        return gr.Dropdown(choices=choices, value=value)

    def notice() -> str:
        return "" if registry.entries() else f"**{svc.NO_MODELS}**"

    # --- handlers (thin: each calls one Service method) ------------------------------------------------

    def generate(model, prime, length, mode, temperature, top_k, top_p, seed, beam):
        """Stream generated text and a line of statistics (characters per second)."""
        try:
            for update in service.generate(model, prime, length, mode, temperature, top_k, top_p, seed, beam):
                yield update.text, update.stats()
        except CharRNNError as e:
            raise gr.Error(str(e), print_exception=False) from None

    @user_errors
    def complete(model, text, num, until, max_len):
        """The best completions of the text: {text_len, tail, ms, cache, completions: [{text, prob, ...}]}."""
        return service.complete(model, text, num, until, max_len)

    def folk_outputs(result: svc.FolkResult, history: list):
        rows = svc.history_rows(history)
        sheet = (result.svg if result.svg else
                 '<p style="color:#555;padding:12px">No sheet music: '
                 + ("rendering failed." if result.passed else "the tune did not pass the checks.") + "</p>")
        return (sheet, result.audio, result.abc, svc.findings_markdown(result), result.files or None,
                history, rows)

    @user_errors
    def folk(model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo, history):
        """Write a tune; show its sheet music, audio, ABC, findings and files; add it to the session's history."""
        result = service.folk_tune(model, meter, tonic, mode, tune_type, start, temperature, seed, candidates, tempo)
        record = {**result.summary(), "meter": meter, "key": f"{tonic} {mode}", "type": tune_type, "tempo": tempo}
        history = ([*(history or []), record])[-svc.MAX_HISTORY:]
        return folk_outputs(result, history)

    @user_errors
    def folk_show(history, tempo, evt: gr.SelectData):
        """Show a tune of the session's history again (the row that was clicked)."""
        history = history or []
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not isinstance(index, int) or not 0 <= index < len(history):
            raise CharRNNError("no such tune in this session's history")
        result = service.rerender(history[index], tempo)
        return folk_outputs(result, history)

    def loss_frame(history: list[dict]):
        """The loss curve's data; None while there is none (a plot given an empty frame never draws lines)."""
        rows = svc.loss_rows(history)
        if not rows:
            return None
        return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                             "loss": pd.Series([r["loss"] for r in rows], dtype="float64"),
                             "split": pd.Series([r["split"] for r in rows], dtype="object")})

    def train_view(snapshot: dict):
        return svc.status_html(snapshot), loss_frame(snapshot.get("history", [])), snapshot

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
        return (*train_view(snapshot), gr.Timer(active=True))

    def train_stop():
        """Ask the running job to save and stop."""
        return train_view(service.stop_training())

    def poll(seen, gen_model, ac_model, folk_model):
        """The job's progress and loss curve; refreshes the model menus when the list of models changed."""
        snapshot = service.training_status()
        signature = registry.signature()
        job_key = (snapshot.get("status"), snapshot.get("step"), len(snapshot.get("history", [])),
                   snapshot.get("name"))
        if seen == [signature, job_key]:
            return (gr.skip(),) * 8
        status, frame, details = train_view(snapshot)
        menus = ((menu(None, gen_model, "shakespeare"), menu(False, ac_model, "shakespeare"),
                  menu(True, folk_model, "folk")) if not seen or seen[0] != signature else (gr.skip(),) * 3)
        active = snapshot.get("status") in ("starting", "running", "stopping")
        return (status, frame, details, [signature, job_key], *menus, gr.Timer(active=active))

    def on_load(gen_model, ac_model, folk_model):
        """Fresh menus and training status for a page that just opened."""
        snapshot = service.training_status()
        status, frame, details = train_view(snapshot)
        active = snapshot.get("status") in ("starting", "running", "stopping")
        corpora = [*service.corpora(), ("My own text file (upload it below)", "upload")]
        return (menu(None, gen_model, "shakespeare"), menu(False, ac_model, "shakespeare"),
                menu(True, folk_model, "folk"), notice(), gr.Radio(choices=corpora), status, frame, details,
                gr.Timer(active=active))

    # --- layout --------------------------------------------------------------------------------------

    with gr.Blocks(title="charrnn", delete_cache=(3600, 86400)) as demo:
        with gr.Column(elem_id="title"):
            gr.Markdown("# charrnn\nCharacter-level RNN language models: generate text, autocomplete as you type, "
                        "write folk tunes, and train your own model, all on this machine.")
        no_models = gr.Markdown(notice(), label="Notice")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        gen_model = gr.Dropdown(label="Model", choices=registry.choices(), allow_custom_value=True,
                                                value=registry.default(None, "shakespeare"))
                        gen_mode = gr.Radio(list(svc.MODES), value="sample", label="Decoding",
                                            info="sample: draw each character; greedy: always the likeliest; "
                                                 "beam: the likeliest whole text")
                        gen_length = gr.Slider(1, svc.MAX_LENGTH, value=500, step=1, label="Length (characters)")
                        gen_temperature = gr.Slider(0, svc.MAX_TEMPERATURE, value=0.8, step=0.05,
                                                    label="Temperature", info="0 is greedy; higher is wilder")
                        with gr.Row():
                            gen_top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k", info="0 = off")
                            gen_top_p = gr.Slider(0.01, 1, value=1, step=0.01, label="Top-p", info="1 = off")
                        with gr.Row():
                            gen_seed = gr.Number(-1, label="Seed", info="-1 = random", precision=0, minimum=-1,
                                                 maximum=svc.MAX_SEED)
                            gen_beam = gr.Slider(1, svc.MAX_BEAM, value=8, step=1, label="Beam width")
                    with gr.Column(scale=2):
                        gen_prime = gr.Textbox(label="Prime text", value="ROMEO:", lines=2, max_length=svc.MAX_PRIME,
                                               placeholder="The text the model continues (may be empty)")
                        with gr.Row():
                            gen_button = gr.Button("Generate", variant="primary")
                            gen_stop = gr.Button("Stop", variant="stop")
                        gen_output = gr.Textbox(label="Output", lines=18, max_lines=30, elem_id="gen-output",
                                                autoscroll=True, interactive=False, buttons=["copy"])
                        gen_stats = gr.Markdown(elem_id="gen-stats", label="Statistics")
            with gr.Tab("Autocomplete", id="autocomplete"):
                with gr.Row():
                    ac_model = gr.Dropdown(label="Model", choices=registry.choices(False), allow_custom_value=True,
                                           value=registry.default(False, "shakespeare"), scale=2)
                    ac_until = gr.Radio(list(svc.UNTILS), value="word", label="Complete to the end of")
                    ac_num = gr.Slider(1, 5, value=3, step=1, label="Completions")
                    ac_max_len = gr.Slider(1, 60, value=30, step=1, label="Longest completion")
                ac_input = gr.Textbox(label="Type here", lines=10, max_lines=20, elem_id="ac-input",
                                      placeholder="Start typing, e.g. 'To be, or not to b' - completions appear "
                                                  "beside the cursor; Tab accepts the highlighted one.")
                ac_popup = gr.HTML(value={"text_len": -1, "completions": [], "status": ""}, elem_id="ac-popup",
                                   label="Completions",
                                   html_template=AC_TEMPLATE, js_on_load=AC_JS)
                gr.Markdown("Each pause in your typing asks the model for the likeliest ends of the current word "
                            "(beam search); the percentages are their probabilities given the text so far.",
                            elem_id="ac-help")
            with gr.Tab("Folk tunes", id="folk"):
                history = gr.State([])
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        folk_model = gr.Dropdown(label="Model", choices=registry.choices(True), allow_custom_value=True,
                                                 value=registry.default(True, "folk"))
                        with gr.Row():
                            folk_meter = gr.Dropdown(list(svc.METERS), value="6/8", label="Meter")
                            folk_type = gr.Dropdown([svc.ANY_TYPE, *svc.FOLK_TYPES], value="jig", label="Tune type")
                        with gr.Row():
                            folk_tonic = gr.Dropdown(list(svc.TONICS), value="D", label="Key")
                            folk_mode = gr.Dropdown(list(svc.MODES_MUSIC), value="major", label="Mode")
                        folk_start = gr.Textbox(label="First bars (optional)", max_length=svc.MAX_FOLK_START,
                                                placeholder="e.g. |:A2B c2d|")
                        folk_temperature = gr.Slider(0.05, 2, value=0.8, step=0.05, label="Temperature")
                        with gr.Row():
                            folk_seed = gr.Number(-1, label="Seed", info="-1 = random", precision=0, minimum=-1,
                                                  maximum=svc.MAX_SEED)
                            folk_candidates = gr.Slider(1, svc.MAX_FOLK_CANDIDATES, value=4, step=1,
                                                        label="Candidates", info="the best that passes is kept")
                        folk_tempo = gr.Slider(40, 240, value=120, step=5, label="Tempo (quarter notes a minute)")
                        folk_button = gr.Button("Write a tune", variant="primary")
                    with gr.Column(scale=2):
                        folk_sheet = gr.HTML(elem_id="sheet", label="Sheet music",
                                             value="<p style='color:#555;padding:12px'>"
                                             "The sheet music appears here.</p>", js_on_load=None)
                        folk_audio = gr.Audio(label="Listen", type="numpy", interactive=False, elem_id="folk-audio")
                        folk_findings = gr.Markdown(elem_id="folk-findings", label="Checks")
                        with gr.Row():
                            folk_abc = gr.Code(label="ABC", language=None, lines=8, elem_id="folk-abc", scale=3)
                            folk_files = gr.File(label="Downloads (.abc, .mid, .wav)", file_count="multiple",
                                                 interactive=False, scale=2)
                folk_history = gr.Dataframe(headers=["#", "title", "meter", "key", "type", "seed", "passed"],
                                            label="This session's tunes (click one to show it again)",
                                            interactive=False, wrap=True)
            with gr.Tab("Train", id="train"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        corpora = [*service.corpora(), ("My own text file (upload it below)", "upload")]
                        train_source = gr.Radio(corpora, value=corpora[0][1], label="Training text")
                        train_upload = gr.File(label=f"Text file (UTF-8, up to {args.max_upload_mb:g} MB)",
                                               file_types=[".txt", ".abc", ".md", ".csv", ".tsv", ".json", ".py",
                                                           ".html", ".xml", ".tex", ".rst"], type="filepath",
                                               elem_id="train-upload")
                        train_name = gr.Textbox(label="Name (optional)", max_length=40,
                                                placeholder="letters, digits, - and _")
                        train_core = gr.Radio([("LSTM", "lstm"), ("GRU", "gru"), ("RNN", "rnn")], value="lstm",
                                              label="Core")
                        train_size = gr.Radio([(f"{k} ({v[0]}×{v[1]})", k) for k, v in SIZES.items()],
                                              value="small", label="Size (layers × hidden)")
                        train_budget = gr.Slider(5, 3600, value=60, step=5, label="Time budget (seconds)")
                        with gr.Row():
                            train_button = gr.Button("Start training", variant="primary")
                            train_stop_button = gr.Button("Stop", variant="stop")
                    with gr.Column(scale=2):
                        train_status = gr.HTML(svc.status_html(service.training_status()), elem_id="train-status",
                                               label="Status",
                                               js_on_load=None)
                        train_plot = gr.LinePlot(loss_frame([]), x="step", y="loss",
                                                 color="split", color_map={"train": "#6366f1", "val": "#f97316"},
                                                 title="Loss (nats per character)", height=340, elem_id="loss-plot")
                        with gr.Accordion("Job details", open=False):
                            train_details = gr.JSON(elem_id="train-details", label="Job")
        seen = gr.State(None)
        timer = gr.Timer(1.0, active=False)

        # --- events ------------------------------------------------------------------------------------
        gen_event = gen_button.click(
            generate, [gen_model, gen_prime, gen_length, gen_mode, gen_temperature, gen_top_k, gen_top_p, gen_seed,
                       gen_beam], [gen_output, gen_stats], api_name="generate", concurrency_id="generate",
            concurrency_limit=2, show_progress="minimal")
        gen_stop.click(None, None, None, cancels=[gen_event], api_name="generate_stop", queue=False)
        ac_input.input(complete, [ac_model, ac_input, ac_num, ac_until, ac_max_len], ac_popup,
                       api_name="complete", trigger_mode="always_last", show_progress="hidden",
                       concurrency_id="autocomplete", concurrency_limit=4)
        folk_inputs = [folk_model, folk_meter, folk_tonic, folk_mode, folk_type, folk_start, folk_temperature,
                       folk_seed, folk_candidates, folk_tempo, history]
        folk_outs = [folk_sheet, folk_audio, folk_abc, folk_findings, folk_files, history, folk_history]
        folk_button.click(folk, folk_inputs, folk_outs, api_name="folk", concurrency_id="folk", concurrency_limit=1)
        folk_history.select(folk_show, [history, folk_tempo], folk_outs, api_name="folk_show",
                            concurrency_id="folk", concurrency_limit=1)
        train_outs = [train_status, train_plot, train_details]
        train_button.click(train_start, [train_source, train_upload, train_name, train_core, train_size, train_budget],
                           [*train_outs, timer], api_name="train_start", concurrency_id="train_control",
                           concurrency_limit=1, show_progress="hidden")
        train_stop_button.click(train_stop, None, train_outs, api_name="train_stop", concurrency_id="train_control",
                                concurrency_limit=1, show_progress="hidden")
        timer.tick(poll, [seen, gen_model, ac_model, folk_model], [*train_outs, seen, gen_model, ac_model,
                                                                   folk_model, timer],
                   api_name="train_poll", show_progress="hidden", concurrency_id="poll", concurrency_limit=None)
        demo.load(on_load, [gen_model, ac_model, folk_model],
                  [gen_model, ac_model, folk_model, no_models, train_source, *train_outs, timer], api_name="refresh",
                  concurrency_id="poll", concurrency_limit=None, show_progress="hidden")
        gr.api(service.models, api_name="models", concurrency_id="poll", concurrency_limit=None)
        gr.api(service.training_status, api_name="train_status", concurrency_id="poll", concurrency_limit=None)

    demo.queue(max_size=args.queue_size, default_concurrency_limit=1)
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
    launch = dict(server_name=args.host, server_port=args.port, max_file_size=max_upload, ssr_mode=False,
                  share=False, show_error=True, theme=theme, css=CSS, footer_links=["api", "settings"],
                  quiet=False, run_history=False, state_session_capacity=args.max_sessions)
    return demo, launch, service


def warm_up(service) -> None:
    """After launch, in the background: load the default models and start the sheet-music worker."""
    from charrnn.errors import CharRNNError

    for folk, prefer in ((False, "shakespeare"), (True, "folk")):
        name = service.registry.default(folk, prefer)
        if name:
            try:
                service.registry.load(name)
            except CharRNNError:
                pass
    try:
        from charrnn.folk import render

        render.ENGRAVER.start()
    except (ImportError, CharRNNError):
        pass


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    demo, launch, service = build(args)
    demo.launch(prevent_thread_lock=True, **launch)
    print(f"charrnn app ready in {time.perf_counter() - started:.1f}s", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
