"""The models a server offers: discovery in a models folder and a runs folder, and a cache of loaded ones.

A client chooses a model by its *name*, one of those `Registry.entries()` lists ("shakespeare",
"trained/my-run"); the name is looked up in that list and never joined onto a path, so a client can
only ever reach the model folders the server scanned. Loaded models are kept in a small LRU cache,
shared by all threads; a model whose weights file changed on disk (a run that saved better weights)
is loaded again.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from charrnn import models
from charrnn.checkpoint import WEIGHTS, load_model
from charrnn.data import Vocab
from charrnn.decoding.interface import Decodable
from charrnn.errors import CharRNNError
from charrnn.models.rnn import serving_precision
from charrnn.runfile import CONFIG, RunFile
from charrnn.serve.limits import MIN_UPLOAD_CHARS

TRAINED_PREFIX = "trained/"
MAX_LOADED = 4  # models kept in memory at once (a 2x512 LSTM takes about 27 MB with its step weights)
RECHECK_S = 0.5  # a loaded model is served this long before the disk is asked again whether it changed


class UnknownModel(CharRNNError):
    """The name is not one of the models this server offers."""


@dataclass(frozen=True)
class ModelEntry:
    """One model on disk, described from its config.json without loading the weights."""

    name: str  # what clients choose by: the folder's name, or "trained/<run>" for runs in the runs folder
    path: Path
    kind: str  # the run file's model kind: "lm" (text and folk tabs) or "seq2seq" (the Pronounce tab)
    source: str  # "shipped" (models folder) or "trained" (runs folder)
    corpus: str | None  # the corpus's catalogue name ("shakespeare", "folk") or its file name
    arch: str  # e.g. "LSTM 2x512"
    vocab_size: int
    best_val_loss: float | None
    status: str | None  # the training status recorded in config.json ("finished", "interrupted", ...)
    mtime_ns: int  # of the weights file: a change means the model must be loaded again

    @property
    def is_folk(self) -> bool:
        """Trained on ABC tunes (the folk corpus, or any .abc file)."""
        return self.corpus == "folk" or (self.corpus or "").endswith(".abc")

    @property
    def label(self) -> str:
        """What a menu shows: name, corpus, architecture and val loss."""
        loss = f", val {self.best_val_loss:.3f}" if self.best_val_loss is not None else ""
        corpus = f"{self.corpus}, " if self.corpus and self.corpus != self.name.removeprefix(TRAINED_PREFIX) else ""
        return f"{self.name} ({corpus}{self.arch}{loss})"


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, step weights built), with its vocabulary and run file."""

    entry: ModelEntry
    model: Decodable
    vocab: Vocab
    config: RunFile

    @property
    def char_counts(self) -> list[int] | None:
        return self.config.char_counts


def describe(path: Path, name: str, source: str) -> ModelEntry | None:
    """A ModelEntry for a folder holding config.json and model.safetensors, or None if it is not one."""
    weights = path / WEIGHTS
    if not weights.is_file():
        return None
    try:
        run = RunFile.read(path)
        mtime_ns = weights.stat().st_mtime_ns
    except (CharRNNError, OSError):
        return None
    return ModelEntry(name=name, path=path, kind=run.kind, source=source, corpus=run.corpus_label, arch=run.arch,
                      vocab_size=len(run.vocab), best_val_loss=run.best_val_loss, status=run.status,
                      mtime_ns=mtime_ns)


def _subdirs(folder: Path | None) -> Iterator[Path]:
    if folder is None or not folder.is_dir():
        return
    with contextlib.suppress(OSError):
        yield from sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                          key=lambda p: p.name)


