"""Decoding a seq2seq model: sources in, N-best outputs with log-probabilities out, many sources per step.

Sources are sorted by length and decoded in chunks of CHUNK: each chunk is one encoder call, then one
batched decoder step per output token for all its beams (decoding.search, the search the language
models use too). Results come back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.checkpoint import load_model
from charrnn.decoding.search import EndsWith, Hypothesis, beam_search, greedy_search
from charrnn.errors import CharRNNError
from charrnn.models.seq2seq import BOS, EOS, Seq2Seq
from charrnn.runfile import RunFile
from charrnn.seq2seq.data import TokenVocab, detokenize, max_output_len, pad, tokenize

CHUNK = 512  # sources encoded and decoded together
MAX_SOURCE_TOKENS = 200  # longer sources are refused: nothing a character model is trained on is this long
MAX_BEAM = 64


def decode_ids(model: Seq2Seq, sources: Sequence[Sequence[int]], max_lens: Sequence[int], beam: int = 1,
               num: int = 1, length_penalty: float = 0.0) -> list[list[Hypothesis]]:
    """The N-best outputs (token ids, EOS included) of each source, in input order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    device = model.device
    with torch.inference_mode():
        for lo in range(0, len(order), CHUNK):
            rows = order[lo : lo + CHUNK]
            src = pad([list(sources[i]) for i in rows]).to(device)
            lengths = torch.tensor([len(sources[i]) for i in rows], device=device)
            logits, state = model.start(src, lengths)
            limits = [max_lens[i] for i in rows]
            if beam == 1 and num == 1:
                found = [[h] for h in greedy_search(model, logits, state, limits, EndsWith(EOS))]
            else:
                found = beam_search(model, logits, state, beam, limits, num, EndsWith(EOS), length_penalty)
            for i, hyps in zip(rows, found, strict=True):
                results[i] = hyps
    return results


@dataclass(frozen=True)
class Output:
    tokens: tuple[str, ...]
    text: str
    logprob: float
    ended: bool  # False if cut off at the length limit before <EOS>


class Translator:
    """A trained seq2seq model with its vocabularies: text in, text out."""

    def __init__(self, model: Seq2Seq, run: RunFile):
        if run.kind != "seq2seq":
            raise CharRNNError(f"this is a {run.kind} model, not a seq2seq one; use charrnn sample or complete")
        self.model, self.run = model, run
        extra = run.extra
        self.source_vocab, self.target_vocab = TokenVocab(extra["source_vocab"]), TokenVocab(extra["target_vocab"])
        self.source_tokens, self.target_tokens = extra["source_tokens"], extra["target_tokens"]
        self.max_ratio = float(extra["max_ratio"])

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        model, _, run = load_model(path, device)
        return cls(model, run)

    def encode(self, source: str, unknown: str = "error") -> list[int]:
        """A source's ids; unknown tokens are an error, or with unknown="skip" are left out."""
        tokens = tokenize(source, self.source_tokens)
        missing = self.source_vocab.unknown(tokens)
        if missing and unknown == "skip":
            tokens = tuple(t for t in tokens if t in self.source_vocab.index)
        elif missing:
            shown = ", ".join(repr(t) for t in missing[:10])
            raise CharRNNError(f"{source[:40]!r} has symbols the model does not know: {shown} (use --unknown skip)")
        if not tokens:
            raise CharRNNError(f"nothing to translate in {source!r}")
        if len(tokens) > MAX_SOURCE_TOKENS:
            raise CharRNNError(f"a source may have at most {MAX_SOURCE_TOKENS} tokens; {source[:20]!r}... has "
                               f"{len(tokens)}")
        return self.source_vocab.encode(tokens)

    def translate(self, sources: Sequence[str], beam: int = 1, num: int = 1, length_penalty: float = 0.0,
                  unknown: str = "error") -> list[list[Output]]:
        """The `num` best outputs of each source, best first, in input order."""
        if not 1 <= beam <= MAX_BEAM or not 1 <= num <= beam:
            raise CharRNNError(f"the beam width must be between 1 and {MAX_BEAM}, and --num between 1 and the "
                               f"width (got beam {beam}, num {num})")
        ids = [self.encode(s, unknown) for s in sources]
        limits = [max_output_len(len(s), self.max_ratio) for s in ids]
        found = decode_ids(self.model, ids, limits, beam, num, length_penalty)
        return [[self._output(h) for h in hyps] for hyps in found]

    def _output(self, h: Hypothesis) -> Output:
        tokens = self.target_vocab.decode(h.tokens)
        return Output(tokens, detokenize(tokens, self.target_tokens), h.logprob, h.tokens[-1] == EOS)

    def attention(self, source: str, output: Sequence[str]) -> np.ndarray:
        """The attention weights (output tokens + EOS) x (source tokens) of the fused path, for a picture."""
        src = torch.tensor([self.encode(source)], device=self.model.device)
        tgt = torch.tensor([[BOS, *self.target_vocab.encode(tuple(output))]], device=self.model.device)
        with torch.inference_mode():
            _, weights = self.model.attention_map(src, torch.tensor([src.shape[1]]), tgt)
        return weights[0].float().cpu().numpy()
