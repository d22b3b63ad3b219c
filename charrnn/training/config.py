"""The training arguments: one dataclass per task, recorded in config.json and rebuilt from it on resume."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError
from charrnn.models.rnn import ModelConfig
from charrnn.models.seq2seq import Seq2SeqConfig
from charrnn.runfile import CONFIG


@dataclass
class TrainConfig:
    """Every training argument; the CLI flags map one to one onto these fields."""

    corpus: str = ""
    out: str = "runs/default"
    model: str = "lstm"
    layers: int = 2
    hidden: int = 512
    embed: int = 64
    dropout: float = 0.1
    batch_size: int = 16
    seq_len: int = 128
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
    eval_batch: int = 32
    patience: int | None = None
    seed: int = 1337
    device: str = "auto"
    val_frac: float = 0.1
    test_frac: float = 0.0
    encoding: str = "utf-8"
    cache_dir: str | None = None
    threads: int | None = None
    size: str | None = None  # "auto" (fit to the time budget: training/autosize.py), a preset name, or None
    auto: dict | None = None  # what auto chose and why (autosize.Choice), filled in when the run starts

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, cell=self.model, layers=self.layers, hidden=self.hidden, embed=self.embed,
                           dropout=self.dropout)


# What a resumed run cannot change: the weights' shapes, and the data position a step number stands for.
FIXED_ON_RESUME = ("model", "size", "layers", "hidden", "embed", "batch_size", "seq_len", "attention", "source_tokens",
                   "target_tokens")


def resume_config(out: str | Path, overrides: dict) -> TrainConfig | None:
    """The saved arguments of the run in `out`, with the ones given again on the command line on top;
    None if `out` holds no run yet (the caller starts one from the command line's arguments).

    Giving e.g. a larger --max-steps or --time-budget extends a run; the architecture cannot change.
    A run killed before its first checkpoint has config.json but nothing to resume: it starts over.
    """
    out = Path(out)
    if not (out / CONFIG).is_file():
        if out.exists() and not out.is_dir():
            raise CharRNNError(f"--out {out} is a file, not a run directory")
        return None
    saved = ckpt.read_config(out)
    cls = CONFIGS[saved.kind]
    names = {f.name for f in fields(cls)}
    cfg = cls(**{k: v for k, v in {**saved.train, **overrides, "out": str(out)}.items() if k in names})
    changed = [k for k in FIXED_ON_RESUME if k in saved.train and getattr(cfg, k) != saved.train[k]]
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
class Seq2SeqTrainConfig(TrainConfig):
    """A seq2seq run's arguments: the LM's (seq_len unused), other defaults, and the pair data's own."""

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


CONFIGS = {"lm": TrainConfig, "seq2seq": Seq2SeqTrainConfig}  # by the run file's kind
