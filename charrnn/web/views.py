"""How the app's results look on the page: Markdown, HTML and table rows made from the service's data.

No Gradio here (the tabs put these into components), and nothing here changes a result: charrnn.serve.service
returns plain data, this module only renders it. Text that comes from users (run names) is escaped.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from charrnn.decoding.beam import SAMPLING_ONLY, unused_by_beam
from charrnn.inside import render as inside
from charrnn.inside.report import CellRef, Report
from charrnn.serve.service import NO_MODELS, FolkResult, Generation

# The completions popup (a gr.HTML template over the dict `completions` returns); static/autocomplete.js
# places it beside the caret and keeps only the completions that still fit what has been typed since.
AC_TEMPLATE = """
<div class="ac-pop" data-len="{{value.text_len}}">
{{#each value.completions}}<button type="button" class="ac-item ac-{{this.kind}}" data-text="{{this.text}}"
data-space="{{#if this.space}}1{{/if}}"
><span class="ac-typed"></span><span class="ac-rest">{{this.text}}</span><span class="ac-p">{{this.pct}}</span
></button>{{/each}}
<div class="ac-foot">Tab or click accepts · ↑↓ choose · Esc hides · {{value.ms}} ms</div>
</div>
<div class="ac-status">{{value.status}}</div>
"""
AC_EMPTY = {"text_len": -1, "completions": [], "status": ""}
SHEET_EMPTY = "<p style='color:#555;padding:12px'>The sheet music appears here.</p>"
HISTORY_HEADERS = ["#", "title", "meter", "key", "type", "seed", "passed"]
FINDINGS_SHOWN = 30


def notice(has_models: bool) -> str:
    """The line above the tabs: empty, or how to get a first model."""
    return "" if has_models else f"**{NO_MODELS}**"


def generation_stats(update: Generation) -> str:
    """The line under a generation: how far it got, how fast, with which seed."""
    state = "done" if update.done else "generating"
    seed = f" · seed {update.seed}" if update.seed is not None else ""
    note = f" · {update.note}" if update.note else ""
    return (f"{state}: {update.chars:,} characters in {update.seconds:.2f} s · "
            f"**{update.chars_per_s:,.0f} chars/s**{seed}{note}")


def completions(answer: dict) -> dict:
    """The service's completions with what the popup shows: each one's percentage and a status line."""
    shown = {**answer, "completions": [
        {**c, "pct": f"{100 * c['prob']:.1f}%" if c["prob"] >= 0.001 else "<0.1%"} for c in answer["completions"]]}
    shown["status"] = f"{len(shown['completions'])} completions in {answer['ms']:.0f} ms"
    if answer.get("cache") == "result":  # the cache's other ways (state, extend, cold) are no news to a user
        shown["status"] += " · asked before, answered from memory"
    if answer.get("skipped"):
        shown["status"] += f" · the model does not know {answer['skipped'][:10]!r}"
    if answer.get("learned_chars"):  # "learn from my text": how much of it the answering model has learned
        shown["status"] += f" · learned from {answer['learned_chars']:,} characters of your text"
    return shown


def findings_markdown(result: FolkResult) -> str:
    """A tune's verdict and the checks' findings, as a Markdown list."""
    if result.passed:
        redrawn = f" ({result.redrawn} line{'s' if result.redrawn != 1 else ''} drawn again to get there.)"
        head = f"**Passed every check.**{redrawn if result.redrawn else ''} {result.message}"
    elif not result.ended:
        head = f"**Not finished**: the model ran into the length limit. {result.message}"
    else:
        head = f"**Fails the checks.** {result.message}"
    lines = [head.strip()]
    for f in result.findings[:FINDINGS_SHOWN]:
        where = f" (bar {f['bar']})" if f.get("bar") else ""
        lines.append(f"- {'⚠️' if f['severity'] == 'error' else 'ℹ️'} `{f['kind']}`{where}: {f['message']}")
    if len(result.findings) > FINDINGS_SHOWN:
        lines.append(f"- … and {len(result.findings) - FINDINGS_SHOWN} more")
    return "\n".join(lines)


def form_markdown(result: FolkResult) -> str:
    """A tune's form beside its sheet music: parts x bars, repeats, the ending, the range, the copied run."""
    form = result.form
    if not form:
        return ""
    parts = form.get("parts") or []
    repeats = ", ".join(f"{chr(65 + i)} {'twice' if r else 'once'}" for i, r in enumerate(form.get("repeated") or []))
    ending = (f"on {form.get('ends_on')}" + (" — the tonic" if form.get("ends_on_tonic") else " — not the tonic")
              if form.get("ends_on") else "—")
    copied = form.get("copied_bars")
    copied_text = "not checked (no corpus index for this model)" if copied is None else \
        f"{copied:g} bars" + (f" (corpus tune {form['copied_tune']})" if form.get("copied_tune") else "")
    rows = [("Form", f"`{form.get('layout', '')}`"), ("Parts × bars", " + ".join(map(str, parts)) or "—"),
            ("Repeats", (repeats or "—") + (" · 1st/2nd endings" if form.get("endings") else "")),
            (f"Ends ({form.get('key') or '?'})", ending), ("Range", f"{form.get('range', 0)} semitones"),
            ("Longest run shared with the corpus", copied_text)]
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def mode_note(mode: str) -> str:
    """Under the Generate tab's decoding choice: which controls the mode leaves unused (they are disabled)."""
    if mode == "beam":
        return f"*{unused_by_beam(SAMPLING_ONLY).capitalize()}.*"
    if mode == "greedy":
        return ("*Greedy decoding always takes the likeliest character: temperature, top-k, top-p and seed do not "
                "apply.*")
    return ""


def error_html(message: str) -> str:
    """An error shown where a result would be (it stays until the next request)."""
    return f'<p class="result-error" role="alert"><strong>Error:</strong> {html.escape(message)}</p>'


def error_markdown(message: str) -> str:
    return f"**Error:** {message}"


def sheet(result: FolkResult) -> str:
    """The tune's sheet music (SVG), or a line saying why there is none."""
    if result.svg:
        return result.svg
    why = "rendering failed." if result.passed else "the tune did not pass the checks."
    return f'<p style="color:#555;padding:12px">No sheet music: {why}</p>'


def history_rows(history: list[dict]) -> list[list]:
    """The session's tunes as table rows: number, title, meter, key, type, seed, passed."""
    return [[i + 1, h.get("title", ""), h.get("meter", ""), h.get("key", ""), h.get("type", ""), h.get("seed", ""),
             "yes" if h.get("passed") else "no"] for i, h in enumerate(history)]


def status_html(snapshot: dict) -> str:
    """The Train tab's status: a progress bar and a line of text (escaped: names come from users)."""
    status = snapshot.get("status", "idle")
    pct = 100 * float(snapshot.get("progress") or 0.0)
    if status == "idle":
        text = snapshot.get("message") or ""
    else:
        best = snapshot.get("best_val_loss")
        best_text = f" · best val loss {best:.3f}" if best is not None else ""
        text = (f"<b>{html.escape(snapshot.get('name', ''))}</b> · {html.escape(status)} · step "
                f"{snapshot.get('step', 0):,} · {snapshot.get('elapsed', 0):.0f} s of "
                f"{snapshot.get('time_budget', 0):.0f} s{best_text}")
        if snapshot.get("message"):
            text += f"<br>{html.escape(snapshot['message'])}"
    css = {"failed": "failed", "done": "done"}.get(status, "running" if status != "idle" else "idle")
    return (f'<div class="train-status {css}" data-status="{html.escape(status)}">'
            f'<div class="bar"><div class="fill" style="width:{pct:.1f}%"></div></div>'
            f'<div class="text">{text if status != "idle" else html.escape(text)}</div></div>')


def missing_corpora(missing: list[dict]) -> str:
    """The Train tab's list of catalogued corpora that are not on this server yet, each with how to add it."""
    if not missing:
        return ""
    lines = ["**Not on this server yet:**"]
    for c in missing:
        if c["buildable"]:
            how = f"build it here with its button below (offline, a few minutes), or in a terminal: `{c['command']}`"
        else:
            how = (f"in a terminal (it downloads; offline, give a copy with `--mirror DIR`): `{c['command']}`, "
                   "then reload this page")
        lines.append(f"- **{c['name']}**: {c['description']}. To add it, {how}.")
    return "\n".join(lines)


def loss_rows(history: list[dict]) -> list[dict]:
    """Long-format rows (step, loss, split) for a line plot with one line per split."""
    rows = []
    for record in history:
        for split in ("train", "val"):
            value = record.get(f"{split}_loss")
            if value is not None and math.isfinite(value):
                rows.append({"step": int(record["step"]), "loss": float(value), "split": split})
    return rows


def loss_frame(history: list[dict]) -> pd.DataFrame | None:
    """The loss curve's data; None while there is none (a plot given an empty frame never draws lines)."""
    rows = loss_rows(history)
    if not rows:
        return None
    return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                         "loss": pd.Series([r["loss"] for r in rows], dtype="float64"),
                         "split": pd.Series([r["split"] for r in rows], dtype="object")})


