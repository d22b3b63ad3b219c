"""Sampling: a chain of small logits processors, prompt handling, and streaming generation.

Processors follow the shape of Hugging Face's generation utilities: each takes logits (B, V) and
returns new logits, so temperature, top-k and top-p compose in any order the caller lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from charrnn.data import Vocab
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, State

LogitsProcessor = Callable[[torch.Tensor], torch.Tensor]

MAX_LENGTH = 1_000_000  # characters one call may generate
MAX_PRIME = 20_000  # an RNN's memory is far shorter: longer primes condition on their last MAX_PRIME chars


class Temperature:
    def __init__(self, t: float):
        self.t = t

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.t


class TopK:
    """Keep the k most likely characters."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        kth = torch.topk(logits, self.k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -math.inf)


class TopP:
    """Keep the smallest set of most likely characters whose probability reaches p (nucleus sampling)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:  # float rounding would otherwise drop characters of tiny probability
            return logits
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= self.p  # mass before this char already reaches p
        drop[..., 0] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), -math.inf)


def check_sampling_args(vocab_size: int, temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None) -> None:
    """Raise a CharRNNError for settings that make no sense."""
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature >= 0):
        raise CharRNNError(f"temperature must be a number >= 0 (0 means greedy); got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise CharRNNError(f"top-k must be between 1 and the vocabulary size {vocab_size}; got {top_k}")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise CharRNNError(f"top-p must be in (0, 1]; got {top_p}")


def build_processors(temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> list[LogitsProcessor]:
    chain: list[LogitsProcessor] = []
    if temperature not in (0, 1):
        chain.append(Temperature(temperature))
    if top_k is not None:
        chain.append(TopK(top_k))
    if top_p is not None and top_p < 1:
        chain.append(TopP(top_p))
    return chain


def next_ids(logits: torch.Tensor, processors: Sequence[LogitsProcessor], greedy: bool,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose the next character of each row: argmax when greedy, else a draw after the processors."""
    if greedy:
        return logits.argmax(-1)
    for proc in processors:
        logits = proc(logits)
    # Inverse transform sampling: the first character whose cumulative probability reaches u, for u
    # uniform in (0, total]; zero-probability characters can never be that first one. On a CPU this
    # takes about half of torch.multinomial's time for one row (~8 us against ~15).
    cdf = logits.float().softmax(-1).cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), generator=generator, device=cdf.device).neg_().add_(1).mul_(cdf[..., -1:])
    return torch.searchsorted(cdf, u).squeeze(-1)


@dataclass
class Prompt:
    """The model's state after reading a prime, and its prediction for the next character."""

    logits: torch.Tensor  # (1, V)
    state: State
    text: str  # the prime as the model read it (unknown characters dropped with unknown="skip")


def prepare_prompt(model: CharRNN, vocab: Vocab, prime: str, unknown: str = "error",
                   char_counts: Sequence[int] | None = None) -> Prompt:
    """Read the prime through the fused kernel in one call.

    An empty prime starts from a zero state, and the first character is predicted by the corpus's
    character frequencies (`char_counts` from config.json) - uniform if they are not known.
    """
    missing = vocab.unknown(prime)
    if missing:
        if unknown != "skip":
            shown = ", ".join(repr(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
            raise CharRNNError(f"the prime has characters the model does not know: {shown}"
                               " (use --unknown skip to drop them)")
        prime = "".join(c for c in prime if c in vocab.index)
    device = model.head.weight.device
    state = model.init_state(1, device)
    if not prime:
        counts = torch.tensor(char_counts if char_counts is not None else [1] * len(vocab), dtype=torch.float32)
        return Prompt(torch.log(counts.clamp_min(0.5) / counts.sum()).view(1, -1).to(device), state, "")
    ids = torch.from_numpy(vocab.encode(prime[-MAX_PRIME:])).view(1, -1).to(device)
    with torch.inference_mode():
        logits, state = model(ids, state)
    return Prompt(logits[:, -1], state, prime)


def generate(model: CharRNN, vocab: Vocab, prompt: Prompt, length: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             stop: Sequence[str] = ()) -> Iterator[str]:
    """Yield generated characters one at a time, until `length` or a stop string (which is yielded).

    The arguments are checked when this is called, before the first character is asked for.
    """
    check_sampling_args(len(vocab), temperature, top_k, top_p)
    if not 1 <= length <= MAX_LENGTH:
        raise CharRNNError(f"length must be between 1 and {MAX_LENGTH:,}; got {length}")
    return _generate(model, vocab, prompt, length, build_processors(temperature, top_k, top_p), temperature == 0,
                     seed, [s for s in stop if s])


def _generate(model: CharRNN, vocab: Vocab, prompt: Prompt, length: int, processors: list[LogitsProcessor],
              greedy: bool, seed: int | None, stop: list[str]) -> Iterator[str]:
    generator = torch.Generator(device=prompt.logits.device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    logits, state = prompt.logits, prompt.state
    tail = max((len(s) for s in stop), default=0)
    recent = ""
    with torch.inference_mode():
        for i in range(length):
            x = next_ids(logits, processors, greedy, generator)
            ch = vocab.chars[int(x)]
            yield ch
            if tail:
                recent = (recent + ch)[-tail:]
                if any(recent.endswith(s) for s in stop):
                    return
            if i + 1 < length:
                logits, state = model.step(x, state)
