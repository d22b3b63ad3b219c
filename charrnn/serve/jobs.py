"""One background training job per server: start it, watch its progress and loss curve, stop it.

`JobManager.start` checks and bounds the request, prepares the corpus (an uploaded file is checked
and copied into the run folder; a catalogued corpus must already be on disk: the server never
downloads) and runs `Trainer(...).run()` in a daemon thread. A second start while a job runs raises
`Busy`. `JobManager.snapshot()` is what a polling page shows: status, progress, and the evaluation
records so far (train and val loss), to draw the curve from.

Threads: torch's intra-op thread count is a per-thread setting (OpenMP), so the training thread sets its
own by the thread policy of every training run (charrnn.threads: the cores no other process is using,
looked at again every few seconds), less the cores it leaves to the app's requests (threads.SERVER_KEEPS),
unless `threads` (app.py's --train-threads) fixes it; the request threads keep their one thread each.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charrnn import corpora, threads
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CELLS
from charrnn.serve.limits import BUDGET_S, MAX_NAME_TEXT, MAX_RUN_NAME, MAX_UPLOAD_BYTES, MIN_UPLOAD_CHARS
from charrnn.training.autosize import PRESETS, SIZES, BudgetTooShort
from charrnn.training.config import TrainConfig
from charrnn.training.trainer import Trainer

CORES = tuple(CELLS)  # the recurrent cells a job may train (the page calls them cores)
VAL_CHARS = 50_000  # evaluate on at most about this many characters, so evaluations stay quick
POINTS = 40  # aim at about this many evaluations (points on the loss curve) per run
UPLOAD_DIR = "upload"  # the uploaded file's copy, under its own name, in this folder of the run (apart from its files)


class Busy(CharRNNError):
    """A training job is already running on this server."""


def safe_name(text: str) -> str:
    """A run folder name from user text: letters, digits, '_' and '-', at most MAX_RUN_NAME characters."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)[:MAX_NAME_TEXT]).strip("-_")
    return name[:MAX_RUN_NAME].strip("-_")


def upload_file_name(name: str) -> str:
    """A safe file name for an upload's copy: its stem as safe_name makes it, and its extension if plain."""
    path = Path(str(name)[:MAX_NAME_TEXT])
    suffix = path.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", path.suffix) else ".txt"
    return (safe_name(path.stem) or "upload") + suffix


