"""The character-level RNN: embedding, a fused LSTM/GRU/RNN stack, a linear head.

Training and long primes go through the fused cuDNN/oneDNN module (`forward`). Generation advances
one character at a time, where calling the fused module costs 5-10x more than the arithmetic itself
on a CPU; `step` does the same computation with a few matmuls on weights rearranged once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# An LSTM state is (h, c), a GRU/RNN state is h; each tensor is (layers, batch, hidden) as nn.LSTM uses.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class ModelConfig:
    vocab_size: int
    model: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CharRNN(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.model not in CELLS:
            raise ValueError(f"unknown model type {cfg.model!r}; choose one of {', '.join(CELLS)}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        self.rnn = CELLS[cfg.model](cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                                    dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)
        self._fast: list[tuple[torch.Tensor, ...]] | None = None

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        z = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device or self.head.weight.device)
        return (z, z.clone()) if self.cfg.model == "lstm" else z

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for ids x (B, T), through the fused kernel."""
        out, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state

    # --- fast single-step inference -------------------------------------------------------------

    def train(self, mode: bool = True) -> CharRNN:
        self._fast = None  # weights are about to change (or just did): rebuild the step weights lazily
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._fast = None
        super()._load_from_state_dict(*args, **kwargs)

    def _step_weights(self) -> list[tuple[torch.Tensor, ...]]:
        """Per layer: (input table or W_ih^T, b_ih, W_hh^T, b_hh), rearranged for `step`.

        Layer 0's input is an embedding row, so W_ih @ embed + b_ih is precomputed for every character
        (a V x G table): the step then looks a row up instead of doing a matmul. For the LSTM the gate
        rows are reordered from (i, f, g, o) to (i, f, o, g) so one sigmoid covers three gates.
        """
        if self._fast is not None:
            return self._fast
        with torch.no_grad():
            layers = []
            h = self.cfg.hidden
            for k in range(self.cfg.layers):
                w_ih = getattr(self.rnn, f"weight_ih_l{k}")
                w_hh = getattr(self.rnn, f"weight_hh_l{k}")
                b_ih = getattr(self.rnn, f"bias_ih_l{k}")
                b_hh = getattr(self.rnn, f"bias_hh_l{k}")
                if self.cfg.model == "lstm":
                    order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h), torch.arange(2 * h, 3 * h)])
                    order = order.to(w_ih.device)
                    w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
                if self.cfg.model != "gru":  # GRU keeps b_hh apart: the new-gate uses r * (W_hh h + b_hh)
                    b_ih, b_hh = b_ih + b_hh, torch.zeros_like(b_hh)
                w_in = F.linear(self.embed.weight, w_ih, b_ih) if k == 0 else w_ih.t().contiguous()
                layers.append((w_in, b_ih, w_hh.t().contiguous(), b_hh))
            layers.append((self.head.weight.t().contiguous(), self.head.bias))
        self._fast = layers
        return layers

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one character: ids x (B,) -> logits (B, V). Call in eval mode, under inference_mode."""
        *layers, (w_head, b_head) = self._step_weights()
        lstm = self.cfg.model == "lstm"
        hs, cs = state if lstm else (state, None)
        new_h, new_c = [], []
        inp = None
        for k, (w_in, b_in, w_hh, b_hh) in enumerate(layers):
            h = hs[k]
            gi = w_in[x] if k == 0 else torch.addmm(b_in, inp, w_in)
            if lstm:
                gates = gi.addmm_(h, w_hh)
                n = h.shape[1]
                ifo = gates[:, : 3 * n].sigmoid()
                c = torch.addcmul(ifo[:, n : 2 * n] * cs[k], ifo[:, :n], gates[:, 3 * n :].tanh())
                h = ifo[:, 2 * n :] * c.tanh()
                new_c.append(c)
            elif self.cfg.model == "gru":
                gh = torch.addmm(b_hh, h, w_hh)
                n = h.shape[1]
                rz = (gi[:, : 2 * n] + gh[:, : 2 * n]).sigmoid()
                cand = torch.addcmul(gi[:, 2 * n :], rz[:, :n], gh[:, 2 * n :]).tanh()
                h = torch.lerp(cand, h, rz[:, n:])  # (1 - z) * cand + z * h
            else:
                h = gi.addmm_(h, w_hh).tanh()
            new_h.append(h)
            inp = h
        logits = torch.addmm(b_head, inp, w_head)
        hs = torch.stack(new_h)
        return logits, ((hs, torch.stack(new_c)) if lstm else hs)


def select_state(state: State, index: torch.Tensor) -> State:
    """Pick batch rows of a state (beam search reorders its beams this way)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


def detach_state(state: State) -> State:
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
