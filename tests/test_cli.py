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
from charrnn.decoding.suggest import SuggestSettings, suggest
from charrnn.models.rnn import serving_precision
from charrnn.training.lm import evaluate

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300

# A model small enough that a CLI training run takes a second or two.
TINY_ARGS = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch-size", "8", "--seq-len", "32",
             "--device", "cpu", "--threads", "1", "--quiet"]


@contextlib.contextmanager
def as_the_cli(model):
    """The library at the command line's arithmetic: one thread and its default step precision (int8 on x86)."""
    threads, precision = torch.get_num_threads(), model.step_precision
    torch.set_num_threads(1)
    model.step_precision = serving_precision(model.device)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        model.step_precision = precision


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
    plain = cli(*base)  # each sample after a line that says which, so a pipe can tell them apart
    assert plain.stdout == "".join(f"--- sample {i + 1} of 3 (seed {3 + i}) ---\nROMEO:{t}\n"
                                   for i, t in enumerate(texts))
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
    with as_the_cli(model):
        expected = "".join(generate(model, vocab, prepare_prompt(model, vocab, "KING:"), 50, SamplingSettings(0)))
    assert [s["text"] for s in data["samples"]] == [expected, expected]


@pytest.mark.parametrize(("flags", "kwargs"), [
    (["--top-k", 3], {"temperature": 0.8, "top_k": 3}),
    (["--top-p", 0.5, "--temperature", 1.3], {"temperature": 1.3, "top_p": 0.5}),
    (["--repetition-penalty", 1.5], {"temperature": 0.8, "repetition_penalty": 1.5}),
    (["--no-repeat", 3, "--temperature", 0.3], {"temperature": 0.3, "no_repeat": 3}),
    (["--top-k", 0], {"temperature": 0.8}),  # 0 = off, as the app's slider says
])
def test_sample_top_k_and_top_p_reach_the_sampler(cli, tiny_run, tiny, flags, kwargs):
    model, vocab, _ = tiny
    data = json.loads(cli("sample", tiny_run, "--prime", "The ", "--length", 80, "--seed", 9, "--num", 2,
                          "--json", *flags).stdout)
    with as_the_cli(model):  # the same arithmetic, the same draws
        prompt = prepare_prompt(model, vocab, "The ")
        expected = ["".join(generate(model, vocab, prompt, 80, SamplingSettings(seed=s, **kwargs))) for s in (9, 10)]
        unrestricted = "".join(generate(model, vocab, prompt, 80, SamplingSettings(kwargs["temperature"], seed=9)))
    assert [s["text"] for s in data["samples"]] == expected
    assert (expected[0] == unrestricted) == (set(kwargs) == {"temperature"})  # the flag changed what was drawn


def test_beam_says_which_sampling_flags_it_leaves_unused(cli, tiny_run):
    result = cli("sample", tiny_run, "--prime", "ROMEO:", "--beam", 3, "--length", 8, "--temperature", 0.5,
                 "--seed", 1, "--top-k", 0, "--no-repeat", 16)
    assert "charrnn: note: beam search does not use temperature, seed and no-repeat: it keeps the likeliest texts" \
        in result.stderr  # --top-k 0 is the default (off), so it goes unmentioned


def test_sample_beam_json(cli, tiny_run, tiny):
    model, vocab, _ = tiny
    result = cli("sample", tiny_run, "--prime", "ROMEO:", "--beam", 4, "--num", 3, "--length", 12, "--json")
    data = json.loads(result.stdout)
    assert "note" not in result.stderr  # no sampling flag given, nothing to say
    assert set(data) == {"prime", "beams", "ms"}
    beams = data["beams"]
    assert len(beams) == 3
    assert all(set(b) == {"text", "logprob", "score"} for b in beams)
    assert len({b["text"] for b in beams}) == 3
    with as_the_cli(model):
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
    assert all(set(c) == {"text", "logprob", "prob", "ended", "kind", "space"} for c in data["completions"])
    items = data["completions"]
    assert 1 <= len(items) <= 3 and all(0 < c["prob"] <= 1 and c["text"] for c in items)
    assert all(not set(c["text"]) & WORD_END for c in items if c["kind"] == "word")
    assert [c["prob"] for c in items] == sorted((c["prob"] for c in items), reverse=True)
    with as_the_cli(model):
        expected = suggest(model, vocab, prepare_prompt(model, vocab, prefix), SuggestSettings(3))
    assert [(c["text"], c["kind"], c["space"]) for c in items] == [(s.text, s.kind, s.space) for s in expected]
    # To the end of a phrase or line, the plain completions, as decoding.beam.complete gives them.
    data = json.loads(cli("complete", tiny_run, prefix, "--json", "--until", "line", "--max-len", 20).stdout)
    with as_the_cli(model):
        expected = complete(model, vocab, prepare_prompt(model, vocab, prefix), 3, "line", 20)
    assert [c["text"] for c in data["completions"]] == [c.text for c in expected]


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


