"""The folk generator's quality and speed: the share of generated tunes that pass the checks, the same
for the training corpus, and the time to write one tune with its sheet music (SVG), audio (WAV) and MIDI.

    python -m benchmarks.bench_folk MODEL_DIR [--num 200] [--temperature T ...] [--corpus corpora/folk.abc]
    python -m benchmarks.bench_folk MODEL_DIR --titles [--num 100]

--titles measures only the titles the model writes: whether a title's " -- Type" suffix names the tune's
own type (R:), and whether a title begins with a bar line.

    python -m benchmarks.bench_folk MODEL_DIR --form [--before OLD_DIR] [--num 247] [--corpus C] [--plot PNG]
        [--types TYPE ...]

--form writes tunes over every tune type the CLI offers (each in its commonest meter in the corpus) and
every meter the app offers with no type, in 12 keys, at default settings; each tune twice, one after the
other: as before (the model's own form, copies allowed; with --before DIR, by that model) and held to a
form (the default). It reads their form (charrnn.folk.form) beside the corpus's and prints tables by
type, meter and key (see `form_table`); the copies are measured against the corpus's note index. A table
by type and meter sets "every part 8" beside the corpus's with a 95% interval (`eight_bar_table`): with 13
tunes of a type one tune is 7.7 points, so a difference is real only where the interval leaves out the
corpus. --types writes only those types (more tunes of each for the same --num). The model's corpus facts
(the layouts its forms are drawn from) are looked for beside --corpus when its folder carries none.

Tune i is sampled with seed i and the i-th of a round of common choices (meter, key, type), one
candidate each, at the default temperature unless --temperature says otherwise; guided (the default:
a line that breaks the checks is drawn again) and unguided (every line kept as the model wrote it).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from charrnn.corpora import corpus_path
from charrnn.folk import render
from charrnn.folk.check import check_tune, split_tunes
from charrnn.folk.corpus import DROP_REASONS, music21_verdicts
from charrnn.folk.facts import MIN_GROUP_TUNES, CorpusFacts
from charrnn.folk.form import Form, read_form
from charrnn.folk.generate import DEFAULT_TEMPERATURE, FolkModel, FolkTune, title_type
from charrnn.folk.originality import NoteIndex, index_path
from charrnn.folk.spelling import canonical_key
from charrnn.folk.stats import MEASURES, cell

# What musicians ask for most, as the folk corpus has it: its meters, keys and types.
CHOICES = (
    ("4/4", "D", "reel"), ("6/8", "G", "jig"), ("2/2", "G", "reel"), ("6/8", "D", "jig"), ("4/4", "G", "hornpipe"),
    ("2/4", "A", None), ("3/4", "D", None), ("9/8", "G", "slip jig"), ("6/8", "Em", None), ("4/4", "Ador", None),
    ("2/2", "Amix", "reel"), ("6/8", "Dmix", "jig"),
)


def generated_pass_share(folk: FolkModel, num: int, temperature: float, guided: bool) -> None:
    """Sample `num` tunes and print the share that pass, why the others fail, the time per tune, and
    (guided) how many lines the checks sent back."""
    tunes: list[FolkTune] = []
    for seed in range(num):
        meter, key, tune_type = CHOICES[seed % len(CHOICES)]
        tunes.append(folk.generate(meter, key, tune_type, temperature=temperature, seed=seed, guided=guided))
    passed = sum(tune.passed for tune in tunes)
    unparsed = sum(verdict is not None for verdict in music21_verdicts([t.abc for t in tunes if t.passed], None, False))
    failures = Counter(kind for tune in tunes
                       for kind in {f.kind for f in tune.report.findings if f.severity == "error"})
    failures["unfinished (length limit)"] = sum(not tune.ended for tune in tunes)
    redrawn = [tune.redrawn for tune in tunes]
    print(f"generated, {'guided' if guided else 'unguided'}: {passed}/{num} pass the checks ({passed / num:.1%}) "
          f"at temperature {temperature}; median {statistics.median(t.seconds for t in tunes):.3f}s and "
          f"{statistics.median(t.report.bars for t in tunes):g} bars a tune; "
          f"music21 rejects {unparsed} of those that pass"
          + (f"; lines drawn again: mean {statistics.mean(redrawn):.2f}, max {max(redrawn)}, "
             f"none in {redrawn.count(0)} tunes" if guided else ""))
    for kind, count in failures.most_common():
        if count:
            print(f"  {kind}: {count} tunes")


def title_agreement(folk: FolkModel, num: int, temperature: float) -> None:
    """Print how many of `num` titles name a tune type, how many of those name another type than the
    tune's R: (or one where no type was asked for), and how many begin with a bar line."""
    named = wrong = unasked = bars = 0
    for seed in range(num):
        meter, key, tune_type = CHOICES[seed % len(CHOICES)]
        # The title is drawn before the music: one unchecked character of music is enough to read it.
        tune = folk.generate(meter, key, tune_type, temperature=temperature, seed=seed, max_chars=1, guided=False)
        title = tune.abc.split("\n")[1].removeprefix("T:")
        found = title_type(title)
        bars += title.lstrip().startswith("|")
        if found is not None:
            named += 1
            wrong += tune_type is not None and found[2] != tune_type
            unasked += tune_type is None
    print(f"titles at temperature {temperature}: {named}/{num} name a tune type (' -- Type'); {wrong} of them "
          f"another type than the tune's R:, {unasked} a type where none was asked for; "
          f"{bars}/{num} begin with a bar line '|'")


