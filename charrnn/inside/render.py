"""A Report as a self-contained HTML page, as HTML pieces for the app, and as terminal colour."""

from __future__ import annotations

import html
import json

import numpy as np

from charrnn.inside.report import CellRef, Report

CELL_DEPTH = 0.75  # the strongest cell colour: darker would hide the black text
SURPRISE_STEPS = 8  # colour steps for surprisal, one per bit; 8 bits and more are the darkest
SHOW_BEST = 3  # best cells per feature whose series the HTML page can colour the text by
LAYER_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

CSS = """
.charrnn-inside .text {white-space: pre-wrap; font-family: ui-monospace, monospace; line-height: 1.5;}
.charrnn-inside .text span {border-radius: 2px;}
.charrnn-inside .legend span {display: inline-block; padding: 0 .4em; font-family: ui-monospace, monospace;}
""" + "".join(
    f".charrnn-inside .s{k} {{background: {c};}}\n"
    for k, c in enumerate(f"rgb(255,{255 - 22 * k},{255 - 28 * k})" for k in range(SURPRISE_STEPS + 1)))


def _bucket(bits: float) -> int:
    return min(SURPRISE_STEPS, int(bits))


VISIBLE = {" ": "\u2423", "\n": "\u23ce", "\t": "\u21e5"}  # how a guess of white space is shown


def guesses(report: Report, i: int) -> str:
    """The tooltip of character i: its surprisal and the model's guesses for it."""
    shown = " ".join(f"{VISIBLE.get(ch, ch)} {p:.0%}" for ch, p in report.top[i])
    return f"{report.surprisal[i]:.2f} bits; {shown}"


def _attribute(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "&quot;")


def cell_colour(v: float) -> str:
    """A background for a value scaled to [-1, 1]: blue below zero, white at zero, red above."""
    v = max(-1.0, min(1.0, float(v)))
    fade = int(round(255 * (1 - CELL_DEPTH * abs(v))))
    return f"rgb(255,{fade},{fade})" if v >= 0 else f"rgb({fade},{fade},255)"


def scaled(values: np.ndarray) -> np.ndarray:
    """A series divided by its largest magnitude (h and the gates are in [-1, 1] already, c is not)."""
    top = float(np.abs(values).max()) if len(values) else 0.0
    return values / top if top > 1 else values


def text_html(report: Report, cell: CellRef | None = None, element_id: str = "") -> str:
    """The text, each character coloured by its surprisal (or by `cell`'s value), guesses on hover."""
    values = scaled(report.cells[cell]) if cell is not None else None
    spans = []
    for i, ch in enumerate(report.text):
        tip = _attribute(guesses(report, i) + (f"; {cell} = {report.cells[cell][i]:.3f}" if cell else ""))
        look = (f'style="background:{cell_colour(values[i])}"' if values is not None
                else f'class="s{_bucket(report.surprisal[i])}"')
        spans.append(f'<span {look} title="{tip}">{html.escape(ch)}</span>')
    ident = f' id="{element_id}"' if element_id else ""
    return f'<div class="text"{ident}>{"".join(spans)}</div>'


def legend_html() -> str:
    """What the surprise colours mean."""
    steps = "".join(f'<span class="s{k}">{k}{"+" if k == SURPRISE_STEPS else ""}</span>'
                    for k in range(SURPRISE_STEPS + 1))
    return f'<div class="legend">surprisal, bits: {steps}</div>'


def saturation_svg(saturation: list[dict], size: int = 180) -> str:
    """The paper's figure 3: one panel per gate, a dot per cell at (fraction < 0.1, fraction > 0.9)."""
    gates = list(dict.fromkeys(s["gate"] for s in saturation))
    if not gates:
        return "<p>This cell has no sigmoid gates to saturate.</p>"
    pad, gap = 28, 16
    width = len(gates) * (size + pad + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size + pad + 20}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="gate saturation">']
    for g, gate in enumerate(gates):
        x0 = g * (size + pad + gap) + pad
        parts.append(f'<rect x="{x0}" y="16" width="{size}" height="{size}" fill="none" stroke="#888"/>'
                     f'<text x="{x0 + size / 2}" y="11" text-anchor="middle">{html.escape(gate)} gate</text>'
                     f'<text x="{x0 + size / 2}" y="{size + 30}" text-anchor="middle">left-saturated (&lt;0.1)</text>'
                     f'<text transform="translate({x0 - 6},{16 + size / 2}) rotate(-90)" text-anchor="middle">'
                     f'right-saturated (&gt;0.9)</text>')
        for s in saturation:
            if s["gate"] != gate:
                continue
            colour = LAYER_COLOURS[s["layer"] % len(LAYER_COLOURS)]
            parts += [f'<circle cx="{x0 + lo * size:.1f}" cy="{16 + (1 - hi) * size:.1f}" r="1.8" '
                      f'fill="{colour}" fill-opacity="0.5"/>' for lo, hi in zip(s["low"], s["high"], strict=True)]
    layers = sorted({s["layer"] for s in saturation})
    keys = "".join(f'<tspan fill="{LAYER_COLOURS[k % len(LAYER_COLOURS)]}"> \u25cf layer {k}</tspan>' for k in layers)
    parts.append(f'<text x="{pad}" y="{size + pad + 16}">{keys}</text></svg>')
    return "".join(parts)


