"""--size auto: the model, batch and learning rate that fit a time budget, a corpus and this device.

The rule, with every constant in the block below:

1. The candidates are LADDER's shapes, walked from the one nearest START_PARAMS up (while they fit)
   or down (until one fits). Each one's training speed on this device (chars/s at its batch) is timed
   for a few steps on random ids (the median step counts), and cached per device and shape, so only the
   first run on a machine pays for most of it (the time is counted in the budget). A cached figure that
   the others contradict (a larger shape faster than a smaller one, or TRUST times slower than a smaller
   one's figure scaled by parameters) is timed again. The chosen shape is always timed again, briefly: if
   it runs DRIFT times faster than its cached figure, the cache was timed on a busy machine (its figures
   can all be slow and still agree), and the walk starts over, timing every shape. A budget is refused
   only on a figure timed in this run, and a run's own speed corrects its shape's figure when they differ
   by more than DRIFT times.
2. A shape fits when the budget lets it read at least chars_per_param(budget) characters per parameter
   (compute: CHARS_PER_PARAM at REFERENCE_S, fewer for longer budgets) in at least MIN_STEPS steps, and it
   has at most PARAMS_PER_CHAR parameters per training character (data). The largest shape that fits
   wins. If none fits, the smallest does, provided it gets MIN_STEPS steps; otherwise the budget is too
   short and the error says which budget would do.
3. The batch is BATCH streams of SEQ_LEN characters, for two or more layers half as many of DEEP_SEQ_LEN
   (fewer streams on a corpus too small for them);
   the chosen shape's batch is doubled while the doubled batch trains at least FASTER_BATCH times
   faster (a GPU has room to spare, a CPU does not) and still leaves TARGET_STEPS steps in the budget.
4. The learning rate is LR, lower for wider and deeper models (lr_for); dropout grows with the epochs the budget
   allows (DROPOUT); warmup is a WARMUP_SHARE of the estimated steps, at most the usual 100.

Explicit flags win: the caller names the fields it set (`keep`) and the rule picks only the rest.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn.data import default_cache_dir
from charrnn.errors import CharRNNError
from charrnn.files import write_json
from charrnn.models.rnn import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig

# --- the rule's constants --------------------------------------------------------------------------------
# From the grid that benchmarks/bench_budget.py measured on tinyshakespeare (README, "Choosing a size"), one CPU
# thread a run: at 2 minutes the best point (1x256) read ~12 characters per parameter and the next size up, at
# ~1.6, was worse; at 10 minutes 1x512 (~3.5) beat 1x384 (~5); at 60 minutes 2x512 (~2.2) beat 1x512 (~16).
# So the characters a parameter needs fall as the budget grows: 4 at 2m, ~2.7 at 10m, ~1.7 at 60m. lr 8e-3
# beat 4e-3 at 1x256 and 1x384 in 2 minutes, and 2e-3 was far worse; at 60 minutes 2x512 did better at 3e-3
# than at 6e-3 (0.02-0.04 lower val loss at the same steps), so a second layer halves the lr.
LADDER = (  # (layers, hidden, embed), by parameter count
    (1, 64, 16), (1, 128, 32), (1, 192, 64), (1, 256, 64), (1, 384, 64), (1, 512, 64), (2, 512, 64),
    (2, 768, 64), (2, 1024, 64), (3, 1024, 64),
)
CHARS_PER_PARAM, REFERENCE_S = 4.0, 120.0  # training characters per parameter a 2-minute budget must buy
CHARS_PER_PARAM_FALL = 0.25  # ... times (budget / REFERENCE_S) ** -this for other budgets (compute limit)
PARAMS_PER_CHAR = 4.0  # parameters per training character at most (data limit: larger ones only memorise)
BATCH, SEQ_LEN = 32, 64  # many small updates beat few large ones in a short run
# A stack of layers trains on longer streams, as many characters a step (60m grid: 2x512 at 16x128 beat 32x64
# by ~0.01 at lr 3e-3).
DEEP_SEQ_LEN, CHARS_PER_STEP = 128, BATCH * SEQ_LEN
FASTER_BATCH = 1.5  # a doubled batch must train this much faster (chars/s) to be worth its fewer steps
TARGET_STEPS = 2000  # ... and leave at least this many steps
MIN_STEPS = 100  # the fewest steps worth a run: below this even the smallest model learns little
LR, LR_WIDTH = 8e-3, 256  # the peak lr of one layer up to this width: LR * sqrt(LR_WIDTH / hidden) / layers
DROPOUT = ((5.0, 0.0), (10.0, 0.1), (30.0, 0.2), (math.inf, 0.3))  # (epochs up to, dropout); not measured
WARMUP_SHARE, MAX_WARMUP = 0.05, 100
PROBE_S, PROBE_STEPS = 0.25, (3, 8)  # timing one shape: after one untimed step, this long in this many steps;
# the median step counts, so that a moment of another process's work does not set the speed
TRUST = 2.0  # a cached figure this many times slower than another one implies is timed again (see _trusted)
DRIFT = 1.5  # a run's own speed this many times off the cached figure replaces it
PLAUSIBLE = 1.5  # a shape is timed only if it could fit at this much more than its FLOP-scaled speed
START_PARAMS = 350_000  # the walk up or down the ladder starts at the shape nearest this size (1x256)
# The default length of a run given no --time-budget, --epochs or --max-steps: it follows the corpus size.
DEFAULT_S_PER_MCHAR, DEFAULT_MIN_S, DEFAULT_MAX_S = 300.0, 60.0, 3600.0
VOCAB_STEP = 64  # speeds are timed and cached with the vocabulary rounded up to a multiple of this
SPEEDS = "speeds.json"  # in the cache directory: {machine: {shape key: chars/s}}

AUTO_FIELDS = ("layers", "hidden", "embed", "batch_size", "seq_len", "lr", "dropout", "warmup")
SIZE_FLAGS = ("layers", "hidden", "batch_size", "seq_len", "lr")  # any of these turns the default auto off
PRESETS = {  # --size NAME and the app's sizes: name -> (layers, hidden, embed, dropout)
    "tiny": (1, 64, 16, 0.0),
    "small": (2, 128, 32, 0.0),
    "medium": (2, 256, 64, 0.1),
    "large": (2, 512, 64, 0.1),
}
SIZES = ("auto", *PRESETS)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass(frozen=True)
class Shape:
    """One candidate: the network's sizes and the batch it trains with."""

    layers: int
    hidden: int
    embed: int
    batch: int
    seq_len: int

    def params(self, cell: str, vocab: int) -> int:
        """Parameters of a CharRNN of this shape (nn.LSTM/GRU/RNN keep two bias vectors per layer)."""
        g = GATES[cell] * self.hidden
        rnn = sum(g * ((self.embed if k == 0 else self.hidden) + self.hidden + 2) for k in range(self.layers))
        return vocab * self.embed + rnn + (self.hidden + 1) * vocab

    def key(self, cell: str, vocab: int) -> str:
        return f"{cell} {self.layers}x{self.hidden} e{self.embed} v{vocab} b{self.batch}x{self.seq_len}"

    @classmethod
    def parse(cls, key: str, cell: str, vocab: int) -> Shape | None:
        """The shape of a cache key written by `key` for this cell and vocabulary, else None."""
        m = re.fullmatch(rf"{re.escape(cell)} (\d+)x(\d+) e(\d+) v{vocab} b(\d+)x(\d+)", key)
        return cls(*map(int, m.groups())) if m else None


