"""Shared fixtures: the shared corpus, a tiny trained run, an isolated corpus cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import REPO as REPO  # test files import it from here
from helpers import SHAKESPEARE, require
from hypothesis import settings

from charrnn.data import Vocab
from charrnn.decoding.sampling import prepare_prompt
from charrnn.models.rnn import CharRNN
from charrnn.training.trainer import TrainConfig, train

# Property tests: in CI (and by default) a fixed number of examples from a fixed seed, the same inputs every
# run; HYPOTHESIS_PROFILE=thorough tries ten times as many, freshly random each time.
settings.register_profile("ci", max_examples=100, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=1_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write encoded corpora into the user's ~/.cache from tests."""
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    return require(SHAKESPEARE)


@pytest.fixture(scope="session")
def small_text(tmp_path_factory, shakespeare) -> Path:
    """The first 100k characters of tinyshakespeare."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(shakespeare.read_text(encoding="utf-8")[:100_000], encoding="utf-8")
    return path


def tiny_config(corpus: Path, out: Path, **overrides) -> TrainConfig:
    """A model small enough to train in about a second."""
    args = dict(corpus=str(corpus), out=str(out), hidden=32, layers=2, embed=8, batch_size=8, seq_len=32,
                max_steps=60, eval_every=20, dropout=0.0, cache_dir=str(out.parent / "cache"))
    args.update(overrides)
    return TrainConfig(**args)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_text) -> Path:
    """A trained tiny LSTM run directory (read-only for tests: copy it before changing it)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(small_text, out, max_steps=150, lr=1e-2), progress=False)
    return out


def greedy_text(model: CharRNN, vocab: Vocab, prime: str, length: int) -> str:
    """Greedy decoding written out by hand over model.step (what greedy search must reproduce)."""
    prompt = prepare_prompt(model, vocab, prime)
    logits, state, out = prompt.logits, prompt.state, []
    with torch.inference_mode():
        for _ in range(length):
            x = logits.argmax(-1)
            out.append(vocab.chars[int(x)])
            logits, state = model.step(x, state)
    return "".join(out)
