import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from charrnn import checkpoint as ckpt
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, ModelConfig
from charrnn.runfile import CONFIG
from charrnn.training.config import parse_duration, resume_config
from charrnn.training.lm import evaluate
from charrnn.training.trainer import Trainer, train

from conftest import tiny_config


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_learns_and_records(tiny_run):
    records = metrics(tiny_run)
    assert [r["step"] for r in records] == [20, 40, 60, 80, 100, 120, 140, 150]
    assert records[-1]["val_loss"] < min(3.2, records[0]["val_loss"] - 0.25)  # beyond unigram statistics
    for key in ("train_loss", "val_loss", "chars_per_s", "elapsed", "lr"):
        assert all(isinstance(r[key], int | float) for r in records)
    cfg = json.loads((tiny_run / CONFIG).read_text())
    assert cfg["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in records), abs=1e-4)
    assert cfg["status"] == "finished" and cfg["step"] == 150
    assert cfg["corpus"]["sha256"] and cfg["vocab"] and cfg["train"]["hidden"] == 32


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_other_cells_train(tmp_path, small_text, kind):
    result = train(tiny_config(small_text, tmp_path / kind, model=kind, max_steps=40, lr=1e-2), progress=False)
    assert result["best_val_loss"] < 3.5


def test_lr_schedule_warms_up_then_decays_to_the_floor(tmp_path, small_text):
    t = Trainer(tiny_config(small_text, tmp_path / "r", max_steps=1000, warmup=50, lr=1.0, min_lr_frac=0.1),
                progress=False)
    assert t.lr_at(0, 0) == pytest.approx(1 / 50)
    assert t.lr_at(49, 0) == pytest.approx(1.0)
    assert t.lr_at(525, 0) == pytest.approx(0.55)
    assert t.lr_at(1000, 0) == pytest.approx(0.1)
    budget = Trainer(tiny_config(small_text, tmp_path / "b", max_steps=None, time_budget=100.0, warmup=0,
                                 lr=1.0), progress=False)
    assert budget.lr_at(10, 50.0) == pytest.approx(0.55)  # halfway through the time budget


def test_time_budget_and_epochs_stop_the_run(tmp_path, small_text):
    result = train(tiny_config(small_text, tmp_path / "t", max_steps=None, time_budget=1.5), progress=False)
    assert result["status"] == "time budget reached" and result["elapsed"] >= 1.5
    t = Trainer(tiny_config(small_text, tmp_path / "e", max_steps=None, epochs=0.5), progress=False)
    assert t.run()["step"] == round(0.5 * t.task.batches_per_epoch)


def test_patience_stops_early(tmp_path, small_text):
    result = train(tiny_config(small_text, tmp_path / "p", lr=1e-12, warmup=0, eval_every=5, max_steps=200,
                               patience=2), progress=False)
    assert result["status"].startswith("early stop") and result["step"] == 15


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, small_text):
    t = Trainer(tiny_config(small_text, tmp_path / "n", max_steps=40, eval_every=10), progress=False)
    t.total_steps = 20
    t.run()
    saved = {name: (t.out / name).read_bytes() for name in (ckpt.WEIGHTS, ckpt.LATEST, CONFIG)}
    t.total_steps = 40
    with torch.no_grad():
        t.model.head.bias[0] = float("nan")
    with pytest.raises(CharRNNError, match="diverged at step 21.*last good checkpoint"):
        t.run()
    assert {name: (t.out / name).read_bytes() for name in saved} == saved
    ckpt.load_model(t.out)


def test_refuses_to_overwrite_or_reshape_a_run(tmp_path, tiny_run, small_text):
    with pytest.raises(CharRNNError, match="already holds a run"):
        Trainer(tiny_config(small_text, tiny_run))
    with pytest.raises(CharRNNError, match="cannot change --hidden"):
        resume_config(tiny_run, {"hidden": 64})
    assert resume_config(tmp_path / "nothing", {}) is None  # nothing to resume: the caller starts the run


def test_resume_detects_a_changed_corpus(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    train(tiny_config(corpus, tmp_path / "r", max_steps=10), progress=False)
    corpus.write_text("the quick brown fox jumps over the lazy cat\n" * 200)
    with pytest.raises(CharRNNError, match="changed since this run started"):
        Trainer(resume_config(tmp_path / "r", {"max_steps": 20}), resume=True)


def test_resume_extends_a_finished_run(tmp_path, small_text):
    train(tiny_config(small_text, tmp_path / "r", max_steps=20), progress=False)
    result = train(resume_config(tmp_path / "r", {"max_steps": 40}), resume=True, progress=False)
    assert result["step"] == 40
    assert [r["step"] for r in metrics(tmp_path / "r")] == [20, 40]


def test_parse_duration():
    assert [parse_duration(s) for s in ("90s", "20m", "2h", "1h30m", "45", "1.5h")] == [90, 1200, 7200, 5400, 45, 5400]
    for bad in ("", "5x", "m", "-3s"):
        with pytest.raises(CharRNNError, match="bad duration"):
            parse_duration(bad)


def test_evaluate_predicts_every_character_once():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=6, hidden=8, embed=3)).eval()
    ids = np.random.default_rng(0).integers(0, 6, 103)
    with torch.no_grad():
        x = torch.from_numpy(ids).view(1, -1)
        logits, _ = model(x[:, :-1])
        exact = F.cross_entropy(logits[0], x[0, 1:]).item()
    assert evaluate(model, ids, batch_size=1, seq_len=1000) == pytest.approx((exact, 102))
    for b, t in ((1, 7), (4, 10), (5, 3)):
        loss, n = evaluate(model, ids, batch_size=b, seq_len=t)
        assert n == 102 and abs(loss - exact) < 0.05  # streams restart with no context: close, not equal