def inspection_summary(report: Report) -> str:
    """The line above the coloured text: how much was read, at how many bits per character."""
    return (f"{len(report.text):,} characters at **{report.bpc:.3f} bits per character**. Hover a character "
            "for its surprisal and the model's five guesses for it.")


def inspection_text(report: Report, cell: CellRef | None = None) -> str:
    """The text coloured by surprise (or by `cell`: red above zero, blue below), with its legend."""
    legend = (inside.legend_html() if cell is None else
              f"<div class='legend'>cell {html.escape(str(cell))}: red above zero, blue below</div>")
    return f"<style>{inside.CSS}</style><div class='charrnn-inside' id='inside-text'>{legend}" \
           f"{inside.text_html(report, cell)}</div>"


def cell_choices(report: Report, best: int) -> list[tuple[str, str]]:
    """The cell menu: surprise, then the finder's `best` cells for each feature, as (label, LAYER:INDEX:KIND)."""
    return [("surprise", "")] + [(inside.cell_label(c), f"{c['layer']}:{c['cell']}:{c['kind']}")
                                 for c in report.best_cells(best)]


def saturation(report: Report) -> str:
    """The gate-saturation scatter plot, inline SVG."""
    return f"<div id='inside-saturation'>{inside.saturation_svg(report.saturation)}</div>"


