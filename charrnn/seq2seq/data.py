"""Pairs for sequence to sequence: the TSV format, tokens, vocabularies, splits by hash, length-bucketed batches.

A pair file has one `source<TAB>target` a line, in UTF-8. A side is a sequence of characters, or with
"space" tokens of whitespace-separated symbols (ARPAbet phonemes "HH AH0 L OW1"). Batches gather pairs
of similar length, so there is little padding to begin with, and the model masks what there is.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.errors import CharRNNError
from charrnn.models.seq2seq import BOS, EOS, PAD, TOKENS

SOURCE_SPECIALS = ("<pad>",)  # ids 0.. of a source vocabulary
TARGET_SPECIALS = ("<pad>", "<s>", "</s>")  # PAD, BOS, EOS of a target vocabulary
POOL = 50  # batches whose pairs are sorted by length together: batches differ from epoch to epoch


def tokenize(text: str, mode: str) -> tuple[str, ...]:
    """A side of a pair as tokens: its characters, or ("space") its whitespace-separated symbols."""
    return tuple(text.split()) if mode == "space" else tuple(text)


def detokenize(tokens: tuple[str, ...] | list[str], mode: str) -> str:
    return " ".join(tokens) if mode == "space" else "".join(tokens)


def split_of(source: str, val_frac: float, test_frac: float) -> str:
    """"train", "val" or "test" by a hash of the source: the same on every machine, and every pair with
    this source in the same split."""
    point = int.from_bytes(hashlib.sha256(source.encode("utf-8")).digest()[:8], "big") / 2**64
    if point < 1 - val_frac - test_frac:
        return "train"
    return "val" if point < 1 - test_frac else "test"


@dataclass(frozen=True)
class Pairs:
    """The pairs of a file (sources and targets as token tuples), and how many bad lines were skipped."""

    path: str
    sources: list[tuple[str, ...]]
    targets: list[tuple[str, ...]]
    source_tokens: str = "chars"
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, keep: list[int]) -> Pairs:
        return Pairs(self.path, [self.sources[i] for i in keep], [self.targets[i] for i in keep], self.source_tokens)

    def split(self, val_frac: float, test_frac: float) -> dict[str, Pairs]:
        """The train, val and test pairs, by a hash of the source text."""
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, src in enumerate(self.sources):
            parts[split_of(detokenize(src, self.source_tokens), val_frac, test_frac)].append(i)
        return {name: self.subset(keep) for name, keep in parts.items()}

    def references(self) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
        """Each distinct source's targets, in file order (a source may have several)."""
        refs: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for src, tgt in zip(self.sources, self.targets, strict=True):
            refs.setdefault(src, []).append(tgt)
        return refs


