"""config.json, the run file: what a run (or a shipped model) is, in one dataclass.

It is the only way config.json is read or written. The model arguments are a plain dict that the
model kind's config class checks (charrnn.models), so a new kind needs no change here; what a kind
needs beyond one character vocabulary (e.g. a seq2seq target vocabulary) is `extra`, a dataclass the
kind's record names (`Kind.extra`), under config.json's "extra" key as when it was a plain object, so
files written before and after it was typed read the same in both.

Format version 2 names the kind ("lm", "seq2seq") and the recurrent cell (`model.cell`). Version 1
files (every run before it, and the shipped models) load too: they are LM runs whose cell was called
`model.model`.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from charrnn import models
from charrnn.errors import CharRNNError
from charrnn.files import write_json

FORMAT_VERSION = 2
READS = (1, 2)  # the format versions this charrnn reads
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
OPTIONAL = ("best_step", "weights_dtype", "size_bytes", "parameters")  # written only when known


@dataclass(frozen=True)
class CorpusInfo:
    """The text a run was trained on: its catalogue name (None for a plain file), file, hash, length."""

    name: str | None
    path: str
    sha256: str
    chars: int

    @property
    def label(self) -> str:
        """The catalogue name, or the file's name."""
        return self.name or Path(self.path).name


@dataclass(frozen=True)
class RunFile:
    kind: str  # a model kind registered in charrnn.models: "lm" (CharRNN), "seq2seq"
    model: dict[str, Any]  # the kind's config class's arguments (for "lm": vocab_size, cell, layers, ...)
    vocab: list[str]  # the characters the model reads, in id order
    char_counts: list[int] | None = None  # how often each vocab character occurs in the corpus
    corpus: CorpusInfo | None = None
    train: dict[str, Any] = field(default_factory=dict)  # the training arguments (TrainConfig's fields)
    best_val_loss: float | None = None
    status: str | None = None  # "running", "finished", "time budget reached", "interrupted", ...
    step: int = 0
    training_time_s: float = 0.0
    machine: str | None = None
    command: str | None = None
    torch: str | None = None
    best_step: int | None = None
    weights_dtype: str | None = None  # set by export: "float16", ...
    size_bytes: int | None = None  # of the weights file, set by export
    parameters: int | None = None  # set by export
    extra: Any = None  # what the kind records beyond these fields: an instance of its Kind.extra, or None

    def __post_init__(self):
        """Raise ValueError or TypeError for contents no model could be built from."""
        if not isinstance(self.model, dict):
            raise TypeError("model must be an object of model arguments")
        kind = models.lookup(self.kind)
        config = kind.config(**self.model)  # TypeError/ValueError for bad arguments
        chars = self.vocab
        if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars) \
                or len(set(chars)) != len(chars):
            raise ValueError("vocab must be a list of distinct single characters")
        if hasattr(config, "vocab_size") and len(chars) != config.vocab_size:
            raise ValueError(f"vocab has {len(chars)} characters but model.vocab_size is {config.vocab_size}")
        counts = self.char_counts
        if counts is not None and (not isinstance(counts, list) or len(counts) != len(chars)
                                   or not all(isinstance(n, int) and n >= 0 for n in counts)):
            raise ValueError("char_counts must be one count >= 0 per vocab character")
        loss = self.best_val_loss
        if loss is not None and not (isinstance(loss, int | float) and math.isfinite(loss)):
            raise ValueError(f"best_val_loss must be a finite number or null, not {loss!r}")
        if not isinstance(self.train, dict):
            raise TypeError("train must be an object")
        if kind.extra is None and self.extra is not None:
            raise TypeError(f"a {self.kind} run file has no extra fields")
        if kind.extra is not None:
            if not isinstance(self.extra, kind.extra):
                raise TypeError(f"a {self.kind} run file needs its extra fields ({kind.extra.__name__})")
            self.extra.check(config)

    # --- what readers ask of it -----------------------------------------------------------------------

    @property
    def arch(self) -> str:
        """E.g. "LSTM 2x512" (a kind without a cell: the kind's name and the sizes it has)."""
        sizes = "x".join(str(self.model[k]) for k in ("layers", "hidden") if k in self.model)
        return " ".join(filter(None, [str(self.model.get("cell", self.kind)).upper(), sizes]))

    @property
    def corpus_label(self) -> str | None:
        return self.corpus.label if self.corpus else None

    # --- JSON -----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of config.json (format version 2)."""
        out = {"format_version": FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if (f.name in OPTIONAL or f.name == "extra") and value is None:
                continue
            out[f.name] = asdict(value) if is_dataclass(value) else value
        return out

    @classmethod
    def from_dict(cls, obj: Any) -> RunFile:
        """A RunFile from config.json's object, of any version in READS; ValueError/TypeError/KeyError if
        malformed, UnsupportedFormat for a version this charrnn cannot read."""
        if not isinstance(obj, dict) or obj.get("format_version") not in READS:
            version = obj.get("format_version") if isinstance(obj, dict) else None
            raise UnsupportedFormat(f"unsupported or missing format_version {version!r} "
                                    f"(this charrnn reads {', '.join(map(str, READS))})")
        if obj["format_version"] == 1:
            obj = _from_version_1(obj)
        for f in fields(cls):
            if f.default is MISSING and f.default_factory is MISSING and f.name not in obj:
                raise KeyError(f.name)
        known = {f.name for f in fields(cls)}
        args = {k: v for k, v in obj.items() if k in known}
        if args.get("corpus") is not None:
            args["corpus"] = CorpusInfo(**args["corpus"])
        extra = models.lookup(args["kind"]).extra
        # A kind without extra fields ignores an "extra" object, as it ignores any other key it does not know.
        if extra is None or "extra" not in args:
            args["extra"] = None
        elif not isinstance(args["extra"], dict):
            raise TypeError("extra must be an object")
        else:
            args["extra"] = extra.from_dict(args["extra"])
        return cls(**args)

    # --- files ----------------------------------------------------------------------------------------

    @classmethod
    def read(cls, run_dir: str | Path) -> RunFile:
        """The run file of a run directory or model folder; a one-line CharRNNError for anything wrong."""
        run_dir = Path(run_dir)
        path = run_dir / CONFIG
        if run_dir.is_file():
            raise CharRNNError(f"{run_dir} is a file; give the run directory that holds {CONFIG} and {WEIGHTS}")
        if not run_dir.is_dir():
            raise CharRNNError(f"no such run directory: {run_dir}")
        if not path.is_file():
            raise CharRNNError(f"{run_dir} is not a charrnn run directory (no {CONFIG})")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise CharRNNError(f"{path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(obj)
        except UnsupportedFormat as e:
            raise CharRNNError(f"{path}: {e}") from None
        except CharRNNError as e:  # e.g. an unknown model kind
            raise CharRNNError(f"{path} is malformed: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise CharRNNError(f"{path} is malformed: {what}") from None

    def write(self, run_dir: str | Path) -> None:
        """Write config.json into `run_dir`, atomically."""
        write_json(Path(run_dir) / CONFIG, self.to_dict())


class UnsupportedFormat(ValueError):
    """config.json is of a format version this charrnn does not read."""


def _from_version_1(obj: dict) -> dict:
    """A version 1 object as version 2: an LM whose cell was `model.model` (and, in the first runs, before
    the corpus catalogue, whose corpus had no catalogue name)."""
    model = {("cell" if k == "model" else k): v for k, v in dict(obj["model"]).items()}
    corpus = obj.get("corpus")
    if isinstance(corpus, dict):
        corpus = {"name": None, **corpus}
    return {**obj, "kind": "lm", "model": model, "corpus": corpus, "format_version": FORMAT_VERSION}