class Registry:
    """The models in `models_dir` (shipped) and `runs_dir` (trained in the app), and a loaded-model cache.

    `hidden` returns run folders not to offer yet (the one a training job is writing). Thread-safe.
    """

    def __init__(self, models_dir: str | Path, runs_dir: str | Path | None = None, max_loaded: int = MAX_LOADED,
                 device: str | torch.device = "cpu", hidden: Callable[[], Iterable[Path]] | None = None,
                 recheck_s: float = RECHECK_S):
        self.models_dir = Path(models_dir)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self.max_loaded = max_loaded
        self.device = device
        self.hidden = hidden or (lambda: ())
        self.recheck_s = recheck_s
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._checked: dict[str, float] = {}  # name -> when its cached model was last found current on disk
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        # Every request asks which models there are: folders are listed and run files read again only
        # when their modification times say they changed (folder -> (mtime, subfolders); folder -> (key, entry)).
        self._listings: dict[Path, tuple[int, list[Path]]] = {}
        self._described: dict[Path, tuple[tuple, ModelEntry | None]] = {}

    # --- discovery --------------------------------------------------------------------------------

    def entries(self) -> list[ModelEntry]:
        """Every model on offer now: shipped ones first, then trained ones, each group by name."""
        hidden = {Path(p).resolve() for p in self.hidden()}
        found = []
        for path in self._listing(self.models_dir):
            entry = self._describe(path, path.name, "shipped")
            if entry:
                found.append(entry)
        for path in self._listing(self.runs_dir):
            if path.resolve() in hidden:
                continue
            entry = self._describe(path, TRAINED_PREFIX + path.name, "trained")
            if entry:
                found.append(entry)
        return found

    def _listing(self, folder: Path | None) -> list[Path]:
        try:
            mtime = folder.stat().st_mtime_ns if folder is not None else -1
        except OSError:
            return []
        cached = self._listings.get(folder)
        if cached is None or cached[0] != mtime:
            cached = self._listings[folder] = (mtime, list(_subdirs(folder)))
        return cached[1]

    def _describe(self, path: Path, name: str, source: str) -> ModelEntry | None:
        try:  # a run saves by renaming files into its folder, which changes the folder's time too
            key = tuple((st.st_mtime_ns, st.st_size) for st in map(Path.stat, (path, path / WEIGHTS, path / CONFIG)))
        except OSError:
            return None
        cached = self._described.get(path)
        if cached is None or cached[0] != key:
            cached = self._described[path] = (key, describe(path, name, source))
        return cached[1]

    def offered(self, folk: bool | None = None, kind: str = "lm") -> list[ModelEntry]:
        """The entries of `kind`; for language models folk=True only ABC models, folk=False only the others."""
        return [e for e in self.entries() if e.kind == kind and (folk is None or e.is_folk == folk)]

    def names(self, folk: bool | None = None, kind: str = "lm") -> list[str]:
        return [e.name for e in self.offered(folk, kind)]

    def choices(self, folk: bool | None = None, kind: str = "lm") -> list[tuple[str, str]]:
        """(label, name) pairs for a menu."""
        return [(e.label, e.name) for e in self.offered(folk, kind)]

    def default(self, folk: bool | None = None, prefer: str | None = None, kind: str = "lm") -> str | None:
        """The model a menu starts on: `prefer` if offered, else the first shipped, else the first trained
        (text models before folk ones)."""
        entries = self.offered(folk, kind)
        names = [e.name for e in entries]
        if prefer in names:
            return prefer
        entries.sort(key=lambda e: e.is_folk)  # for a menu of all models, a text model first
        return entries[0].name if entries else None

    def entry(self, name: str, kind: str = "lm") -> ModelEntry:
        """The entry of `kind` called `name`; an UnknownModel error if the server offers no such model."""
        offered = self.offered(kind=kind)
        if isinstance(name, str):
            for entry in offered:
                if entry.name == name:
                    return entry
        shown = repr(name)[:80]
        if not offered:
            raise UnknownModel(f"no model {shown}: {no_model(kind)}")
        raise UnknownModel(f"no model {shown}; choose one of: {', '.join(e.name for e in offered)}")

    def signature(self) -> tuple:
        """Changes whenever the list of models (or any model's weights) changes: menus refresh on it."""
        return tuple((e.name, e.mtime_ns, e.best_val_loss) for e in self.entries())

    # --- loading ----------------------------------------------------------------------------------

    def load(self, name: str, kind: str = "lm") -> LoadedModel:
        """The model of `kind` called `name`, from the cache or loaded (once, even if many threads ask at once).

        A cached model checked against the disk less than `recheck_s` ago is served without looking again."""
        with self._lock:
            cached = self._cache.get(name)
            if (cached is not None and cached.entry.kind == kind
                    and time.monotonic() - self._checked.get(name, -math.inf) < self.recheck_s):
                self._cache.move_to_end(name)
                return cached
        entry = self.entry(name, kind)
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached.entry.mtime_ns == entry.mtime_ns and cached.entry.path == entry.path:
                self._cache.move_to_end(name)
                self._checked[name] = time.monotonic()
                return cached
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            with self._lock:  # another thread may have loaded it while this one waited
                cached = self._cache.get(name)
                if cached is not None and cached.entry.mtime_ns == entry.mtime_ns and cached.entry.path == entry.path:
                    self._cache.move_to_end(name)
                    return cached
            loaded = self._load(entry)
            with self._lock:
                self._cache[name] = loaded
                self._checked[name] = time.monotonic()
                self._cache.move_to_end(name)
                while len(self._cache) > self.max_loaded:
                    self._cache.popitem(last=False)
            return loaded

    def _load(self, entry: ModelEntry) -> LoadedModel:
        model, vocab, cfg = load_model(entry.path, self.device)
        # The file may have been replaced between describe() and now: record what was actually read.
        fresh = describe(entry.path, entry.name, entry.source) or entry
        if entry.kind == "lm":  # seq2seq stays fp32: pronunciations are judged exactly
            model.step_precision = serving_precision(model.device)
        models.lookup(entry.kind).warm_up(model)  # once, here, rather than in a first request
        return LoadedModel(fresh, model, vocab, cfg)

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)


def no_model(kind: str = "lm", folk: bool | None = None) -> str:
    """What to say where the app has no model of `kind` (folk: a folk tune model), and how to get one."""
    if kind == "seq2seq":
        return ("the models folder holds no pronunciation (seq2seq) model, and the Train tab trains language "
                "models only: train one with `charrnn seq2seq train cmudict --out models/g2p --time-budget 1h`")
    if folk:
        return ("the models folder holds no folk tune model: in the Train tab, build the folk corpus and train on "
                "it (or `charrnn train folk --out models/folk --time-budget 1h`)")
    return (f"the models folder holds no text model: train one in the Train tab (at least {MIN_UPLOAD_CHARS:,} "
            "characters of text), or put a model folder in the models folder")


def default_runs_dir(models_dir: str | Path) -> Path:
    """Where the app keeps the runs it trains: runs/app/ beside the models folder (git ignores runs/)."""
    return Path(os.path.abspath(models_dir)).parent / "runs" / "app"