def cells_table(report: Report, top: int = 3) -> str:
    """The finder's best cells for each feature."""
    rows = "".join(
        f"<tr><td>{html.escape(c['feature'])}</td><td>{c['layer']}:{c['cell']}:{c['kind']}</td>"
        f"<td>{c['metric']} {c['score']:.3f}</td><td>{'higher' if c['sign'] > 0 else 'lower'} where it holds"
        f"{'' if c['metric'] == 'auc' else ' (grows)' if c['sign'] > 0 else ' (shrinks)'}</td></tr>"
        for c in report.best_cells(top))
    return ("<table><tr><th>feature</th><th>cell (layer:index:kind)</th><th>score</th><th>the cell is</th></tr>"
            f"{rows}</table>")


_RECOLOUR = f"const DEPTH = {CELL_DEPTH};  // cell_colour's, for the page's own menu" + """
const series = JSON.parse(document.getElementById('series').textContent);
const spans = document.querySelectorAll('#text span');
function colour(v) {
  v = Math.max(-1, Math.min(1, v)); const f = Math.round(255 * (1 - DEPTH * Math.abs(v)));
  return v >= 0 ? `rgb(255,${f},${f})` : `rgb(${f},${f},255)`;
}
document.getElementById('cell').addEventListener('change', (e) => {
  const values = series[e.target.value];
  spans.forEach((s, i) => { s.style.background = values ? colour(values[i] / 100) : ''; });
});
"""


def cell_label(c: dict) -> str:
    """One of `Report.best_cells`, as a menu shows it: feature: LAYER:INDEX:KIND (score)."""
    return f"{c['feature']}: {c['layer']}:{c['cell']}:{c['kind']} ({c['metric']} {c['score']:.2f})"


def html_page(report: Report, title: str) -> str:
    """One self-contained page: no scripts, styles or fonts loaded from anywhere."""
    labels = {}  # a series' label: the first feature it is among the best cells for, with its score
    for c in report.best_cells(len(report.cells)):
        labels.setdefault(f"{c['layer']}:{c['cell']}:{c['kind']}", cell_label(c))
    options = "".join(f'<option value="{ref}">{html.escape(labels.get(str(ref), str(ref)))}</option>'
                      for ref in report.cells)
    # Hundredths as whole numbers: half the bytes of decimals, and finer than the colours can show.
    data = json.dumps({str(ref): np.rint(scaled(v) * 100).astype(int).tolist() for ref, v in report.cells.items()},
                      separators=(",", ":"))
    data = data.replace("</", "<\\/")  # nothing in the data may close the script element
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}"
        "body{font-family:sans-serif;margin:1.5em;} td,th{padding:0 .6em;text-align:left;}</style></head>"
        f'<body class="charrnn-inside"><h1>{html.escape(title)}</h1>'
        f"<p>{len(report.text):,} characters, {report.bpc:.4f} bits per character. Hover a character for the "
        "model's guesses.</p>"
        f'<p><label>Colour by <select id="cell"><option value="">surprise</option>{options}</select></label> '
        "(cells: red above zero, blue below)</p>"
        f"{legend_html()}{text_html(report, element_id='text')}"
        f"<h2>The cells that track each feature</h2>{cells_table(report)}"
        f"<h2>Gate saturation</h2>{saturation_svg(report.saturation)}"
        f'<script type="application/json" id="series">{data}</script>'
        f"<script>{_RECOLOUR}</script></body></html>")


def terminal(text: str, values: np.ndarray) -> str:
    """The text with each character's background coloured by a cell's value (256-colour ANSI)."""
    v = scaled(values)
    # The 6x6x6 colour cube: (5, k, k) is red fading to white, (k, k, 5) blue fading to white.
    out = []
    for ch, x in zip(text, v, strict=True):
        k = int(round(5 * (1 - CELL_DEPTH * min(1.0, abs(float(x))))))
        code = 16 + (36 * 5 + 6 * k + k if x >= 0 else 36 * k + 6 * k + 5)
        out.append("\x1b[0m\n" if ch == "\n" else f"\x1b[48;5;{code}m\x1b[30m{ch}")
    return "".join(out) + "\x1b[0m"