def corpus_pass_share(path: Path) -> None:
    """Print the share of the corpus's tunes that pass, and of the source tunes before the build's check."""
    tunes = split_tunes(path.read_text(encoding="utf-8"))
    passed = sum(check_tune(tune).passed for tune in tunes)
    print(f"corpus {path}: {passed}/{len(tunes)} tunes pass the checks ({passed / len(tunes):.1%})")
    stats_path = path.with_suffix(".stats.json")
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        checked = stats["tunes"] - sum(stats["dropped"][reason] for reason in ("multi_voice", "odd_key", "duplicate"))
        failed = stats["dropped"]["failed_check"]
        print(f"  its source tunes, normalised, before the build dropped those that fail: {checked - failed}/"
              f"{checked} pass ({(checked - failed) / checked:.1%}); dropped by reason: "
              + ", ".join(f"{reason} {stats['dropped'][reason]}" for reason in DROP_REASONS))


def _first_passing(folk: FolkModel, seed: int) -> FolkTune:
    for attempt in range(seed, seed + 50):
        tune = folk.generate("6/8", "D", "jig", seed=attempt)
        if tune.passed:
            return tune
    raise SystemExit("no passing tune in 50 seeds: the model is not good enough to time the rendering")


def one_tune_timing(folk: FolkModel, model_dir: str, rounds: int) -> None:
    """Time one tune with SVG, WAV and MIDI: in a running app (first tune, then warm) and as a CLI command."""
    render.ENGRAVER.close()

    def one(seed: int) -> dict[str, float]:
        times, started = {}, time.perf_counter()
        tune = _first_passing(folk, seed)
        times["tune"] = time.perf_counter() - started
        for name, make in (("svg", render.to_svg), ("wav", render.synthesize), ("midi", render.midi_bytes)):
            step = time.perf_counter()
            make(tune.abc)
            times[name] = time.perf_counter() - step
        times["total"] = time.perf_counter() - started
        return times

    def show(label: str, times: dict[str, float]) -> None:
        print(f"  {label}: {times['total']:.2f}s (" + ", ".join(f"{k} {v:.3f}s" for k, v in times.items()
                                                            if k != "total") + ")")

    print(f"one tune with SVG + WAV + MIDI, torch threads {torch.get_num_threads()}:")
    show("in an app, first tune (starts the engraver)", one(1000))
    warm = [one(1000 + i) for i in range(rounds)]
    show(f"in an app, warm (median of {rounds})", {k: statistics.median(t[k] for t in warm) for k in warm[0]})
    seed = _first_passing(folk, 2000).seed
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        command = [sys.executable, "-m", "charrnn", "folk", model_dir, "--meter", "6/8", "--key", "D", "--type", "jig",
                   "--seed", str(seed), "--out", str(out / "t.abc"), "--svg", str(out / "t.svg"),
                   "--wav", str(out / "t.wav"), "--midi", str(out / "t.mid")]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        print(f"  the command line, start to end (Python, torch and model loading included): "
              f"{time.perf_counter() - started:.2f}s")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    print(f"  of which Python and 'import torch' alone take: {time.perf_counter() - started:.2f}s")


