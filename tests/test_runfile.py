"""Tests for charrnn.runfile: config.json of format version 2, and version 1 runs still loading."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from charrnn import checkpoint as ckpt
from charrnn import models
from charrnn.data import Vocab
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.errors import CharRNNError
from charrnn.models.seq2seq import Seq2SeqExtra
from charrnn.runfile import FORMAT_VERSION, CorpusInfo, RunFile
from charrnn.seq2seq.translate import Translator
from charrnn.training.config import resume_config

from conftest import REPO


@pytest.fixture
def run(tmp_path, tiny_run):
    return shutil.copytree(tiny_run, tmp_path / "run")


def as_version_1(obj: dict) -> dict:
    """What the trainer wrote before format version 2: no kind, the cell under model.model."""
    old = {k: v for k, v in obj.items() if k != "kind"}
    old["format_version"] = 1
    old["model"] = {("model" if k == "cell" else k): v for k, v in obj["model"].items()}
    return old


def test_a_trained_run_writes_version_2(tiny_run):
    obj = json.loads((tiny_run / ckpt.CONFIG).read_text())
    assert obj["format_version"] == FORMAT_VERSION == 2
    assert obj["kind"] == "lm" and obj["model"]["cell"] == "lstm" and "model" not in obj["model"]
    assert obj["train"]["model"] == "lstm"  # the training arguments keep the --model flag's name


def test_version_1_run_loads_and_writes_the_same_text(run, tmp_path):
    model, vocab, new = ckpt.load_model(run)
    old_dir = shutil.copytree(run, tmp_path / "old")
    (old_dir / ckpt.CONFIG).write_text(json.dumps(as_version_1(json.loads((run / ckpt.CONFIG).read_text()))))
    old_model, old_vocab, old = ckpt.load_model(old_dir)
    assert old == new and old_vocab.chars == vocab.chars
    settings = SamplingSettings(0.9, seed=4)
    texts = ["".join(generate(m, vocab, prepare_prompt(m, vocab, "KING:"), 60, settings)) for m in (model, old_model)]
    assert texts[0] == texts[1] and len(texts[0]) == 60
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], old_model(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["shakespeare", "folk"])
def test_the_shipped_version_1_models_load(name):
    run = RunFile.read(REPO / "models" / name)
    assert run.kind == "lm" and run.model["cell"] == "lstm" and run.arch == "LSTM 2x512"
    assert run.corpus_label == name and run.weights_dtype == "float16" and run.parameters > 3_000_000


def test_version_2_round_trips(tiny_run, tmp_path):
    run = RunFile.read(tiny_run)
    run.write(tmp_path)
    assert RunFile.read(tmp_path) == run
    assert json.loads((tmp_path / ckpt.CONFIG).read_text()) == json.loads((tiny_run / ckpt.CONFIG).read_text())
    exported = replace(run, weights_dtype="float16")
    exported.write(tmp_path)
    assert RunFile.read(tmp_path) == exported
    assert "extra" not in run.to_dict() and "weights_dtype" not in run.to_dict()  # written only when there
    with pytest.raises(TypeError, match="a lm run file has no extra fields"):
        replace(run, extra=RunFile.read(REPO / "models" / "g2p").extra)


def test_a_kind_without_extra_fields_ignores_an_extra_object():
    obj = json.loads((REPO / "models" / "shakespeare" / ckpt.CONFIG).read_text())
    assert RunFile.from_dict({**obj, "extra": {"note": "from a later charrnn"}}).extra is None


def test_the_shipped_seq2seq_model_round_trips_with_its_typed_extra(tmp_path):
    shipped = REPO / "models" / "g2p"
    run = RunFile.read(shipped)
    assert isinstance(run.extra, Seq2SeqExtra) and run.extra.target_tokens == "space"
    assert run.extra.target_vocab[:3] == ["<pad>", "<s>", "</s>"] and len(run.extra.source_vocab) == 28
    run.write(tmp_path)
    assert json.loads((tmp_path / ckpt.CONFIG).read_text()) == json.loads((shipped / ckpt.CONFIG).read_text())
    assert RunFile.read(tmp_path) == run


def _edit(obj: dict, path: str, value) -> dict:
    *parents, key = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return obj


@pytest.mark.parametrize(("path", "value", "message"), [
    ("format_version", 3, r"unsupported or missing format_version 3 \(this charrnn reads 1, 2\)"),
    ("format_version", KeyError, "unsupported or missing format_version None"),
    ("kind", "transformer", "malformed: unknown model kind 'transformer'; this charrnn knows lm"),
    ("kind", KeyError, "malformed"),
    ("model.cell", "transformer", "malformed: unknown cell 'transformer'; choose one of lstm, gru, rnn"),
    ("model.hidden", 0, "malformed: hidden must be a whole number >= 1"),
    ("model.colour", "red", "malformed: .*unexpected keyword argument 'colour'"),
    ("model", [1, 2], "malformed: model must be an object"),
    ("model.vocab_size", 3, r"malformed: vocab has \d+ characters but model.vocab_size is 3"),
    ("vocab", ["a", "a"], "malformed: vocab must be a list of distinct single characters"),
    ("vocab", KeyError, "malformed: missing 'vocab'"),
    ("char_counts", [1, 2], "malformed: char_counts must be one count >= 0 per vocab character"),
    ("best_val_loss", "low", "malformed: best_val_loss must be a finite number or null"),
    ("corpus.sha256", KeyError, "malformed: .*sha256"),
])
def test_malformed_run_files_get_one_line_errors(run, path, value, message):
    config = run / ckpt.CONFIG
    config.write_text(json.dumps(_edit(json.loads(config.read_text()), path, value)))
    with pytest.raises(CharRNNError, match=message) as caught:
        ckpt.load_model(run)
    assert str(caught.value).startswith(str(config)) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("path", "value", "message"), [
    ("extra", KeyError, r"malformed: a seq2seq run file needs its extra fields \(Seq2SeqExtra\)"),
    ("extra", [1], "malformed: extra must be an object"),
    ("extra.source_vocab", ["<pad>", "a", "b"], "malformed: extra.source_vocab has 3 tokens but model.source_voc"),
    ("extra.target_vocab", ["<pad>", "<pad>"], "malformed: extra.target_vocab must be a list of distinct tokens"),
    ("extra.target_tokens", "bytes", "malformed: extra.source_tokens and target_tokens must be one of chars, space"),
    ("extra.max_ratio", "x", "malformed: extra.max_ratio must be a positive number"),
    ("extra.max_ratio", KeyError, "malformed: .*max_ratio"),
])
def test_malformed_seq2seq_extras_get_one_line_errors(tmp_path, path, value, message):
    config = tmp_path / ckpt.CONFIG
    obj = json.loads((REPO / "models" / "g2p" / ckpt.CONFIG).read_text())
    config.write_text(json.dumps(_edit(obj, path, value)))
    with pytest.raises(CharRNNError, match=message) as caught:
        RunFile.read(tmp_path)
    assert str(caught.value).startswith(str(config)) and "\n" not in str(caught.value)


def test_version_1_errors_too(run):
    config = run / ckpt.CONFIG
    old = as_version_1(json.loads(config.read_text()))
    old["model"]["model"] = "transformer"
    config.write_text(json.dumps(old))
    with pytest.raises(CharRNNError, match="unknown cell 'transformer'"):
        RunFile.read(run)


OLD_RUN_FILES = sorted((REPO / "tests" / "data" / "runfiles").glob("*.json"))


def test_run_files_of_earlier_commits_are_there():
    """Every format the trainers and exports have written since the first commit (see the folder's README)."""
    made = {p.stem for p in OLD_RUN_FILES}
    assert {"ac9d52d-lm-run", "ef4bace-lm-export", "d17db82-lm-run", "aeff27e-s2s-run", "aeff27e-s2s-export",
            "fc56f82-lm-auto", "7a22c82-s2s-run"} <= made


@pytest.mark.parametrize("path", OLD_RUN_FILES, ids=lambda p: p.stem)
def test_run_files_of_earlier_commits_load_resume_and_decode(path, tmp_path):
    run = RunFile.from_dict(json.loads(path.read_text()))
    kind = models.lookup(run.kind)
    network = models.build(run.kind, run.model).eval()
    # What --resume rebuilds from it: this charrnn's training config of the kind (a seq2seq run of the days
    # when both kinds shared one config drops the LM's fields it carried).
    (tmp_path / "run").mkdir()
    shutil.copy(path, tmp_path / "run" / ckpt.CONFIG)
    cfg = resume_config(tmp_path / "run", {})
    assert cfg.kind == run.kind and cfg.layers == run.train["layers"] and cfg.hidden == run.train["hidden"]
    run.write(tmp_path)
    assert RunFile.read(tmp_path) == run
    if kind.extra is None:
        vocab = Vocab(run.vocab)
        text = "".join(generate(network, vocab, prepare_prompt(network, vocab, vocab.chars[0]), 8,
                                SamplingSettings(1.0, seed=1)))
        assert len(text) == 8 and set(text) <= set(vocab.chars)
    else:
        translator = Translator(network, run)
        word = (" " if run.extra.source_tokens == "space" else "").join(run.extra.source_vocab[1:4])
        assert len(translator.translate([word], beam=2, num=2)[0]) == 2


def test_corpus_label():
    assert CorpusInfo(None, "/data/poems.txt", "0" * 64, 10).label == "poems.txt"
    assert CorpusInfo("folk", "folk.abc", "0" * 64, 10).label == "folk"
