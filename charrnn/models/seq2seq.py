"""The encoder-decoder with attention: a bidirectional encoder over the source, a decoder over the target.

Training is one fused call each: the packed bidirectional encoder, then the decoder over the whole
teacher-forced target, then global attention for every target position at once (Luong et al. 2015,
without input feeding, which would need a loop over time). Padding never counts: the encoder is packed,
so its final state is taken at each source's real end; attention masks pad positions; the loss ignores
pad targets. Generation starts from `start` and advances with `step`, the same fast single-step path
as the language model's, on the decoder's weights rearranged once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import accumulate
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from charrnn.models import Kind, register
from charrnn.models.rnn import CELLS, CharRNN, State, StepWeights, stack_step, stack_weights

PAD, BOS, EOS = 0, 1, 2  # the first ids of every seq2seq vocabulary (a source vocabulary uses PAD only)
ATTENTION = ("dot", "general", "additive")
TOKENS = ("chars", "space")  # how a side of a pair is cut into tokens: its characters, or at whitespace


@dataclass
class Seq2SeqConfig:
    """The seq2seq model's arguments, as config.json records them under "model"."""

    source_vocab_size: int
    target_vocab_size: int
    cell: str = "lstm"  # one of CELLS, for the encoder and the decoder
    layers: int = 2
    hidden: int = 256  # the decoder's width; each encoder direction has half of it
    embed: int = 64
    dropout: float = 0.0
    attention: str = "general"  # one of ATTENTION

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.attention not in ATTENTION:
            raise ValueError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTION)}")
        for name in ("source_vocab_size", "target_vocab_size", "layers", "hidden", "embed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {getattr(self, name)!r}")
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (each encoder direction has half of it), not {self.hidden}")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class Memory(NamedTuple):
    """What the decoder attends to, per source: encoder outputs (B, S, H), their keys, and the real positions."""

    values: torch.Tensor
    keys: torch.Tensor  # (B, S, H), or (B, S, H) projected for "general" and "additive"
    mask: torch.Tensor  # (B, S) bool, True at real (non-pad) positions


class DecoderState(NamedTuple):
    """A decoding state of R rows (hypotheses) over N sources: beams of one source share its memory, which
    is never copied; `owner` says whose each row is."""

    hidden: State  # the decoder stack's state, (layers, R, H) as nn.LSTM/GRU keeps it
    memory: Memory  # one row per source
    owner: torch.Tensor  # (R,) the source of each row


