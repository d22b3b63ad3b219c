"""Training seq2seq models through the command line: toy tasks learnt exactly, translate and eval output,
clear errors, exact resume after kill -9, and torchrun."""

import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from charrnn import checkpoint as ckpt
from charrnn.cli import main
from charrnn.seq2seq.translate import Translator

TINY = ["--layers", "1", "--hidden", "64", "--embed", "16", "--dropout", "0", "--batch-size", "32", "--lr", "1e-2",
        "--threads", "1", "--quiet"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def reversal_pairs(n=3000, seed=0):
    rng = random.Random(seed)
    words = {"".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 7))) for _ in range(n)}
    return [f"{w}\t{w[::-1]}" for w in sorted(words)]


def date_pairs(n=4000, seed=1):
    rng, day0 = random.Random(seed), datetime.date(1900, 1, 1)
    days = {day0 + datetime.timedelta(days=rng.randrange(73000)) for _ in range(n)}
    return [f"{d.day} {MONTHS[d.month - 1]} {d.year}\t{d.isoformat()}" for d in sorted(days)]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    for name, pairs in (("reverse", reversal_pairs()), ("dates", date_pairs())):
        (root / f"{name}.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def dates_run(toy):
    run = toy / "dates-run"
    assert main(["seq2seq", "train", str(toy / "dates.tsv"), "--out", str(run), *TINY, "--max-steps", "600",
                 "--eval-every", "300"]) == 0
    return run


def eval_json(capsys, run, tsv, *flags):
    capsys.readouterr()
    assert main(["seq2seq", "eval", str(run), str(tsv), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_dates_are_rewritten_exactly(dates_run, toy, capsys):
    result = eval_json(capsys, dates_run, toy / "dates.tsv")
    assert result["exact"] == 1.0 and result["wer"] == 0 and result["ter"] == 0 and result["pairs"] == len(date_pairs())
    assert result["per_s"] > 0
    records = [json.loads(line) for line in (dates_run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_wer"] == 0 and "val_ter" in records[-1] and records[-1]["tokens_per_s"] > 0
    (out,) = Translator.load(dates_run).translate(["3 March 1998"])
    assert out[0].text == "1998-03-03" and out[0].ended


def test_strings_are_reversed_exactly(toy, capsys):
    run = toy / "reverse-run"
    assert main(["seq2seq", "train", str(toy / "reverse.tsv"), "--out", str(run), *TINY, "--max-steps", "900",
                 "--eval-every", "300", "--model", "gru", "--attention", "dot"]) == 0
    result = eval_json(capsys, run, toy / "reverse.tsv", "--beam", "3")
    assert result["exact"] == 1.0 and result["beam"] == 3


def test_translate_prints_n_best_json_in_input_order(dates_run, toy, capsys):
    (toy / "in.txt").write_text("1 May 2001\n\n24 December 1950\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["seq2seq", "translate", str(dates_run), "--file", str(toy / "in.txt"), "--json", "--beam", "4",
                 "--num", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["source"] for x in lines] == ["1 May 2001", "24 December 1950"]
    assert lines[0]["outputs"][0]["text"] == "2001-05-01" and len(lines[0]["outputs"]) == 3
    logprobs = [o["logprob"] for o in lines[1]["outputs"]]
    assert logprobs == sorted(logprobs, reverse=True) and len({o["text"] for o in lines[1]["outputs"]}) == 3


@pytest.mark.parametrize("argv, message", [
    (["translate", "{run}", "3 Mar\u00dfh 1998"], "does not know: '\u00df'"),  # ß: no other form (ç is read as c)
    (["translate", "{run}", "1 May 2001", "--beam", "100"], "beam width must be between 1 and 64"),
    (["eval", "{run}", "{toy}/missing.tsv"], "cannot read"),
    (["translate", "models/shakespeare", "x"], "shakespeare is a language model, not a seq2seq model; use charrnn"),
    (["train", "{toy}/bad.tsv", "--out", "{toy}/bad-run"], "bad.tsv:2: "),
])
def test_bad_input_is_one_line_and_exit_1(dates_run, toy, capsys, argv, message):
    (toy / "bad.tsv").write_text("a\tb\nno tab\n", encoding="utf-8")
    argv = [a.format(run=dates_run, toy=toy) for a in argv]
    capsys.readouterr()
    assert main(["seq2seq", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("argv", [["sample", "{run}"], ["sample", "{run}", "--beam", "3"],
                                  ["complete", "{run}", "1 May"], ["eval", "{run}", "{toy}/in.txt"],
                                  ["inspect", "{run}", "{toy}/in.txt"]])
def test_language_model_commands_name_the_seq2seq_commands(dates_run, toy, capsys, argv):
    (toy / "in.txt").write_text("1 May 2001\n", encoding="utf-8")
    capsys.readouterr()
    assert main([a.format(run=dates_run, toy=toy) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert "is a seq2seq model, not a language model; use charrnn seq2seq" in err and len(err.splitlines()) == 1, err


def test_unknown_symbols_can_be_skipped(dates_run, capsys):
    capsys.readouterr()
    assert main(["seq2seq", "translate", str(dates_run), "3 Ma\u00dfrch 1998", "--unknown", "skip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"][0]["text"] == "1998-03-03"


def test_the_run_file_records_the_kind_and_vocabularies(dates_run):
    run = ckpt.read_config(dates_run)
    assert run.kind == "seq2seq" and run.model["attention"] == "general" and run.vocab == []
    assert run.extra.target_vocab[:3] == ["<pad>", "<s>", "</s>"] and "M" in run.extra.source_vocab
    assert run.train["source_tokens"] == "chars" and run.status == "finished"


def train_proc(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "charrnn", "seq2seq", "train", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def model_weights(run):
    return {k: v for k, v in load_file(str(run / ckpt.LATEST)).items() if k.startswith("model.")}


KILL_ARGS = [*TINY[:-3], "--dropout", "0.2", "--max-steps", "300", "--eval-every", "25", "--threads", "1", "--quiet"]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_the_same_command_again(toy):
    """A scheduler's way: kill the run anywhere (start-up included) and run the very same command again."""
    whole, run = toy / "kill-whole", toy / "kill-run"
    assert train_proc(toy / "dates.tsv", "--out", whole, *KILL_ARGS).wait(timeout=300) == 0
    command = [toy / "dates.tsv", "--out", run, "--resume", *KILL_ARGS]
    rng, kills = random.Random(3), 0
    for delay in [0.5, *(rng.uniform(2.5, 6.0) for _ in range(4))]:  # the first lands in start-up
        proc = train_proc(*command)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = train_proc(*command)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills >= 3
    a, b = model_weights(whole), model_weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_torchrun_processes_follow_one_process(toy):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                "charrnn", "seq2seq", "train"]
    args = [toy / "reverse.tsv", *TINY[:-3], "--max-steps", "60", "--eval-every", "20",
            "--threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = train_proc(*args[:1], "--out", toy / "ddp-single", *args[1:])
    ddp = subprocess.Popen([*torchrun, *map(str, [*args[:1], "--out", toy / "ddp-two", *args[1:]])], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (single, ddp):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    def curve(run):
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    one, two = curve(toy / "ddp-single"), curve(toy / "ddp-two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [20, 40, 60]
    assert [r["val_loss"] for r in two] == pytest.approx([r["val_loss"] for r in one], abs=2e-3)
    assert [r["val_wer"] for r in two] == pytest.approx([r["val_wer"] for r in one], abs=0.02)


def charrnn(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m charrnn *args` in a process of its own (the repository first on its path)."""
    env = dict(os.environ, PYTHONPATH=str(ckpt.Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_skipped_bad_lines_are_counted_in_config_and_said(toy):
    lines = reversal_pairs(400)
    bad = ["no tab here", "two\ttabs\there", "\tempty source", "empty target\t", "x\ty\tz"]
    (toy / "some-bad.tsv").write_text("\n".join(lines[:100] + bad + lines[100:]) + "\n", encoding="utf-8")
    run = toy / "skip-run"
    done = charrnn("seq2seq", "train", toy / "some-bad.tsv", "--out", run, *TINY, "--max-steps", "2",
                   "--skip-bad-lines")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"skipped 5 bad lines of {toy / 'some-bad.tsv'} (--skip-bad-lines)" in done.stderr
    assert json.loads((run / "config.json").read_text())["extra"]["skipped_lines"] == 5


def test_an_empty_val_split_is_refused_and_no_train_loss_is_called_a_val_loss(toy):
    # Five sources that all hash into train at --val-frac 0.05 (the default): no val pair at all.
    from charrnn.seq2seq.data import split_of
    words = [w for w in (f"w{i}" for i in range(500)) if split_of(w, 0.05, 0.05) == "train"]
    (toy / "no-val.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words[:40]), encoding="utf-8")
    refused = charrnn("seq2seq", "train", toy / "no-val.tsv", "--out", toy / "no-val-run", *TINY, "--max-steps", "2")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "falls in the val split" in refused.stderr and "--val-frac 0" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (toy / "no-val-run").exists()
    # Asked for explicitly, a run without a val split says so, and its best is a train loss, named so.
    run = toy / "no-val-run"
    done = charrnn("seq2seq", "train", toy / "no-val.tsv", "--out", run, *TINY, "--max-steps", "4",
                   "--eval-every", "2", "--val-frac", "0", "--test-frac", "0")
    assert done.returncode == 0, done.stderr
    assert "no val split (--val-frac 0): the checkpoint kept is the one with the lowest train loss" in done.stderr
    assert "best val loss" not in done.stdout and "no val split; best train loss" in done.stdout
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(m["val_loss"] is None and m["train_loss"] > 0 for m in metrics)
    assert json.loads((run / "config.json").read_text())["best_val_loss"] is None


def test_translate_reads_case_accents_and_punctuation_as_the_app_does_and_refuses_digits(tmp_path):
    g2p = ckpt.Path(__file__).resolve().parents[1] / "models" / "g2p"
    done = charrnn("seq2seq", "translate", g2p, "Hello,", "café", "--json")
    assert done.returncode == 0, done.stderr
    hello, cafe = (json.loads(line) for line in done.stdout.splitlines())
    assert hello["outputs"][0]["text"].startswith("HH ")  # the H is read, as h, not dropped
    assert "Hello,: left out punctuation: ," in done.stderr and "café: read é as e" in done.stderr
    assert cafe["outputs"][0]["text"].startswith("K AE")  # café is read as cafe, not as caf
    refused = charrnn("seq2seq", "translate", g2p, "123")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == ("charrnn: error: '123' has digits, which this model does not read: write "
                                      "numbers as words (e.g. 'twenty one' for 21)")
