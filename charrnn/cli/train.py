"""`charrnn train`, and the training flags it shares with `charrnn seq2seq train`: a flag that means the same
in both is defined once, here, with the task's own default shown."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable
from dataclasses import fields

from charrnn import models
from charrnn.cli.common import duration, finite_float, loss_text, positive_int
from charrnn.devices import DEVICES
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CELLS
from charrnn.models.seq2seq import ATTENTION
from charrnn.runfile import RunFile
from charrnn.seq2seq.data import TOKENS
from charrnn.training import autosize
from charrnn.training.config import BaseTrainConfig, resume_config, train_config
from charrnn.training.defaults import DEFAULT_EPOCHS, lm_defaults
from charrnn.training.distributed import leave
from charrnn.training.trainer import Trainer


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a text file",
                       description="Train a character-level model. Flags not given take the defaults shown, or, "
                                   "with --resume, the values the run was started with.",
                       argument_default=argparse.SUPPRESS)
    add_train_flags(p, train_config("lm")(), "a UTF-8 text file")
    p.set_defaults(func=lambda args: run_training(args, "lm", "train", lm_defaults))


def add_train_flags(p: argparse.ArgumentParser, d: BaseTrainConfig, what: str) -> None:
    """The flags of a training command whose defaults are `d`'s; `what` names its data in the help. A flag
    is offered where the kind's config has its field."""
    has = {f.name for f in fields(d)}
    streams = "seq_len" in has  # text read as carried streams (an LM), not pairs: the batch and length wording
    p.add_argument("corpus", nargs="?", help=f"{what}, or a corpus name from 'charrnn corpora list' "
                                             "(optional with --resume)")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out exactly (one with nothing saved yet starts from the beginning)")
    g = p.add_argument_group("model")
    if "size" in has:
        presets = ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in autosize.PRESETS.items())
        g.add_argument("--size", choices=autosize.SIZES,
                       help="auto: layers, hidden, batch, sequence length, lr and dropout chosen for the time budget, "
                            "the corpus and this machine's measured speed (the default with a time budget and none "
                            "of --layers, --hidden, --batch-size, --seq-len, --lr; flags given with it win); or a "
                            f"preset ({presets})")
    g.add_argument("--model", choices=CELLS, help=f"recurrent cell (default {d.model})")
    g.add_argument("--layers", type=positive_int, help=f"default {d.layers}")
    g.add_argument("--hidden", type=positive_int, help=f"hidden size (default {d.hidden})")
    g.add_argument("--embed", type=positive_int, help=f"embedding size (default {d.embed})")
    g.add_argument("--dropout", type=finite_float, help=f"default {d.dropout}")
    if "attention" in has:
        g.add_argument("--attention", choices=ATTENTION, help=f"Luong's dot or general, or Bahdanau's additive "
                                                              f"(default {d.attention})")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=["adamw", "rmsprop"], help=f"default {d.optimizer}")
    g.add_argument("--lr", type=finite_float, help=f"peak learning rate (default {d.lr})")
    g.add_argument("--weight-decay", type=finite_float, help=f"AdamW weight decay (default {d.weight_decay})")
    g.add_argument("--warmup", type=int, help=f"linear warmup steps (default {d.warmup})")
    g.add_argument("--min-lr-frac", type=finite_float, help=f"final lr / peak lr (default {d.min_lr_frac})")
    g.add_argument("--grad-clip", type=finite_float,
                   help=f"global gradient-norm clip, 0 = off (default {d.grad_clip})")
    g.add_argument("--batch-size", type=positive_int,
                   help=f"{'parallel streams' if streams else 'pairs'} per step (default {d.batch_size})")
    if streams:
        g.add_argument("--seq-len", type=positive_int, help=f"BPTT length (default {d.seq_len})")
    g.add_argument("--seed", type=int, help=f"default {d.seed}")
    g = p.add_argument_group("when to stop (the learning-rate schedule fits the first that applies)")
    g.add_argument("--max-steps", type=int, help="optimizer steps")
    g.add_argument("--epochs", type=finite_float,
                   help="passes over the training split" if streams else
                   f"passes over the training split (default {DEFAULT_EPOCHS} if no other limit is given)")
    fmt = autosize.format_duration
    length = "" if not streams else (f" (default, if no other limit is given: {autosize.DEFAULT_S_PER_MCHAR:g}s per "
                                 f"million characters of corpus, {fmt(autosize.DEFAULT_MIN_S)} to "
                                 f"{fmt(autosize.DEFAULT_MAX_S)})")
    g.add_argument("--time-budget", type=duration, help=f"training time, e.g. 90s, 20m, 2h, 1h30m{length}")
    g.add_argument("--patience", type=int, help="stop after this many evaluations without val improvement")
    g = p.add_argument_group("data and evaluation")
    g.add_argument("--val-frac", type=finite_float, help=f"share of the data for validation (default {d.val_frac})")
    g.add_argument("--test-frac", type=finite_float, help=f"share held out as test (default {d.test_frac})")
    g.add_argument("--eval-every", type=positive_int, help=f"steps between evaluations (default {d.eval_every})")
    if "source_tokens" in has:
        g.add_argument("--source-tokens", choices=TOKENS, help="source symbols: characters, or whitespace-separated"
                                                               f" (default {d.source_tokens})")
        g.add_argument("--target-tokens", choices=TOKENS, help=f"target symbols (default {d.target_tokens})")
        g.add_argument("--val-file", help="fixed val pairs instead of a split by hash (--val-frac is then unused)")
        g.add_argument("--test-file", help="fixed test pairs")
        g.add_argument("--skip-bad-lines", action="store_true", default=None,
                       help="skip and count malformed lines instead of stopping at the first")
        g.add_argument("--eval-sample", type=positive_int,
                       help=f"val sources decoded for the WER/TER at each evaluation (default {d.eval_sample})")
    else:  # the fields of a text read as streams
        g.add_argument("--eval-batch", type=positive_int, help=f"streams in evaluation (default {d.eval_batch})")
        g.add_argument("--encoding", help=f"text encoding of the corpus (default {d.encoding})")
        g.add_argument("--cache-dir", help="where encoded corpora are cached (default ~/.cache/charrnn)")
    g = p.add_argument_group("machine")
    g.add_argument("--device", choices=DEVICES, help=f"default {d.device}")
    g.add_argument("--threads", type=positive_int, help="CPU threads (default: the cores no other process is "
                                                            "using, looked at again every few seconds)")
    p.add_argument("--quiet", action="store_true", default=False, help="no progress bar")


