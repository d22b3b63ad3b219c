"""Decoding a seq2seq model: sources in, N-best outputs with log-probabilities out, many sources per step.

Sources are sorted by length and decoded in chunks of CHUNK: each chunk is one encoder call, then one
batched decoder step per output token for all its beams (decoding.search, the search the language
models use too). Results come back in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charrnn import models
from charrnn.checkpoint import load_model
from charrnn.decoding.interface import Stepper
from charrnn.decoding.search import Hypothesis, beam_search, greedy_search
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError
from charrnn.models.seq2seq import EOS, PAD, DecoderState, Seq2Seq, Seq2SeqExtra
from charrnn.runfile import RunFile
from charrnn.seq2seq.data import TokenVocab, detokenize, make_batch, max_output_len, pad, tokenize
from charrnn.seq2seq.normalize import Reading, normalize

CHUNK = 512  # sources encoded and decoded together
MAX_SOURCE_TOKENS = 200  # longer sources are refused: nothing a character model is trained on is this long
MAX_BEAM = 64


def begin_ids(model: Seq2Seq, sources: Sequence[Sequence[int]]) -> tuple[torch.Tensor, DecoderState]:
    """`model.begin` of these sources, in this order (one encoder call)."""
    src = pad([list(s) for s in sources]).to(model.device)
    with torch.inference_mode():
        return model.begin(src, torch.tensor([len(s) for s in sources], device=model.device))


def decode_ids(model: Seq2Seq, sources: Sequence[Sequence[int]], max_lens: Sequence[int], beam: int = 1,
               num: int = 1, length_penalty: float = 0.0, stepper: Stepper | None = None,
               begun: tuple[torch.Tensor, DecoderState] | None = None) -> list[list[Hypothesis]]:
    """The N-best outputs (token ids, EOS included) of each source, in input order. The model encodes
    (or `begun` is `begin_ids` of these sources, at most CHUNK of them, already encoded); `stepper`
    (default: the model; a serve.batcher session shares steps with other requests) steps."""
    stepper = stepper or model
    if begun is not None and len(sources) > CHUNK:
        raise CharRNNError(f"at most {CHUNK} sources can be decoded from one encoding")
    order = list(range(len(sources))) if begun else sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    with torch.inference_mode():
        for lo in range(0, len(order), CHUNK):
            rows = order[lo : lo + CHUNK]
            logits, state = stepper.step(*(begun or begin_ids(model, [sources[i] for i in rows])))
            stop = Stopping([max_lens[i] for i in rows], eos=[EOS])
            if beam == 1 and num == 1:
                found = [[h] for h in greedy_search(stepper, logits, state, stop)]
            else:
                found = beam_search(stepper, logits, state, beam, stop, num, length_penalty)
            for i, hyps in zip(rows, found, strict=True):
                results[i] = hyps
    return results


@dataclass(frozen=True)
class Encoded:
    """Sources' ids and their `begin_ids`: encoded once for a search and a scoring pass over them."""

    ids: list[list[int]]
    begun: tuple[torch.Tensor, DecoderState]


@dataclass(frozen=True)
class Output:
    tokens: tuple[str, ...]
    text: str
    logprob: float
    ended: bool  # False if cut off at the length limit before <EOS>


@dataclass(frozen=True)
class Answer:
    origin: str  # "lexicon" (the dictionary knew the source) or "model"
    outputs: list[Output]
    notes: tuple[str, ...] = ()  # what of the source was read otherwise or left out (Reading.notes)


