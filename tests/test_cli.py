"""The command line as users run it: `python -m charrnn ...` (and the `charrnn` script) in a subprocess.

Every subprocess pays for importing torch (~2 s), so the happy paths check several things per call,
and the bad-input cases, which need one process each, run a few at a time in the background.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.cli import build_parser, main
from charrnn.decoding.beam import WORD_END, beam_search, complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.training.trainer import evaluate

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300

# A model small enough that a CLI training run takes a second or two.
TINY_ARGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch-size", "8", "--seq-len", "32",
             "--device", "cpu", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env["CHARRNN_CACHE"] = str(tmp_path_factory.mktemp("cli-cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-cwd")


def run(env: dict[str, str], cwd: Path, *args, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (exe or [sys.executable, "-m", "charrnn"]) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, vocab, cfg = load_model(tiny_run)
    return model, vocab, cfg


@pytest.fixture(scope="module")
def cli(cli_env, workdir):
    """cli(*args): run `python -m charrnn *args` and require success."""
    return lambda *args: ok(run(cli_env, workdir, *args))


# --- entry points -------------------------------------------------------------------------------


def test_console_script_and_module_help(cli_env, workdir):
    exe = shutil.which("charrnn")
    assert exe, "the charrnn console script is not on PATH (pip install -e .)"
    result = ok(run(cli_env, workdir, "--help", exe=[exe]))
    for command in ("train", "sample", "complete", "eval"):
        assert command in result.stdout
    # No command: argparse's usage error, exit 2.
    result = run(cli_env, workdir)
    assert result.returncode == 2 and "usage" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("argv", "says"), [
    (["train", "x.txt", "--out", "o", "--hiden", "5"], "charrnn train: error: unrecognized arguments: --hiden 5 "
                                                       "(did you mean --hidden?)"),
    (["seq2seq", "translate", "m", "w", "--bem", "3"], "charrnn seq2seq translate: error: unrecognized arguments: "
                                                       "--bem 3 (did you mean --beam?)"),
    (["sample", "m", "extra"], "charrnn sample: error: unrecognized arguments: extra\n")])
def test_a_mistyped_flag_is_refused_by_its_command_with_the_nearest_flag(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and says in err and "usage: charrnn " + argv[0] in err


def test_export_help_describes_its_arguments(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    shown = capsys.readouterr().out
    assert "the training run to export" in shown and "the model folder to write" in shown and "precision" in shown


# --- sample -------------------------------------------------------------------------------------


def test_sample_seeded_json_plain_and_stream_agree(cli, tiny_run):
    base = ["sample", tiny_run, "--prime", "ROMEO:", "--length", 60, "--seed", 3, "--num", 3]
    data = json.loads(cli(*base, "--json").stdout)
    assert set(data) == {"prime", "samples", "chars_per_s"}
    assert data["prime"] == "ROMEO:"
    assert [s["seed"] for s in data["samples"]] == [3, 4, 5]  # sample i uses seed + i
    texts = [s["text"] for s in data["samples"]]
    assert len(texts) == 3 and all(len(t) == 60 for t in texts)
    assert len(set(texts)) == 3  # different seeds, different text
    # The same seed in other processes, printed plainly and streamed: the same samples, the same bytes.
    plain = cli(*base)
    assert plain.stdout == "\n\n".join("ROMEO:" + t for t in texts) + "\n"
    assert "chars/s" in plain.stderr
    stream = cli(*base, "--stream")
    assert stream.stdout == plain.stdout


def test_sample_plain_defaults(cli, tiny_run, tiny):
    _, vocab, _ = tiny
    result = cli("sample", tiny_run, "--length", 40)
    assert result.stdout.endswith("\n")
    text = result.stdout[:-1]
    assert len(text) == 40 and set(text) <= set(vocab.chars)  # no prime: 40 generated characters


def test_sample_temperature_zero_is_greedy(cli, tiny_run, tiny):
    model, vocab, _ = tiny
    data = json.loads(cli("sample", tiny_run, "--prime", "KING:", "--length", 50, "--temperature", 0,
                          "--num", 2, "--json").stdout)
    expected = "".join(generate(model, vocab, prepare_prompt(model, vocab, "KING:"), 50, SamplingSettings(0)))
    assert [s["text"] for s in data["samples"]] == [expected, expected]


@pytest.mark.parametrize(("flags", "kwargs"), [
    (["--top-k", 3], {"temperature": 0.8, "top_k": 3}),
    (["--top-p", 0.5, "--temperature", 1.3], {"temperature": 1.3, "top_p": 0.5}),
    (["--repetition-penalty", 1.5], {"temperature": 0.8, "repetition_penalty": 1.5}),
])
def test_sample_top_k_and_top_p_reach_the_sampler(cli, tiny_run, tiny, flags, kwargs):
    model, vocab, _ = tiny
    data = json.loads(cli("sample", tiny_run, "--prime", "The ", "--length", 80, "--seed", 9, "--num", 2,
                          "--json", *flags).stdout)
    prompt = prepare_prompt(model, vocab, "The ")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs: the same arithmetic, the same draws
    try:
        expected = ["".join(generate(model, vocab, prompt, 80, SamplingSettings(seed=s, **kwargs))) for s in (9, 10)]
        unrestricted = "".join(generate(model, vocab, prompt, 80, SamplingSettings(kwargs["temperature"], seed=9)))
    finally:
        torch.set_num_threads(torch_threads)
    assert [s["text"] for s in data["samples"]] == expected
    assert expected[0] != unrestricted  # the flag changed what was drawn


def test_sample_beam_json(cli, tiny_run, tiny):
    model, vocab, _ = tiny
    data = json.loads(cli("sample", tiny_run, "--prime", "ROMEO:", "--beam", 4, "--num", 3, "--length", 12,
                          "--json").stdout)
    assert set(data) == {"prime", "beams", "ms"}
    beams = data["beams"]
    assert len(beams) == 3
    assert all(set(b) == {"text", "logprob", "score"} for b in beams)
    assert len({b["text"] for b in beams}) == 3
    expected = beam_search(model, vocab, prepare_prompt(model, vocab, "ROMEO:"), 4, 12, 3, length_penalty=1.0)
    assert [b["text"] for b in beams] == [h.text for h in expected]
    for b, h in zip(beams, expected, strict=True):
        assert b["logprob"] == pytest.approx(h.logprob, abs=1e-4)
        assert b["logprob"] < 0
        assert b["score"] == pytest.approx(b["logprob"] / len(b["text"]))  # default --length-penalty 1
    assert [b["score"] for b in beams] == sorted((b["score"] for b in beams), reverse=True)


def test_sample_stop_strings(cli, tiny_run):
    data = json.loads(cli("sample", tiny_run, "--prime", "ROMEO:", "--length", 300, "--seed", 1, "--num", 3,
                          "--stop", " ", "--stop", "\n", "--json").stdout)
    for sample in data["samples"]:
        text = sample["text"]
        assert text[-1] in " \n", text
        assert " " not in text[:-1] and "\n" not in text[:-1]


# --- complete and eval --------------------------------------------------------------------------


def test_a_megabyte_prime_from_a_file_or_stdin(cli, cli_env, workdir, tiny_run, tmp_path):
    """Too long for a command line (Linux allows 128 KB an argument): read from a file, or from stdin."""
    prime = "To be, or not to be, that is the question. " * 25_000  # ~1.1 MB
    path = tmp_path / "prime.txt"
    path.write_text(prime, encoding="utf-8")
    sampled = json.loads(cli("sample", tiny_run, "--prime-file", path, "--length", 5, "--seed", 1, "--json").stdout)
    assert sampled["prime"] == prime and len(sampled["samples"][0]["text"]) == 5
    completed = subprocess.run([sys.executable, "-m", "charrnn", "complete", str(tiny_run), "--prefix-file", "-",
                                "--json"], input=prime[:-3], capture_output=True, text=True, env=cli_env, cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["prefix"] == prime[:-3]


def test_complete_json(cli, tiny_run, tiny):
    model, vocab, _ = tiny
    prefix = "ROMEO:\nI will not th"
    t0 = time.perf_counter()
    data = json.loads(cli("complete", tiny_run, prefix, "--json", "--num", 3).stdout)
    wall_ms = (time.perf_counter() - t0) * 1000
    assert set(data) == {"prefix", "completions", "ms"}
    assert data["prefix"] == prefix and 0 < data["ms"] < wall_ms  # the search's time, within the command's
    items = data["completions"]
    assert 1 <= len(items) <= 3
    assert all(set(c) == {"text", "logprob", "prob", "ended"} for c in items)
    assert all(0 < c["prob"] <= 1 and c["text"] and not set(c["text"]) & WORD_END for c in items)
    assert [c["prob"] for c in items] == sorted((c["prob"] for c in items), reverse=True)
    expected = complete(model, vocab, prepare_prompt(model, vocab, prefix), 3)
    assert [c["text"] for c in items] == [c.text for c in expected]


def test_eval_json_on_the_training_text(cli, tiny_run, tiny, small_text):
    model, vocab, _ = tiny
    data = json.loads(cli("eval", tiny_run, small_text, "--json").stdout)
    assert {"loss", "bpc", "chars"} <= set(data)
    text = small_text.read_text(encoding="utf-8")
    assert data["chars"] == len(text) - 1  # every character but the first is predicted once
    assert data["bpc"] == pytest.approx(data["loss"] / math.log(2), rel=1e-12)
    assert 0 < data["loss"] < math.log(len(vocab))  # it learned something
    loss, n = evaluate(model, vocab.encode(text), 32, 256)
    assert n == data["chars"]
    assert data["loss"] == pytest.approx(loss, rel=1e-4)


def test_eval_shows_a_progress_bar_on_a_terminal_and_keeps_json_clean(cli, cli_env, workdir, tiny_run, small_text):
    assert cli("eval", tiny_run, small_text, "--json").stderr == ""  # no terminal: no bar
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    shown = bytearray()

    def read_terminal() -> None:
        with contextlib.suppress(OSError):  # EIO once the terminal side is closed
            while chunk := os.read(controller, 1 << 16):
                shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    try:
        result = subprocess.run([sys.executable, "-m", "charrnn", "eval", str(tiny_run), str(small_text), "--json",
                                 "--batch-size", "4", "--seq-len", "64"], stdout=subprocess.PIPE, stderr=terminal,
                                env=cli_env, cwd=workdir, timeout=TIMEOUT)
    finally:
        os.close(terminal)
        reader.join(10)
        os.close(controller)
    assert result.returncode == 0
    assert isinstance(json.loads(result.stdout), dict)  # stdout is one JSON object, nothing else
    assert re.search(rb"eval: +\d+%\|.*char", shown), bytes(shown[-300:])


# --- train --------------------------------------------------------------------------------------


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_train_then_resume_a_finished_run(cli, small_text, tmp_path):
    out = tmp_path / "run"
    result = cli("train", small_text, "--out", out, "--max-steps", 30, "--eval-every", 10, *TINY_ARGS)
    assert "finished at step 30" in result.stdout
    assert result.stderr == ""  # --quiet: no progress bar
    for name in ("config.json", "model.safetensors", "latest.safetensors", "metrics.jsonl"):
        assert (out / name).is_file(), name
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [10, 20, 30]
    for m in metrics:
        assert {"step", "train_loss", "val_loss", "chars_per_s", "elapsed"} <= set(m)
        assert math.isfinite(m["train_loss"]) and math.isfinite(m["val_loss"]) and m["chars_per_s"] > 0
    assert [m["elapsed"] for m in metrics] == sorted(m["elapsed"] for m in metrics)
    config = json.loads((out / "config.json").read_text())
    assert config["best_val_loss"] == pytest.approx(min(m["val_loss"] for m in metrics), abs=1e-5)
    assert config["step"] == 30 and config["status"] == "finished"
    assert config["model"]["hidden"] == 16 and config["model"]["layers"] == 1

    before = snapshot(out)
    result = cli("train", "--out", out, "--resume")
    assert "is finished: it reached --max-steps 30 (step 30," in result.stdout
    assert "--resume --max-steps 60" in result.stdout and result.stderr == ""  # no empty progress bars
    after = snapshot(out)
    for name in ("model.safetensors", "latest.safetensors", "metrics.jsonl"):
        assert after[name] == before[name], f"{name} changed: the resumed run trained again"
    assert json.loads((out / "config.json").read_text())["step"] == 30


@pytest.mark.slow
def test_resume_says_a_run_that_reached_its_epochs_is_finished_and_extends_it(cli, small_text, tmp_path):
    out = tmp_path / "epochs"
    cli("train", small_text, "--out", out, "--epochs", "0.05", "--eval-every", 1_000_000, *TINY_ARGS)
    steps = json.loads((out / "config.json").read_text())["step"]
    result = cli("train", "--out", out, "--resume", "--quiet")
    assert "is finished: it reached --epochs 0.05 " in result.stdout and "--resume --epochs 0.1" in result.stdout
    result = cli("train", "--out", out, "--resume", "--epochs", "0.1", "--quiet")
    assert "finished at step" in result.stdout and "is finished" not in result.stdout
    assert json.loads((out / "config.json").read_text())["step"] > steps


@pytest.mark.slow
def test_train_time_budget_stops_by_itself(cli, small_text, tmp_path):
    out = tmp_path / "budget"
    result = cli("train", small_text, "--out", out, "--time-budget", "2s", "--eval-every", 1_000_000, *TINY_ARGS)
    assert "time budget reached" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "time budget reached"
    assert config["training_time_s"] >= 2.0
    assert config["step"] > 0
    metrics = read_metrics(out)
    assert len(metrics) == 1 and metrics[0]["step"] == config["step"]  # evaluated once, at the end
    assert (out / "model.safetensors").is_file()
    # Resuming a run whose budget is spent trains no more.
    result = cli("train", "--out", out, "--resume")
    assert f"is finished: it reached --time-budget 2s (step {config['step']:,}," in result.stdout
    assert "--resume --time-budget 4s" in result.stdout
    assert read_metrics(out) == metrics


# --- bad input: one line on stderr, no traceback --------------------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, tiny_run, small_text):
    """Files for the bad-input cases, and the commands keyed by case name."""
    d = tmp_path_factory.mktemp("bad")
    (d / "invalid.txt").write_bytes(b"hello world\n" * 50 + b"\xff\xfe more text\n" * 50)
    (d / "empty.txt").write_bytes(b"")
    (d / "short.txt").write_text("To be, or not to be, that is the question.\n" * 3, encoding="utf-8")
    (d / "norun").mkdir()
    (d / "one-char.txt").write_text("a", encoding="utf-8")
    (d / "binary.bin").write_bytes(bytes(range(256)) * 64)  # a byte >= 0x80 at offset 128
    (d / "megabyte-unknown.txt").write_text("To be, or not to be \u2603 " * 40_000, encoding="utf-8")  # ~1 MB
    existing = d / "existing"
    shutil.copytree(tiny_run, existing)
    train = ["train", "--max-steps", 5, *TINY_ARGS]
    sample = ["sample", tiny_run, "--length", 20]
    cases = {
        "missing-model-dir": (["sample", d / "no-such-dir"], 1, "no such run directory"),
        "file-not-run-dir": (["sample", small_text], 1, str(small_text)),
        "unknown-prime": ([*sample, "--prime", "snow\u2603man"], 1, "'\u2603'"),
        "temperature-negative": ([*sample, "--temperature", -1], 1, "temperature"),
        "temperature-nan": ([*sample, "--temperature", "nan"], 2, "--temperature"),
        "top-k-0": ([*sample, "--top-k", 0], 1, "top-k"),
        "top-k-too-big": ([*sample, "--top-k", 10000], 1, "top-k"),
        "top-p-0": ([*sample, "--top-p", 0], 1, "top-p"),
        "top-p-1.5": ([*sample, "--top-p", 1.5], 1, "top-p"),
        "repetition-penalty-0": ([*sample, "--repetition-penalty", 0], 1, "repetition penalty"),
        "beam-wider-than-vocab": ([*sample, "--beam", 10000], 1, "beam"),
        "length-0": (["sample", tiny_run, "--length", 0], 1, "length"),
        "length-huge": (["sample", tiny_run, "--length", 1_000_000_000], 1, "length"),
        "invalid-utf8": ([*train, d / "invalid.txt", "--out", d / "o1"], 1, "byte offset 600"),
        "empty-corpus": ([*train, d / "empty.txt", "--out", d / "o2"], 1, "empty"),
        "corpus-too-short": ([*train, d / "short.txt", "--out", d / "o3", "--val-frac", 0.05], 1, "at least 264"),
        "out-exists": ([*train, small_text, "--out", existing], 1, "already holds a run"),
        "resume-no-run": (["train", "--out", d / "norun", "--resume", "--quiet"], 1, "norun"),
        "eval-missing-file": (["eval", tiny_run, d / "missing.txt"], 1, "missing.txt"),
        "one-char-corpus": ([*train, d / "one-char.txt", "--out", d / "o5"], 1, "at least"),
        "binary-corpus": ([*train, d / "binary.bin", "--out", d / "o6"], 1, "byte offset 128"),
        "megabyte-prime-unknown": (["sample", tiny_run, "--prime-file", d / "megabyte-unknown.txt"], 1, "'\u2603'"),
        "prime-file-missing": (["sample", tiny_run, "--prime-file", d / "missing.txt"], 1, "missing.txt"),
        "prime-file-binary": (["sample", tiny_run, "--prime-file", d / "binary.bin"], 1, "byte offset 128"),
        "complete-no-prefix": (["complete", tiny_run], 1, "give the prefix"),
        "time-budget-5x": ([*train, small_text, "--out", d / "o4", "--time-budget", "5x"], None, "5x"),
    }
    return d, existing, snapshot(existing), cases


@pytest.fixture(scope="module")
def bad_results(bad_inputs, cli_env, workdir) -> dict[str, Future]:
    """Start every bad-input command at once (a few processes at a time); tests wait for their own."""
    _, _, _, cases = bad_inputs
    pool = ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1))
    futures = {name: pool.submit(run, cli_env, workdir, *args) for name, (args, _, _) in cases.items()}
    yield futures
    pool.shutdown(wait=True)


BAD_CASES = [
    "missing-model-dir", "file-not-run-dir", "unknown-prime", "temperature-negative", "temperature-nan",
    "top-k-0", "top-k-too-big", "top-p-0", "top-p-1.5", "repetition-penalty-0", "beam-wider-than-vocab",
    "length-0", "length-huge",
    "invalid-utf8", "empty-corpus", "corpus-too-short", "out-exists", "resume-no-run", "eval-missing-file",
    "time-budget-5x", "one-char-corpus", "binary-corpus", "megabyte-prime-unknown", "prime-file-missing",
    "prime-file-binary", "complete-no-prefix",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_fails_cleanly(case, bad_inputs, bad_results):
    _, _, _, cases = bad_inputs
    _, code, needle = cases[case]
    result = bad_results[case].result()
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert result.returncode != 0
    assert result.stdout == ""
    if code is None:  # either kind of clean failure will do
        code = 2 if stderr.startswith("usage") else 1
    if code == 2:  # argparse: usage, then the error line
        assert result.returncode == 2, stderr
        assert stderr.startswith("usage:"), stderr
        assert needle in stderr.splitlines()[-1], stderr
    else:
        assert result.returncode == 1, stderr
        lines = stderr.splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith("charrnn: error: "), stderr
        assert needle in lines[0], stderr


def test_bad_input_leaves_an_existing_run_unchanged(bad_inputs, bad_results):
    _, existing, before, _ = bad_inputs
    assert bad_results["out-exists"].result().returncode == 1
    assert snapshot(existing) == before


def test_bad_input_creates_no_run_directories(bad_inputs, bad_results):
    d, _, _, _ = bad_inputs
    for name in ("invalid-utf8", "empty-corpus", "one-char-corpus", "binary-corpus"):
        bad_results[name].result()
    assert not any((d / out).exists() for out in ("o1", "o2", "o5", "o6"))


def test_eval_on_the_val_split_reproduces_the_training_val_loss(cli, tiny_run, small_text, tmp_path):
    """`eval --split val` cuts the file as training did, so it measures what best_val_loss recorded."""
    shipped = tmp_path / "shipped"
    exported = cli("export", tiny_run, shipped).stdout
    best = json.loads((tiny_run / "config.json").read_text())["best_val_loss"]
    assert "parameters" in exported and f"best val loss {best:.4f} nats/char (" in exported
    assert str(best) not in exported  # rounded, not 1.7774497567084322
    result = json.loads(cli("eval", shipped, small_text, "--split", "val", "--json").stdout)
    assert result["split"] == "val" and result["chars"] == 10_000 - 1
    assert result["loss"] == pytest.approx(best, abs=2e-3)  # half-precision weights: nearly the same