def finished_message(cfg: BaseTrainConfig, saved: RunFile, given: dict, verb: str, unit: str) -> str | None:
    """What to say instead of resuming a run that has already reached one of its limits (None: resume it)."""
    steps, spent = saved.step, saved.training_time_s
    reached = []  # (flag, its value now, a larger value to suggest)
    if cfg.max_steps is not None and steps >= cfg.max_steps:
        reached.append(("--max-steps", f"{cfg.max_steps}", f"{2 * cfg.max_steps}"))
    if cfg.time_budget is not None and spent >= cfg.time_budget:
        reached.append(("--time-budget", f"{cfg.time_budget:g}s", f"{math.ceil(2 * cfg.time_budget)}s"))
    # --epochs needs the corpus to count; a run that finished short of --max-steps stopped at its epochs.
    by_epochs = saved.status == "finished" and (saved.train.get("max_steps") is None
                                                or steps < saved.train["max_steps"])
    if cfg.epochs is not None and by_epochs and "epochs" not in given:
        reached.append(("--epochs", f"{cfg.epochs:g}", f"{2 * cfg.epochs:g}"))
    if not reached:
        return None
    limits = " and ".join(f"{flag} {value}" for flag, value, _ in reached)
    larger = " ".join(f"{flag} {more}" for flag, _, more in reached)
    return (f"{cfg.out} is finished: it reached {limits} (step {steps:,}, {spent:.0f}s of training; "
            f"{loss_text(saved.best_val_loss, unit)}). "
            f"To train it further, resume with a larger limit, e.g.: "
            f"charrnn {verb} --out {shlex.quote(str(cfg.out))} --resume {larger}")


def run_training(args: argparse.Namespace, kind: str, verb: str,
                 fill_defaults: Callable[[dict], str | None]) -> int:
    """Start or resume a run of model kind `kind` as the flags describe (a new run's open settings filled in by
    `fill_defaults`, which may return a note for the user) and print its outcome; the exit code. `verb` is
    the command, for the lines that say how to go on."""
    cls, unit = train_config(kind), models.lookup(kind).unit
    names = {f.name for f in fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    cfg = resume_config(args.out, given) if args.resume else None
    if cfg is not None and (done := finished_message(cfg, RunFile.read(cfg.out), given, verb, unit)):
        print(done)
        return 0
    if cfg is None:
        if not given.get("corpus"):
            raise CharRNNError(f"{args.out} holds no run to resume; give the corpus to start one there" if args.resume
                               else "train needs a corpus file (or --resume to continue a run)")
        if args.resume:
            print(f"nothing saved in {args.out} yet: starting the run from the beginning", file=sys.stderr)
        if note := fill_defaults(given):
            print(note, file=sys.stderr)
        cfg = cls(**given)
    command = "charrnn " + " ".join(shlex.quote(a) for a in args.argv)
    trainer = Trainer(cfg, resume=args.resume, progress=not args.quiet, command=command, keep=given)
    if trainer.auto and trainer.dist.main:
        print(trainer.auto.line(), file=sys.stderr)
    for note in trainer.notes if trainer.dist.main else ():
        print(note, file=sys.stderr)
    result = trainer.run()
    code = 130 if result["status"] == "interrupted" else 0
    if trainer.dist.main:  # under torchrun, rank 0 speaks for all
        print(f"{result['status']} at step {result['step']} after {result['elapsed']:.0f}s; "
              f"{loss_text(result['best_val_loss'], unit, result['best_train_loss'])}; run: {cfg.out}")
        if code:
            launcher = "torchrun ... -m charrnn" if trainer.dist.enabled else "charrnn"
            print(f"resume with: {launcher} {verb} --out {cfg.out} --resume", file=sys.stderr)
    if trainer.dist.enabled:
        leave(code)
    return code