def on_a_terminal(env: dict[str, str], cwd: Path, *args, stream: str) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run `python -m charrnn *args` with `stream` ("stdout" or "stderr") on a pseudo-terminal 100 columns wide
    and the other piped; the result, and what the terminal was shown."""
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
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: terminal}
        result = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], **pipes, env=env, cwd=cwd,
                                timeout=TIMEOUT)
    finally:
        os.close(terminal)
        reader.join(10)
        os.close(controller)
    return result, bytes(shown)


def test_eval_shows_a_progress_bar_on_a_terminal_and_keeps_json_clean(cli, cli_env, workdir, tiny_run, small_text):
    assert cli("eval", tiny_run, small_text, "--json").stderr == ""  # no terminal: no bar
    result, shown = on_a_terminal(cli_env, workdir, "eval", tiny_run, small_text, "--json", "--batch-size", 4,
                                  "--seq-len", 64, stream="stderr")
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
    (d / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
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
        # A bad value of a flag: one line naming it, exit 2, whether argparse or the command refuses it.
        "temperature-negative": ([*sample, "--temperature", -1], 2, "temperature"),
        "temperature-nan": ([*sample, "--temperature", "nan"], 2, "--temperature"),
        "top-k-negative": ([*sample, "--top-k", -1], 2, "--top-k"),
        "top-k-too-big": ([*sample, "--top-k", 10000], 2, "top-k"),
        "top-p-0": ([*sample, "--top-p", 0], 2, "top-p"),
        "top-p-1.5": ([*sample, "--top-p", 1.5], 2, "top-p"),
        "repetition-penalty-0": ([*sample, "--repetition-penalty", 0], 2, "repetition penalty"),
        "no-repeat-1": ([*sample, "--no-repeat", 1], 2, "no-repeat length must be"),
        "beam-0": ([*sample, "--beam", 0], 2, "--beam"),
        "beam-wider-than-vocab": ([*sample, "--beam", 10000], 2, "beam"),
        "num-0": ([*sample, "--num", 0], 2, "--num"),
        "length-0": (["sample", tiny_run, "--length", 0], 2, "length"),
        "length-huge": (["sample", tiny_run, "--length", 1_000_000_000], 2, "length"),
        "length-x": (["sample", tiny_run, "--length", "x"], 2, "--length: must be a whole number, got 'x'"),
        "beam-length-huge": ([*sample, "--beam", 2, "--length", 20_000], 2, "at most 10,000 with --beam"),
        "max-len-huge": (["complete", tiny_run, "a", "--max-len", 5000], 2, "--max-len"),
        "folk-candidates-0": (["folk", tiny_run, "--candidates", 0], 2, "--candidates"),
        "inspect-top-0": (["inspect", tiny_run, small_text, "--top", 0], 2, "--top"),
        "translate-beam-0": (["seq2seq", "translate", REPO / "models" / "g2p", "word", "--beam", 0], 2, "--beam"),
        "invalid-utf8": ([*train, d / "invalid.txt", "--out", d / "o1"], 1, "byte offset 600"),
        "empty-corpus": ([*train, d / "empty.txt", "--out", d / "o2"], 1, "empty"),
        "corpus-too-short": ([*train, d / "short.txt", "--out", d / "o3", "--val-frac", 0.05], 1, "at least 264"),
        "out-exists": ([*train, small_text, "--out", existing], 1, "already holds a run"),
        "resume-no-run": (["train", "--out", d / "norun", "--resume", "--quiet"], 1, "norun"),
        "eval-missing-file": (["eval", tiny_run, d / "missing.txt"], 1, "missing.txt"),
        "one-char-corpus": ([*train, d / "one-char.txt", "--out", d / "o5"], 1, "the corpus has 1 character, too few"),
        "binary-corpus": ([*train, d / "binary.bin", "--out", d / "o6"], 1, "byte offset 128"),
        "megabyte-prime-unknown": (["sample", tiny_run, "--prime-file", d / "megabyte-unknown.txt"], 1, "'\u2603'"),
        "prime-file-missing": (["sample", tiny_run, "--prime-file", d / "missing.txt"], 1, "missing.txt"),
        "prime-file-binary": (["sample", tiny_run, "--prime-file", d / "binary.bin"], 1, "byte offset 128"),
        "complete-no-prefix": (["complete", tiny_run], "usage", "give the prefix (the text typed so far), or "
                                                                "--prefix-file"),
        "complete-prefix-twice": (["complete", tiny_run, "ab", "--prefix-file", small_text], 2, "not allowed"),
        "time-budget-5x": ([*train, small_text, "--out", d / "o4", "--time-budget", "5x"], 2, "5x"),
        # The wording names what is wrong, and where.
        "translate-a-language-model": (["seq2seq", "translate", tiny_run, "word"], 1,
                                       f"{tiny_run} is a language model, not a seq2seq"),
        "translate-a-blank-file": (["seq2seq", "translate", REPO / "models" / "g2p", "--file", d / "blank.txt"], 1,
                                   f"{d / 'blank.txt'} has no sources to translate: every line is blank"),
        "translate-nothing": (["seq2seq", "translate", REPO / "models" / "g2p"], "usage",
                              "give the sources to translate, or --file"),
        "corpus-is-a-directory": ([*train, d / "norun", "--out", d / "o7"], 1, f"{d / 'norun'} is a directory"),
        "eval-empty-file": (["eval", tiny_run, d / "empty.txt"], 1, f"{d / 'empty.txt'} has 0 characters"),
        "eval-one-char": (["eval", tiny_run, d / "one-char.txt"], 1, "has 1 character;"),
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
    "top-k-negative", "top-k-too-big", "top-p-0", "top-p-1.5", "repetition-penalty-0", "no-repeat-1", "beam-0",
    "beam-wider-than-vocab", "num-0", "length-0", "length-huge", "length-x", "beam-length-huge", "max-len-huge",
    "folk-candidates-0", "inspect-top-0", "translate-beam-0",
    "invalid-utf8", "empty-corpus", "corpus-too-short", "out-exists", "resume-no-run", "eval-missing-file",
    "time-budget-5x", "one-char-corpus", "binary-corpus", "megabyte-prime-unknown", "prime-file-missing",
    "prime-file-binary", "complete-no-prefix", "complete-prefix-twice", "translate-a-language-model",
    "translate-a-blank-file", "translate-nothing", "corpus-is-a-directory", "eval-empty-file", "eval-one-char",
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
    lines = stderr.splitlines()
    if code == "usage":  # a missing argument: the command's usage, then the error line, exit 2
        assert result.returncode == 2, stderr
        assert stderr.startswith("usage: charrnn "), stderr
        assert needle in lines[-1], stderr
    else:  # one line: "charrnn: error: ..." (exit 1), or "charrnn COMMAND: error: ..." for a bad value (exit 2)
        assert result.returncode == code, stderr
        assert len(lines) == 1, stderr
        assert re.match(r"charrnn: error: " if code == 1 else r"charrnn [a-z0-9 ]+: error: ", lines[0]), stderr
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


# --- reading other encodings, inspect's output, folk check (issue #27) ----------------------------


def test_every_command_that_reads_a_text_file_takes_its_encoding(cli_env, workdir, tiny_run, tmp_path):
    """The error says "pass --encoding"; each of these commands has the flag, and it works."""
    text, abc = tmp_path / "latin1.txt", tmp_path / "latin1.abc"
    text.write_bytes("ROMEO: the caf\u00e9 is here.\n".encode("latin-1"))
    abc.write_bytes("X:1\nT:Caf\u00e9\nM:2/4\nL:1/8\nK:D\nDE FG|A2 A2|]\n".encode("latin-1"))
    g2p = REPO / "models" / "g2p"
    commands = {
        "inspect": ["inspect", tiny_run, text, "--unknown", "skip", "--threads", 1],
        "sample --prime-file": ["sample", tiny_run, "--prime-file", text, "--unknown", "skip", "--length", 5],
        "complete --prefix-file": ["complete", tiny_run, "--prefix-file", text, "--unknown", "skip", "--threads", 1],
        "folk check": ["folk", "check", abc],
        "seq2seq translate --file": ["seq2seq", "translate", g2p, "--file", text, "--unknown", "skip", "--threads", 1],
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        refused = {k: pool.submit(run, cli_env, workdir, *args) for k, args in commands.items()}
        read = {k: pool.submit(run, cli_env, workdir, *args, "--encoding", "latin-1") for k, args in commands.items()}
    for name in commands:
        result = refused[name].result()
        assert result.returncode in (1, 2) and "not valid utf-8 at byte offset" in result.stderr, (name, result.stderr)
        assert "pass --encoding" in result.stderr and result.stderr.count("\n") == 1, (name, result.stderr)
        ok(read[name].result())
    assert "T:Caf" not in read["folk check"].result().stdout  # checked: one summary line, no finding
    assert "1 tune checked" in read["folk check"].result().stdout


def test_inspect_cells_into_a_pipe_are_the_values_alone(cli, tiny_run, tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("First Citizen:\nSpeak.\n", encoding="utf-8")
    result = cli("inspect", tiny_run, path, "--cell", "0:7", "--cell", "1:3:c", "--threads", 1)
    rows = [row.split("\t") for row in result.stdout.splitlines()]
    assert [json.loads(row[0]) for row in rows] == list(path.read_text())  # a line per character, nothing else
    assert all(len(row) == 3 for row in rows)  # the character, then each --cell's value in order
    assert len({row[1] for row in rows}) > 1 and [r[1] for r in rows] != [r[2] for r in rows]
    assert "bits per character" in result.stderr  # the summary, beside the pipe


def test_inspect_shows_surprise_and_the_guesses_on_a_terminal_and_in_a_pipe(cli, cli_env, workdir, tiny_run,
                                                                            tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n", encoding="utf-8")
    piped = cli("inspect", tiny_run, path, "--threads", 1).stdout
    assert "\x1b" not in piped and "the most surprising characters, with the model's guesses" in piped
    found = re.findall(r"line (\d+), column (\d+): (\".+?\") ([\d.]+) bits; ", piped)
    assert len(found) == 5
    lines = path.read_text().split("\n")
    for line, column, char, _ in found:  # each names its character where it is in the text (a newline too)
        at = sum(len(text) + 1 for text in lines[: int(line) - 1]) + int(column) - 1
        assert path.read_text()[at] == json.loads(char)
    result, shown = on_a_terminal(cli_env, workdir, "inspect", tiny_run, path, "--threads", 1, stream="stdout")
    assert result.returncode == 0, result.stderr
    text = shown.decode()
    assert "surprisal, bits:" in text and "the most surprising characters" in text
    assert text.count("\x1b[48;5;") >= len(path.read_text()) - 2  # every character but the newlines, coloured


def test_folk_check_is_a_command_of_its_own_beside_folk_write(cli):
    shown = cli("folk", "check", "--help").stdout
    assert shown.startswith("usage: charrnn folk check [-h] [--encoding ENCODING] file")
    written = cli("folk", "--help").stdout  # `charrnn folk MODEL_DIR ...` writes, as documented
    assert written.startswith("usage: charrnn folk [-h] [--meter METER]") and "charrnn folk check FILE.abc" in written
    assert cli("folk", "write", "--help").stdout == written


def test_the_shipped_code_model_completes_python(capsys):
    """models/pystdlib, trained on Python's standard library: under 8 MB (as the other shipped LMs), in half
    precision, with the PSF licence, and sure of `self` where a method's first parameter begins. No corpus is
    needed."""
    shipped = REPO / "models" / "pystdlib"
    config = json.loads((shipped / "config.json").read_text())
    assert config["corpus"]["name"] == "pystdlib" and config["weights_dtype"] == "float16"
    assert (shipped / "model.safetensors").stat().st_size < 8_000_000
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (shipped / "LICENSE").read_text()
    assert main(["complete", str(shipped), "class Reader:\n    def __init__(se", "--phrases", "off", "--json",
                 "--threads", "1"]) == 0
    offered = json.loads(capsys.readouterr().out)["completions"]
    # "self" with what follows it: "lf," and "lf):\n" (decoding/suggest.py offers a word with its punctuation)
    assert all(c["text"].startswith("lf") for c in offered) and sum(c["prob"] for c in offered) > 0.9
