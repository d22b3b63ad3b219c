"""Val loss against time budget: a grid of sizes, batches and learning rates, today's defaults, and --size auto.

Every contender is a real `charrnn train CORPUS --time-budget B` process (start-up, auto's timing and the
evaluations all count in B), run `--parallel` at a time with `--threads` each; its score is the trainer's
own best val loss on its own split (the last --val-frac of the corpus). Results accumulate in
docs/budget/bench_budget.json (a rerun replaces only the runs it repeats); the markdown table and the
plot (val loss against budget per size, auto marked) are rebuilt from all of them; with nothing to run
(`--points --no-auto --no-defaults`) they are only rebuilt.

    python -m benchmarks.bench_budget --corpora tinyshakespeare --budgets 2m \\
        --points 1x256:32:4e-3 1x384:32:4e-3 1x512:32:4e-3 --parallel 2 --threads 1
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, table
from charrnn.training.autosize import format_duration
from charrnn.training.config import TrainConfig, parse_duration

RESULTS = REPO / "docs" / "budget"
COMMANDS = "commands.txt"  # every invocation that wrote into the results, in order
CORPORA = {  # name -> what `charrnn train` is given, and the share of it held out for val
    "tinyshakespeare": (str(REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"), 0.1),
    "folk": ("folk", 0.1),
    "pystdlib": ("pystdlib", 0.02),  # 12 MB: 2% (240k characters) keeps each evaluation to seconds
}
D = TrainConfig()
DEFAULTS = (f"{D.layers}x{D.hidden}:{D.batch_size}x{D.seq_len}:{D.lr:g}:{D.dropout:g}", "defaults")


@dataclass(frozen=True)
class Contender:
    """A grid point 'LAYERSxHIDDEN:BATCH[xSEQ]:LR[:DROPOUT]', today's defaults, or auto (spec None)."""

    label: str
    spec: str | None

    def flags(self) -> list[str]:
        if self.spec is None:
            return []
        size, batch, lr, *rest = self.spec.split(":")
        layers, hidden = size.split("x")
        batch, _, seq = batch.partition("x")
        return ["--layers", layers, "--hidden", hidden, "--batch-size", batch, "--seq-len", seq or "64",
                "--lr", lr, "--dropout", rest[0] if rest else "0"]

    @property
    def kind(self) -> str:
        return "auto" if self.spec is None else "defaults" if self.label == "defaults" else "point"

    @property
    def size(self) -> str:
        """The network part of the label, one line per size in the plot."""
        return self.label if self.spec is None else self.label.split(":")[0] if self.kind == "point" else "defaults"


def wait_while(pause: Path | None) -> None:
    while pause is not None and pause.exists():
        time.sleep(30)


