"""Looking inside a model (charrnn/inside): activations, features, the finder, reports, `charrnn inspect`."""

from __future__ import annotations

import json
import math
import random
import re
import sys

import numpy as np
import pytest
import torch

from charrnn import cli
from charrnn.checkpoint import load_model
from charrnn.data import Vocab
from charrnn.inside.activations import record
from charrnn.inside.features import Feature, builtin_features, marks, text_features
from charrnn.inside.finder import auc, pearson, rank_cells
from charrnn.inside.render import html_page
from charrnn.inside.report import CellRef, inspect_text
from charrnn.models.rnn import CharRNN, ModelConfig
from charrnn.training.config import TrainConfig
from charrnn.training.lm import evaluate
from charrnn.training.trainer import train

TOLERANCE = 1e-5


def random_model(cell: str, vocab_size: int = 30, hidden: int = 24, seed: int = 0) -> CharRNN:
    torch.manual_seed(seed)
    return CharRNN(ModelConfig(vocab_size, cell=cell, layers=2, hidden=hidden, embed=8)).eval()


def stepped(model: CharRNN, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits (T, V), h (T, L, H) and c (LSTM) by `CharRNN.step`, one character at a time."""
    state, logits, hs, cs = model.init_state(1), [], [], []
    with torch.inference_mode():
        for x in ids:
            out, state = model.step(x.view(1), state)
            logits.append(out[0])
            h, c = state if model.cfg.cell == "lstm" else (state, None)
            hs.append(h[:, 0])
            if c is not None:
                cs.append(c[:, 0])
    return torch.stack(logits), torch.stack(hs), (torch.stack(cs) if cs else None)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recomputed_activations_equal_stepping_one_character_at_a_time(cell):
    model = random_model(cell)
    ids = torch.randint(0, 30, (300,), generator=torch.Generator().manual_seed(1))
    kinds = {"lstm": ("h", "c", "i", "f", "g", "o"), "gru": ("h", "r", "z", "n")}[cell]
    acts = record(model, ids, keep=kinds, chunk=64)  # several chunks: the state must carry across them
    logits, h, c = stepped(model, ids)
    assert (acts.logits - logits).abs().max() < TOLERANCE
    for k in range(2):
        assert (acts.series[k, "h"] - h[:, k]).abs().max() < TOLERANCE
        h_prev = torch.cat([torch.zeros(1, 24), h[:-1, k]])
        if cell == "lstm":
            assert (acts.series[k, "c"] - c[:, k]).abs().max() < TOLERANCE
            c_prev = torch.cat([torch.zeros(1, 24), c[:-1, k]])
            s = {g: acts.series[k, g] for g in "ifgo"}
            # The recomputed gates give the stepped state back: c = f c(t-1) + i g, h = o tanh(c).
            assert (s["f"] * c_prev + s["i"] * s["g"] - c[:, k]).abs().max() < TOLERANCE
            assert (s["o"] * c[:, k].tanh() - h[:, k]).abs().max() < TOLERANCE
        else:
            z, n = acts.series[k, "z"], acts.series[k, "n"]
            assert (torch.lerp(n, h_prev, z) - h[:, k]).abs().max() < TOLERANCE


def test_forcing_the_forget_gate_bias_saturates_the_forget_gates():
    model = random_model("lstm", hidden=32)
    with torch.no_grad():
        for k in range(2):
            getattr(model.rnn, f"bias_ih_l{k}")[32:64] += 10  # (i, f, g, o): the second quarter is f
    report = inspect_text(model, Vocab([chr(97 + i) for i in range(30)]), "".join(
        random.Random(0).choice("abcdefghij") for _ in range(500)))
    forget = [s for s in report.saturation if s["gate"] == "f"]
    assert len(forget) == 2
    for s in forget:
        assert np.mean(s["high"]) >= 0.99
    inputs = [s for s in report.saturation if s["gate"] == "i"]
    assert all(np.mean(s["high"]) < 0.9 for s in inputs)  # only the forced gate saturates


def test_features_of_a_text():
    text = 'ab "cd" (e[f])\nGH IJ x'
    f = {feat.name: feat.values for feat in builtin_features(text)}
    assert "".join("1" if v else "0" for v in f["in_quotes"]) == "0001110000000000000000"
    assert f["line_position"].tolist()[:3] == [1, 2, 3] and f["line_position"][14] == 0 and f["line_position"][15] == 1
    assert f["bracket_depth"].tolist()[8:14] == [1, 1, 2, 2, 1, 0]
    assert np.flatnonzero(f["line_start"]).tolist() == [0, 15]
    assert "".join(text[i] for i in np.flatnonzero(f["upper_run"])) == "GH IJ"
    assert "bar_position" not in f
    abc = "X:1\nM:4/4\nK:D\n|:AB cd|ef:|\n"
    g = {feat.name: feat.values for feat in builtin_features(abc)}
    music = abc.index("|:")
    assert g["bar_position"][music : music + 8].tolist() == [0, 1, 2, 3, 4, 5, 6, 0]
    assert g["in_repeat"][:music].sum() == 0 and g["in_repeat"][music + 1 : music + 11].all()
    assert not g["in_repeat"][-2]  # after :|
    mine = text_features(text, ["caps=[A-Z]+"])[-1]
    assert mine.name == "caps" and mine.binary and np.flatnonzero(mine.values).tolist() == [15, 16, 18, 19]
    assert marks("ab\ncd", re.compile("^c", re.MULTILINE)).tolist() == [False, False, False, True, False]


def test_the_finder_scores_agree_with_their_definitions():
    rng = np.random.default_rng(0)
    t = 400
    target = rng.random(t) < 0.3
    values = torch.from_numpy(rng.normal(size=(t, 5))).float()
    values[:, 3] += torch.from_numpy(target * 2.0).float()
    ranks = values.argsort(0).argsort(0).double()
    got = auc(ranks, torch.from_numpy(target))
    pos, neg = values[target], values[~target]
    brute = (pos[:, None, :] > neg[None, :, :]).double().mean((0, 1))
    assert torch.allclose(got, brute, atol=1e-12)
    numeric = rng.normal(size=t)
    r = pearson(values, torch.from_numpy(numeric))
    assert np.allclose(r.numpy(), [np.corrcoef(values[:, j].numpy(), numeric)[0, 1] for j in range(5)], atol=1e-6)
    ranking = rank_cells({(0, "h"): -values}, [Feature("x", True, target), Feature("flat", True, np.zeros(t, bool))])
    assert [r.feature for r in ranking] == ["x"]  # a constant feature cannot rank anything
    assert ranking[0].cells[0] == (0, 3, "h") and ranking[0].signs[0] == -1 and ranking[0].scores[0] > 0.85


# --- with a trained run, and through the command line ------------------------------------------------------------


def test_surprisal_sums_to_the_eval_loss(tiny_run, small_text):
    model, vocab, run = load_model(tiny_run)
    text = small_text.read_text(encoding="utf-8")[5000:6500]
    report = inspect_text(model, vocab, text, char_counts=run.char_counts)
    loss, n = evaluate(model, vocab.encode(text), batch_size=1, seq_len=256)
    assert n == len(text) - 1
    assert report.surprisal[1:].sum() * math.log(2) == pytest.approx(loss * n, rel=1e-5)
    assert report.bpc == pytest.approx(loss / math.log(2), rel=1e-5)
    for i in (1, 700, 1499):  # a character's guesses are the model's best, most likely first
        probs = [p for _, p in report.top[i]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6


def cli_run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_json_and_html(tiny_run, small_text, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text(small_text.read_text(encoding="utf-8")[:400], encoding="utf-8")
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, "--json", "--feature", "speaker=^[A-Za-z ]+:$",
                             "--cell", "1:3:c", "--html", tmp_path / "r.html", "--threads", "1")
    assert code == 0, err
    data = json.loads(out)
    assert [c["char"] for c in data["chars"]] == list(path.read_text())
    assert set(data["chars"][5]) == {"char", "surprisal", "top"} and len(data["chars"][5]["top"]) == 5
    assert {"feature", "layer", "cell", "kind", "score"} <= set(data["cells"][0])
    assert {c["feature"] for c in data["cells"]} >= {"line_position", "in_word", "line_start", "speaker"}
    assert {(s["layer"], s["gate"]) for s in data["saturation"]} == {(k, g) for k in range(2) for g in "ifo"}
    assert len(data["series"]["1:3:c"]) == 400
    code, out, _ = cli_run(capsys, "eval", tiny_run, path, "--json", "--threads", "1")
    assert json.loads(out)["bpc"] == pytest.approx(data["bpc"], rel=1e-5)  # the same bits as charrnn eval
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing is loaded from outside
    assert page.count('title="') == 400 and "<svg" in page and '"1:3:c"' in page


def test_inspect_colours_a_cell_in_the_terminal_and_not_in_a_pipe(tiny_run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "t.txt"
    path.write_text("First Citizen:\nSpeak.\n", encoding="utf-8")
    code, piped, err = cli_run(capsys, "inspect", tiny_run, path, "--cell", "0:7", "--threads", "1")
    assert code == 0, err
    rows = piped.splitlines()  # the values alone: no header, no summary (that goes to stderr)
    assert "\x1b" not in piped and [json.loads(r.split("\t")[0]) for r in rows] == list(path.read_text())
    assert "bits per character" in err
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, "--cell", "0:7", "--threads", "1")
    assert out.startswith("cell 0:7:h") and out.count("\x1b[48;5;") == len(path.read_text()) - 2  # not the \n's
    assert "bits per character" in out
    values = [float(r.split("\t")[1]) for r in rows]
    assert len(set(values)) > 1  # the cell's own values, not a constant


@pytest.mark.parametrize("content, args, message", [
    ("", [], "is empty"),
    ("hello", ["--cell", "2:0"], "layer must be 0 to 1"),
    ("hello", ["--cell", "0:32"], "index must be 0 to 31"),
    ("hello", ["--cell", "0:1:q"], "not 'q'"),
    ("hello", ["--cell", "zero"], "a cell is LAYER:INDEX"),
    ("hello", ["--feature", "bad=(unclosed"], "does not compile"),
    ("hello", ["--feature", "nameonly"], "NAME=REGEX"),
    ("hello \u2603 snow", [], "the text has characters the model does not know: '\u2603'"),
])
def test_bad_input_gets_one_line(tiny_run, tmp_path, capsys, content, args, message):
    path = tmp_path / "t.txt"
    path.write_text(content, encoding="utf-8")
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, *args, "--threads", "1")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("charrnn: error: ") and message in err


def test_a_bad_max_chars_is_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("hello", encoding="utf-8")
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, "--max-chars", "1", "--threads", "1")
    assert code == 2 and out == ""
    assert err == "charrnn inspect: error: argument --max-chars: must be at least 2, got 1\n"


def test_unknown_skip_drops_what_the_model_does_not_know(tiny_run, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("hello \u2603 snow", encoding="utf-8")
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, "--unknown", "skip", "--json", "--threads", "1")
    assert code == 0, err
    assert "".join(c["char"] for c in json.loads(out)["chars"]) == "hello  snow"


def test_a_long_text_is_read_up_to_max_chars_and_says_so(tiny_run, small_text, tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text(small_text.read_text(encoding="utf-8")[:300], encoding="utf-8")
    code, out, err = cli_run(capsys, "inspect", tiny_run, path, "--json", "--max-chars", "120", "--threads", "1")
    assert code == 0 and err == "inspecting the first 120 of 300 characters (--max-chars sets how many)\n"
    assert "".join(c["char"] for c in json.loads(out)["chars"]) == path.read_text()[:120]


def test_a_cell_ref_parses_and_checks():
    model = random_model("gru")
    assert CellRef.parse("1:5").check(model) == CellRef(1, 5, "h")
    assert CellRef.parse("0:2:z").check(model).kind == "z"


def test_the_page_for_ten_thousand_characters_is_under_5_mb():
    model = random_model("lstm", vocab_size=27, hidden=64)
    vocab = Vocab(list("\n abcdefghijklmnopqrstuvwxy"))
    text = "".join(random.Random(2).choice(vocab.chars) for _ in range(10_000))
    report = inspect_text(model, vocab, text, show_best=3)
    page = html_page(report, "size")
    assert len(page.encode()) < 5_000_000 and page.count("<span") >= 10_000


# --- the finder finds what is there, not noise ----------------------------------------------------------------------

OUTSIDE = "the a of and to in is it that was he for on are as with his they at be this from have or by one had".split()
# Inside quotes the words are spelled backwards: the same letters as outside, so a cell must remember the
# quote to know which spelling comes next, and an untrained cell cannot tell the inside from the letters.
QUOTED = [w[::-1] for w in OUTSIDE]


def synthetic_corpus(n_chars: int, seed: int = 0, width: int = 32) -> str:
    """Paragraphs of words, quoted spans and nested brackets, cut into lines of `width` characters (a
    paragraph's last line is shorter): where a line ends depends only on the position in it."""
    rng = random.Random(seed)
    paragraphs, length = [], 0
    while length < n_chars:
        tokens = []
        for _ in range(rng.randint(8, 40)):
            r = rng.random()
            if r < 0.2:
                tokens.append('"' + " ".join(rng.choice(QUOTED) for _ in range(rng.randint(2, 6))) + '"')
            elif r < 0.3:
                opens = [rng.choice("([") for _ in range(rng.randint(1, 3))]
                words = " ".join(rng.choice(OUTSIDE) for _ in range(len(opens) + 1))
                tokens.append("".join(opens) + words + "".join({"(": ")", "[": "]"}[o] for o in reversed(opens)))
            else:
                tokens.append(rng.choice(OUTSIDE))
        text = " ".join(tokens)
        paragraphs.append("\n".join(text[i : i + width] for i in range(0, len(text), width)))
        length += len(text) + 1
    return "\n".join(paragraphs) + "\n"


def best_scores(model, vocab, text) -> dict[str, float]:
    report = inspect_text(model, vocab, text)
    return {r.feature: float(r.scores[0]) for r in report.rankings}


@pytest.mark.slow
def test_the_finder_finds_quote_and_line_position_cells_after_training(tmp_path):
    corpus = tmp_path / "synthetic.txt"
    corpus.write_text(synthetic_corpus(300_000), encoding="utf-8")
    held_out = synthetic_corpus(4_000, seed=99)
    cfg = TrainConfig(corpus=str(corpus), out=str(tmp_path / "run"), layers=1, hidden=64, embed=16,
                      batch_size=32, seq_len=128, lr=5e-3, warmup=50, dropout=0.0, max_steps=4000, seed=1,
                      eval_every=250, threads=1, device="cpu", cache_dir=str(tmp_path / "cache"))
    vocab = Vocab(sorted(set(corpus.read_text(encoding="utf-8"))))
    torch.manual_seed(cfg.seed)  # initialised as the trainer initialises it
    before = best_scores(CharRNN(cfg.model_config(len(vocab))).eval(), vocab, held_out)
    assert before["in_quotes"] <= 0.7 and before["line_position"] <= 0.7
    train(cfg, progress=False)
    model, vocab, _ = load_model(tmp_path / "run")
    after = best_scores(model, vocab, held_out)
    assert after["in_quotes"] >= 0.9 and after["line_position"] >= 0.8, after
