"""Helpers the app's tests share (no tests here): tiny models, a synthetic folk corpus, the app in a subprocess."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from charrnn.training.trainer import train

from conftest import REPO, tiny_config

ARTIFACTS = REPO / "test-artifacts"

# Bars of exactly one 6/8 bar (six eighths) in D major: tunes made of them pass every check.
_JIG_BARS = ("AFA dFA", "d2e fed", "e2f gfe", "dcB AFD", "ABA GFE", "fed e2d", "FAd fdA", "g2e fdB",
             "afd ecA", "B2A BAG", "dfa afd", "edc dBA")
_ENDS = ("d3 d2A", "d3 d3", "D3 D2A", "d3 dAF")
_TITLES = ("The Kesh", "Out on the Ocean", "The Blackthorn Stick", "Tobin's", "The Lark in the Morning",
           "Willie Coleman's", "The Rambling Pitchfork", "Haste to the Wedding", "The Connaughtman's Rambles")


def folk_corpus(tunes: int = 400, seed: int = 0) -> str:
    """A synthetic ABC corpus in the folk corpus's format: jigs in D, two repeated 4-bar parts each."""
    rng = random.Random(seed)
    out = []
    for number in range(1, tunes + 1):
        parts = []
        for _ in range(2):
            bars = [rng.choice(_JIG_BARS) for _ in range(3)] + [rng.choice(_ENDS)]
            parts.append("|:" + " | ".join(bars) + " :|")
        title = f"{rng.choice(_TITLES)} -- Jig"
        out.append(f"X:{number}\nT:{title}\nR:jig\nM:6/8\nL:1/8\nK:D\n" + "\n".join(parts))
    return "\n\n".join(out) + "\n"


def folk_model(root: Path, name: str = "folk") -> Path:
    """A small model trained on the synthetic jigs: about 3 s, and nearly all its tunes pass at temperature 0.5."""
    out = root / name
    if not (out / "model.safetensors").is_file():
        corpus = root / "jigs.abc"
        corpus.write_text(folk_corpus(), encoding="utf-8")
        tmp = root / f".{name}-training"
        shutil.rmtree(tmp, ignore_errors=True)
        train(tiny_config(corpus, tmp, layers=1, hidden=64, embed=16, max_steps=200, lr=2e-2, eval_every=100),
              progress=False)
        tmp.rename(out)
    return out


def random_model(root: Path, template: Path, name: str = "big", hidden: int = 512) -> Path:
    """An untrained 2-layer LSTM of the given width with the template run's vocabulary: slow enough
    (about 1,500 characters a second on a CPU core at 512) to stop a generation half-way."""
    import json

    import torch

    from charrnn import checkpoint as ckpt
    from charrnn.files import write_json
    from charrnn.models.rnn import CharRNN, ModelConfig

    out = root / name
    if not (out / "model.safetensors").is_file():
        out.mkdir(parents=True, exist_ok=True)
        config = json.loads((template / "config.json").read_text())
        config["model"].update(layers=2, hidden=hidden, embed=64)
        config["best_val_loss"] = None
        torch.manual_seed(0)
        ckpt.save_weights(out, CharRNN(ModelConfig(**config["model"])))
        write_json(out / "config.json", config)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loaded into the app's process (PYTHONPATH): every connection to anything but this machine fails and is
# written to $CHARRNN_NET_LOG, so a test can check that the app never tries to reach the network.
_SITECUSTOMIZE = '''
import os, socket
_connect = socket.socket.connect
def _guard(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost", "0.0.0.0"):
        with open(os.environ["CHARRNN_NET_LOG"], "a") as f:
            f.write(f"{host}\\n")
        raise OSError("network access blocked by the test")
    return _connect(self, address)
socket.socket.connect = _guard
if os.environ.get("CHARRNN_TEST_BUILT_CORPUS"):  # a corpus build (minutes of CPU) becomes a copy of this file
    import shutil
    from charrnn import corpora as _corpora
    def _build(name, *args, **kwargs):
        _corpora.corpus_path(name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(os.environ["CHARRNN_TEST_BUILT_CORPUS"], _corpora.corpus_path(name))
    _corpora.build = _build
'''


class AppServer:
    """`python app.py` in a subprocess on a free port, with the network guard; stopped on exit."""

    def __init__(self, models: Path, runs: Path, workdir: Path, *extra: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.workdir = workdir
        self.net_log = workdir / "net.log"
        self.log = workdir / "app.log"
        guard = workdir / "guard"
        guard.mkdir(parents=True, exist_ok=True)
        (guard / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(guard), str(REPO)]), CHARRNN_NET_LOG=str(self.net_log),
                   GRADIO_TEMP_DIR=str(workdir / "gradio-tmp"), PYTHONUNBUFFERED="1", **(env or {}))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--models", str(models), "--runs", str(runs),
             "--port", str(self.port), *extra],
            cwd=workdir, env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.first_response_s = self._wait()

    def _wait(self, timeout: float = 90.0) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the app did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def network_attempts(self) -> list[str]:
        return self.net_log.read_text().split() if self.net_log.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def models_folder(tmp_path_factory, tiny_run: Path, name: str) -> Path:
    """A models folder laid out like the shipped one: the tiny text model as 'shakespeare', a tiny 'folk'."""
    base = tmp_path_factory.getbasetemp() / "app-models"
    base.mkdir(exist_ok=True)
    root = tmp_path_factory.mktemp(name)
    shutil.copytree(tiny_run, root / "shakespeare")
    shutil.copytree(folk_model(base), root / "folk")
    return root
