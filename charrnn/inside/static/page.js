// The inspect page's menu: colour the text by the chosen cell's series (hundredths of its scaled value),
// or by surprise again. The page is self-contained: render.html_page inlines this file.
const DEPTH = Number(document.body.dataset.depth);  // render.CELL_DEPTH: the strongest cell colour
const series = JSON.parse(document.getElementById('series').textContent);
const spans = document.querySelectorAll('#text span');

function colour(v) {  // render.cell_colour's rule: blue below zero, white at zero, red above
  v = Math.max(-1, Math.min(1, v));
  const f = Math.round(255 * (1 - DEPTH * Math.abs(v)));
  return v >= 0 ? `rgb(255,${f},${f})` : `rgb(${f},${f},255)`;
}

document.getElementById('cell').addEventListener('change', (e) => {
  const values = series[e.target.value];
  spans.forEach((s, i) => { s.style.background = values ? colour(values[i] / 100) : ''; });
});