# --- exact resume: real processes, really interrupted -------------------------------------------------

ARGS = ["--hidden", "32", "--layers", "2", "--embed", "8", "--batch-size", "8", "--seq-len", "32",
        "--max-steps", "150", "--eval-every", "10", "--dropout", "0.2", "--quiet"]


def start(corpus, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})


def final_weights(run):
    return {k: v for k, v in load_file(str(run / ckpt.LATEST)).items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_text):
    out = tmp_path_factory.mktemp("resume") / "whole"
    assert start(small_text, out).wait(timeout=120) == 0
    return final_weights(out)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, small_text, uninterrupted, sig):
    out = tmp_path / "run"
    proc = start(small_text, out)
    deadline = time.time() + 60
    while not (out / ckpt.LATEST).exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    if code == 0:
        pytest.skip("the run finished before the signal arrived (machine too fast for this test)")
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    if sig == signal.SIGINT:
        assert b"Traceback" not in proc.stderr.read()
    step = json.loads(ckpt.read_tensors(out / ckpt.LATEST)[1]["trainer"])["step"]
    assert 0 < step < 150  # the interruption really happened part-way
    resumed = subprocess.run([sys.executable, "-m", "charrnn", "train", "--out", str(out), "--resume", "--quiet"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    weights = final_weights(out)
    assert weights.keys() == uninterrupted.keys()
    assert all(torch.equal(weights[k], uninterrupted[k]) for k in weights)
    assert [r["step"] for r in metrics(out)] == list(range(10, 151, 10))
    assert not math.isnan(json.loads((out / CONFIG).read_text())["best_val_loss"])


class _Killed(BaseException):
    """Stands for kill -9: nothing in the trainer may catch it."""


@pytest.mark.parametrize("before_the_write", [True, False])
@pytest.mark.parametrize("killed_at", [2, 3])  # the 2nd / 3rd trainer-state write: the evals at steps 20 / 30
def test_a_kill_around_the_trainer_state_write_loses_no_metrics_line(tmp_path, small_text, monkeypatch, killed_at,
                                                                    before_the_write):
    """Killed just before or just after an eval's trainer state is written, then resumed: every eval has
    its line in metrics.jsonl, once, and the run ends as an uninterrupted one."""
    whole = train(tiny_config(small_text, tmp_path / "whole", eval_every=10, max_steps=40), progress=False)
    out = tmp_path / "run"
    writes = []
    real = Trainer._save_latest

    def save_latest(self):
        writes.append(self.step)
        if len(writes) == killed_at and before_the_write:
            raise _Killed
        real(self)
        if len(writes) == killed_at:
            raise _Killed

    monkeypatch.setattr(Trainer, "_save_latest", save_latest)
    with pytest.raises(_Killed):
        train(tiny_config(small_text, out, eval_every=10, max_steps=40), progress=False)
    monkeypatch.setattr(Trainer, "_save_latest", real)
    resumed = train(tiny_config(small_text, out, eval_every=10, max_steps=40), resume=True, progress=False)
    assert [r["step"] for r in metrics(out)] == [10, 20, 30, 40]
    assert resumed["best_val_loss"] == whole["best_val_loss"]
    expected = final_weights(tmp_path / "whole")
    assert all(torch.equal(v, expected[k]) for k, v in final_weights(out).items()) and final_weights(out)


def test_a_catalogue_name_is_a_corpus(tmp_path, monkeypatch, shakespeare):
    """`charrnn train shakespeare` fetches the named corpus (here from a folder mirror) and records the name."""
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path / "corpora"))
    monkeypatch.setenv("CHARRNN_MIRROR", str(shakespeare.parent))
    t = Trainer(tiny_config("shakespeare", tmp_path / "run", max_steps=1), progress=False)
    saved = json.loads((tmp_path / "run" / CONFIG).read_text())["corpus"]
    assert saved["name"] == "shakespeare" and saved["chars"] == 1_115_394
    assert t.task.corpus.path == tmp_path / "corpora" / "shakespeare.txt"


def test_request_stop_from_another_thread_saves_and_resumes(tmp_path, small_text):
    """The web app stops a background run this way: it saves a resumable checkpoint, like Ctrl-C."""
    import threading

    t = Trainer(tiny_config(small_text, tmp_path / "r", max_steps=10**6, eval_every=10**6), progress=False,
                on_eval=None)
    worker = threading.Thread(target=lambda: setattr(t, "result", t.run()))
    worker.start()
    while t.step < 5:
        time.sleep(0.01)
    t.request_stop()
    worker.join(timeout=60)
    assert t.result["status"] == "interrupted" and 5 <= t.result["step"] < 10**6
    resumed = Trainer(resume_config(tmp_path / "r", {"max_steps": t.result["step"] + 3}), resume=True, progress=False)
    assert resumed.step == t.result["step"] and resumed.run()["status"] == "finished"


@pytest.mark.slow
def test_trains_on_a_vocabulary_of_a_hundred_thousand_characters(tmp_path):
    corpus = tmp_path / "wide.txt"
    corpus.write_text("".join(chr(0x10000 + i) for i in range(100_000)) * 2, encoding="utf-8")
    result = train(tiny_config(corpus, tmp_path / "r", hidden=8, embed=4, max_steps=2, eval_every=2), progress=False)
    assert math.isfinite(result["best_val_loss"])
    model, vocab, _ = ckpt.load_model(tmp_path / "r")
    assert len(vocab) == 100_000 and model.head.out_features == 100_000