@dataclass(frozen=True)
class Choice:
    """What auto chose and what it was based on (recorded in config.json as train.auto)."""

    cell: str
    layers: int
    hidden: int
    embed: int
    batch_size: int
    seq_len: int
    lr: float
    dropout: float
    warmup: int
    budget_s: float
    train_chars: int
    chars_per_s: float
    est_epochs: float
    est_steps: int
    timing_s: float  # spent timing shapes in this run (the chosen one at least: a cached figure is confirmed)

    def line(self) -> str:
        """E.g. 'auto: LSTM 1x384, batch 32x64, lr 4e-3, dropout 0 for 2m on 1.0M chars (est. 3.1 epochs)'."""
        lr = f"{self.lr:.0e}".replace("e-0", "e-")
        epochs = f"{self.est_epochs:,.{1 if self.est_epochs < 100 else 0}f}"
        return (f"auto: {self.cell.upper()} {self.layers}x{self.hidden}, batch {self.batch_size}x{self.seq_len}, "
                f"lr {lr}, dropout {self.dropout:g} for {format_duration(self.budget_s)} on "
                f"{count_text(self.train_chars)} chars (est. {epochs} epochs, "
                f"{self.est_steps:,} steps)")


def format_duration(seconds: float) -> str:
    """'2m', '1m30s', '1h', '45s', '0.5s': how --time-budget would spell it."""
    if seconds < 10 and seconds != round(seconds):
        return f"{seconds:.2g}s"
    s = round(seconds)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"


