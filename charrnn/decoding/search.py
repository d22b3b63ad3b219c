"""Beam and greedy search over tokens, for many inputs at once, against the `Stepper` interface.

Every live beam of every input advances in one batched `model.step` per token, so a thousand sources
cost about as many steps as one. Each step ranks the 2 x width best extensions of an input's beams;
one among the first `width` that `stop` accepts (it ends with <EOS>, say) or that reaches the input's
`max_len` finishes, and the best `width` others live on (as in fairseq, so width 1 is greedy search).
Finished ones are ranked by logprob / length**length_penalty, the
length counting every token including the one that stopped it. An input stops searching as soon as
no live beam can still beat its `num`-th finished one, which is exact for any length penalty >= 0:
log-probabilities only fall as a hypothesis grows, so the best a live one can reach is its logprob
now over its longest allowed length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from charrnn.decoding.interface import State, Stepper
from charrnn.errors import CharRNNError

Stop = Callable[[tuple[int, ...]], bool]


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]
    logprob: float  # natural log of the sequence's probability given the input
    score: float  # logprob / len(tokens) ** length_penalty: what finished hypotheses are ranked by


class EndsWith:
    """The stop rule of seq2seq decoding: the last token is `token` (<EOS>)."""

    def __init__(self, token: int):
        self.token = token

    def __call__(self, tokens: tuple[int, ...]) -> bool:
        return tokens[-1] == self.token


def _lengths(max_len: int | Sequence[int], n: int) -> list[int]:
    lengths = [max_len] * n if isinstance(max_len, int) else list(max_len)
    if len(lengths) != n or min(lengths, default=1) < 1:
        raise CharRNNError(f"max_len must be at least 1 for each of the {n} inputs")
    return lengths


def beam_search(model: Stepper, logits: torch.Tensor, state: State, width: int, max_len: int | Sequence[int],
                num: int = 1, stop: Stop | None = None, length_penalty: float = 0.0) -> list[list[Hypothesis]]:
    """For each of the N inputs whose first logits (N, V) and state (N rows) are given: its `num` best
    distinct outputs, best first."""
    if width < 1 or num < 1:
        raise CharRNNError(f"beam width and number of results must be at least 1 (got width {width}, num {num})")
    if not (math.isfinite(length_penalty) and length_penalty >= 0):
        raise CharRNNError(f"length penalty must be a number >= 0, not {length_penalty}")
    stop = stop or (lambda tokens: False)
    n, vocab = logits.shape
    lengths = _lengths(max_len, n)
    width = max(width, num)
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    # The live beams, grouped by input in input order: their input, tokens and log-probabilities.
    owner, tokens, scores = list(range(n)), [()] * n, torch.zeros(n, dtype=torch.float64)
    logp = logits.log_softmax(-1).double().cpu()
    with torch.inference_mode():
        for t in range(1, max(lengths) + 1):
            inputs, firsts, slots, places = [], [], [], []  # each group's input and first row; each row's place
            for r, i in enumerate(owner):
                if not inputs or inputs[-1] != i:
                    inputs.append(i)
                    firsts.append(r)
                slots.append(len(inputs) - 1)
                places.append(r - firsts[-1])
            dense = torch.full((len(inputs), width, vocab), -math.inf, dtype=torch.float64)
            dense[slots, places] = scores[:, None] + logp
            top = dense.view(len(inputs), -1).topk(min(2 * width, width * vocab))
            keep_rows, keep_tokens, keep_owner, keep_seqs, keep_scores = [], [], [], [], []
            for g, (values, indices) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True)):
                i, first = inputs[g], firsts[g]
                done, kept = finished[i], 0
                for rank, (value, index) in enumerate(zip(values, indices, strict=True)):
                    if value == -math.inf:
                        break
                    beam, token = divmod(index, vocab)
                    seq = tokens[first + beam] + (token,)
                    if t == lengths[i] or stop(seq):
                        if rank < width:  # only a finish that would have held a beam counts (so width 1 is greedy)
                            done.append(Hypothesis(seq, value, value / t**length_penalty))
                    elif kept < width:
                        keep_rows.append(first + beam)
                        keep_tokens.append(token)
                        keep_owner.append(i)
                        keep_seqs.append(seq)
                        keep_scores.append(value)
                        kept += 1
                done.sort(key=lambda h: h.score, reverse=True)
                del done[num:]
                if kept and len(done) == num:  # can the best live beam still beat the num-th finished one?
                    best = keep_scores[-kept] / lengths[i] ** length_penalty
                    if best <= done[-1].score:
                        del keep_rows[-kept:], keep_tokens[-kept:], keep_owner[-kept:], keep_seqs[-kept:]
                        del keep_scores[-kept:]
            if not keep_rows:
                break
            index = torch.tensor(keep_rows, device=logits.device)
            state = model.reorder(state, index)
            step_logits, state = model.step(torch.tensor(keep_tokens, device=logits.device), state)
            logp = step_logits.log_softmax(-1).double().cpu()
            owner, tokens, scores = keep_owner, keep_seqs, torch.tensor(keep_scores, dtype=torch.float64)
    return finished


def greedy_search(model: Stepper, logits: torch.Tensor, state: State, max_len: int | Sequence[int],
                  stop: Stop | None = None) -> list[Hypothesis]:
    """For each of the N inputs: the output that takes the most likely token at every step."""
    stop = stop or (lambda tokens: False)
    n = logits.shape[0]
    lengths = _lengths(max_len, n)
    out: list[Hypothesis | None] = [None] * n
    live, seqs, total = list(range(n)), [()] * n, [0.0] * n
    with torch.inference_mode():
        for t in range(1, max(lengths) + 1):
            logp = logits.log_softmax(-1)
            best, token = logp.max(-1)
            rows = []
            for r, (i, lp, tok) in enumerate(zip(live, best.double().tolist(), token.tolist(), strict=True)):
                seqs[i] += (tok,)
                total[i] += lp
                if t == lengths[i] or stop(seqs[i]):
                    out[i] = Hypothesis(seqs[i], total[i], total[i])
                else:
                    rows.append(r)
            if not rows:
                break
            if len(rows) < len(live):
                index = torch.tensor(rows, device=logits.device)
                state, token = model.reorder(state, index), token[index]
                live = [live[r] for r in rows]
            logits, state = model.step(token, state)
    return out
