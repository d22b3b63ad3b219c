"""`charrnn export`: a run's best weights and config as a model folder."""

from __future__ import annotations

import torch

from charrnn import models
from charrnn.checkpoint import export_model
from charrnn.cli.common import loss_text
from charrnn.runfile import RunFile


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="copy a run's best weights (half precision) and config into a model folder",
                       description="Copy a training run's best weights (model.safetensors), converted to --dtype, "
                                   "and its config.json into a model folder that sample, complete, eval, folk and "
                                   "the app load like a shipped model.")
    p.add_argument("run_dir", help="the training run to export (the --out of charrnn train)")
    p.add_argument("dest", help="the model folder to write (created; e.g. models/mine)")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16",
                   help="the weights' precision (default float16: half the size, the same loss to 4 decimals)")
    p.add_argument("--force", action="store_true", help="replace a model already in dest")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    dest = export_model(args.run_dir, args.dest, getattr(torch, args.dtype), replace_model=args.force)
    run = RunFile.read(dest)
    unit = models.lookup(run.kind).unit
    print(f"{dest}: {run.parameters:,} parameters, {run.size_bytes / 1e6:.1f} MB, {loss_text(run.best_val_loss, unit)}")
    return 0