def count_text(n: int) -> str:
    """1.0M, 6.0k, 950."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def default_budget(chars: int) -> float:
    """Seconds of training for a run given no length: DEFAULT_S_PER_MCHAR per million characters, bounded."""
    return min(DEFAULT_MAX_S, max(DEFAULT_MIN_S, round(DEFAULT_S_PER_MCHAR * chars / 1e6)))


def chars_per_param(seconds: float) -> float:
    """Training characters per parameter a budget of `seconds` must buy for a shape to fit (rule 2)."""
    return CHARS_PER_PARAM * (max(seconds, 1e-3) / REFERENCE_S) ** -CHARS_PER_PARAM_FALL


def lr_for(layers: int, hidden: int) -> float:
    """The peak learning rate of a shape (rule 4), to one significant digit, as one writes it."""
    return float(f"{LR * min(1.0, math.sqrt(LR_WIDTH / hidden)) / layers:.1g}")


def dropout_for(epochs: float) -> float:
    return next(p for most, p in DROPOUT if epochs <= most)


# --- timing -------------------------------------------------------------------------------------------


def cached_vocab(vocab: int) -> int:
    """The vocabulary a speed is timed and cached with: rounded up to VOCAB_STEP (nearby ones cost the same)."""
    return -(-vocab // VOCAB_STEP) * VOCAB_STEP


class Speeds:
    """Measured training speeds, cached in the cache directory per machine (device, CPU, threads, torch).

    A cached figure is used only if the others agree with it (`_trusted`) and the cache has not been caught
    slow in this run (`distrust`); a run that measures its own speed corrects the figure (`correct`). Timing
    on a busy machine only ever slows a shape down, so a figure that is re-timed keeps the faster of the two.
    """

    def __init__(self, cache_dir: str | Path | None, machine: str, device: torch.device):
        self.path = Path(cache_dir or default_cache_dir()) / SPEEDS
        self.machine, self.device = f"{machine}, torch {torch.__version__}", device
        self.timing_s = 0.0  # spent timing, this run
        self.timed: set[str] = set()  # the keys timed in this run
        self.distrusted = False  # a figure was caught slow in this run: every other is timed again

    def left(self, budget: float) -> float:
        """Seconds of `budget` left for training after the timing done so far in this run."""
        return budget - self.timing_s

    def distrust(self) -> None:
        """Time every shape again in this run: figures that agree with each other were all timed while busy."""
        self.distrusted = True

    def timed_now(self, cell: str, shape: Shape, vocab: int) -> bool:
        """Whether this run timed `shape` itself (its figure is not the cache's)."""
        return shape.key(cell, cached_vocab(vocab)) in self.timed

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or damaged: time again
            return {}

    def _known(self) -> dict[str, float]:
        known = self._read().get(self.machine, {})
        return {k: float(v) for k, v in known.items() if isinstance(v, int | float) and v > 0} \
            if isinstance(known, dict) else {}

    def _write(self, key: str, speed: float) -> None:
        cache = self._read()  # again: another run may have added speeds meanwhile
        if not isinstance(cache.get(self.machine), dict):
            cache[self.machine] = {}
        cache[self.machine][key] = round(speed, 1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, cache)
        except (OSError, CharRNNError):  # a read-only cache costs a re-timing next time, nothing more
            pass

    def get(self, cell: str, shape: Shape, vocab: int, fresh: bool = False) -> float:
        """chars/s of `shape`: cached if trusted, else timed (and cached). `fresh`: time it unless this run did."""
        vocab = cached_vocab(vocab)
        key, known = shape.key(cell, vocab), self._known()
        cached = known.get(key)
        if cached is not None and (key in self.timed or (
                not (fresh or self.distrusted) and _trusted(cell, shape, vocab, cached, known))):
            return cached
        t0 = time.perf_counter()
        speed = max(measure(cell, shape, vocab, self.device), cached or 0.0)
        self.timing_s += time.perf_counter() - t0
        self.timed.add(key)
        self._write(key, speed)
        return speed

    def correct(self, cell: str, shape: Shape, vocab: int, measured: float) -> bool:
        """Replace the cached figure of `shape` by a run's own speed if they differ by more than DRIFT times."""
        key = shape.key(cell, cached_vocab(vocab))
        cached = self._known().get(key)
        if cached is None or measured <= 0 or max(measured / cached, cached / measured) <= DRIFT:
            return False
        self._write(key, measured)
        return True


def _trusted(cell: str, shape: Shape, vocab: int, speed: float, known: dict[str, float]) -> bool:
    """Whether the other figures of the same cell, vocabulary and batch agree with `speed` for `shape`: no
    larger shape is faster, and no smaller one implies, scaled by parameters, TRUST times more."""
    params = shape.params(cell, vocab)
    for key, other_speed in known.items():
        other = Shape.parse(key, cell, vocab)
        if other is None or other == shape or (other.batch, other.seq_len) != (shape.batch, shape.seq_len):
            continue
        implied = other_speed * min(1.0, other.params(cell, vocab) / params)
        if speed * TRUST < implied:
            return False
    return True


def measure(cell: str, shape: Shape, vocab: int, device: torch.device) -> float:
    """Training chars/s of one shape: forward, backward and AdamW on random ids, as the trainer steps."""
    model = CharRNN(ModelConfig(vocab, cell=cell, layers=shape.layers, hidden=shape.hidden,
                                embed=shape.embed)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)  # leaves the global RNG (the run's seed) alone
    x, y = (torch.randint(vocab, (shape.batch, shape.seq_len), generator=gen).to(device) for _ in range(2))

    def step() -> None:
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # waits for the device, as the trainer's NaN check does

    step()  # the first step allocates and plans kernels
    fewest, most = PROBE_STEPS
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < fewest or (len(times) < most and time.perf_counter() - started < PROBE_S):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return shape.batch * shape.seq_len / statistics.median(times)


# --- the rule -------------------------------------------------------------------------------------------


def _candidates(cfg: TrainConfig, keep: Collection[str], train_chars: int) -> list[Shape]:
    """LADDER's shapes consistent with the fields the caller fixed, at the starting batch."""
    def batch_of(layers: int) -> tuple[int, int]:  # (streams, characters each)
        if "seq_len" in keep:
            seq, streams = cfg.seq_len, BATCH
        else:
            seq = SEQ_LEN if layers == 1 else DEEP_SEQ_LEN
            streams = CHARS_PER_STEP // seq
        return (cfg.batch_size if "batch_size" in keep else max(1, min(streams, train_chars // (seq + 1)))), seq

    wanted = [(layers, hidden, embed) for layers, hidden, embed in LADDER
              if ("layers" not in keep or layers == cfg.layers) and ("hidden" not in keep or hidden == cfg.hidden)]
    if not wanted:  # a size the ladder lacks: the given one(s) with the ladder's others, smallest first
        depths = [cfg.layers] if "layers" in keep else sorted({shape[0] for shape in LADDER})
        widths = [cfg.hidden] if "hidden" in keep else sorted({shape[1] for shape in LADDER})
        wanted = [(layers, hidden, min(64, hidden)) for layers in depths for hidden in widths]
    shapes = sorted((Shape(layers, hidden, embed, *batch_of(layers)) for layers, hidden, embed in wanted),
                    key=lambda s: s.params(cfg.model, 64))
    if "embed" in keep:
        shapes = [replace(s, embed=cfg.embed) for s in shapes]
    return shapes


def _batched(shape: Shape, speed: float, seconds: float, keep: Collection[str], speeds: Speeds,
             cell: str, vocab: int, train_chars: int) -> tuple[Shape, float]:
    """The shape at the batch it should train with (see rule 3), and its speed there."""
    while "batch_size" not in keep:
        bigger = replace(shape, batch=shape.batch * 2)
        if bigger.batch * (bigger.seq_len + 1) > train_chars:
            break
        # Worth timing only if, even FASTER_BATCH times faster, the bigger batch keeps TARGET_STEPS steps.
        if speed * FASTER_BATCH * seconds / (bigger.batch * bigger.seq_len) < TARGET_STEPS:
            break
        faster = speeds.get(cell, bigger, vocab)
        if faster < FASTER_BATCH * speed or faster * seconds / (bigger.batch * bigger.seq_len) < TARGET_STEPS:
            break
        shape, speed = bigger, faster
    return shape, speed


def fits(shape: Shape, speed: float, seconds: float, cell: str, vocab: int, train_chars: int) -> bool:
    """Rule 2: enough characters per parameter, in enough steps, and not too many parameters for the data."""
    chars, params = speed * seconds, shape.params(cell, vocab)
    return (chars >= chars_per_param(seconds) * params and chars >= MIN_STEPS * shape.batch * shape.seq_len
            and params <= PARAMS_PER_CHAR * train_chars)


class BudgetTooShort(CharRNNError):
    """No model trains MIN_STEPS steps in the budget: `need_s` seconds would do (a front end says how to give it)."""

    def __init__(self, problem: str, need_s: int):
        super().__init__(problem, f": give --time-budget {need_s}s or more")
        self.need_s = need_s


def choose(cfg: TrainConfig, keep: Collection[str], train_chars: int, vocab: int, speeds: Speeds) -> Choice:
    """The auto choice for cfg.time_budget seconds on train_chars characters (see the module's rule)."""
    budget, cell = cfg.time_budget, cfg.model
    if budget is None:
        raise CharRNNError("--size auto fits the model to a time budget: give --time-budget (or a fixed size)")
    shapes = _candidates(cfg, keep, train_chars)
    # Walk from the shape nearest START up while shapes fit, or down until one does: two or three timings.
    i = min(range(len(shapes)), key=lambda k: abs(math.log(shapes[k].params(cell, vocab) / START_PARAMS)))
    picked: tuple[Shape, float] | None = None  # the largest shape known to fit, and its speed
    tried: dict[int, float] = {}
    while 0 <= i < len(shapes):
        shape = shapes[i]
        params = shape.params(cell, vocab)
        if picked is not None:  # going up
            if params > PARAMS_PER_CHAR * train_chars:
                break
            # Not worth timing if it could not fit even running PLAUSIBLE times faster than its FLOPs suggest.
            guess, seconds = picked[1] * picked[0].params(cell, vocab) / params, speeds.left(budget)
            if guess * PLAUSIBLE * seconds < chars_per_param(seconds) * params:
                break
        tried[i] = speed = speeds.get(cell, shape, vocab)
        if fits(shape, speed, speeds.left(budget), cell, vocab, train_chars):
            picked, i = (shape, speed), i + 1
        elif picked is not None or i == 0:
            break
        else:
            i -= 1
    if picked is None:  # not even the smallest fits: it is the choice if it gets MIN_STEPS steps
        picked = (shapes[0], tried[0])
    shape, speed = _batched(*picked, speeds.left(budget), keep, speeds, cell, vocab, train_chars)
    if not speeds.timed_now(cell, shape, vocab):  # a choice (or a refusal) is never on cached figures alone
        fresh = speeds.get(cell, shape, vocab, fresh=True)
        short = speed * speeds.left(budget) < MIN_STEPS * shape.batch * shape.seq_len
        if fresh > DRIFT * speed or (short and fresh > speed):
            # The cache was slow, and its figures may all be, agreeing with each other (a busy hour timed them
            # all): walk again, timing every shape afresh.
            speeds.distrust()
            return choose(cfg, keep, train_chars, vocab, speeds)
        speed = fresh
    seconds = speeds.left(budget)
    steps = int(speed * seconds / (shape.batch * shape.seq_len))
    if steps < MIN_STEPS:
        need = math.ceil(speeds.timing_s + MIN_STEPS * shape.batch * shape.seq_len / speed)
        raise BudgetTooShort(f"a time budget of {format_duration(budget)} is too short for any model on this "
                             f"machine: the smallest ({cell.upper()} {shape.layers}x{shape.hidden}) needs {need}s for "
                             f"{MIN_STEPS} steps", need)
    epochs = speed * seconds / train_chars
    return Choice(
        cell=cell, layers=shape.layers, hidden=shape.hidden, embed=shape.embed, batch_size=shape.batch,
        seq_len=shape.seq_len, lr=cfg.lr if "lr" in keep else lr_for(shape.layers, shape.hidden),
        dropout=cfg.dropout if "dropout" in keep else dropout_for(epochs),
        warmup=cfg.warmup if "warmup" in keep else min(MAX_WARMUP, max(1, round(WARMUP_SHARE * steps))),
        budget_s=budget, train_chars=train_chars, chars_per_s=round(speed, 1), est_epochs=round(epochs, 2),
        est_steps=steps, timing_s=round(speeds.timing_s, 2))


def apply(cfg: TrainConfig, choice: Choice) -> TrainConfig:
    """cfg with auto's choice in its fields, and the choice itself recorded (so --resume keeps it)."""
    return replace(cfg, **{k: getattr(choice, k) for k in AUTO_FIELDS}, auto=asdict(choice))
