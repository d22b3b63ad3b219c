"""When a row of decoding ends: the one stop rule every strategy uses.

A row ends when it reaches its length limit, writes an end-of-sequence id, or writes one of the stop
sequences (a stop string, as token ids); the token that ends it is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from charrnn.data import Vocab
from charrnn.errors import CharRNNError


class Stopping:
    """A length limit (one for every row, or one per row), end ids, and stop sequences.

    `before` is the tail of what precedes the generated tokens (the prompt's): a stop sequence may
    begin there, so "\\n\\n" after a prompt ending in "\\n" stops at the first generated "\\n".
    """

    def __init__(self, max_len: int | Sequence[int], eos: Collection[int] = (),
                 sequences: Iterable[Sequence[int]] = (), before: Sequence[int] = ()):
        limits = [max_len] if isinstance(max_len, int) else list(max_len)
        if not all(isinstance(n, int) and n >= 1 for n in limits):
            raise CharRNNError(f"the length limit must be at least 1 for every input; got {max_len}")
        self.max_len = max_len if isinstance(max_len, int) else tuple(limits)
        seqs = [tuple(s) for s in sequences if len(s)]
        # A one-token stop sequence is an end id: a set lookup instead of a slice per token.
        self.eos = frozenset(eos) | {s[0] for s in seqs if len(s) == 1}
        self.sequences = tuple(list(s) for s in seqs if len(s) > 1)
        self.before = list(before[-max((len(s) for s in self.sequences), default=0) + 1:]) if self.sequences else []

    @classmethod
    def text(cls, vocab: Vocab, max_len: int, stop: Iterable[str] = (), before: str = "") -> Stopping:
        """Stop strings over a character vocabulary; one with a character the vocabulary lacks never occurs."""
        stop = [s for s in stop if s and not vocab.unknown(s)]
        return cls(max_len, sequences=[vocab.encode(s).tolist() for s in stop],
                   before=vocab.encode("".join(c for c in before if c in vocab.index)).tolist())

    def limit(self, row: int) -> int:
        """The most tokens row `row` may get."""
        return self.max_len if isinstance(self.max_len, int) else self.max_len[row]

    def check_rows(self, rows: int) -> None:
        """Per-row limits must name every row."""
        if not isinstance(self.max_len, int) and len(self.max_len) != rows:
            raise CharRNNError(f"{len(self.max_len)} length limits for {rows} inputs")

    def ends(self, tokens: list[int], row: int = 0) -> bool:
        """Whether row `row`, whose tokens so far are `tokens` (at least one), ends with the last of them."""
        if len(tokens) >= (self.max_len if isinstance(self.max_len, int) else self.max_len[row]):
            return True
        if tokens[-1] in self.eos:
            return True
        for seq in self.sequences:
            n = len(seq)
            tail = tokens[-n:] if len(tokens) >= n else self.before[len(tokens) - n:] + tokens
            if tail == seq:
                return True
        return False
