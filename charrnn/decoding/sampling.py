"""Sampling: prompt handling, the sampling strategies (plain, guided, forced reading) and streaming generation.

How each character is chosen (temperature, top-k, top-p, repetition penalty, greedy, seed, stop strings)
is one SamplingSettings object (charrnn.decoding.processors), checked when it is made; the strategies
run on charrnn.decoding.loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from charrnn.data import Vocab
from charrnn.decoding.interface import Decodable, State
from charrnn.decoding.loop import Point, Rows, Strategy, decode, steps
from charrnn.decoding.processors import LogitsProcessor, SamplingSettings
from charrnn.decoding.search import Greedy
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError

MAX_LENGTH = 1_000_000  # characters one call may generate
MAX_PRIME = 20_000  # an RNN's memory is far shorter: longer primes condition on their last MAX_PRIME chars


def draw(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token for each row (B, V) -> (B,), drawn from the softmax of its logits."""
    # Inverse transform sampling: the first character whose cumulative probability reaches u, for u
    # uniform in (0, total]; zero-probability characters can never be that first one. On a CPU this
    # takes about half of torch.multinomial's time for one row (~8 us against ~15).
    cdf = logits.float().softmax(-1).cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device).neg_().add_(1).mul_(cdf[..., -1:])
    return torch.searchsorted(cdf, u).squeeze(-1)


class Sample(Rows):
    """Draw each row's next token from its (processed) logits."""

    def __init__(self, stop: Stopping, generator: torch.Generator, rows: int = 1):
        super().__init__(stop, rows)
        self.generator = generator

    def advance(self, logits: torch.Tensor) -> None:
        self.tokens = draw(logits, self.generator)


# What a guide says of a piece just written: None keeps it; k >= 0 drops it and the k pieces kept before it.
Guide = Callable[[list[int]], int | None]


class Guided(Sample):
    """Sampling whose pieces (up to each `boundary` token) a guide checks; a piece it rejects is drawn
    again from the point where it began, or further back (rejection sampling, for one row)."""

    rolls_back = True

    def __init__(self, stop: Stopping, generator: torch.Generator, boundary: int, guide: Guide):
        super().__init__(stop, generator)
        self.boundary, self.guide = boundary, guide
        self.starts: list[Point] = []  # where each kept piece began, and where the next one begins
        self.save, self.back = True, None

    def update_finished(self) -> None:
        out = self.out[0]
        out.append(int(self.tokens))
        if out[-1] == self.boundary:
            self.back = self.guide(out)
            if self.back is not None:
                return
            self.save = True
        if self.stop.ends(out):
            self.live = []

    def at(self, point: Point) -> Point:
        if self.back is not None:
            del self.starts[len(self.starts) - self.back:]
            point, self.back = self.starts[-1], None
            del self.out[0][point.length:]
        elif self.save:
            self.starts.append(point)
            self.save = False
        return point


class Forced(Strategy):
    """Read the given ids (B, T): each step's tokens are the next column, whatever the model predicts."""

    def __init__(self, ids: torch.Tensor):
        self.ids, self.t = ids, 0

    def advance(self, logits: torch.Tensor) -> None:
        if self.t < self.ids.shape[1]:
            self.tokens = self.ids[:, self.t]
        self.t += 1

    def update_finished(self) -> None:
        """Nothing finishes early: the loop ends after the last column is read."""

    def is_finished(self) -> bool:
        return self.t > self.ids.shape[1]


@dataclass
class Prompt:
    """The model's state after reading a prime, and its prediction for the next character."""

    logits: torch.Tensor  # (1, V)
    state: State
    text: str  # the prime as the model read it (unknown characters dropped with unknown="skip")


def prepare_prompt(model: Decodable, vocab: Vocab, prime: str, unknown: str = "error",
                   char_counts: Sequence[int] | None = None) -> Prompt:
    """Read the prime through the fused kernel in one call.

    An empty prime starts from a zero state, and the first character is predicted by the corpus's
    character frequencies (`char_counts` from config.json) - uniform if they are not known.
    """
    prime = vocab.known(prime, unknown, "the prime")
    device = model.device
    state = model.init_state(1, device)
    if not prime:
        counts = torch.tensor(char_counts if char_counts is not None else [1] * len(vocab), dtype=torch.float32)
        return Prompt(torch.log(counts.clamp_min(0.5) / counts.sum()).view(1, -1).to(device), state, "")
    ids = torch.from_numpy(vocab.encode(prime[-MAX_PRIME:])).view(1, -1).to(device)
    with torch.inference_mode():
        logits, state = model.read(ids, state)
    return Prompt(logits, state, prime)


def extend_prompt(model: Decodable, vocab: Vocab, prompt: Prompt, extra: str) -> Prompt:
    """Read `extra` on from a prompt one model step a character (autocomplete's cached states grow so)."""
    ids = torch.from_numpy(vocab.encode(extra)).view(1, -1).to(prompt.logits.device)
    logits, state = decode(model, Forced(ids), prompt.logits, prompt.state)
    return Prompt(logits, state, prompt.text + extra)


def generate(model: Decodable, vocab: Vocab, prompt: Prompt, length: int, settings: SamplingSettings,
             processors: Sequence[LogitsProcessor] = ()) -> Iterator[str]:
    """Yield generated characters one at a time, until `length` or a stop string (which is yielded).

    `processors` run before the settings' own (a caller's constraints: folk's titles forbid a first bar
    line). The arguments are checked when this is called, before the first character is asked for.
    """
    settings.validate(len(vocab))
    if not 1 <= length <= MAX_LENGTH:
        raise CharRNNError(f"length must be between 1 and {MAX_LENGTH:,}; got {length}")
    return _generate(model, vocab, prompt, length, settings, (*processors, *settings.processors))


def _generate(model: Decodable, vocab: Vocab, prompt: Prompt, length: int, settings: SamplingSettings,
              processors: Sequence[LogitsProcessor]) -> Iterator[str]:
    generator = torch.Generator(device=prompt.logits.device)
    generator.manual_seed(settings.seed if settings.seed is not None else torch.seed())
    stop = Stopping.text(vocab, length, settings.stop)
    strategy = Greedy(stop, scored=False) if settings.greedy else Sample(stop, generator)
    chars, out = vocab.chars, strategy.out[0]
    for _ in steps(model, strategy, prompt.logits, prompt.state, processors):
        yield chars[out[-1]]
