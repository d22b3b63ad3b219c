"""Scores of outputs against references: exact match (1 - WER) and token edit distance (TER; PER for phonemes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two token sequences (insertions, deletions, substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def strip_stress(tokens: Sequence[str]) -> tuple[str, ...]:
    """Tokens with their digits removed (ARPAbet stress: AH0 -> AH)."""
    return tuple("".join(c for c in t if not c.isdigit()) for t in tokens)


@dataclass(frozen=True)
class Score:
    pairs: int  # sources scored
    correct: int  # sources whose output equals one of their references
    errors: int  # token edits to the nearest reference, summed
    reference_tokens: int  # tokens of those nearest references, summed

    @property
    def exact(self) -> float:
        return self.correct / self.pairs if self.pairs else 0.0

    @property
    def wer(self) -> float:
        return 1.0 - self.exact

    @property
    def ter(self) -> float:
        return self.errors / self.reference_tokens if self.reference_tokens else 0.0

    def totals(self) -> tuple[int, int, int, int]:
        return self.pairs, self.correct, self.errors, self.reference_tokens


def score(outputs: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
          ignore_stress: bool = False) -> Score:
    """Each output against its source's references: correct if it equals any; edits to the nearest one."""
    correct = errors = ref_tokens = 0
    for out, refs in zip(outputs, references, strict=True):
        if ignore_stress:
            out, refs = strip_stress(out), [strip_stress(r) for r in refs]
        out = tuple(out)
        nearest = min(refs, key=lambda r: (edit_distance(out, r), len(r)))
        distance = edit_distance(out, nearest)
        correct += distance == 0
        errors += distance
        ref_tokens += len(nearest)
    return Score(len(outputs), correct, errors, ref_tokens)