def read_pairs(path: str | Path, source_tokens: str = "chars", target_tokens: str = "chars",
               skip_bad_lines: bool = False) -> Pairs:
    """The pairs of a TSV file. A bad line (not exactly one tab, an empty side, invalid UTF-8) is a
    one-line error naming its line number, or with skip_bad_lines is skipped and counted."""
    path = Path(path)
    for mode in (source_tokens, target_tokens):
        if mode not in TOKENS:
            raise CharRNNError(f"tokens must be {' or '.join(TOKENS)}, not {mode!r}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CharRNNError(f"cannot read {path}: {e.strerror or e}") from None
    sources, targets, skipped = [], [], 0
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        problem, pair = _parse(raw, source_tokens, target_tokens)
        if problem is None:
            sources.append(pair[0])
            targets.append(pair[1])
        elif skip_bad_lines:
            skipped += 1
        else:
            raise CharRNNError(f"{path}:{number}: {problem}", " (pass --skip-bad-lines to skip such lines)")
    if not sources:
        raise CharRNNError(f"{path} holds no source<TAB>target pairs" + (f" ({skipped} bad lines skipped)"
                                                                          if skipped else ""))
    return Pairs(str(path), sources, targets, source_tokens, skipped)


def _parse(raw: bytes, source_tokens: str, target_tokens: str) -> tuple[str | None, tuple | None]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (byte {e.start} of the line)", None
    if line.count("\t") != 1:
        return f"expected source<TAB>target, found {line.count(chr(9))} tabs", None
    source, target = line.split("\t")
    if not source.strip() or not target.strip():  # whitespace alone is no sequence, even of characters
        return f"empty {'source' if not source.strip() else 'target'}", None
    return None, (tokenize(source, source_tokens), tokenize(target, target_tokens))


class TokenVocab:
    """A side's tokens in id order, after its special tokens."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise CharRNNError("a vocabulary's tokens must be distinct")

    @classmethod
    def of(cls, sequences: list[tuple[str, ...]], specials: tuple[str, ...]) -> TokenVocab:
        return cls([*specials, *sorted(Counter(t for seq in sequences for t in seq))])

    def __len__(self) -> int:
        return len(self.tokens)

    def unknown(self, seq: tuple[str, ...]) -> list[str]:
        return list(dict.fromkeys(t for t in seq if t not in self.index))

    def encode(self, seq: tuple[str, ...]) -> list[int]:
        return [self.index[t] for t in seq]

    def decode(self, ids) -> tuple[str, ...]:
        """Tokens of ids, without special tokens (an output's EOS, say)."""
        return tuple(self.tokens[i] for i in ids if i >= len(TARGET_SPECIALS))


class PairBatches:
    """Training batches of pairs of similar length, padded with PAD.

    Each epoch shuffles the pairs with a seed of its own, sorts each pool of POOL batches by length and
    shuffles the batches' order: the batch of any step follows from (seed, step) alone, so a resumed
    run sees exactly the batches an uninterrupted one would. Under torchrun each rank takes every
    world-th row of the global batch.
    """

    def __init__(self, sources: list[list[int]], targets: list[list[int]], batch_size: int, seed: int,
                 rank: int = 0, world: int = 1):
        if len(sources) < batch_size:
            raise CharRNNError(f"the training split has {len(sources):,} pairs, fewer than --batch-size "
                               f"{batch_size}")
        self.sources, self.targets = sources, targets
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.batches_per_epoch = len(sources) // batch_size  # the last incomplete batch waits for the next epoch
        self._epoch: tuple[int, np.ndarray] | None = None
        lengths = np.array([len(s) + 1 for s in targets])  # + EOS
        self.mean_target_tokens = float(lengths.mean())

    def _order(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.sources))[: self.batches_per_epoch * self.batch_size]
            pool = POOL * self.batch_size
            for lo in range(0, len(order), pool):
                chunk = order[lo : lo + pool]
                key = [(len(self.sources[i]), len(self.targets[i])) for i in chunk]
                order[lo : lo + pool] = chunk[sorted(range(len(chunk)), key=key.__getitem__)]
            batches = order.reshape(self.batches_per_epoch, self.batch_size)
            self._epoch = (epoch, batches[rng.permutation(len(batches))])
        return self._epoch[1]

    def get(self, step: int) -> Batch:
        """The batch of optimizer step `step` (this rank's rows)."""
        rows = self._order(step // self.batches_per_epoch)[step % self.batches_per_epoch][self.rank :: self.world]
        return make_batch([self.sources[i] for i in rows], [self.targets[i] for i in rows])


@dataclass(frozen=True)
class Batch:
    source: torch.Tensor  # (B, S) ids, PAD after each source's end
    lengths: torch.Tensor  # (B,) source lengths
    target_in: torch.Tensor  # (B, T) BOS + target, PAD after
    target_out: torch.Tensor  # (B, T) target + EOS, PAD after: what the loss predicts

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in (self.source, self.lengths, self.target_in,
                                                                  self.target_out)))


def pad(seqs: list[list[int]], width: int | None = None) -> torch.Tensor:
    """Rows of ids padded with PAD to the longest (or `width`)."""
    out = torch.full((len(seqs), width or max(map(len, seqs))), PAD, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def make_batch(sources: list[list[int]], targets: list[list[int]], extra_pad: int = 0) -> Batch:
    """A padded batch; extra_pad adds that many more PAD columns to each side (the padding tests use it)."""
    width_s = max(map(len, sources)) + extra_pad
    width_t = max(map(len, targets)) + 1 + extra_pad
    return Batch(pad(sources, width_s), torch.tensor([len(s) for s in sources]),
                 pad([[BOS, *t] for t in targets], width_t), pad([[*t, EOS] for t in targets], width_t))


def max_output_len(source_len: int, ratio: float) -> int:
    """The longest output (EOS included) decoding allows for a source: `ratio` times its length, and some."""
    return math.ceil(ratio * source_len) + 5