# --form: every tune type the CLI offers, in its commonest meter in the corpus, and with no type every
# meter the app offers that 20 or more corpus tunes are in; keys with 40 or more tunes in the corpus. Left
# out: slides (12/8) and 3/8, 6/4, 12/8, 3/2 with no type, which the corpus has 0-13 tunes of: the shipped
# model writes no tune in them that passes the checks, with or without a form, and each takes a minute.
FORM_CHOICES = (
    ("reel", "2/2"), ("reel", "2/4"), ("jig", "6/8"), ("hornpipe", "2/2"), ("hornpipe", "2/4"), ("slip jig", "9/8"),
    ("clog", "2/2"), ("strathspey", "4/4"), ("highland fling", "2/2"), ("air", "3/4"), ("walkaround", "2/4"),
    ("waltz", "3/4"), ("gavotte", "2/4"), *((None, meter) for meter in ("6/8", "2/2", "2/4", "4/4", "3/4", "9/8")),
)
FORM_KEYS = ("G", "D", "A", "Em", "Am", "C", "Bb", "F", "Gm", "Amix", "Ador", "Dm")
# The measures of a set of tunes (charrnn.folk.stats), and two of generation's own.
FORM_MEASURES = {
    **MEASURES,
    "passes": lambda rows: 100 * sum(r.passed for r in rows) / len(rows) if rows else float("nan"),
    "s/tune": lambda rows: statistics.median(r.seconds for r in rows) if rows and rows[0].seconds else float("nan"),
}


@dataclass(frozen=True)
class FormRow:
    """One tune as --form counts it."""

    group: str  # "corpus", "before" or "after"
    tune_type: str
    meter: str
    key: str
    form: Form
    copied_bars: float | None  # bars of its longest run shared with a corpus tune (None for corpus tunes)
    passed: bool
    seconds: float = 0.0
    plan: tuple[int, ...] | None = None  # the bars of each part it was held to (None: its own form)


