"""Training: truncated BPTT over carried hidden state, evaluation, best/latest checkpoints, exact resume.

A run directory holds config.json (architecture, vocabulary, arguments, best val loss), the best
weights (model.safetensors), latest.safetensors (everything needed to continue: weights, optimizer,
RNG, hidden state, step) and metrics.jsonl (one line per evaluation). Resuming restores all of it, so
on a CPU with a fixed seed an interrupted-and-resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from charrnn import checkpoint as ckpt
from charrnn.data import StreamBatcher, encode_corpus
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CELLS, CharRNN, ModelConfig, detach_state
from charrnn.training.distributed import Dist

METRICS = "metrics.jsonl"


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

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(vocab_size, cell=self.model, layers=self.layers, hidden=self.hidden, embed=self.embed,
                           dropout=self.dropout)


# What a resumed run cannot change: the weights' shapes, and the data position a step number stands for.
FIXED_ON_RESUME = ("model", "layers", "hidden", "embed", "batch_size", "seq_len")


def resume_config(out: str | Path, overrides: dict) -> TrainConfig:
    """The saved arguments of the run in `out`, with the ones given again on the command line on top.

    Giving e.g. a larger --max-steps or --time-budget extends a run; the architecture cannot change.
    """
    out = Path(out)
    saved = ckpt.read_config(out)
    if not (out / ckpt.LATEST).is_file():
        raise CharRNNError(f"{out} has no {ckpt.LATEST} to resume from")
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in {**saved.train, **overrides, "out": str(out)}.items() if k in names})
    changed = [k for k in FIXED_ON_RESUME if getattr(cfg, k) != saved.train[k]]
    if changed:
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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available to this PyTorch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: the Apple MPS backend is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise CharRNNError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


def machine_description(device: torch.device) -> str:
    """E.g. 'cpu: AMD EPYC 9R14, threads=2' or 'cuda: NVIDIA H100 80GB HBM3' (recorded with each run)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{device.type}: {cpu}, threads={torch.get_num_threads()}"


STOP_REASONS = (None, "finished", "time budget reached", "interrupted")  # agreed across ranks: the last wins


