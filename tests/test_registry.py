"""The model registry: discovery by name only, menus, and the thread-safe cache of loaded models."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from charrnn.errors import CharRNNError
from charrnn.serve import registry as registry_module
from charrnn.serve.registry import Registry, UnknownModel, default_runs_dir


@pytest.fixture
def folders(tmp_path, tiny_run):
    """models/ with two copies of the tiny run (one labelled as a folk model), runs/ with one more."""
    models, runs = tmp_path / "models", tmp_path / "runs"
    for name in ("shakespeare", "folk"):
        shutil.copytree(tiny_run, models / name)
    cfg = json.loads((models / "folk" / "config.json").read_text())
    cfg["corpus"]["name"] = "folk"
    (models / "folk" / "config.json").write_text(json.dumps(cfg))
    shutil.copytree(tiny_run, runs / "mine")
    (models / "empty").mkdir()  # no config, no weights: not a model
    (models / "broken").mkdir()
    (models / "broken" / "config.json").write_text("{not json")
    (models / "broken" / "model.safetensors").write_bytes(b"junk")
    return models, runs


def test_entries_names_and_labels(folders):
    models, runs = folders
    reg = Registry(models, runs)
    assert reg.names() == ["folk", "shakespeare", "trained/mine"]
    assert reg.names(folk=True) == ["folk"]
    assert reg.names(folk=False) == ["shakespeare", "trained/mine"]
    entry = reg.entry("trained/mine")
    assert entry.source == "trained" and entry.path == runs / "mine"
    assert entry.arch == "LSTM 2x32" and entry.best_val_loss is not None
    assert "LSTM 2x32" in entry.label and entry.label.startswith("trained/mine")
    assert [name for _, name in reg.choices(False)] == ["shakespeare", "trained/mine"]


def test_default_prefers_the_named_model_then_text_models(folders):
    models, runs = folders
    reg = Registry(models, runs)
    assert reg.default(None, "shakespeare") == "shakespeare"
    assert reg.default(None, "nothing-like-it") == "shakespeare"  # a text model before the folk one
    assert reg.default(True, "folk") == "folk"
    assert reg.default(True, "shakespeare") == "folk"


@pytest.mark.parametrize("name", ["../models/shakespeare", "/etc/passwd", "shakespeare/../folk", "empty", "broken",
                                  "", None, 3, "trained/../../models/shakespeare", "SHAKESPEARE"])
def test_only_listed_names_resolve(folders, name):
    reg = Registry(*folders)
    with pytest.raises(UnknownModel):
        reg.entry(name)


def test_a_path_to_a_real_model_is_not_a_name(folders):
    models, runs = folders
    reg = Registry(models, runs)
    with pytest.raises(UnknownModel):
        reg.load(str(models / "shakespeare"))


def test_empty_or_missing_folders(tmp_path):
    reg = Registry(tmp_path / "nothing-here", tmp_path / "nor-here")
    assert reg.entries() == [] and reg.default() is None
    with pytest.raises(UnknownModel, match="no model 'shakespeare': the models folder holds no text model: train one "
                                           "in the Train tab"):
        reg.entry("shakespeare")
    with pytest.raises(UnknownModel, match="the Train tab trains language models only: train one with `charrnn "
                                           "seq2seq train cmudict"):
        reg.entry("g2p", kind="seq2seq")


def test_each_tab_without_its_kind_of_model_says_how_to_get_one(tmp_path):
    """With no models, the Folk tunes and Pronounce tabs do not send users to a Train tab that cannot help."""
    from charrnn.serve.jobs import JobManager
    from charrnn.serve.service import NO_MODELS, Service

    service = Service(Registry(tmp_path / "models", tmp_path / "runs"), JobManager(tmp_path / "runs"))
    with pytest.raises(CharRNNError, match="no folk tune model: in the Train tab, build the folk corpus"):
        service.folk_tune(None)
    with pytest.raises(CharRNNError, match="charrnn seq2seq train cmudict"):
        service.pronounce(None, "hello")
    with pytest.raises(CharRNNError, match="at least 5,000 characters"):
        next(service.generate(None, "x"))
    assert "Folk tunes need a model trained on the folk corpus" in NO_MODELS


def test_hidden_runs_are_not_offered(folders):
    models, runs = folders
    hidden: list[Path] = [runs / "mine"]
    reg = Registry(models, runs, hidden=lambda: hidden)
    assert "trained/mine" not in reg.names()
    hidden.clear()
    assert "trained/mine" in reg.names()


def test_load_is_cached_and_follows_new_weights(folders):
    models, runs = folders
    reg = Registry(models, runs, recheck_s=60)
    first = reg.load("shakespeare")
    assert reg.load("shakespeare") is first
    assert not first.model.training and first.vocab.chars == first.config.vocab
    weights = models / "shakespeare" / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as when a run saves better weights
    assert reg.load("shakespeare") is first  # checked less than recheck_s ago: served without a look
    reg.recheck_s = 0
    second = reg.load("shakespeare")
    assert second is not first and second.entry.mtime_ns != first.entry.mtime_ns


def test_cache_evicts_least_recently_used(folders):
    reg = Registry(*folders, max_loaded=2)
    reg.load("shakespeare")
    reg.load("folk")
    reg.load("shakespeare")
    reg.load("trained/mine")
    assert reg.loaded_names() == ["shakespeare", "trained/mine"]


def test_concurrent_loads_read_the_model_once(folders, monkeypatch):
    reg = Registry(*folders)
    calls = []
    real = registry_module.load_model

    def counting(path, device="cpu"):
        calls.append(path)
        return real(path, device)

    monkeypatch.setattr(registry_module, "load_model", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(reg.load("shakespeare"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)


def test_signature_changes_when_a_model_appears(folders, tiny_run):
    models, runs = folders
    reg = Registry(models, runs)
    before = reg.signature()
    shutil.copytree(tiny_run, runs / "another")
    assert reg.signature() != before


def test_default_runs_dir_is_beside_the_models(tmp_path):
    assert default_runs_dir(tmp_path / "models") == tmp_path / "runs" / "app"


def test_run_files_are_read_again_only_when_they_change(folders, monkeypatch):
    """Every request asks for the entries: unchanged folders cost a few stats, not a read of each run file."""
    models, runs = folders
    reads: list[Path] = []
    describe = registry_module.describe
    monkeypatch.setattr(registry_module, "describe", lambda path, *a: (reads.append(path), describe(path, *a))[1])
    reg = Registry(models, runs)
    first = reg.names()
    assert reg.names() == first and len(reads) == 4  # folk, shakespeare, broken, mine: each read once
    cfg = json.loads((runs / "mine" / "config.json").read_text())
    cfg["best_val_loss"] = 0.123
    (runs / "mine" / "config.json").write_text(json.dumps(cfg, indent=2))  # rewritten in place
    assert reg.entry("trained/mine").best_val_loss == 0.123 and reads[4:] == [runs / "mine"]
    shutil.copytree(models / "shakespeare", models / "another")  # a new folder: the listing changes
    shutil.rmtree(models / "folk")
    assert reg.names() == ["another", "shakespeare", "trained/mine"]
