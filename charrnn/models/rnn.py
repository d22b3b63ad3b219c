"""The character-level RNN: embedding, a fused LSTM/GRU/RNN stack, a linear head.

Training and long primes go through the fused cuDNN/oneDNN module (`forward`). Generation advances
one character at a time, where calling the fused module costs 5-10x more than the arithmetic itself
on a CPU; `step` does the same computation with a few matmuls on weights rearranged once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.models import Kind, register

# An LSTM state is (h, c), a GRU/RNN state is h; each tensor is (layers, batch, hidden) as nn.LSTM uses.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


PRECISIONS = ("fp32", "bf16", "int8")  # of the step's matrices (see StepWeights.step_precision)


def bf16_supported() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), where oneDNN runs bf16 fast."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def int8_supported() -> bool:
    """Whether torch has an x86 int8 engine (fbgemm) for int8 weights times dynamically quantized inputs."""
    return "fbgemm" in torch.backends.quantized.supported_engines


def serving_precision(device: torch.device) -> str:
    """The step precision of a language model that samples or completes unless told otherwise: int8 on a CPU
    with fbgemm (about twice fp32's speed at sampling, beam search and completion, the same held-out loss
    to 3 decimals: README, "Lower precision"), else fp32."""
    return "int8" if device.type == "cpu" and int8_supported() else "fp32"


class StepWeights:
    """A module whose `step` runs on its weights rearranged once (`_build_step_weights`), rebuilt lazily
    whenever the weights may have changed: train/eval switches, loading, and .to/.half/.cuda.

    `step_precision` "bf16" keeps the step's matrices in bfloat16 (CPU with oneDNN only), multiplied by
    the input rounded to bfloat16 and summed in float32; "int8" keeps them in int8 with a scale per row
    (CPU with fbgemm only), multiplied by the input quantized to 8 bits on the fly. The state, gates,
    embedding table, head and result stay float32. Each logit moves by ~1e-2: a seed draws the same
    characters as in "fp32" only until a draw lands that close to a boundary, so these samples are
    reproducible run to run on one machine, but not equal to fp32's (README, "Lower precision").
    """

    _fast = None
    _precision = "fp32"

    @property
    def step_precision(self) -> str:
        return self._precision

    @step_precision.setter
    def step_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"step precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if precision == "bf16" and (self.device.type != "cpu" or not torch.backends.mkldnn.is_available()):
            raise ValueError("bf16 step weights need a CPU with oneDNN")
        if precision == "int8" and (self.device.type != "cpu" or not int8_supported()):
            raise ValueError("int8 step weights need an x86 CPU (torch's fbgemm engine)")
        self._precision, self._fast = precision, None

    def step_weights(self):
        if self._fast is None:
            with torch.no_grad():
                self._fast = self._build_step_weights()
        return self._fast

    def train(self, mode: bool = True):
        self._fast = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._fast = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._fast = None
        return super()._apply(fn, *args, **kwargs)


def stack_weights(embed: nn.Embedding, rnn: nn.RNNBase, cell: str, precision: str = "fp32") -> list[tuple]:
    """Per layer of a unidirectional stack fed by `embed`: (input, b_in, W_hh, b_hh), arranged for `stack_step`.

    Each matrix becomes a `_Matrix`. Layer 0's input is an embedding row, so W_ih @ embed + b_ih is
    precomputed for every token: a V x G table whose row the step looks up instead of doing a matmul.
    """
    layers = []
    for k in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{k}").detach()
        w_hh = getattr(rnn, f"weight_hh_l{k}").detach()
        b_ih = getattr(rnn, f"bias_ih_l{k}").detach()
        b_hh = getattr(rnn, f"bias_hh_l{k}").detach()
        if cell != "gru":  # GRU keeps b_hh apart: the new-gate uses r * (W_hh h + b_hh)
            b_ih, b_hh = b_ih + b_hh, torch.zeros_like(b_hh)
        w_in = F.linear(embed.weight.detach(), w_ih, b_ih) if k == 0 else _Matrix.of(w_ih, precision=precision)
        layers.append((w_in, b_ih, _Matrix.of(w_hh, precision=precision), b_hh))
    return layers


def stack_step(layers: list[tuple], cell: str, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """One token through the stack: ids x (B,) -> the top layer's h (B, H), and the new state."""
    lstm = cell == "lstm"
    hs, cs = state if lstm else (state, None)
    new_h, new_c = [], []
    inp = None
    for k, (w_in, b_in, w_hh, b_hh) in enumerate(layers):
        h = hs[k]
        gi = w_in[x] if k == 0 else w_in.linear(inp, b_in)
        n = h.shape[1]
        if lstm:  # gates (i, f, g, o): one sigmoid over all four is cheaper than slicing out g first
            gates = w_hh.linear(h, add=gi)
            sig = gates.sigmoid()
            c = torch.addcmul(sig[:, n : 2 * n] * cs[k], sig[:, :n], gates[:, 2 * n : 3 * n].tanh())
            h = sig[:, 3 * n :] * c.tanh()
            new_c.append(c)
        elif cell == "gru":
            gh = w_hh.linear(h, b_hh)
            rz = (gi[:, : 2 * n] + gh[:, : 2 * n]).sigmoid()
            cand = torch.addcmul(gi[:, 2 * n :], rz[:, :n], gh[:, 2 * n :]).tanh()
            h = torch.lerp(cand, h, rz[:, n:])  # (1 - z) * cand + z * h
        else:
            h = w_hh.linear(h, add=gi).tanh()
        new_h.append(h)
        inp = h
    hs = torch.stack(new_h)
    return inp, ((hs, torch.stack(new_c)) if lstm else hs)