def form_rows(folk: FolkModel, before: FolkModel, num: int, index: NoteIndex, choices: tuple,
              each_round: Callable[[list[FormRow]], None]) -> list[FormRow]:
    """Write tune i with seed i and the i-th of `choices` (type, meter), before (`before`, plain: the model's
    own form, copies allowed) and after (`folk`, held to a form, copies drawn again), one after the other;
    `each_round` sees the rows so far after each round of the choices."""
    rows = []
    for i in range(num):
        if i and i % len(choices) == 0:
            each_round(rows)
        tune_type, meter = choices[i % len(choices)]
        key = FORM_KEYS[(i + i // len(choices)) % len(FORM_KEYS)]
        for group, model, keep in (("before", before, False), ("after", folk, True)):
            tune = model.generate(meter, key, tune_type, seed=i, keep_form=keep, allow_copies=not keep)
            rows.append(FormRow(group, tune_type or "", meter, canonical_key(key) or key, tune.form,
                                index.longest_copy(tune.abc).bars, tune.passed, tune.seconds,
                                tune.plan.bars if tune.plan is not None else None))
    return rows


def corpus_rows(path: Path) -> list[FormRow]:
    """The corpus's tunes as --form counts them."""
    rows = []
    for abc in split_tunes(path.read_text(encoding="utf-8")):
        form = read_form(abc)
        rows.append(FormRow("corpus", form.tune_type, form.meter, form.key, form, None, True))
    return rows


def form_table(rows: list[FormRow], by: str | None, measures: tuple[str, ...], least: int = 5) -> str:
    """A markdown table: for each value of `by` (tune_type, meter, key; None: all tunes) with at least
    `least` generated tunes, each measure for the corpus, before and after."""
    groups = ("corpus", "before", "after")
    values = ["all"] if by is None else sorted({getattr(r, by) for r in rows if r.group == "after"})
    lines = [f"| {by or ''} | measure | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for value in values:
        chosen = {g: [r for r in rows if r.group == g and (by is None or getattr(r, by) == value)] for g in groups}
        if len(chosen["after"]) < least:
            continue
        for measure in measures:
            cells = [FORM_MEASURES[measure](chosen[g]) for g in groups]
            lines.append(f"| {value or '(none)'} | {measure} | " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines)


def interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share of hits in n (95% for z = 1.96), in %: right at 0 and n too."""
    if n == 0:
        return float("nan"), float("nan")
    p, spread = hits / n, z * z / n
    centre, half = (p + spread / 2) / (1 + spread), z * math.sqrt(p * (1 - p) / n + spread / (4 * n)) / (1 + spread)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def eight_bar_table(rows: list[FormRow]) -> str:
    """"Every part 8" by type and meter (the group a plan is drawn from): the corpus's share, the share of the
    plans drawn, the tunes written to them with a 95% interval, their difference from the corpus, and how many
    kept their plan (parts and bars as planned); "outside" marks a corpus share the interval leaves out. A type
    with too few corpus tunes in the meter draws its plans from the meter's layouts over all types: it is set
    beside the meter's share, marked "(meter)"."""
    lines = ["| type, meter | corpus | plans | after (95% interval) | after - corpus | kept the plan |",
             "|---|---|---|---|---|---|"]
    for tune_type, meter in sorted({(r.tune_type, r.meter) for r in rows if r.group == "after" and r.tune_type}):
        group = {g: [r for r in rows if r.group == g and (r.tune_type, r.meter) == (tune_type, meter)]
                 for g in ("corpus", "after")}
        after, corpus = group["after"], group["corpus"]
        meter_wide = len(corpus) < MIN_GROUP_TUNES
        if meter_wide:
            corpus = [r for r in rows if r.group == "corpus" and r.meter == meter]
        eights = sum(r.form.every_part(8) for r in after)
        share, (low, high) = 100 * eights / len(after), interval(eights, len(after))
        expected = FORM_MEASURES["every part 8"](corpus)
        planned = [r.plan for r in after if r.plan is not None]
        plans = 100 * sum(all(bars == 8 for bars in plan) for plan in planned) / len(planned) if planned else math.nan
        kept = 100 * sum(tuple(p.bars for p in r.form.parts) == r.plan for r in after) / len(after)
        verdict = "" if expected != expected or low <= expected <= high else " (outside)"
        lines.append(f"| {tune_type} {meter} ({len(corpus)} / {len(after)}) | {cell(expected)}"
                     f"{' (meter)' if meter_wide else ''} | {cell(plans)} | "
                     f"{cell(share)} ({cell(low)}-{cell(high)}) | {share - expected:+.1f}{verdict} | {cell(kept)} |")
    return "\n".join(lines)


def form_plot(rows: list[FormRow], path: Path) -> None:
    """Bars of the form measures (shares of tunes, %) for the corpus, before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = ("two parts", "parts of 4k bars", "a part of 7 or 9", "every part 8", "ends on tonic", "copies 4+ bars")
    groups = ("corpus", "before", "after")
    figure, axes = plt.subplots(figsize=(9, 3.6))
    for g, group in enumerate(groups):
        chosen = [r for r in rows if r.group == group]
        values = [FORM_MEASURES[m](chosen) for m in measures]
        axes.bar([i + (g - 1) * 0.27 for i in range(len(measures))], values, width=0.27,
                 label=f"{group} ({len(chosen)} tunes)")
    axes.set_xticks(range(len(measures)), measures)
    axes.set_ylabel("% of tunes")
    axes.set_ylim(0, 100)
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title("Folk tunes: form, corpus beside generated (before: the model's own; after: held to a form)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def form_benchmark(folk: FolkModel, before: FolkModel, num: int, corpus: Path, plot: Path | None,
                   choices: tuple = FORM_CHOICES) -> None:
    """Print the --form tables (and write the plot)."""
    index = NoteIndex.load(index_path(corpus)) if index_path(corpus).is_file() else None
    if index is None:
        raise SystemExit(f"no note index beside {corpus}: build the corpus (charrnn corpora build folk)")
    corpus_tunes = corpus_rows(corpus)
    everything = tuple(FORM_MEASURES)

    def so_far(rows: list[FormRow]) -> None:  # a slow run on a busy machine still says something
        print(f"## after {len(rows) // 2} tunes\n" + form_table(corpus_tunes + rows, None, everything), flush=True)

    rows = corpus_tunes + form_rows(folk, before, num, index, choices, so_far)
    print("## all tunes\n" + form_table(rows, None, everything))
    before = [r.seconds for r in rows if r.group == "before"]
    after = [r.seconds for r in rows if r.group == "after"]
    print(f"\ntime per tune: before median {statistics.median(before):.2f}s mean {statistics.mean(before):.2f}s, "
          f"after median {statistics.median(after):.2f}s mean {statistics.mean(after):.2f}s "
          f"(ratio of means {statistics.mean(after) / statistics.mean(before):.2f})")
    parts = ("tunes", "two parts", "parts of 4k bars", "a part of 7 or 9", "every part 8", "ends on tonic")
    print("\n## by type\n" + form_table(rows, "tune_type", parts))
    print("\n## every part 8, by type and meter (corpus / generated tunes)\n" + eight_bar_table(rows))
    print("\n## by meter\n" + form_table(rows, "meter", parts))
    print("\n## by key\n" + form_table(rows, "key", ("tunes", "ends on tonic")))
    if plot is not None:
        form_plot(rows, plot)
        print(f"\nplot: {plot}")


def _load(model_dir: str, corpus: Path) -> FolkModel:
    """A folk model with its corpus facts: those its folder carries, else those beside `corpus` if they are of
    the text it was trained on (a run directory carries none)."""
    folk = FolkModel.load(model_dir)
    if not folk.facts.layouts:
        folk.facts = CorpusFacts.find(folk.config, model_dir, corpus.parent)
    return folk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--num", type=int, default=200, help="tunes to sample (default 200)")
    parser.add_argument("--temperature", type=float, nargs="+", default=[DEFAULT_TEMPERATURE],
                        help=f"one or more (default {DEFAULT_TEMPERATURE})")
    parser.add_argument("--corpus", type=Path, default=corpus_path("folk"), help="default: the built folk corpus")
    parser.add_argument("--rounds", type=int, default=5, help="warm timing rounds (default 5)")
    parser.add_argument("--titles", action="store_true",
                        help="measure only the titles: do they name the tune's type, do they begin with '|'")
    parser.add_argument("--form", action="store_true",
                        help="measure the form of tunes over every type and meter, before and after, beside the corpus")
    parser.add_argument("--plot", type=Path, help="with --form: write the plot here (PNG)")
    parser.add_argument("--before", help="with --form: the model that writes the 'before' tunes (default: MODEL_DIR)")
    parser.add_argument("--types", nargs="+", metavar="TYPE",
                        help="with --form: only these tune types (e.g. reel jig), each in the meters --form gives it")
    args = parser.parse_args()
    choices = tuple(c for c in FORM_CHOICES if args.types is None or c[0] in args.types)
    if not choices:
        parser.error(f"--types: none of {', '.join(args.types)} is one of --form's types "
                     f"({', '.join(dict.fromkeys(t for t, _ in FORM_CHOICES if t))})")
    torch.set_num_threads(1)  # one character at a time is fastest on one thread; the engraver has the other core
    folk = _load(args.model_dir, args.corpus)
    print(f"model {args.model_dir}: {folk.config.model}, torch {torch.__version__}; corpus facts: "
          f"{'layouts' if folk.facts.layouts else 'no layouts'}, {'an index' if folk.facts.index_file else 'no index'}")
    if args.form:
        before = _load(args.before, args.corpus) if args.before else folk
        form_benchmark(folk, before, args.num, args.corpus, args.plot, choices)
        return
    if args.titles:
        for temperature in args.temperature:
            title_agreement(folk, args.num, temperature)
        return
    for temperature in args.temperature:
        for guided in (True, False):
            generated_pass_share(folk, args.num, temperature, guided)
    if args.corpus.is_file():
        corpus_pass_share(args.corpus)
    one_tune_timing(folk, args.model_dir, args.rounds)


if __name__ == "__main__":
    main()
