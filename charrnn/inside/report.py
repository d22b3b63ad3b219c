"""`inspect_text`: everything charrnn shows about a model reading a text, as plain data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.inside.activations import KINDS, SIGMOID_GATES, record
from charrnn.inside.features import text_features
from charrnn.inside.finder import rank_cells
from charrnn.models.rnn import CharRNN

MAX_TEXT = 50_000  # characters `inspect` reads by default (--max-chars): the finder holds every h and c of each
TOP_GUESSES = 5
FINDER_KINDS = ("h", "c")  # the series the finder ranks (the gates are shown, not ranked)
LN2 = math.log(2)


@dataclass(frozen=True)
class CellRef:
    """One cell: a layer, an index in it, and what it shows (h, c or a gate)."""

    layer: int
    index: int
    kind: str = "h"

    @classmethod
    def parse(cls, spec: str) -> CellRef:
        """LAYER:INDEX or LAYER:INDEX:KIND, as the command line and the app write it."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts[:2]):
            raise CharRNNError(f"a cell is LAYER:INDEX or LAYER:INDEX:KIND (e.g. 1:137 or 0:5:f); got {spec!r}")
        return cls(int(parts[0]), int(parts[1]), parts[2].strip() if len(parts) == 3 else "h")

    def check(self, model: CharRNN) -> CellRef:
        """This cell, if the model has it; else a CharRNNError saying what it has."""
        cfg = model.cfg
        if not 0 <= self.layer < cfg.layers:
            raise CharRNNError(f"cell {self}: layer must be 0 to {cfg.layers - 1}; the model has {cfg.layers}")
        if not 0 <= self.index < cfg.hidden:
            raise CharRNNError(f"cell {self}: index must be 0 to {cfg.hidden - 1}; layers have {cfg.hidden} cells")
        if self.kind not in KINDS[cfg.cell]:
            raise CharRNNError(f"cell {self}: an {cfg.cell.upper()} shows {', '.join(KINDS[cfg.cell])}, "
                               f"not {self.kind!r}")
        return self

    def __str__(self) -> str:
        return f"{self.layer}:{self.index}:{self.kind}"


@dataclass
class Report:
    """The result of `inspect_text`; `to_json()` is the JSON the CLI prints."""

    text: str
    surprisal: np.ndarray  # (T,) bits
    top: list[list[tuple[str, float]]]  # the model's best guesses for each character, before it
    bpc: float  # mean surprisal of characters 1.. (what `charrnn eval` counts)
    rankings: list  # finder.Ranking per feature
    saturation: list[dict]  # {"layer", "gate", "low": [H], "high": [H]}
    features: list  # features.Feature
    cells: dict[CellRef, np.ndarray] = field(default_factory=dict)  # series asked for

    def best_cells(self, top: int = 10) -> list[dict]:
        """The `top` best cells for each feature, in the JSON's form."""
        return [{"feature": r.feature, "layer": layer, "cell": index, "kind": kind, "score": round(float(s), 4),
                 "metric": r.metric, "sign": int(sign)}
                for r in self.rankings
                for (layer, index, kind), s, sign in zip(r.cells[:top], r.scores[:top], r.signs[:top], strict=True)]

    def to_json(self, top: int = 10) -> dict:
        chars = [{"char": ch, "surprisal": round(float(s), 4), "top": [[c, round(p, 4)] for c, p in guesses]}
                 for ch, s, guesses in zip(self.text, self.surprisal, self.top, strict=True)]
        return {"chars": chars, "bpc": round(self.bpc, 6), "cells": self.best_cells(top),
                "saturation": self.saturation,
                "series": {str(ref): [round(float(v), 4) for v in values] for ref, values in self.cells.items()}}


def _prior(vocab: Vocab, char_counts: Sequence[int] | None) -> torch.Tensor:
    """Log-probabilities of the first character: the corpus's character frequencies, as `sample` uses."""
    counts = torch.tensor(char_counts if char_counts is not None else [1] * len(vocab), dtype=torch.float32)
    return torch.log(counts.clamp_min(0.5) / counts.sum())


def inspect_text(model: CharRNN, vocab: Vocab, text: str, features: Sequence[str] = (),
                 cells: Sequence[CellRef] = (), unknown: str = "error",
                 char_counts: Sequence[int] | None = None, show_best: int = 0, find: bool = True) -> Report:
    """Read `text` once; return per-character surprisal and guesses, the finder's ranking of the cells
    for the built-in features and the NAME=REGEX `features`, gate saturation, and the series of the
    `cells` asked for and of the `show_best` best cells for each feature (`find=False`: no ranking)."""
    cells = [c.check(model) for c in cells]
    found = text_features("x", features)  # check the specs before the model's work
    text = vocab.known(text, unknown, "the text")
    if len(text) < 2:
        raise CharRNNError(f"the text has {len(text)} character{'s' if len(text) != 1 else ''} the model knows; "
                           "inspect needs at least 2")
    ids = torch.from_numpy(vocab.encode(text))
    keep = tuple(dict.fromkeys([*(FINDER_KINDS if find else ()), *(c.kind for c in cells)]))
    acts = record(model, ids, keep)
    logp = torch.cat([_prior(vocab, char_counts).to(acts.logits.device).unsqueeze(0),
                      acts.logits[:-1].float().log_softmax(-1)]).cpu()  # logp[t]: the prediction of char t
    surprisal = (-logp.gather(1, ids.unsqueeze(1)).squeeze(1) / LN2).double().numpy()
    probs, guess = logp.exp().topk(min(TOP_GUESSES, len(vocab)), dim=-1)
    top = [list(zip([vocab.chars[i] for i in row_ids], row_p, strict=True))
           for row_ids, row_p in zip(guess.tolist(), probs.tolist(), strict=True)]
    found = text_features(text, features)
    rankings = rank_cells({k: v for k, v in acts.series.items() if k[1] in FINDER_KINDS}, found) if find else []
    saturation = [{"layer": layer, "gate": gate, "low": acts.low[layer, gate].cpu().tolist(),
                   "high": acts.high[layer, gate].cpu().tolist()}
                  for layer in range(model.cfg.layers) for gate in SIGMOID_GATES[model.cfg.cell]]
    best = [CellRef(*name) for r in rankings for name in r.cells[:show_best]]
    series = {c: acts.series[c.layer, c.kind][:, c.index].cpu().numpy() for c in dict.fromkeys([*cells, *best])}
    return Report(text, surprisal, top, float(surprisal[1:].mean()), rankings, saturation, found, series)

