"""Data-parallel training under real torchrun, two CPU processes with Gloo."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from charrnn import checkpoint as ckpt
from charrnn.runfile import CONFIG

pytestmark = pytest.mark.slow

ARGS = ["--hidden", "32", "--layers", "2", "--embed", "8", "--batch-size", "8", "--seq-len", "32",
        "--max-steps", "200", "--eval-every", "20", "--quiet", "--threads", "1"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "charrnn"]


def charrnn(*args, launcher=(sys.executable, "-m", "charrnn"), **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*launcher, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **kwargs)


def finish(proc, timeout=180):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def val_curve(run):
    return [json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run):
    return {k: v for k, v in load_file(str(run / ckpt.LATEST)).items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_text):
    """The same run (no dropout, so it is the same computation) in one process and under torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    single = charrnn("train", small_text, "--out", root / "single", *ARGS, "--dropout", "0")
    ddp = charrnn("train", small_text, "--out", root / "ddp", *ARGS, "--dropout", "0", launcher=TORCHRUN)
    finish(single), finish(ddp)
    return root / "single", root / "ddp"


def test_two_processes_follow_the_single_process_loss_curve(runs):
    single, ddp = runs
    assert len(val_curve(ddp)) == len(val_curve(single)) == 10
    assert val_curve(ddp) == pytest.approx(val_curve(single), abs=1e-3)
    w1, w2 = weights(single), weights(ddp)
    assert all(torch.allclose(w1[k], w2[k], atol=1e-3) for k in w1)


def test_rank_zero_writes_one_run_in_the_usual_format(runs):
    _, ddp = runs
    cfg = json.loads((ddp / CONFIG).read_text())
    assert "x 2 processes" in cfg["machine"] and cfg["status"] == "finished" and cfg["step"] == 200
    assert len((ddp / "metrics.jsonl").read_text().splitlines()) == 10  # reported once, not per rank
    sample = finish(charrnn("sample", ddp, "--length", "30", "--seed", "1"))
    assert len(sample) >= 30


def test_interrupted_torchrun_run_resumes_exactly(tmp_path, small_text):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    finish(charrnn("train", small_text, "--out", whole, *ARGS, "--dropout", "0.2", launcher=TORCHRUN))
    proc = charrnn("train", small_text, "--out", cut, *ARGS, "--dropout", "0.2", launcher=TORCHRUN,
                   start_new_session=True)
    deadline = time.time() + 120
    while not (cut / ckpt.LATEST).exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches torchrun and every worker
    proc.communicate(timeout=120)
    step = json.loads(ckpt.read_tensors(cut / ckpt.LATEST)[1]["trainer"])["step"]
    if step >= 200:
        pytest.skip("the run finished before the signal arrived")
    tensors, _ = ckpt.read_tensors(cut / ckpt.LATEST)
    assert {"rng.cpu.0", "rng.cpu.1", "hidden.h", "hidden.c"} <= set(tensors)
    assert tensors["hidden.h"].shape[1] == 8  # the global streams, gathered from both ranks
    finish(charrnn("train", "--out", cut, "--resume", "--quiet", launcher=TORCHRUN))
    w1, w2 = weights(whole), weights(cut)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    shutil.rmtree(whole)


def test_batch_must_divide_among_processes(tmp_path, small_text):
    args = [a if a != "8" else "7" for a in ARGS]
    proc = charrnn("train", small_text, "--out", tmp_path / "odd", *args, launcher=TORCHRUN)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "--batch-size 7 must be a multiple of the 2 processes" in err


def test_a_rank_leaves_at_once_with_its_output_and_code():
    """`leave` skips the interpreter's teardown (where Gloo's threads can abort a rank) but keeps what was printed."""
    code = "from charrnn.training.distributed import leave; print('saved', end=''); leave(3)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (3, "saved")