def run_one(corpus: str, budget: float, who: Contender, args, work: Path) -> dict:
    """Train one contender in a fresh run directory; its record for the results file."""
    path, val_frac = CORPORA.get(corpus, (corpus, 0.1))
    name = f"{corpus}-{format_duration(budget)}-{who.label.replace(':', '_')}"
    out = work / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    # Auto gets a cache of its own, so that every auto run pays for timing shapes as a first run would.
    cache = work / "cache" / name if who.kind == "auto" else work / "cache" / "shared"
    if who.kind == "auto":
        shutil.rmtree(cache, ignore_errors=True)
    command = [*(["nice", "-n", str(args.nice)] if args.nice else []), sys.executable, "-m", "charrnn", "train", path,
               "--out", str(out), "--time-budget", f"{budget:g}s", "--threads", str(args.threads), "--device",
               args.device, "--val-frac", f"{val_frac:g}", "--cache-dir", str(cache), "--quiet", *who.flags()]
    wait_while(args.pause_file)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    wall = time.perf_counter() - t0
    record = {"corpus": corpus, "budget_s": budget, "label": who.label, "kind": who.kind, "size": who.size,
              "flags": who.flags(), "wall_s": round(wall, 1), "returncode": done.returncode,
              "load": [round(load_before, 1), round(os.getloadavg()[0], 1)]}  # the machine's, before and after
    if done.returncode:
        record["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
        return record
    cfg = json.loads((out / "config.json").read_text())
    train = cfg["train"]
    record.update(val_loss=cfg["best_val_loss"], step=cfg["step"], training_time_s=cfg["training_time_s"],
                  machine=cfg["machine"], shape=f"{train['layers']}x{train['hidden']}",
                  batch=f"{train['batch_size']}x{train['seq_len']}", lr=train["lr"], dropout=train["dropout"],
                  auto=train.get("auto"))
    return record


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def merge(records: list[dict], new: dict) -> list[dict]:
    """The results with `new` in place of an earlier run of the same corpus, budget and contender."""
    same = (new["corpus"], new["budget_s"], new["label"])
    return [r for r in records if (r["corpus"], r["budget_s"], r["label"]) != same] + [new]


def val_text(record: dict | None) -> str:
    return f"{record['val_loss']:.3f}" if record else "not run"


def summary_rows(records: list[dict]) -> list[list]:
    """Per corpus and budget: auto (its choice and val), the defaults, the best grid point, auto minus best."""
    rows = []
    for corpus, budget in sorted({(r["corpus"], r["budget_s"]) for r in records}, key=lambda k: (k[0], k[1])):
        here = [r for r in records if (r["corpus"], r["budget_s"]) == (corpus, budget) and r.get("val_loss")]
        auto = next((r for r in here if r["kind"] == "auto"), None)
        defaults = next((r for r in here if r["kind"] == "defaults"), None)
        points = [r for r in here if r["kind"] == "point"]
        best = min(points, key=lambda r: r["val_loss"], default=None)
        choice = f"{auto['shape']} b{auto['batch']} lr {auto['lr']:g} dr {auto['dropout']:g}" if auto else ""
        gap = f"{auto['val_loss'] - best['val_loss']:+.3f}" if auto and best else ""
        rows.append([corpus, format_duration(budget), choice, val_text(auto), val_text(defaults),
                     f"{best['label']}: {best['val_loss']:.3f}" if best else "not run", gap])
    return rows


def detail_rows(records: list[dict]) -> list[list]:
    order = {"auto": 0, "defaults": 1, "point": 2}
    rows = []
    for r in sorted(records, key=lambda r: (r["corpus"], r["budget_s"], order[r["kind"]], r.get("val_loss") or 9)):
        val = f"{r['val_loss']:.4f}" if r.get("val_loss") else r.get("error", "failed")
        rows.append([r["corpus"], format_duration(r["budget_s"]), r["label"],
                     f"{r.get('shape', '')} b{r.get('batch', '')} lr {r.get('lr', '')} dr {r.get('dropout', '')}",
                     val, f"{r.get('step', 0):,}", f"{r['wall_s']:.0f}"])
    return rows


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = sorted({r["corpus"] for r in records})
    fig, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4.5), squeeze=False)
    for ax, corpus in zip(axes[0], corpora, strict=True):
        mine = [r for r in records if r["corpus"] == corpus and r.get("val_loss")]
        for size in sorted({r["size"] for r in mine if r["kind"] == "point"}):
            best = {}  # budget -> the best val of this size's points there (batch and lr varied)
            for r in mine:
                if r["kind"] == "point" and r["size"] == size:
                    best[r["budget_s"]] = min(best.get(r["budget_s"], 9.0), r["val_loss"])
            xs = sorted(best)
            ax.plot([x / 60 for x in xs], [best[x] for x in xs], "o-", lw=1, ms=4, label=size)
        for kind, style in (("defaults", dict(marker="x", color="black", ms=9, ls="--")),
                            ("auto", dict(marker="*", color="red", ms=14, ls="-"))):
            pts = sorted((r["budget_s"], r["val_loss"]) for r in mine if r["kind"] == kind)
            if pts:
                ax.plot([b / 60 for b, _ in pts], [v for _, v in pts], label=kind, **style)
        budgets = sorted({r["budget_s"] for r in mine})
        ax.set_xscale("log")
        ax.set_xticks([b / 60 for b in budgets], [format_duration(b) for b in budgets])
        ax.set_xticks([], minor=True)  # log-scale minor ticks would be labelled "2x10^0"
        ax.set_xlabel("time budget (minutes, start-up included)")
        ax.set_ylabel("best val loss (nats/char)")
        ax.set_title(corpus)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(records: list[dict], out: Path) -> None:
    machines = sorted({r["machine"] for r in records if r.get("machine")})
    commands = (out / COMMANDS).read_text().splitlines() if (out / COMMANDS).is_file() else []
    text = ["# Val loss against time budget", "", "Produced by these invocations (each replaces the runs it repeats):",
            "", *(f"    {c}" for c in commands), "", f"Machine: {'; '.join(machines)}; the load average before and "
            "after each run is in the JSON.", "", "## Summary", "",
            table(summary_rows(records), ["corpus", "budget", "auto chose", "auto", "defaults", "best grid point",
                                          "auto - best"]),
            "", "## Every run", "",
            table(detail_rows(records), ["corpus", "budget", "contender", "trained", "best val", "steps", "wall s"]),
            ""]
    (out / "bench_budget.md").write_text("\n".join(text))
    plot(records, out / "bench_budget.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", nargs="+", default=["tinyshakespeare"],
                    help=f"names ({', '.join(CORPORA)}) or text files")
    ap.add_argument("--budgets", nargs="+", default=["2m"], help="time budgets, e.g. 2m 10m 1h")
    ap.add_argument("--points", nargs="*", default=["1x256:32:4e-3", "1x384:32:4e-3", "1x512:32:4e-3"],
                    help="grid points LAYERSxHIDDEN:BATCH[xSEQ]:LR[:DROPOUT] (seq 64, dropout 0 unless given)")
    ap.add_argument("--no-auto", action="store_true", help="leave out --size auto")
    ap.add_argument("--no-defaults", action="store_true", help=f"leave out today's defaults ({DEFAULTS[0]})")
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the runs (0: none)")
    ap.add_argument("--pause-file", type=Path, help="before each run, wait while this file exists")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_budget"), help="run directories and caches")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON, table and plot go")
    args = ap.parse_args()
    contenders = [Contender(p, p) for p in args.points]
    if not args.no_defaults:
        contenders.append(Contender(DEFAULTS[1], DEFAULTS[0]))
    if not args.no_auto:
        contenders.append(Contender("auto", None))
    jobs = [(c, parse_duration(b), who) for b in args.budgets for c in args.corpora for who in contenders]
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "bench_budget.json"
    if not jobs:  # nothing to run: rebuild the table and the plot from the results file
        write_reports(load(results), args.out)
        return
    command = "python -m benchmarks.bench_budget " + " ".join(sys.argv[1:])
    with open(args.out / COMMANDS, "a") as f:
        f.write(command + "\n")
    lock = threading.Lock()

    def one(job):
        record = run_one(*job, args, args.work)
        # Several invocations may share the results file (e.g. two queues of --parallel 1): lock it.
        with lock, open(args.out / ".lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            records = merge(load(results), record)
            results.write_text(json.dumps(records, indent=1) + "\n")
            write_reports(records, args.out)
        print(json.dumps({k: record.get(k) for k in ("corpus", "budget_s", "label", "val_loss", "step", "wall_s",
                                                      "error")}), flush=True)

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(one, jobs))
    print(table(summary_rows(load(results)), ["corpus", "budget", "auto chose", "auto", "defaults", "best point",
                                              "auto - best"]))


if __name__ == "__main__":
    main()