@dataclass
class ModelConfig:
    """The LM's arguments, as config.json records them under "model"."""

    vocab_size: int
    cell: str = "lstm"  # one of CELLS
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        for name in ("vocab_size", "layers", "hidden", "embed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {getattr(self, name)!r}")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class CharRNN(StepWeights, nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed)
        self.rnn = CELLS[cfg.cell](cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                                   dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    @property
    def device(self) -> torch.device:
        """Where the weights are (decoding puts its tensors there)."""
        return self.head.weight.device

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        w = self.head.weight
        z = torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=device or w.device, dtype=w.dtype)
        return (z, z.clone()) if self.cfg.cell == "lstm" else z

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for ids x (B, T), through the fused kernel."""
        out, state = self.rnn(self.drop(self.embed(x)), state)
        return self.head(self.drop(out)), state

    def read(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read ids (B, T) in one fused call: the logits (B, V) after the last id, and the new state."""
        logits, state = self(ids, state)
        return logits[:, -1], state

    @staticmethod
    def reorder(state: State, index: torch.Tensor) -> State:
        """Rows `index` of a state (beam search keeps, drops and copies beams this way)."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    @staticmethod
    def concat(states: Sequence[State]) -> State:
        """The rows of several states, one after another (the batcher steps many requests at once)."""
        if isinstance(states[0], tuple):
            return tuple(torch.cat(parts, 1) for parts in zip(*states, strict=True))
        return torch.cat(list(states), 1)

    # --- fast single-step inference -------------------------------------------------------------

    def _build_step_weights(self) -> tuple[list[tuple], tuple]:
        # The head is small (V x H): oneDNN's ~12 us a call would cost more than it saves.
        head = (_Matrix.of(self.head.weight.detach(), pack=False), self.head.bias.detach())
        return stack_weights(self.embed, self.rnn, self.cfg.cell, self.step_precision), head

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one character: ids x (B,) -> logits (B, V). Call in eval mode, under inference_mode."""
        layers, (w_head, b_head) = self.step_weights()
        top, state = stack_step(layers, self.cfg.cell, x, state)
        return w_head.linear(top, b_head), state


