"""The training arguments: one dataclass per task, recorded in config.json and rebuilt from it on resume."""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from charrnn import checkpoint as ckpt
from charrnn import models
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CELLS, ModelConfig
from charrnn.models.seq2seq import Seq2SeqConfig


@dataclass
class BaseTrainConfig:
    """The training arguments every kind shares; each kind's own dataclass (named by its models.Kind record)
    adds its fields and defaults. The CLI flags map one to one onto the fields."""

    kind: ClassVar[str]  # the models.Kind this config trains
    # What a resumed run cannot change: the weights' shapes, and the data position a step number stands for.
    fixed_on_resume: ClassVar[tuple[str, ...]] = ("model", "layers", "hidden", "embed", "batch_size")

    corpus: str = ""
    out: str = "runs/default"
    model: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.1
    batch_size: int = 16
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    max_steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # seconds
    eval_every: int = 250
    patience: int | None = None
    seed: int = 1337
    device: str = "auto"
    val_frac: float = 0.1
    test_frac: float = 0.0
    threads: int | None = None

    @property
    def auto_size_pending(self) -> bool:
        """Whether the sizes are still to be chosen for the time budget (training/autosize.py) when training starts."""
        return False

    def check(self) -> None:
        """A CharRNNError naming the flag for any argument out of its range."""
        for name in self.positive():
            if getattr(self, name) < 1:
                raise CharRNNError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        checks = [
            (self.model in CELLS, f"--model must be {', '.join(CELLS)} (got {self.model!r})"),
            (self.optimizer in ("adamw", "rmsprop"), f"--optimizer must be adamw or rmsprop (got {self.optimizer!r})"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (math.isfinite(self.lr) and self.lr > 0, "--lr must be a positive number"),
            (0 <= self.val_frac < 1 and 0 <= self.test_frac < 1 and self.val_frac + self.test_frac < 1,
             "--val-frac and --test-frac must be in [0, 1) and leave some text for training"),
            (self.max_steps is None or self.max_steps >= 0, "--max-steps must not be negative"),
            (self.epochs is None or self.epochs > 0, "--epochs must be positive"),
            (self.time_budget is None or self.time_budget > 0, "--time-budget must be positive"),
            (self.patience is None or self.patience >= 1, "--patience must be at least 1"),
            (self.grad_clip >= 0 and self.warmup >= 0, "--grad-clip and --warmup must not be negative"),
            (0 <= self.min_lr_frac <= 1, "--min-lr-frac must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise CharRNNError(message)

    def positive(self) -> tuple[str, ...]:
        """The fields that must be at least 1."""
        return "layers", "hidden", "embed", "batch_size", "eval_every"


@dataclass
class TrainConfig(BaseTrainConfig):
    """A language model's training arguments: the shared ones, and how the text is read."""

    kind: ClassVar[str] = "lm"
    fixed_on_resume: ClassVar[tuple[str, ...]] = (*BaseTrainConfig.fixed_on_resume, "size", "seq_len")

    seq_len: int = 128
    eval_batch: int = 32
    encoding: str = "utf-8"
    cache_dir: str | None = None
    size: str | None = None  # "auto" (fit to the time budget: training/autosize.py), a preset name, or None
    auto: dict | None = None  # what auto chose and why (autosize.Choice), filled in when the run starts

    @property
    def auto_size_pending(self) -> bool:
        return self.size == "auto" and self.auto is None  # a resumed run keeps the choice it recorded

    def positive(self) -> tuple[str, ...]:
        return *super().positive(), "seq_len", "eval_batch"

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, cell=self.model, layers=self.layers, hidden=self.hidden, embed=self.embed,
                           dropout=self.dropout)


def resume_config(out: str | Path, overrides: dict) -> BaseTrainConfig | None:
    """The saved arguments of the run in `out`, with the ones given again on the command line on top;
    None if `out` holds no run yet (the caller starts one from the command line's arguments).

    Giving e.g. a larger --max-steps or --time-budget extends a run; the architecture cannot change.
    A run killed before its first checkpoint has config.json but nothing to resume: it starts over.
    """
    out = Path(out)
    if not (out / ckpt.CONFIG).is_file():
        if out.exists() and not out.is_dir():
            raise CharRNNError(f"--out {out} is a file, not a run directory")
        return None
    saved = ckpt.read_config(out)
    cls = train_config(saved.kind)
    names = {f.name for f in fields(cls)}  # a run file written when the kinds shared one config has more
    cfg = cls(**{k: v for k, v in {**saved.train, **overrides, "out": str(out)}.items() if k in names})
    changed = [k for k in cls.fixed_on_resume if k in saved.train and getattr(cfg, k) != saved.train[k]]
    if changed and (out / ckpt.LATEST).is_file():
        raise CharRNNError(f"cannot change {', '.join('--' + k for k in changed)} when resuming {out}")
    return cfg


def parse_duration(text: str | float) -> float:
    """Seconds from '90s', '20m', '2h', '1h30m' or a plain number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    s = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", s)
    if not s or not parts or not any(parts.groups()):
        raise CharRNNError(f"bad duration {text!r}: use e.g. 90s, 20m, 2h or 1h30m")
    h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + sec


@dataclass
class Seq2SeqTrainConfig(BaseTrainConfig):
    """A seq2seq run's arguments: the shared ones with its own defaults, and the pair data's own."""

    kind: ClassVar[str] = "seq2seq"
    fixed_on_resume: ClassVar[tuple[str, ...]] = (*BaseTrainConfig.fixed_on_resume, "attention", "source_tokens",
                                                  "target_tokens")

    hidden: int = 256
    dropout: float = 0.2
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    eval_every: int = 500
    val_frac: float = 0.05
    test_frac: float = 0.05
    source_tokens: str = "chars"
    target_tokens: str = "chars"
    attention: str = "general"
    val_file: str | None = None
    test_file: str | None = None
    skip_bad_lines: bool = False
    eval_sample: int = 1000  # val sources decoded greedily at each evaluation for the WER and TER

    def seq2seq_config(self, source_vocab_size: int, target_vocab_size: int) -> Seq2SeqConfig:
        return Seq2SeqConfig(source_vocab_size, target_vocab_size, cell=self.model, layers=self.layers,
                             hidden=self.hidden, embed=self.embed, dropout=self.dropout, attention=self.attention)



def train_config(kind: str) -> type[BaseTrainConfig]:
    """The training arguments' dataclass of the model kind called `kind` (its models.Kind record names it)."""
    return resolve(models.lookup(kind).train_config)


def resolve(ref: str) -> Any:
    """What a models.Kind record names as "module:name" (see charrnn.models on why it names, not imports)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
