"""The model kinds' records (charrnn.models.Kind): what each names resolves, and models/ stays on its floor."""

from __future__ import annotations

import subprocess
import sys

import pytest

from charrnn import models
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN
from charrnn.models.seq2seq import Seq2Seq
from charrnn.training.config import BaseTrainConfig, resolve, train_config
from charrnn.training.lm import LMTask
from charrnn.training.seq2seq import Seq2SeqTask

from conftest import REPO

KNOWN = {"lm": (CharRNN, LMTask, "char"), "seq2seq": (Seq2Seq, Seq2SeqTask, "token")}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_each_kind_names_its_parts(name):
    kind = models.lookup(name)
    network, task, unit = KNOWN[name]
    assert kind.name == name and kind.network is network and kind.unit == unit
    config = train_config(name)
    assert issubclass(config, BaseTrainConfig) and config.kind == name and resolve(kind.task) is task


def test_the_kinds_configs_are_siblings():
    lm, seq2seq = train_config("lm"), train_config("seq2seq")
    assert not issubclass(seq2seq, lm) and not issubclass(lm, seq2seq)
    assert not {"seq_len", "encoding", "cache_dir", "eval_batch", "size", "auto"} & set(seq2seq.__dataclass_fields__)
    assert {"attention", "source_tokens", "target_tokens"} <= set(seq2seq.fixed_on_resume)
    assert "seq_len" in lm.fixed_on_resume and "attention" not in lm.fixed_on_resume


def test_an_unknown_kind_and_a_kind_used_where_another_is_needed():
    with pytest.raises(CharRNNError, match="unknown model kind 'transformer'; this charrnn knows lm, seq2seq"):
        models.lookup("transformer")
    with pytest.raises(CharRNNError, match="^m is a seq2seq model, not a language model; use charrnn seq2seq "):
        models.expect("seq2seq", "lm", "m")
    models.expect("lm", "lm", "m")


def test_loading_a_model_imports_nothing_of_training():
    """models/ sits near the ground floor: the records name training's parts without importing them."""
    code = ("import sys; from charrnn.checkpoint import load_model; load_model('models/g2p'); "
            "load_model('models/shakespeare'); "
            "print(sorted(m for m in sys.modules if m.startswith('charrnn.training')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
