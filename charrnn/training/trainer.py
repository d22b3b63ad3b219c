"""Training, for any task: the loop, schedule, time budget, evaluation, best/latest checkpoints, exact resume.

A run directory holds config.json (architecture, vocabulary, arguments, best val loss), the best
weights (model.safetensors), latest.safetensors (everything needed to continue: weights, optimizer,
RNG, the task's carried state, step) and metrics.jsonl (one line per evaluation). Resuming restores all
of it, so on a CPU with a fixed seed an interrupted-and-resumed run ends with the same weights as an
uninterrupted one. What differs between a language model and seq2seq (data, model, loss, evaluation)
is the task's: training/lm.py and training/seq2seq.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from charrnn import checkpoint as ckpt
from charrnn import models, threads
from charrnn.data import encode_corpus
from charrnn.devices import resolve_device
from charrnn.errors import CharRNNError
from charrnn.files import remove_temporaries
from charrnn.runfile import CONFIG
from charrnn.training import autosize
from charrnn.training.config import BaseTrainConfig, TrainConfig, resolve
from charrnn.training.distributed import Dist
from charrnn.training.lm import check_split
from charrnn.training.lock import RunLock
from charrnn.training.task import resolve_corpus

METRICS = "metrics.jsonl"
LOG_BAR_S = 30.0  # how often the progress bar is redrawn when stderr is not a terminal


def machine_description(device: torch.device) -> str:
    """E.g. 'cpu: AMD EPYC 9R14, threads=2' or 'cuda: NVIDIA H100 80GB HBM3' (recorded with each run)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{device.type}: {cpu}, threads={torch.get_num_threads()}"


def make_task(cfg: BaseTrainConfig, dist: Dist):
    """The task a config describes (its kind's, models.Kind.task): its data loaded, its model built (on
    dist's device)."""
    return resolve(models.lookup(cfg.kind).task)(cfg, dist)


