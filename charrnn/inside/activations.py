"""Every cell's value at every character, from one fused forward pass over the text.

nn.LSTM/GRU/RNN return only each layer's output h. The layers are run one at a time through the same
fused kernel (which is what the stacked module does inside), so each layer's input and h(t-1) are
known for every t at once; the gates follow from them in two batched matmuls, and an LSTM's c(t) =
f * c(t-1) + i * g is an elementwise scan. Nothing is stepped character by character.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from charrnn.models.rnn import CELLS, CharRNN

CHUNK = 4096  # characters per fused call: long texts are read in chunks that carry the state
# What a cell of each kind of network can show, in the order the fused kernel lays out the gates after h/c.
KINDS = {"lstm": ("h", "c", "i", "f", "g", "o"), "gru": ("h", "r", "z", "n"), "rnn": ("h",)}
SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z"), "rnn": ()}  # those whose saturation is measured
LOW, HIGH = 0.1, 0.9  # a gate below LOW is left-saturated, above HIGH right-saturated (Karpathy et al. 2015)


@dataclass
class Activations:
    """What one pass over a text recorded: logits[t] predicts character t+1 from characters 0..t."""

    cell: str
    logits: torch.Tensor  # (T, V)
    series: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # (layer, kind) -> (T, H)
    low: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # (layer, gate) -> (H,) fraction < LOW
    high: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)  # (layer, gate) -> (H,) fraction > HIGH


def _single_layers(model: CharRNN) -> list[nn.Module]:
    """One single-layer fused module per layer, holding that layer's weights (copied: a few MB at most)."""
    cfg = model.cfg
    layers = []
    for k in range(cfg.layers):
        layer = CELLS[cfg.cell](cfg.embed if k == 0 else cfg.hidden, cfg.hidden, 1, batch_first=True)
        layer.load_state_dict({f"{name}_l0": getattr(model.rnn, f"{name}_l{k}")
                               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        layers.append(layer.to(model.device, model.head.weight.dtype).eval())
    return layers


def _gates(cell: str, gi: torch.Tensor, gh: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gates at every t from W_ih x(t) + b_ih and W_hh h(t-1) + b_hh, each (T, G)."""
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        return {"i": i.sigmoid(), "f": f.sigmoid(), "g": g.tanh(), "o": o.sigmoid()}
    if cell == "gru":
        (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, dim=-1), gh.chunk(3, dim=-1)
        r = (ir + hr).sigmoid()
        return {"r": r, "z": (iz + hz).sigmoid(), "n": torch.addcmul(in_, r, hn).tanh()}
    return {}


def _scan_c(f: torch.Tensor, ig: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """c(t) = f(t) * c(t-1) + ig(t) for every t: (T, H) from (T, H), (T, H) and c(-1) = c0 (H,)."""
    out = torch.empty_like(ig)
    c = c0
    for t in range(len(ig)):  # one fused elementwise op per character over all cells
        c = torch.addcmul(ig[t], f[t], c, out=out[t])
    return out


def record(model: CharRNN, ids: torch.Tensor, keep: tuple[str, ...] = ("h", "c"),
           chunk: int = CHUNK) -> Activations:
    """Read ids (T,) from a zero state; keep the series of the kinds in `keep`, measure gate saturation."""
    cell = model.cfg.cell
    kept = [k for k in keep if k in KINDS[cell]]
    layers = _single_layers(model)
    state = model.init_state(1)
    hs, cs = state if cell == "lstm" else (state, None)
    states = [(hs[k : k + 1], cs[k : k + 1]) if cell == "lstm" else hs[k : k + 1] for k in range(len(layers))]
    pieces: dict[tuple[int, str], list[torch.Tensor]] = {}
    low: dict[tuple[int, str], torch.Tensor] = {}
    high: dict[tuple[int, str], torch.Tensor] = {}
    logits = []
    ids = ids.to(model.device)
    with torch.inference_mode():
        for lo in range(0, len(ids), chunk):
            inp = model.embed(ids[lo : lo + chunk]).unsqueeze(0)  # (1, L, E)
            for k, layer in enumerate(layers):
                out, new_state = layer(inp, states[k])
                h0 = states[k][0] if cell == "lstm" else states[k]
                x, h = inp[0], out[0]
                h_prev = torch.cat([h0[0], h[:-1]])
                gates = _gates(cell, nn.functional.linear(x, layer.weight_ih_l0, layer.bias_ih_l0),
                               nn.functional.linear(h_prev, layer.weight_hh_l0, layer.bias_hh_l0))
                values = {"h": h, **gates}
                if "c" in kept:
                    values["c"] = _scan_c(gates["f"], gates["i"] * gates["g"], states[k][1][0, 0])
                for kind in kept:
                    pieces.setdefault((k, kind), []).append(values[kind])
                for gate in SIGMOID_GATES[cell]:
                    v = gates[gate]
                    low[k, gate] = low.get((k, gate), 0) + (v < LOW).sum(0)
                    high[k, gate] = high.get((k, gate), 0) + (v > HIGH).sum(0)
                states[k] = new_state
                inp = out
            logits.append(model.head(inp[0]))
    n = len(ids)
    return Activations(cell, torch.cat(logits), {key: torch.cat(v) for key, v in pieces.items()},
                       {key: v / n for key, v in low.items()}, {key: v / n for key, v in high.items()})