class Seq2Seq(StepWeights, nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        h, rnn = cfg.hidden, CELLS[cfg.cell]
        between = cfg.dropout if cfg.layers > 1 else 0.0
        self.source_embed = nn.Embedding(cfg.source_vocab_size, cfg.embed, padding_idx=PAD)
        self.encoder = rnn(cfg.embed, h // 2, cfg.layers, batch_first=True, bidirectional=True, dropout=between)
        self.target_embed = nn.Embedding(cfg.target_vocab_size, cfg.embed, padding_idx=PAD)
        self.decoder = rnn(cfg.embed, h, cfg.layers, batch_first=True, dropout=between)
        self.attention = nn.ModuleDict()
        if cfg.attention in ("general", "additive"):
            self.attention["key"] = nn.Linear(h, h, bias=False)
        if cfg.attention == "additive":
            self.attention["query"] = nn.Linear(h, h, bias=True)
            self.attention["v"] = nn.Linear(h, 1, bias=False)
        self.combine = nn.Linear(2 * h, h)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(h, cfg.target_vocab_size)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # --- the encoder ----------------------------------------------------------------------------

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[State, Memory]:
        """Source ids (B, S), padded with PAD, and their lengths (B,) -> the decoder's first state and the memory."""
        emb = self.drop(self.source_embed(src))
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        values, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < lengths.to(src.device)[:, None]
        keys = self.attention["key"](values) if "key" in self.attention else values
        return self._bridge(final), Memory(values, keys, mask)

    def _bridge(self, final: State) -> State:
        """Each encoder layer's last forward and backward states, side by side: the decoder layer's first state."""
        def join(s: torch.Tensor) -> torch.Tensor:
            layers2, batch, half = s.shape
            return s.view(layers2 // 2, 2, batch, half).transpose(1, 2).reshape(layers2 // 2, batch, 2 * half)
        return tuple(join(s) for s in final) if isinstance(final, tuple) else join(final)

    # --- attention and output -------------------------------------------------------------------

    def _attend(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs (B, T, H) -> logits (B, T, V) and attention weights (B, T, S)."""
        if self.cfg.attention == "additive":
            q = self.attention["query"](query)  # (B, T, H)
            scores = self.attention["v"](torch.tanh(q[:, :, None, :] + memory.keys[:, None, :, :])).squeeze(-1)
        else:
            scores = torch.bmm(query, memory.keys.transpose(1, 2))
        scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = scores.softmax(-1)
        context = torch.bmm(weights, memory.values)
        combined = torch.tanh(self.combine(torch.cat([query, context], -1)))
        return self.head(self.drop(combined)), weights

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for target inputs tgt_in (B, T) = BOS + target, padded with PAD."""
        return self.attention_map(src, lengths, tgt_in)[0]

    def attention_map(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor,
                      encoded: tuple[State, Memory] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, V) and attention weights (B, T, S) of the fused path; with `encoded` (these rows'
        `encoded_rows`), the encoder is not run again."""
        state, memory = encoded if encoded is not None else self.encode(src, lengths)
        out, _ = self.decoder(self.drop(self.target_embed(tgt_in)), state)
        return self._attend(self.drop(out), memory)

    # --- generation: what beam search needs (decoding.interface.Stepper) ---------------------------

    def start(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, DecoderState]:
        """Encode sources and take the first step: logits (B, V) of the first target token, and the state."""
        return self.step(*self.begin(src, lengths))

    def begin(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, DecoderState]:
        """Encode sources: the first step's input (BOS for each) and state, for `step` or a batcher's session's."""
        hidden, memory = self.encode(src, lengths)
        rows = torch.arange(src.shape[0], device=src.device)
        return torch.full_like(rows, BOS), DecoderState(hidden, memory, rows)

    @staticmethod
    def encoded_rows(begun: DecoderState, rows: torch.Tensor) -> tuple[State, Memory]:
        """The encoder's output for sources `rows` (they may repeat) of a state straight from `begin`."""
        return CharRNN.reorder(begun.hidden, rows), Memory(*(t.index_select(0, rows) for t in begun.memory))

    def _build_step_weights(self) -> list[tuple]:
        return stack_weights(self.target_embed, self.decoder, self.cfg.cell, self.step_precision)

    def step(self, x: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Advance one target token: ids (R,) -> logits (R, V). Eval mode, under inference_mode.

        Rows of one source that lie side by side (beam search keeps them so) form a group; the groups'
        queries go into a (groups, widest group, H) grid that attends to their sources' memory in one bmm,
        so no row ever needs its own copy of the memory.
        """
        top, hidden = stack_step(self.step_weights(), self.cfg.cell, x, state.hidden)
        if len(state.memory.mask) == 1:  # one source (one word typed): every row is its; no grid to build
            logits, _ = self._attend(top[None], state.memory)
            return logits[0], DecoderState(hidden, state.memory, state.owner)
        sources, counts = torch.unique_consecutive(state.owner, return_counts=True)
        group = torch.repeat_interleave(torch.arange(len(sources), device=x.device), counts)
        slot = torch.arange(len(x), device=x.device) - (counts.cumsum(0) - counts)[group]
        grid = top.new_zeros(len(sources), int(counts.max()), top.shape[1])
        grid[group, slot] = top
        memory = state.memory
        if len(sources) != len(memory.values) or not torch.equal(sources, torch.arange(len(sources), device=x.device)):
            memory = Memory(*(t.index_select(0, sources) for t in memory))
        logits, _ = self._attend(grid, memory)
        return logits[group, slot], DecoderState(hidden, state.memory, state.owner)

    @staticmethod
    def reorder(state: DecoderState, index: torch.Tensor) -> DecoderState:
        """Rows `index` of a state: the decoder's hidden state and whose rows they are. The memory stays,
        unless the rows kept use fewer than half of its sources: then it keeps only theirs (a batcher's
        session gets its rows back out of a shared state this way, so its memory never piles up)."""
        hidden = CharRNN.reorder(state.hidden, index)  # the decoder stack's state is kept as the LM's is
        owner, memory = state.owner.index_select(0, index), state.memory
        if len(memory.mask) == 1:  # one source: nothing to drop
            return DecoderState(hidden, memory, owner)
        used, renumbered = torch.unique(owner, return_inverse=True)  # sorted: equal owners stay side by side
        if 2 * len(used) < len(memory.mask):
            memory, owner = Memory(*(t.index_select(0, used) for t in memory)), renumbered
        return DecoderState(hidden, memory, owner)

    @staticmethod
    def concat(states: Sequence[DecoderState]) -> DecoderState:
        """The rows of several states, one after another (serve.batcher steps many requests at once): their
        memories padded to the longest source (masked, zero) and stacked, each owner offset by the sources before."""
        width = max(s.memory.mask.shape[1] for s in states)

        def padded(t: torch.Tensor) -> torch.Tensor:  # (N, S, ...) -> (N, width, ...)
            pad = t.new_zeros(t.shape[0], width - t.shape[1], *t.shape[2:])
            return torch.cat([t, pad], 1)

        memory = Memory(*(torch.cat([padded(t) for t in parts]) for parts in zip(*(s.memory for s in states),
                                                                                  strict=True)))
        offsets = accumulate((len(s.memory.mask) for s in states[:-1]), initial=0)
        owner = torch.cat([s.owner + offset for s, offset in zip(states, offsets, strict=True)])
        return DecoderState(CharRNN.concat([s.hidden for s in states]), memory, owner)


@dataclass(frozen=True)
class Seq2SeqExtra:
    """What a seq2seq run file records beyond RunFile's own fields (under "extra"): the vocabularies and
    how text becomes their tokens, which a translator needs, and facts about the training pairs."""

    source_vocab: list[str]  # the source tokens in id order, PAD first
    target_vocab: list[str]  # the target tokens in id order, PAD, BOS, EOS first
    source_tokens: str  # one of TOKENS
    target_tokens: str
    max_ratio: float  # the longest (target + EOS) / source length in training: outputs stop beyond it
    pairs: int  # training pairs
    skipped_lines: int = 0  # malformed lines left out (--skip-bad-lines)

    def __post_init__(self):
        """Raise ValueError for contents no translator could use."""
        for name in ("source_vocab", "target_vocab"):
            tokens = getattr(self, name)
            if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens) \
                    or len(set(tokens)) != len(tokens):
                raise ValueError(f"extra.{name} must be a list of distinct tokens")
        if self.source_tokens not in TOKENS or self.target_tokens not in TOKENS:
            raise ValueError(f"extra.source_tokens and target_tokens must be one of {', '.join(TOKENS)}")
        if not (isinstance(self.max_ratio, int | float) and math.isfinite(self.max_ratio) and self.max_ratio > 0):
            raise ValueError(f"extra.max_ratio must be a positive number, not {self.max_ratio!r}")

    @classmethod
    def from_dict(cls, obj: dict) -> Seq2SeqExtra:
        """From config.json's "extra" object (keys this charrnn does not know are left out)."""
        return cls(**{f.name: obj[f.name] for f in fields(cls) if f.name in obj})

    def check(self, cfg: Seq2SeqConfig) -> None:
        """Raise ValueError unless the vocabularies are the sizes the network was built for."""
        for side in ("source", "target"):
            have, want = len(getattr(self, f"{side}_vocab")), getattr(cfg, f"{side}_vocab_size")
            if have != want:
                raise ValueError(f"extra.{side}_vocab has {have} tokens but model.{side}_vocab_size is {want}")


def warm_up(model: Seq2Seq) -> None:
    """Build the decoder's step weights and run the encoder and a first step once, before a first request."""
    with torch.inference_mode():
        model.start(torch.ones(1, 2, dtype=torch.long, device=model.device), torch.tensor([2]))


register(Kind("seq2seq", "seq2seq model", "charrnn seq2seq translate or eval", Seq2SeqConfig, Seq2Seq,
              unit="token", warm_up=warm_up, train_config="charrnn.training.config:Seq2SeqTrainConfig",
              task="charrnn.training.seq2seq:Seq2SeqTask", extra=Seq2SeqExtra))