def resolve_corpus(corpus: str) -> tuple[str | None, Path]:
    """(catalogue name or None, file path): a path to a text file, or a name from `charrnn corpora list`."""
    from charrnn import corpora

    path = Path(corpus)
    if path.exists() or corpus not in corpora.CATALOGUE:
        return None, path
    return corpus, corpora.ensure(corpus)


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray, batch_size: int = 32, seq_len: int = 256,
             device: torch.device | str = "cpu", dist: Dist | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[float, int]:
    """Mean cross-entropy (nats/char) of predicting ids[1:] from what precedes, and the count predicted;
    `progress(chars)` is called after each window with the characters it predicted.

    The text is cut into `batch_size` contiguous streams read `seq_len` at a time with carried state;
    the few characters left over continue the last stream, so every character is predicted once.
    Under torchrun each rank reads its share of the streams and the sums are added up.
    """
    dist = dist or Dist()
    n = len(ids) - 1
    if n < 1:
        raise CharRNNError("evaluation needs at least 2 characters of text")
    was_training = model.training
    model.eval()
    b = max(1, min(batch_size, n // seq_len))
    length = n // b
    data = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    rows = slice(dist.rank, b, dist.world)  # this rank's streams (all of them in one process)
    xs = data[: b * length].view(b, length)[rows]
    ys = data[1 : b * length + 1].view(b, length)[rows]
    total = torch.zeros((), dtype=torch.float64)
    state = None
    for lo in range(0, length if len(xs) else 0, seq_len):
        x, y = xs[:, lo : lo + seq_len].to(device), ys[:, lo : lo + seq_len].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").double().cpu()
        if progress is not None:
            progress(y.numel())
    if b * length < n and (b - 1) % dist.world == dist.rank:  # the tail continues the last stream
        last = (state[0][:, -1:], state[1][:, -1:]) if isinstance(state, tuple) else state[:, -1:]
        x = data[b * length : n].view(1, -1).to(device)
        y = data[b * length + 1 : n + 1].view(1, -1).to(device)
        logits, _ = model(x, last)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").double().cpu()
    (total_all,) = dist.sum(total.item())
    model.train(was_training)
    return total_all / n, n


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

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 on_eval: Callable[[dict], int | None] | None = None, command: str | None = None):
        """on_eval sees each evaluation's record (on rank 0) and may return a new --eval-every, in steps
        (single-process runs only: other ranks would not learn of it)."""
        self.cfg, self.progress, self.on_eval, self.command = cfg, progress, on_eval, command
        self._stop_requested = threading.Event()
        self.out = Path(cfg.out)
        if not resume and ((self.out / ckpt.CONFIG).exists() or (self.out / ckpt.LATEST).exists()):
            raise CharRNNError(f"{self.out} already holds a run: pass --resume to continue it, or choose another --out")
        self._check_args(cfg)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist = Dist.from_env(resolve_device(cfg.device))
        self.device = self.dist.device
        if cfg.batch_size % self.dist.world:
            raise CharRNNError(f"--batch-size {cfg.batch_size} must be a multiple of the {self.dist.world} processes")
        self.local_batch = cfg.batch_size // self.dist.world
        if not self.dist.main:  # rank 0 fetches and encodes the corpus first; the others find it cached
            self.dist.barrier()
        self.corpus_name, path = resolve_corpus(cfg.corpus)
        corpus = encode_corpus(path, cfg.cache_dir, cfg.encoding)
        if self.dist.main:
            self.dist.barrier()
        self.corpus = corpus
        train_ids, self.val_ids, _ = corpus.split(cfg.val_frac, cfg.test_frac)
        if cfg.val_frac > 0 and len(self.val_ids) < 2:
            # Enough for one training batch and 2 val characters, after the val and test shares.
            need = math.ceil(max(cfg.batch_size * (cfg.seq_len + 1) / (1 - cfg.val_frac - cfg.test_frac),
                                 2 / cfg.val_frac))
            raise CharRNNError(f"the corpus has {len(corpus.ids):,} characters, too few for a val split "
                               f"(--val-frac {cfg.val_frac:g}): with batch size {cfg.batch_size} x sequence length "
                               f"{cfg.seq_len} it needs at least {need:,}")
        self.batches = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len, self.dist.rank, self.dist.world)
        self.total_steps = self._total_steps()

        torch.manual_seed(cfg.seed)
        self.model = CharRNN(cfg.model_config(len(corpus.vocab))).to(self.device)
        if self.dist.rank:  # each rank its own dropout masks
            torch.manual_seed(cfg.seed + self.dist.rank)
        self.net = self.model
        if self.dist.enabled:  # averages gradients across ranks during backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.opt = self._make_optimizer()
        self.step, self.elapsed, self.best_val, self.bad_evals = 0, 0.0, math.inf, 0
        self.state = self.model.init_state(self.local_batch)
        if resume:
            self._load_latest()
        elif self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config(status="running")

    # --- setup ------------------------------------------------------------------------------------

    @staticmethod
    def _check_args(cfg: TrainConfig) -> None:
        positive = ("layers", "hidden", "embed", "batch_size", "seq_len", "eval_every", "eval_batch")
        for name in positive:
            if getattr(cfg, name) < 1:
                raise CharRNNError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(cfg, name)})")
        checks = [
            (cfg.model in CELLS, f"--model must be {', '.join(CELLS)} (got {cfg.model!r})"),
            (cfg.optimizer in ("adamw", "rmsprop"), f"--optimizer must be adamw or rmsprop (got {cfg.optimizer!r})"),
            (0 <= cfg.dropout < 1, "--dropout must be in [0, 1)"),
            (math.isfinite(cfg.lr) and cfg.lr > 0, "--lr must be a positive number"),
            (0 <= cfg.val_frac < 1 and 0 <= cfg.test_frac < 1 and cfg.val_frac + cfg.test_frac < 1,
             "--val-frac and --test-frac must be in [0, 1) and leave some text for training"),
            (cfg.max_steps is None or cfg.max_steps >= 0, "--max-steps must not be negative"),
            (cfg.epochs is None or cfg.epochs > 0, "--epochs must be positive"),
            (cfg.time_budget is None or cfg.time_budget > 0, "--time-budget must be positive"),
            (cfg.patience is None or cfg.patience >= 1, "--patience must be at least 1"),
            (cfg.grad_clip >= 0 and cfg.warmup >= 0, "--grad-clip and --warmup must not be negative"),
            (0 <= cfg.min_lr_frac <= 1, "--min-lr-frac must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise CharRNNError(message)

    def _total_steps(self) -> int | None:
        """Steps until --max-steps or --epochs, whichever comes first (None if only a time budget)."""
        limits = []
        if self.cfg.max_steps is not None:
            limits.append(self.cfg.max_steps)
        if self.cfg.epochs is not None:
            limits.append(max(1, round(self.cfg.epochs * self.batches.batches_per_epoch)))
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
        if saved.corpus is None or saved.corpus.sha256 != self.corpus.sha256:
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
            # The hidden state is saved for the global streams; this rank continues its share of them.
            mine = slice(rank, None, self.dist.world)
            h = tensors["hidden.h"][:, mine].to(self.device)
            self.state = (h, tensors["hidden.c"][:, mine].to(self.device)) if "hidden.c" in tensors else h
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
        corpus = ckpt.CorpusInfo(self.corpus_name, str(self.corpus.path), self.corpus.sha256, len(self.corpus.ids))
        ckpt.RunFile(
            kind="lm", model=self.model.cfg.to_dict(), vocab=self.corpus.vocab.chars, char_counts=self.corpus.counts,
            corpus=corpus, train=asdict(self.cfg), best_val_loss=None if math.isinf(self.best_val) else self.best_val,
            step=self.step, training_time_s=round(self.elapsed, 1), machine=machine, command=self.command,
            torch=torch.__version__, **extra,
        ).write(self.out)

    def _save_latest(self) -> None:
        """Every rank's RNG and share of the hidden state are gathered (all ranks call this); rank 0 writes."""
        rng = self.dist.gather(torch.get_rng_state())
        cuda_rng = self.dist.gather(torch.cuda.get_rng_state()) if self.device.type == "cuda" else []
        state = self.state if isinstance(self.state, tuple) else (self.state,)
        hidden = [self.dist.gather_streams(s) for s in state]
        if not self.dist.main:
            return
        opt_tensors, opt_meta = _optimizer_tensors(self.opt)
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(opt_tensors)
        tensors.update(zip(("hidden.h", "hidden.c"), hidden, strict=False))
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

    def train_step(self) -> float:
        """One optimizer step on the next batch; returns its loss."""
        index = self.step % self.batches.batches_per_epoch
        if index == 0:  # a new epoch: the streams start over, so does the hidden state
            self.state = self.model.init_state(self.local_batch, self.device)
        x, y = self.batches.get(index)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step, self.elapsed)
        logits, state = self.net(x, self.state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        (value,) = self.dist.sum(loss.item() / self.dist.world)  # the global batch's mean loss
        if not math.isfinite(value):
            raise CharRNNError(
                f"training diverged at step {self.step + 1} (loss {value}); the last good checkpoint in "
                f"{self.out} is kept; try a lower --lr or --grad-clip")
        self.opt.step()
        self.state = detach_state(state)
        self.step += 1
        return value

    def _evaluate_and_save(self, train_loss: float, chars_per_s: float) -> dict:
        val_loss = None
        if len(self.val_ids) >= 2:
            val_loss, _ = evaluate(self.model, self.val_ids, self.cfg.eval_batch, 256, self.device, self.dist)
        score = val_loss if val_loss is not None else train_loss
        record = {"step": self.step, "epoch": round(self.step / self.batches.batches_per_epoch, 3),
                  "train_loss": round(train_loss, 5), "val_loss": None if val_loss is None else round(val_loss, 5),
                  "lr": self.lr_at(self.step, self.elapsed), "chars_per_s": round(chars_per_s),
                  "elapsed": round(self.elapsed, 2)}
        improved = score < self.best_val
        if improved:
            self.best_val, self.bad_evals = score, 0
        else:
            self.bad_evals += 1
        if self.dist.main:
            if improved:
                ckpt.save_weights(self.out, self.model, step=self.step, val_loss=score)
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

    def run(self) -> dict:
        """Train until a stop condition; returns {'status', 'step', 'best_val_loss', ...}."""
        cfg = self.cfg
        self.model.train()
        show = self.progress and self.dist.main
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", disable=not show, dynamic_ncols=True,
                   desc=self.out.name)
        losses, interval_chars, interval_time = [], 0, 0.0
        last_record, saved_step = None, self.step
        with StopFlag() as stop, bar:
            while (status := self._stop_reason(stop)) is None:
                t0 = time.perf_counter()
                losses.append(self.train_step())
                dt = time.perf_counter() - t0
                self.elapsed += dt
                interval_time += dt
                interval_chars += cfg.batch_size * cfg.seq_len
                if cfg.time_budget and not self.total_steps:  # let tqdm show an ETA for a time budget too
                    bar.total = max(self.step, int(self.step * cfg.time_budget / self.elapsed))
                bar.update(1)
                best = f"{self.best_val:.3f}" if math.isfinite(self.best_val) else "-"
                bar.set_postfix(loss=f"{losses[-1]:.3f}", val=best,
                                cps=f"{interval_chars / max(interval_time, 1e-9):,.0f}", refresh=False)
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
        return {"status": status, "step": self.step, "best_val_loss": self.best_val, "elapsed": self.elapsed,
                "last": last_record, "out": str(self.out)}

    def _timed_eval(self, losses: list[float], chars: int, seconds: float) -> dict:
        t0 = time.perf_counter()
        record = self._evaluate_and_save(sum(losses) / len(losses), chars / max(seconds, 1e-9))
        self.elapsed += time.perf_counter() - t0
        return record


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          on_eval: Callable[[dict], int | None] | None = None) -> dict:
    """Train (or resume) a run described by `cfg`; see Trainer.run for the result."""
    return Trainer(cfg, resume=resume, progress=progress, on_eval=on_eval).run()