class Translator:
    """A trained seq2seq model with its vocabularies: text in, text out."""

    def __init__(self, model: Seq2Seq, run: RunFile, where: str = "this model"):
        """`where` names the model in the error for a run of another kind."""
        models.expect(run.kind, "seq2seq", where)
        self.model, self.run = model, run
        extra: Seq2SeqExtra = run.extra
        self.source_vocab, self.target_vocab = TokenVocab(extra.source_vocab), TokenVocab(extra.target_vocab)
        self.source_tokens, self.target_tokens = extra.source_tokens, extra.target_tokens
        self.max_ratio = float(extra.max_ratio)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Translator:
        model, _, run = load_model(path, device)
        return cls(model, run, str(path))

    def read(self, source: str, unknown: str = "error") -> Reading:
        """What the model reads of a source, and what was read otherwise or left out (seq2seq/normalize.py)."""
        return normalize(source, tokenize(source, self.source_tokens), self.source_vocab.index, unknown)

    def encode(self, source: str, unknown: str = "error") -> list[int]:
        """A source's ids, as `read` reads it."""
        tokens = self.read(source, unknown).tokens
        if not tokens:
            raise CharRNNError(f"nothing to translate in {source[:40]!r}: the model knows none of its symbols")
        if len(tokens) > MAX_SOURCE_TOKENS:
            raise CharRNNError(f"a source may have at most {MAX_SOURCE_TOKENS} tokens; {source[:20]!r}... has "
                               f"{len(tokens)}")
        return self.source_vocab.encode(tokens)

    def begin(self, sources: Sequence[str], unknown: str = "error") -> Encoded:
        """Sources encoded once, for `translate` and `force` of the same sources (at most CHUNK)."""
        ids = [self.encode(s, unknown) for s in sources]
        return Encoded(ids, begin_ids(self.model, ids))

    def translate(self, sources: Sequence[str], beam: int = 1, num: int = 1, length_penalty: float = 0.0,
                  unknown: str = "error", stepper: Stepper | None = None,
                  encoded: Encoded | None = None) -> list[list[Output]]:
        """The `num` best outputs of each source, best first, in input order (stepped by `stepper`: see
        decode_ids); `encoded`, if given, is `begin(sources, unknown)`."""
        if not 1 <= beam <= MAX_BEAM or not 1 <= num <= beam:
            raise CharRNNError(f"the beam width must be between 1 and {MAX_BEAM}, and --num between 1 and the "
                               f"width (got beam {beam}, num {num})")
        ids = encoded.ids if encoded else [self.encode(s, unknown) for s in sources]
        limits = [max_output_len(len(s), self.max_ratio) for s in ids]
        found = decode_ids(self.model, ids, limits, beam, num, length_penalty, stepper,
                           encoded.begun if encoded else None)
        return [[self._output(h) for h in hyps] for hyps in found]

    def translate_known(self, sources: Sequence[str], known: Callable[[str], list[tuple[str, ...]]], beam: int = 1,
                        num: int = 1, length_penalty: float = 0.0, unknown: str = "error") -> list[Answer]:
        """As translate, but a source that `known` has outputs for (a G2P front end's dictionary) gets those,
        scored by the model, and the model decodes only the others. Sources are read as `read` reads them."""
        readings = [self.read(s, unknown) for s in sources]
        if empty := next((s for s, r in zip(sources, readings, strict=True) if not r.tokens), None):
            raise CharRNNError(f"nothing to translate in {empty[:40]!r}: the model knows none of its symbols")
        sources = [detokenize(r.tokens, self.source_tokens) for r in readings]
        found = [known(s)[:num] for s in sources]
        ask = [i for i, f in enumerate(found) if not f]
        decoded = dict(zip(ask, self.translate([sources[i] for i in ask], beam, num, length_penalty, unknown),
                           strict=True))
        pairs = [(i, out) for i, outs in enumerate(found) for out in outs]
        scored = self.force([sources[i] for i, _ in pairs], [out for _, out in pairs]) if pairs else []
        listed: dict[int, list[Output]] = {}
        for (i, out), (logprob, _) in zip(pairs, scored, strict=True):
            listed.setdefault(i, []).append(Output(out, detokenize(out, self.target_tokens), logprob, True))
        return [Answer("lexicon", listed[i], readings[i].notes) if i in listed else
                Answer("model", decoded[i], readings[i].notes) for i in range(len(sources))]

    def _output(self, h: Hypothesis) -> Output:
        tokens = self.target_vocab.decode(h.tokens)
        return Output(tokens, detokenize(tokens, self.target_tokens), h.logprob, h.tokens[-1] == EOS)

    def force(self, sources: Sequence[str], outputs: Sequence[Sequence[str]], unknown: str = "error",
              encoded: Encoded | None = None, rows: Sequence[int] = ()) -> list[tuple[float, np.ndarray]]:
        """For each source and a given output (tokens): the model's log-probability of that output (EOS
        included) and the attention weights, (output tokens + EOS) x (source tokens), in one fused call.
        With `encoded` (a `begin`), source i is its source rows[i], and the encoder is not run again."""
        src = [encoded.ids[r] for r in rows] if encoded else [self.encode(s, unknown) for s in sources]
        for o in outputs:
            if missing := self.target_vocab.unknown(tuple(o)):
                raise CharRNNError(f"{' '.join(o)!r} has symbols the model never writes: {', '.join(missing[:10])}")
        tgt = [self.target_vocab.encode(tuple(o)) for o in outputs]
        batch = make_batch(src, tgt).to(self.model.device)
        with torch.inference_mode():
            again = self.model.encoded_rows(encoded.begun[1], torch.tensor(rows)) if encoded else None
            logits, weights = self.model.attention_map(batch.source, batch.lengths, batch.target_in, again)
            losses = F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=PAD,
                                     reduction="none").view(batch.target_out.shape)
        weights = weights.float().cpu().numpy()
        return [(-float(losses[i].sum()), weights[i, : len(t) + 1, : len(s)])
                for i, (s, t) in enumerate(zip(src, tgt, strict=True))]
