"""--size auto: the rule (with made-up speeds), the speed cache, and the command line recording and resuming it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from charrnn.cli import main
from charrnn.errors import CharRNNError
from charrnn.training import autosize
from charrnn.training.autosize import Shape, Speeds, choose
from charrnn.training.config import TrainConfig
from charrnn.training.defaults import lm_defaults

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def fake_speed(cell: str, shape: Shape, vocab: int, device) -> float:
    """A CPU-like device: chars/s inversely proportional to the parameters (1x384: ~10k), the same at any batch."""
    return 7e9 / shape.params(cell, vocab)


@pytest.fixture
def timed(monkeypatch) -> list[Shape]:
    """Replace timing with fake_speed; the list records every shape that was 'timed'."""
    calls: list[Shape] = []

    def measure(cell, shape, vocab, device):
        calls.append(shape)
        return fake_speed(cell, shape, vocab, device)

    monkeypatch.setattr(autosize, "measure", measure)
    return calls


def pick(budget: float, train_chars: int, tmp_path: Path, keep=(), **cfg) -> autosize.Choice:
    speeds = Speeds(tmp_path / "cache", "test machine", CPU)
    return choose(TrainConfig(time_budget=budget, **cfg), keep, train_chars, 65, speeds)


def test_a_longer_budget_buys_a_larger_model_and_a_large_corpus_no_dropout(timed, tmp_path):
    sizes = [pick(b, 1_000_000, tmp_path) for b in (30, 120, 600, 3600)]
    params = [Shape(c.layers, c.hidden, c.embed, c.batch_size, c.seq_len).params("lstm", 65) for c in sizes]
    assert params == sorted(params) and params[0] < params[-1]
    short = sizes[1]
    assert short.dropout == 0 and short.est_epochs < 3 and short.batch_size == autosize.BATCH
    lr = f"{autosize.lr_for(short.layers, short.hidden):.0e}".replace("e-0", "e-")
    assert short.line().startswith(f"auto: LSTM {short.layers}x{short.hidden}, batch 32x64, lr {lr}, dropout 0 for 2m "
                                   "on 1.0M chars (est. ")


def test_a_tiny_corpus_gets_a_small_model_dropout_and_enough_steps(timed, tmp_path):
    train_chars = 6_000  # a 6.7 KB text less its val share
    given = {"corpus": str(tmp_path / "tiny.txt")}
    Path(given["corpus"]).write_text("x" * 6_700)
    lm_defaults(given)  # no length given: the default follows the corpus size
    assert given["size"] == "auto" and given["time_budget"] == autosize.DEFAULT_MIN_S
    choice = pick(given["time_budget"], train_chars, tmp_path)
    assert (choice.layers, choice.hidden) == autosize.LADDER[0][:2]
    assert choice.dropout >= 0.2 and choice.est_steps >= 1000 and choice.batch_size * 65 <= train_chars


def test_a_budget_too_short_for_any_model_names_the_smallest_that_works(timed, tmp_path):
    with pytest.raises(CharRNNError, match=r"too short for any model .* give --time-budget (\d+)s or more") as err:
        pick(0.02, 1_000_000, tmp_path)
    need = float(str(err.value).rsplit("--time-budget ", 1)[1].split("s")[0])
    choice = pick(need, 1_000_000, tmp_path)  # speeds are cached now: no timing to pay for
    assert choice.est_steps >= autosize.MIN_STEPS and choice.timing_s == 0


def test_explicit_flags_win_and_auto_picks_the_rest(timed, tmp_path):
    choice = pick(600, 1_000_000, tmp_path, keep={"hidden", "lr", "batch_size"}, hidden=96, lr=1e-3, batch_size=8)
    seq = autosize.SEQ_LEN if choice.layers == 1 else autosize.DEEP_SEQ_LEN
    assert (choice.hidden, choice.lr, choice.batch_size, choice.seq_len) == (96, 1e-3, 8, seq)
    choice = pick(600, 1_000_000, tmp_path, keep={"layers"}, layers=2)
    assert choice.layers == 2 and choice.lr == autosize.lr_for(2, choice.hidden) < autosize.LR


def test_a_device_with_room_to_spare_gets_a_bigger_batch(monkeypatch, tmp_path):
    monkeypatch.setattr(autosize, "measure", lambda cell, shape, vocab, device: 1e9 * shape.batch / 1e3 / shape.hidden)
    assert pick(120, 1_000_000, tmp_path).batch_size > autosize.BATCH


def test_speeds_are_timed_once_per_device_and_shape(timed, tmp_path):
    shape = Shape(1, 64, 16, 32, 64)
    first = Speeds(tmp_path, "machine A", CPU)
    speed = first.get("lstm", shape, 65)
    assert len(timed) == 1 and first.timing_s >= 0
    again = Speeds(tmp_path, "machine A", CPU)
    assert again.get("lstm", shape, 70) == pytest.approx(speed, rel=1e-3)  # 65 and 70 share an entry
    assert len(timed) == 1 and again.timing_s == 0
    Speeds(tmp_path, "machine B", CPU).get("lstm", shape, 65)
    Speeds(tmp_path, "machine A", CPU).get("lstm", Shape(1, 64, 16, 64, 64), 65)
    assert len(timed) == 3
    assert set(json.loads((tmp_path / autosize.SPEEDS).read_text())) == {f"machine {m}, torch {torch.__version__}"
                                                                       for m in "AB"}


def test_real_timing_takes_a_moment_and_gives_a_speed():
    started = time.perf_counter()
    speed = autosize.measure("lstm", Shape(1, 32, 8, 4, 16), 64, CPU)
    assert 0 < speed < math.inf and time.perf_counter() - started < 30  # a loaded 2-core machine: seconds


def train_cli(*args) -> int:
    return main(["train", *map(str, args), "--threads", "1", "--device", "cpu", "--quiet"])


@pytest.mark.slow
def test_the_choice_is_recorded_and_resume_keeps_it(timed, small_text, tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert train_cli(small_text, "--out", out, "--time-budget", "2s", "--cache-dir", cache, "--eval-every", 10**6) == 0
    line = capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    train, auto = config["train"], config["train"]["auto"]
    assert train["size"] == "auto" and f"auto: LSTM {auto['layers']}x{auto['hidden']}, batch " in line
    assert (train["layers"], train["hidden"], train["lr"], train["dropout"]) == \
           (auto["layers"], auto["hidden"], auto["lr"], auto["dropout"])
    assert config["model"]["hidden"] == auto["hidden"] and config["training_time_s"] >= 2
    timed.clear()
    assert train_cli("--out", out, "--resume", "--time-budget", "4s", "--cache-dir", cache) == 0
    resumed = json.loads((out / "config.json").read_text())
    assert not timed and resumed["train"]["auto"] == auto and resumed["step"] > config["step"]
    assert "auto:" not in capsys.readouterr().err
    assert train_cli("--out", out, "--resume", "--time-budget", "8s", "--layers", auto["layers"] + 1) == 1
    assert "cannot change --layers" in capsys.readouterr().err


@pytest.mark.slow
def test_a_size_flag_turns_the_default_auto_off_unless_auto_is_asked_for(timed, small_text, tmp_path):
    cache = tmp_path / "cache"
    common = ["--time-budget", "1s", "--cache-dir", cache, "--eval-every", 10**6, "--embed", "8"]
    assert train_cli(small_text, "--out", tmp_path / "off", "--hidden", "24", *common) == 0
    off = json.loads((tmp_path / "off" / "config.json").read_text())["train"]
    assert off["size"] is None and off["auto"] is None and (off["hidden"], off["layers"]) == (24, 2)
    assert train_cli(small_text, "--out", tmp_path / "on", "--size", "auto", "--hidden", "24", *common) == 0
    on = json.loads((tmp_path / "on" / "config.json").read_text())["train"]
    assert on["size"] == "auto" and on["hidden"] == 24 and on["embed"] == 8
    assert on["lr"] == autosize.lr_for(on["layers"], 24)
    assert train_cli(small_text, "--out", tmp_path / "tiny", "--size", "tiny", *common) == 0
    tiny = json.loads((tmp_path / "tiny" / "config.json").read_text())["train"]
    assert (tiny["layers"], tiny["hidden"], tiny["embed"]) == (1, 64, 8)  # the preset, --embed on top


def test_a_budget_too_short_is_one_line_on_the_command_line(small_text, tmp_path):
    result = subprocess.run([sys.executable, "-m", "charrnn", "train", str(small_text), "--out", str(tmp_path / "r"),
                             "--time-budget", "0.05s", "--threads", "1", "--cache-dir", str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("charrnn: error: a time budget of 0.05s is too short")


def test_a_stack_of_layers_trains_on_longer_streams_as_many_characters_a_step(timed, tmp_path):
    deep = pick(600, 1_000_000, tmp_path, keep={"layers"}, layers=2)
    assert (deep.batch_size, deep.seq_len) == (autosize.BATCH // 2, autosize.DEEP_SEQ_LEN)
    fixed = pick(600, 1_000_000, tmp_path, keep={"layers", "seq_len"}, layers=2, seq_len=50)
    assert (fixed.batch_size, fixed.seq_len) == (autosize.BATCH, 50)


def test_wider_and_deeper_shapes_get_a_lower_learning_rate():
    assert autosize.lr_for(1, 256) == autosize.LR > autosize.lr_for(1, 512) > autosize.lr_for(2, 512)
    assert autosize.lr_for(2, 512) == 3e-3  # what beat 6e-3 for 2x512 in the 60-minute grid


def test_longer_budgets_need_fewer_characters_per_parameter():
    budgets = [30, autosize.REFERENCE_S, 600, 3600]
    ratios = [autosize.chars_per_param(b) for b in budgets]
    assert ratios == sorted(ratios, reverse=True) and ratios[1] == autosize.CHARS_PER_PARAM
    assert autosize.chars_per_param(-5) > 0  # timing longer than the budget: still a number, not a complex one


# --- a cache poisoned by a busy machine heals -----------------------------------------------------------


def poison(cache: Path, cell: str, vocab: int, figures: dict[Shape, float]) -> None:
    """Write `figures` into the cache as if a busy hour had timed them."""
    key = f"test machine, torch {torch.__version__}"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / autosize.SPEEDS).write_text(json.dumps({key: {s.key(cell, vocab): v for s, v in figures.items()}}))


def ladder_shape(layers: int, hidden: int) -> Shape:
    embed = next(e for lay, h, e in autosize.LADDER if (lay, h) == (layers, hidden))
    return Shape(layers, hidden, embed, autosize.BATCH, autosize.SEQ_LEN)


def test_a_figure_the_others_contradict_is_timed_again(timed, tmp_path):
    clean = pick(120, 1_000_000, tmp_path / "clean")
    # What the issue found after a busy hour: 1x256 at 526 chars/s beside 1x192 at 4,113 and 1x64 at 10,241.
    # fake_speed gives 1x192 and 1x64 ~26k and ~270k: their cached figures are slow but agree with each other.
    right = {s: fake_speed("lstm", s, 128, CPU) for s in (ladder_shape(1, 64), ladder_shape(1, 192))}
    poison(tmp_path / "cache", "lstm", 128, {**right, ladder_shape(1, 256): 526.0})
    timed.clear()
    choice = pick(120, 1_000_000, tmp_path)
    assert choice == replace(clean, timing_s=choice.timing_s)
    assert ladder_shape(1, 256) in timed and ladder_shape(1, 192) not in timed


def test_a_larger_shape_faster_than_a_smaller_one_gets_the_smaller_timed_again(timed, tmp_path):
    small, large = ladder_shape(1, 128), ladder_shape(1, 256)
    poison(tmp_path, "lstm", 128, {large: fake_speed("lstm", large, 128, CPU), small: 500.0})
    speeds = Speeds(tmp_path, "test machine", CPU)
    assert speeds.get("lstm", small, 65) == pytest.approx(fake_speed("lstm", small, 128, CPU), rel=1e-3)
    assert timed == [small]
    assert speeds.get("lstm", large, 65) == pytest.approx(fake_speed("lstm", large, 128, CPU), rel=1e-3)
    assert timed == [small]  # the larger one's figure agrees with the rest: kept


@pytest.mark.parametrize("budget, chars, slower", [
    (120, 1_000_000, 1000),  # so slow that every budget would be refused on them
    # slow enough to pick a tiny model for 45 minutes, not to refuse: what a busy hour left on this machine
    # (a 45m run on 12M characters got 1x192 where 2x512 belongs)
    (2700, 12_000_000, 300),
])
def test_a_cache_slow_throughout_is_caught_by_the_chosen_shapes_own_timing(timed, tmp_path, budget, chars, slower):
    clean = pick(budget, chars, tmp_path / "clean")
    # Every figure too slow, consistently (timed while the machine was busy): they trust each other.
    poison(tmp_path / "cache", "lstm", 128,
           {ladder_shape(*s[:2]): fake_speed("lstm", ladder_shape(*s[:2]), 128, CPU) / slower
            for s in autosize.LADDER if s[0] == 1})
    timed.clear()
    choice = pick(budget, chars, tmp_path)
    assert choice == replace(clean, timing_s=choice.timing_s)
    # First timed: the small shape the slow figures chose (or would have refused with), caught slow.
    assert timed[0].params("lstm", 65) < Shape(clean.layers, clean.hidden, clean.embed, clean.batch_size,
                                               clean.seq_len).params("lstm", 65)


def test_a_right_cache_costs_one_timing_the_chosen_shapes(timed, tmp_path):
    clean = pick(600, 1_000_000, tmp_path)
    timed.clear()
    choice = pick(600, 1_000_000, tmp_path)
    assert choice == replace(clean, timing_s=choice.timing_s)
    assert timed == [Shape(clean.layers, clean.hidden, clean.embed, clean.batch_size, clean.seq_len)]


def test_a_runs_own_speed_corrects_the_cached_figure(tmp_path):
    shape = ladder_shape(1, 256)
    poison(tmp_path, "lstm", 128, {shape: 1000.0})
    speeds = Speeds(tmp_path, "test machine", CPU)
    assert not speeds.correct("lstm", shape, 65, 1400.0)  # within DRIFT: a run's noise, kept
    assert speeds.correct("lstm", shape, 65, 30_000.0)
    assert Speeds(tmp_path, "test machine", CPU).get("lstm", shape, 65) == 30_000.0
    assert not speeds.correct("lstm", ladder_shape(1, 64), 65, 5.0)  # nothing cached: nothing to correct


@pytest.mark.slow
def test_a_poisoned_cache_is_repaired_within_one_run(small_text, tmp_path):
    cache, args = tmp_path / "cache", ("--time-budget", "10s", "--eval-every", 50)
    assert train_cli(small_text, "--out", tmp_path / "quiet", "--cache-dir", cache, *args) == 0
    path = cache / autosize.SPEEDS
    figures = json.loads(path.read_text())
    (machine, real), = figures.items()
    path.write_text(json.dumps({machine: {k: v / 10 for k, v in real.items()}}))  # a busy hour's figures
    assert train_cli(small_text, "--out", tmp_path / "busy", "--cache-dir", cache, *args) == 0
    healed = json.loads(path.read_text())[machine]
    run = json.loads((tmp_path / "busy" / "config.json").read_text())
    auto, vocab = run["train"]["auto"], autosize.cached_vocab(run["model"]["vocab_size"])
    chosen = Shape(*(auto[k] for k in ("layers", "hidden", "embed", "batch_size", "seq_len"))).key("lstm", vocab)
    assert healed[chosen] > 3 * real[chosen] / 10  # the shape the run trained: timed again, or corrected by the run


def test_the_corpus_is_checked_before_sizing(tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("a")
    poison(tmp_path / "cache", "lstm", 64, {ladder_shape(1, 64): 1.0})  # would refuse any budget
    assert train_cli(one, "--out", tmp_path / "r", "--time-budget", "45s", "--cache-dir", tmp_path / "cache") == 1
    assert "too few for a val split" in capsys.readouterr().err