STOP_REASONS = (None, "finished", "time budget reached", "interrupted")  # agreed across ranks: the last wins


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint is never half-updated.

    A second Ctrl-C falls through to Python's default and interrupts at once.
    """

    def __init__(self):
        self.signal: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. the web app's worker): no handler there
                pass
        return self

    def _handle(self, sig, frame):
        self.signal = sig
        signal.signal(sig, self._old.get(sig, signal.SIG_DFL))

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and plain values (for JSON)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{pid}.{key}"] = val
            else:
                scalars[f"{pid}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = val
    for name, val in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Trainer:
    """One training run in one run directory. `run()` trains until a stop condition and returns a summary."""

    def __init__(self, cfg: BaseTrainConfig, resume: bool = False, progress: bool = True,
                 on_eval: Callable[[dict], int | None] | None = None, command: str | None = None,
                 keep: Collection[str] = (), keep_cores: int = 0):
        """on_eval sees each evaluation's record (on rank 0) and may return a new --eval-every, in steps
        (single-process runs only: other ranks would not learn of it). With cfg.size "auto", `keep` names
        the fields the caller set itself, which auto leaves as they are. `keep_cores`: free cores the run
        leaves to the rest of its process (the app's requests: threads.SERVER_KEEPS)."""
        self.cfg, self.progress, self.on_eval, self.command = cfg, progress, on_eval, command
        self.kind = models.lookup(cfg.kind)
        self._stop_requested = threading.Event()
        self.out = Path(cfg.out)
        cfg.check()
        self.threads = threads.Follow(cfg.threads, keep_cores)  # also the speed probe's count (--size auto)
        self.dist = Dist.from_env(resolve_device(cfg.device))
        self.device = self.dist.device
        self.lock: RunLock | None = None
        self.auto: autosize.Choice | None = None  # what --size auto chose in this process, if it did
        self.speeds: autosize.Speeds | None = None  # ... and the speed cache it chose from (see _heal_speeds)
        try:
            self._setup(resume, keep)
        except BaseException:
            self.release()
            raise

    def _setup(self, resume: bool, keep: Collection[str]) -> None:
        cfg = self.cfg
        if not resume and ((self.out / CONFIG).exists() or (self.out / ckpt.LATEST).exists()):
            raise CharRNNError(f"{self.out} already holds a run",
                               ": pass --resume to continue it, or choose another --out")
        if cfg.auto_size_pending:
            self.cfg = cfg = self._auto_size(cfg, keep)
        if cfg.batch_size % self.dist.world:
            raise CharRNNError(f"--batch-size {cfg.batch_size} must be a multiple of the {self.dist.world} processes")
        torch.manual_seed(cfg.seed)
        self.task = make_task(cfg, self.dist)  # reads and checks the data before anything is written
        # What the user should hear before training starts (the CLI prints these lines).
        self.notes = [*self.task.notes, *([] if self.task.has_val else [
            f"no val split (--val-frac {cfg.val_frac:g}): the checkpoint kept is the one with the lowest train loss"])]
        # One trainer per run directory (rank 0 holds it for all ranks); released when run() ends or we die.
        if self.dist.main:
            self.lock = RunLock(self.out, self.command).acquire()
            remove_temporaries(self.out)  # a half-written checkpoint of a killed run: no one else writes here
        # --resume where nothing was saved yet (killed during start-up, or never run) starts from the beginning.
        self.resumed = resume and (self.out / ckpt.LATEST).is_file()
        self.model = self.task.model
        self.total_steps = self._total_steps()
        if self.dist.rank:  # each rank its own dropout masks
            torch.manual_seed(cfg.seed + self.dist.rank)
        self.net = self.model
        if self.dist.enabled:  # averages gradients across ranks during backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.opt = self._make_optimizer()
        self.step, self.elapsed, self.best_val, self.bad_evals = 0, 0.0, math.inf, 0
        if self.auto:  # timing shapes for --size auto is start-up that the budget pays for
            self.elapsed = self.auto.timing_s
        if self.resumed:
            self._load_latest()
        elif self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config(status="running")

    # --- setup ------------------------------------------------------------------------------------

    def _auto_size(self, cfg: TrainConfig, keep: Collection[str]) -> TrainConfig:
        """cfg with --size auto's choice (rank 0 times and chooses; every rank trains what it chose)."""
        choice = None
        if self.dist.main:
            corpus = encode_corpus(resolve_corpus(cfg.corpus)[1], cfg.cache_dir, cfg.encoding)
            train_ids, val_ids, _ = corpus.split(cfg.val_frac, cfg.test_frac)
            check_split(cfg, len(corpus.ids), len(val_ids))  # the corpus's errors come before sizing's
            self.speeds = autosize.Speeds(cfg.cache_dir, machine_description(self.device), self.device)
            choice = autosize.choose(cfg, keep, len(train_ids), len(corpus.vocab), self.speeds)
        self.auto = self.dist.share(choice)
        return autosize.apply(cfg, self.auto)

    def _total_steps(self) -> int | None:
        """Steps until --max-steps or --epochs, whichever comes first (None if only a time budget)."""
        limits = []
        if self.cfg.max_steps is not None:
            limits.append(self.cfg.max_steps)
        if self.cfg.epochs is not None:
            limits.append(max(1, round(self.cfg.epochs * self.task.batches_per_epoch)))
        return min(limits) if limits else None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.cfg.optimizer == "rmsprop":  # char-rnn's choice
            return torch.optim.RMSprop(params, lr=self.cfg.lr, alpha=0.95)
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def _load_latest(self) -> None:
        path = self.out / ckpt.LATEST
        tensors, meta = ckpt.read_tensors(path)
        saved = ckpt.read_config(self.out)
        if saved.corpus is None or saved.corpus.sha256 != self.task.sha256:
            raise CharRNNError(f"{self.cfg.corpus} changed since this run started (its content hash differs)")
        try:
            ckpt.load_state_into(self.model, tensors, path, prefix="model.")
            trainer = json.loads(meta["trainer"])
            _restore_optimizer(self.opt, tensors, trainer["optimizer"])
            rank = self.dist.rank
            if f"rng.cpu.{rank}" in tensors:  # absent if resumed with more processes than saved it
                torch.set_rng_state(tensors[f"rng.cpu.{rank}"])
            if f"rng.cuda.{rank}" in tensors and self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"])
            self.task.restore(tensors)
            self.step, self.elapsed = trainer["step"], trainer["elapsed"]
            self.best_val, self.bad_evals = trainer["best_val"], trainer["bad_evals"]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise CharRNNError(f"{path} is not a valid trainer state: {e}") from None
        self._trim_metrics()

    def _trim_metrics(self) -> None:
        """Drop metric lines written after the checkpoint we resume from (they will be written again)."""
        path = self.out / METRICS
        if path.exists() and self.dist.main:
            ckpt.write_json_lines(path, [r for r in ckpt.read_json_lines(path) if r.get("step", 0) <= self.step])

    def _write_config(self, **extra) -> None:
        machine = machine_description(self.device)
        if self.dist.enabled:
            machine += f" x {self.dist.world} processes"
        ckpt.RunFile(
            kind=self.kind.name, **self.task.run_fields(), train=asdict(self.cfg),
            best_val_loss=self._best("val"), step=self.step,
            training_time_s=round(self.elapsed, 1), machine=machine, command=self.command, torch=torch.__version__,
            **extra,
        ).write(self.out)

    def _best(self, split: str) -> float | None:
        """The best loss so far if it was measured on `split` ("val" or "train": without a val split the
        best checkpoint is chosen by train loss, never to be reported as a val loss); else None."""
        measured = "val" if self.task.has_val else "train"
        return self.best_val if split == measured and math.isfinite(self.best_val) else None

    def _save_latest(self) -> None:
        """Every rank's RNG and share of the hidden state are gathered (all ranks call this); rank 0 writes."""
        rng = self.dist.gather(torch.get_rng_state())
        cuda_rng = self.dist.gather(torch.cuda.get_rng_state()) if self.device.type == "cuda" else []
        carried = self.task.carried()
        if not self.dist.main:
            return
        opt_tensors, opt_meta = _optimizer_tensors(self.opt)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(opt_tensors)
        tensors.update(carried)
        tensors.update({f"rng.cpu.{r}": t for r, t in enumerate(rng)})
        tensors.update({f"rng.cuda.{r}": t for r, t in enumerate(cuda_rng)})
        trainer = {"step": self.step, "elapsed": self.elapsed, "best_val": self.best_val,
                   "bad_evals": self.bad_evals, "optimizer": opt_meta}
        ckpt.write_tensors(self.out / ckpt.LATEST, tensors, {"trainer": json.dumps(trainer)})

    # --- the loop ---------------------------------------------------------------------------------

    def lr_at(self, step: int, elapsed: float) -> float:
        """Linear warmup, then cosine decay to min_lr_frac * lr at the end of the steps or the time budget."""
        cfg = self.cfg
        warmup = min(cfg.warmup, self.total_steps // 10) if self.total_steps else cfg.warmup
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        progress = 0.0
        if self.total_steps:
            progress = (step - warmup) / max(1, self.total_steps - warmup)
        if cfg.time_budget:
            progress = max(progress, elapsed / cfg.time_budget)
        progress = min(1.0, progress)
        return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))

    def request_stop(self) -> None:
        """Ask a run in another thread to save and stop after its current step (as Ctrl-C does)."""
        self._stop_requested.set()

    def _done(self) -> str | None:
        if self.total_steps is not None and self.step >= self.total_steps:
            return "finished"
        if self.cfg.time_budget is not None and self.elapsed >= self.cfg.time_budget:
            return "time budget reached"
        return None

    def train_step(self) -> tuple[float, int]:
        """One optimizer step on the next batch; returns its loss and how many tokens it predicted."""
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step, self.elapsed)
        loss, items = self.task.loss(self.net, self.step)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        (value,) = self.dist.sum(loss.item() / self.dist.world)  # the global batch's mean loss
        if not math.isfinite(value):
            raise CharRNNError(
                f"training diverged at step {self.step + 1} (loss {value}); the last good checkpoint in "
                f"{self.out} is kept", "; try a lower --lr or --grad-clip")
        self.opt.step()
        self.step += 1
        return value, items

    def _evaluate_and_save(self, train_loss: float, chars_per_s: float) -> dict:
        metrics = self.task.evaluate()
        val_loss = metrics["val_loss"]
        score = val_loss if val_loss is not None else train_loss
        record = {"step": self.step, "epoch": round(self.step / self.task.batches_per_epoch, 3),
                  "train_loss": round(train_loss, 5), "val_loss": None if val_loss is None else round(val_loss, 5),
                  **{k: round(v, 5) for k, v in metrics.items() if k != "val_loss"},
                  "lr": self.lr_at(self.step, self.elapsed), f"{self.kind.unit}s_per_s": round(chars_per_s),
                  "elapsed": round(self.elapsed, 2)}
        improved = score < self.best_val
        if improved:
            self.best_val, self.bad_evals = score, 0
        else:
            self.bad_evals += 1
        if self.dist.main:
            if improved:
                ckpt.save_weights(self.out, self.model, step=self.step, val_loss=self._best("val"))
                self._write_config(status="running", best_step=self.step)
            ckpt.append_json_line(self.out / METRICS, record)
        # The trainer state goes last: killed before it, a resume starts from the previous one, trims the
        # metric line just written and writes it again. The other way round, the line would be lost.
        self._save_latest()
        if self.dist.main and self.on_eval and (every := self.on_eval(record)):
            self.cfg.eval_every = every
        return record

    def _stop_reason(self, stop: StopFlag) -> str | None:
        """Why to stop now, agreed by all ranks (a signal or time budget seen by one rank stops them all)."""
        local = "interrupted" if stop.signal is not None or self._stop_requested.is_set() else self._done()
        return STOP_REASONS[self.dist.max(STOP_REASONS.index(local))]

    def release(self) -> None:
        """Let another trainer take this run directory (run() does this when it ends)."""
        if self.lock:
            self.lock.release()

    def run(self) -> dict:
        """Train until a stop condition; returns {'status', 'step', 'best_val_loss', ...}."""
        try:
            return self._run()
        finally:
            self.release()

    def _run(self) -> dict:
        cfg = self.cfg
        self.model.train()
        show = self.progress and self.dist.main
        # Into a log file or pipe (nohup, a scheduler), a bar redrawn ten times a second is megabytes of lines.
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=not show, dynamic_ncols=True,
                   desc=self.out.name, mininterval=0.1 if sys.stderr.isatty() else LOG_BAR_S)
        losses, interval_chars, interval_time = [], 0, 0.0
        last_record, saved_step = None, self.step
        begun_step, begun_elapsed = self.step, self.elapsed  # the ETA counts this loop's pace, not start-up's
        with StopFlag() as stop, bar:
            while (status := self._stop_reason(stop)) is None:
                self.threads.check()
                t0 = time.perf_counter()
                loss, items = self.train_step()
                losses.append(loss)
                dt = time.perf_counter() - t0
                self.elapsed += dt
                interval_time += dt
                interval_chars += items
                if cfg.time_budget and not self.total_steps:  # let tqdm show an ETA for a time budget too
                    pace = (self.step - begun_step) / max(self.elapsed - begun_elapsed, 1e-9)
                    bar.total = self.step + max(0, int(pace * (cfg.time_budget - self.elapsed)))
                bar.update(1)
                best = f"{self.best_val:.3f}" if math.isfinite(self.best_val) else "-"
                bar.set_postfix(loss=f"{losses[-1]:.3f}", **{"val" if self.task.has_val else "best": best},
                                rate=f"{interval_chars / max(interval_time, 1e-9):,.0f}/s", refresh=False)
                if self.step % cfg.eval_every == 0:
                    last_record = self._timed_eval(losses, interval_chars, interval_time)
                    losses, interval_chars, interval_time, saved_step = [], 0, 0.0, self.step
                    if cfg.patience and self.bad_evals >= cfg.patience:
                        status = f"early stop: no val improvement in {cfg.patience} evaluations"
                        break
            if self.step != saved_step and status == "interrupted":  # save exactly here, without an evaluation
                self._save_latest()
            elif self.step != saved_step:  # the end of the run: a last evaluation
                last_record = self._timed_eval(losses, interval_chars, interval_time)
        if self.dist.main:
            self._write_config(status=status)
        self.dist.close()
        return {"status": status, "step": self.step, "best_val_loss": self._best("val"),
                "best_train_loss": self._best("train"), "elapsed": self.elapsed,
                "last": last_record, "out": str(self.out)}

    def _timed_eval(self, losses: list[float], chars: int, seconds: float) -> dict:
        t0 = time.perf_counter()
        record = self._evaluate_and_save(sum(losses) / len(losses), chars / max(seconds, 1e-9))
        self._heal_speeds(chars / max(seconds, 1e-9))
        self.elapsed += time.perf_counter() - t0
        return record

    def _heal_speeds(self, chars_per_s: float) -> None:
        """Correct the speed cache that --size auto chose from with this run's own speed (one process, still on
        the thread count the shapes were timed at)."""
        if self.speeds is None or self.dist.enabled or self.threads.changes:
            return
        cfg = self.cfg
        shape = autosize.Shape(cfg.layers, cfg.hidden, cfg.embed, cfg.batch_size, cfg.seq_len)
        self.speeds.correct(cfg.model, shape, len(self.task.corpus.vocab), chars_per_s)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_eval: Callable[[dict], int | None] | None = None) -> dict:
    """Train (or resume) a run described by `cfg`; see Trainer.run for the result."""
    return Trainer(cfg, resume=resume, progress=progress, on_eval=on_eval).run()