def check_upload(path: str | Path, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The text of an uploaded file, if it is UTF-8 text of a usable size; else a CharRNNError saying why."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise CharRNNError("the uploaded file is gone; upload it again") from None
    if size > max_bytes:
        raise CharRNNError(f"the file has {size:,} bytes; the limit is {max_bytes:,}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CharRNNError(f"the file is not UTF-8 text (invalid byte at offset {e.start:,})") from None
    if "\x00" in text:
        raise CharRNNError("the file holds NUL characters: it looks binary, not text")
    if len(text) < MIN_UPLOAD_CHARS:
        raise CharRNNError(f"the file has {len(text):,} characters; training needs at least {MIN_UPLOAD_CHARS:,}")
    return text


@dataclass
class TrainingJob:
    """A training run in a background thread, and what the page shows about it."""

    name: str
    run_dir: Path
    corpus: str  # what the user picked: a catalogue name or the uploaded file's name
    settings: dict
    time_budget: float
    status: str = "starting"  # starting -> running -> (stopping ->) done | failed
    message: str = ""
    history: list[dict] = field(default_factory=list)
    result: dict | None = None
    started: float = field(default_factory=time.time)
    trainer: object | None = None
    thread: threading.Thread | None = None
    stop_requested: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running", "stopping")

    def progress(self) -> float:
        """0..1: training time spent over the time budget (1 once the job is over)."""
        if not self.active:
            return 1.0
        elapsed = float(getattr(self.trainer, "elapsed", 0.0) or 0.0)
        return max(0.0, min(1.0, elapsed / self.time_budget))

    def snapshot(self) -> dict:
        """A consistent copy of the job's state (safe to read while the job runs)."""
        trainer = self.trainer
        with self._lock:
            history = list(self.history)
        return {
            "name": self.name, "model": "trained/" + self.name, "status": self.status, "message": self.message,
            "corpus": self.corpus, "time_budget": self.time_budget,
            "settings": {**self.settings, **({"threads": trainer.threads.threads} if trainer is not None else {})},
            "progress": round(self.progress(), 4), "step": int(getattr(trainer, "step", 0) or 0),
            "elapsed": round(float(getattr(trainer, "elapsed", 0.0) or 0.0), 2),
            "wall": round(time.time() - self.started, 1), "history": history,
            "best_val_loss": min((r["val_loss"] for r in history if r.get("val_loss") is not None), default=None),
        }


class JobManager:
    """At most one training job at a time, writing runs into `runs_dir`."""

    def __init__(self, runs_dir: str | Path, threads: int | None = None, device: str = "auto",
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, on_finish: Callable[[TrainingJob], None] | None = None):
        self.runs_dir = Path(runs_dir)
        self.threads = threads  # fixed by --train-threads, else the policy's (see the module's docstring)
        self.device = device
        self.max_upload_bytes = max_upload_bytes
        self.on_finish = on_finish
        self._job: TrainingJob | None = None
        self._lock = threading.Lock()

    # --- what the page asks -------------------------------------------------------------------------

    def current(self) -> TrainingJob | None:
        """The running job, or the last one that ran (None before the first)."""
        return self._job

    def busy(self) -> bool:
        job = self._job
        return job is not None and job.active

    def active_dirs(self) -> list[Path]:
        """Run folders being written now (not to be offered as models yet)."""
        job = self._job
        return [job.run_dir] if job is not None and job.active else []

    def snapshot(self) -> dict:
        job = self._job
        if job is None:
            return {"status": "idle", "message": "No training job has run on this server yet.", "history": [],
                    "progress": 0.0}
        return job.snapshot()

    # --- start and stop -----------------------------------------------------------------------------

    def start(self, *, corpus: str | None = None, upload: str | Path | None = None, upload_name: str | None = None,
              name: str = "", model: str = "lstm", size: str = "auto", time_budget: float = 60.0,
              seed: int = 1337) -> TrainingJob:
        """Start a job on a catalogued corpus (by name) or an uploaded file (a server-side path).

        Raises Busy if a job runs, CharRNNError for a bad request. The time budget is clamped to BUDGET_S.
        """
        if model not in CORES:
            raise CharRNNError(f"core must be one of {', '.join(CORES)}; got {str(model)[:20]!r}")
        if size not in SIZES:
            raise CharRNNError(f"size must be one of {', '.join(SIZES)}; got {str(size)[:20]!r}")
        try:
            time_budget = float(time_budget)
        except (TypeError, ValueError):
            raise CharRNNError("the time budget must be a number of seconds") from None
        if not math.isfinite(time_budget):
            raise CharRNNError("the time budget must be a finite number of seconds")
        time_budget = BUDGET_S.clamp(time_budget)
        seed = int(seed) % 2**31 if isinstance(seed, int | float) and math.isfinite(seed) else 1337
        if (corpus is None) == (upload is None):
            raise CharRNNError("choose a corpus from the list, or upload a text file (one of the two)")
        with self._lock:
            if self.busy():
                raise Busy(self._busy_message())
            if upload is not None:
                text = check_upload(upload, self.max_upload_bytes)
                label = safe_name(Path(upload_name or "upload").stem) or "upload"
                chars = len(text)
            else:
                if corpus not in corpora.CATALOGUE:
                    raise CharRNNError(f"unknown corpus {str(corpus)[:40]!r}; choose one of "
                                       f"{', '.join(corpora.CATALOGUE)}")
                if not corpora.is_ready(corpus):
                    raise CharRNNError(f"the corpus {corpus!r} is not on this server yet: "
                                       f"run '{corpora.CATALOGUE[corpus].command()}' first")
                label, text = corpus, None
                chars = corpora.corpus_path(corpus).stat().st_size
            run_dir = self._new_run_dir(safe_name(name) or f"{label}-{model}-{size}")
            run_dir.mkdir(parents=True)
            if text is not None:
                # Under the uploaded file's own name, which the model menus show as the model's corpus.
                copy = run_dir / UPLOAD_DIR / upload_file_name(upload_name or Path(upload).name)
                copy.parent.mkdir()
                copy.write_text(text, encoding="utf-8")
                source = str(copy)
            else:
                source = corpus
            # auto picks the sizes, batch, lr, dropout and warmup when the trainer starts (see autosize.py)
            fixed = {} if size == "auto" else dict(zip(("layers", "hidden", "embed", "dropout"), PRESETS[size],
                                                       strict=True), warmup=20)
            cfg = TrainConfig(corpus=source, out=str(run_dir), model=model, size=size, **fixed,
                              time_budget=time_budget, eval_every=10, seed=seed,
                              val_frac=min(0.1, VAL_CHARS / max(chars, 1)), device=self.device, threads=self.threads)
            settings = {"core": model, "size": size, "layers": cfg.layers, "hidden": cfg.hidden, "seed": seed}
            job = TrainingJob(run_dir.name, run_dir, upload_name or corpus or "", settings, time_budget)
            job.thread = threading.Thread(target=self._run, args=(job, cfg), name=f"train-{run_dir.name}", daemon=True)
            self._job = job
            job.thread.start()
            return job

    def stop(self) -> bool:
        """Ask the running job to stop (it saves and ends after the current step); False if none runs."""
        job = self._job
        if job is None or not job.active:
            return False
        job.stop_requested = True
        if job.status != "starting":
            job.status = "stopping"
        if job.trainer is not None:
            job.trainer.request_stop()
        return True

    def wait(self, timeout: float | None = None) -> TrainingJob | None:
        """Wait for the current job's thread to end (for tests and shutdown)."""
        job = self._job
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return job

    def _busy_message(self) -> str:
        job = self._job
        return (f"Busy: the training job '{job.name}' is running ({job.progress():.0%} of its time budget); "
                "one job at a time per server. Wait for it to finish, or stop it.")

    def _new_run_dir(self, base: str) -> Path:
        base = base[:MAX_RUN_NAME] or "run"
        for i in range(1, 10_000):
            candidate = self.runs_dir / (base if i == 1 else f"{base[:MAX_RUN_NAME - 6]}-{i}")
            if not candidate.exists():
                return candidate
        raise CharRNNError("too many runs with this name; choose another name")

    # --- the thread -----------------------------------------------------------------------------------

    def _run(self, job: TrainingJob, cfg) -> None:
        try:
            if job.stop_requested:
                raise _Stopped
            trainer = Trainer(cfg, progress=False, on_eval=lambda record: self._on_eval(job, record),
                              command="python app.py (Train tab)", keep_cores=threads.SERVER_KEEPS)
            job.trainer = trainer
            if trainer.auto:
                job.settings.update(layers=trainer.cfg.layers, hidden=trainer.cfg.hidden, auto=trainer.auto.line())
            if job.stop_requested:
                trainer.request_stop()
            job.status = "stopping" if job.stop_requested else "running"
            job.result = trainer.run()
            status = job.result["status"]
            best = job.result["best_val_loss"]
            best_text = f"; best val loss {best:.4f} nats/char" if best is not None else ""
            saved = (job.run_dir / "model.safetensors").is_file()
            job.message = (f"{status} at step {job.result['step']} after {job.result['elapsed']:.0f}s{best_text}. "
                           + (f"The model 'trained/{job.name}' is now in the model menus." if saved else
                              "It stopped before its first evaluation, so no model was saved."))
            job.status = "done"
        except _Stopped:
            job.message, job.status = "Stopped before training began.", "done"
        except BudgetTooShort as e:  # the page's words, not the CLI's flag
            job.message = f"Training failed: {e.problem}: choose a time budget of {e.need_s:,} seconds or more"
            job.status = "failed"
        except CharRNNError as e:
            job.message, job.status = f"Training failed: {e.problem}", "failed"
        except Exception as e:  # a job's thread must always end in a state the page can show
            job.message, job.status = f"Training failed: {type(e).__name__}: {e}", "failed"
        finally:
            if self.on_finish is not None:
                try:
                    self.on_finish(job)
                except Exception:  # the hook must not hide the job's own outcome
                    pass

    @staticmethod
    def _on_eval(job: TrainingJob, record: dict) -> int | None:
        """Record the evaluation; return the next eval interval (the trainer's on_eval contract)."""
        with job._lock:
            job.history.append(dict(record))
        trainer = job.trainer
        if trainer is None:
            return None
        # Evaluate about POINTS times per run whatever the model's speed: measure steps per second so far
        # and space the evaluations (at least 1 s apart, at most 30 s) to fit the time budget.
        rate = trainer.step / max(trainer.elapsed, 1e-6)
        interval = min(30.0, max(1.0, job.time_budget / POINTS))
        return max(5, int(rate * interval))


class _Stopped(Exception):
    pass