# --- the Pronounce tab ------------------------------------------------------------------------------

CELL = 22  # pixels of one attention cell


def attention_svg(attention: dict) -> str:
    """The attention weights as a heatmap: one row per phoneme (and </s>), one column per letter."""
    letters, phonemes, weights = attention["letters"], attention["phonemes"], attention["weights"]
    left, top = 48, 20
    width, height = left + CELL * len(letters) + 4, top + CELL * len(phonemes) + 4
    parts = [f'<svg class="attention" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="attention of each phoneme over the letters">']
    for j, letter in enumerate(letters):
        parts.append(f'<text x="{left + CELL * j + CELL / 2}" y="14" text-anchor="middle">{html.escape(letter)}</text>')
    for i, (phoneme, row) in enumerate(zip(phonemes, weights, strict=True)):
        y = top + CELL * i
        parts.append(f'<text x="{left - 4}" y="{y + 15}" text-anchor="end">{html.escape(phoneme)}</text>')
        for j, w in enumerate(row):
            shade = round(255 * (1 - float(w)))
            parts.append(f'<rect x="{left + CELL * j}" y="{y}" width="{CELL - 1}" height="{CELL - 1}" '
                         f'fill="rgb({shade},{shade},255)"><title>{html.escape(phoneme)} / '
                         f'{html.escape(letters[j])}: {float(w):.2f}</title></rect>')
    return "".join(parts) + "</svg>"


DICTIONARY_MARK = ' <span class="in-dictionary" title="the CMU dictionary gives this pronunciation">✓ dictionary</span>'


def pronunciations_html(result: dict) -> str:
    """Each word: its N-best pronunciations (ARPAbet, IPA, probability), the dictionary's, the heatmap."""
    blocks = []
    for word in result["words"]:
        rows = "".join(
            f'<tr><td>{i}</td><td class="arpabet">{html.escape(o["arpabet"])}</td>'
            f'<td class="ipa">/{html.escape(o["ipa"])}/</td>'
            f'<td>{o["prob"]:.1%}{DICTIONARY_MARK if o["in_dictionary"] else ""}</td></tr>'
            for i, o in enumerate(word["outputs"], 1))
        known = "".join(f'<li><span class="arpabet">{html.escape(d["arpabet"])}</span> '
                        f'<span class="ipa">/{html.escape(d["ipa"])}/</span> (model: {d["prob"]:.1%})</li>'
                        for d in word["dictionary"])
        dictionary = f"<p>Dictionary:</p><ul>{known}</ul>" if known else "<p>Not in the dictionary.</p>"
        blocks.append(f'<div class="pronounce-word"><h3>{html.escape(word["word"])}</h3>'
                      f'<table><tr><th>#</th><th>ARPAbet</th><th>IPA</th><th>probability</th></tr>{rows}'
                      f'</table>{dictionary}{attention_svg(word["attention"])}</div>')
    timing = f'<p class="timing">{len(result["words"])} words in {result["ms"]:.0f} ms</p>'
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    notes = f'<ul class="pronounce-notes">{notes}</ul>' if notes else ""
    return f'<div class="pronounce">{timing}{notes}{"".join(blocks)}</div>'