class _Matrix(NamedTuple):
    """One weight matrix W in the layouts `step` multiplies fastest (measured on 2 EPYC cores):

    - `packed`, oneDNN's blocked layout (CPU only): for several rows (beam search), 1.7x faster than
      W's own layout for 8 rows at 2x512 and 1.3x at 2x256. Not for one row: oneDNN spends ~12 us a
      call, which a single row does not win back on one thread;
    - `cols`, W^T made contiguous: one row;
    - `rows`, W as stored, seen transposed: several rows where oneDNN cannot run (a GPU).
    """

    cols: torch.Tensor
    rows: torch.Tensor
    packed: torch.Tensor | None
    low: torch.Tensor | None = None  # W in bfloat16, oneDNN's layout: every row count multiplies this
    int8: object | None = None  # W in int8, fbgemm's packed parameters: every row count multiplies this
    span: torch.Tensor | None = None  # with int8: one input row spanning [-1, 1] (see `linear`)

    @classmethod
    def of(cls, w: torch.Tensor, pack: bool = True, precision: str = "fp32") -> _Matrix:
        if precision == "bf16":
            return cls(w, w, None, torch.ops.mkldnn._reorder_linear_weight(w.bfloat16()))
        if precision == "int8":
            span = torch.linspace(-1.0, 1.0, w.shape[1], device=w.device).view(1, -1)
            return cls(w, w, None, int8=_int8_packed(w), span=span)
        onednn = pack and w.device.type == "cpu" and w.dtype == torch.float32 and torch.backends.mkldnn.is_available()
        return cls(w.t().contiguous(), w, torch.ops.mkldnn._reorder_linear_weight(w) if onednn else None)

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None,
               add: torch.Tensor | None = None) -> torch.Tensor:
        """x @ W^T + bias, or x @ W^T + add (a fresh tensor of the result's shape, which may be reused)."""
        if self.low is not None:
            out = torch.ops.mkldnn._linear_pointwise(x.bfloat16(), self.low, None, "none", [], "").float()
            return out.add_(add if add is not None else bias)
        if self.int8 is not None:
            # fbgemm quantizes the input on the range of the whole batch. One extra row spanning [-1, 1], the
            # range of a hidden state, fixes that range: a row's answer is the same alone as batched with
            # other requests or beams. reduce_range: 7-bit inputs, which CPUs without VNNI cannot saturate.
            out = torch.ops.quantized.linear_dynamic(torch.cat((x, self.span)), self.int8, True)[:-1]
            return out.add_(add if add is not None else bias)
        if x.shape[0] == 1:
            return add.addmm_(x, self.cols) if add is not None else torch.addmm(bias, x, self.cols)
        if self.packed is None:
            return add.addmm_(x, self.rows.t()) if add is not None else torch.addmm(bias, x, self.rows.t())
        if add is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, add, self.packed, None, "add")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, bias, "none", [], "")




def _int8_packed(w: torch.Tensor) -> object:
    """W rounded to int8 with one symmetric scale per row (per output), packed for fbgemm."""
    scale = (w.abs().amax(1).clamp_min(1e-12) / 127).double()
    with warnings.catch_warnings():  # torch 2.13 marks quantized tensors deprecated; the pinned version has them
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w.float(), scale, torch.zeros(len(w), dtype=torch.long), 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None)


def detach_state(state: State) -> State:
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def warm_up(model: CharRNN) -> None:
    """Build the step weights and run the step and the fused read once, before a first request needs them."""
    with torch.inference_mode():
        one = torch.ones(1, 2, dtype=torch.long, device=model.device)
        state = model.init_state(1)
        model.step(one[0, :1], state)
        model.read(one, state)


register(Kind("lm", "language model", "charrnn sample, complete, eval or inspect", ModelConfig, CharRNN,
              unit="char", warm_up=warm_up, train_config="charrnn.training.config:TrainConfig",
              task="charrnn.training.lm:LMTask"))
