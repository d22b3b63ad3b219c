"""The Pronounce tab's service on the shipped G2P model: N-best pronunciations, the dictionary's beside
them, attention for the picture, bounds; and models of one kind never offered where the other is asked."""

import json
import math
import shutil
import threading

import pytest
import torch
from helpers import REPO, require

from charrnn.errors import CharRNNError
from charrnn.serve.jobs import JobManager
from charrnn.serve.limits import MAX_WORDS
from charrnn.serve.pronounce import Pronouncer, words_of
from charrnn.serve.registry import Registry, UnknownModel
from charrnn.serve.service import Service
from charrnn.web.views import pronunciations_html

G2P = REPO / "models" / "g2p"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    models = tmp_path_factory.mktemp("pronounce-models")
    shutil.copytree(require(G2P), models / "g2p")
    shutil.copytree(REPO / "models" / "shakespeare", models / "shakespeare")
    return Registry(models)


@pytest.fixture(scope="module")
def pronouncer(registry):
    return Pronouncer(registry)


def test_words_of_a_sentence_are_read_as_the_cli_reads_them_and_what_is_left_out_is_said(pronouncer):
    words, notes = words_of("Hello, HELLO world! It’s 3 o'clock. Café rock-and-roll 42nd", pronouncer.translator("g2p"))
    assert words == ["hello", "world", "it's", "o'clock", "cafe", "rock", "and", "roll"]
    assert "Hello,: left out punctuation: ," in notes and "world!: left out punctuation: !" in notes
    assert "It’s: read ’ as '" in notes and "Café: read é as e" in notes
    digits = [n for n in notes if "digits" in n]
    assert len(digits) == 2 and all("write numbers as words" in n for n in digits), notes  # 3 and 42nd


def test_a_text_of_digits_alone_is_refused_saying_why(pronouncer):
    with pytest.raises(CharRNNError, match="type one or more words; left out '123' has digits"):
        pronouncer.pronounce("g2p", "123")


def test_n_best_with_the_dictionary_beside(pronouncer):
    result = pronouncer.pronounce("g2p", "hello zyxquabble", beam=5, num=3)
    hello, made_up = result["words"]
    assert hello["word"] == "hello" and len(hello["outputs"]) == 3
    probs = [o["prob"] for o in hello["outputs"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    assert {d["arpabet"] for d in hello["dictionary"]} >= {"HH AH0 L OW1"}
    assert all(math.isclose(d["prob"], math.exp(d["logprob"]), rel_tol=1e-3) for d in hello["dictionary"])
    assert any(o["in_dictionary"] for o in hello["outputs"])  # the model knows this one
    assert made_up["dictionary"] == [] and made_up["outputs"][0]["ipa"]
    assert hello["outputs"][0]["ipa"].replace("ˈ", "").startswith("h")
    att = hello["attention"]
    assert att["letters"] == list("hello") and att["phonemes"][-1] == "</s>"
    assert len(att["weights"]) == len(att["phonemes"]) and all(len(r) == 5 for r in att["weights"])
    assert all(abs(sum(r) - 1) < 1e-3 for r in att["weights"])
    assert result["ms"] > 0


def test_the_picture_and_table(pronouncer):
    page = pronunciations_html(pronouncer.pronounce("g2p", "hello", 3, 2))
    assert page.count("<svg") == 1 and page.count("<rect") == 5 * 5 and "ARPAbet" in page and "/h" in page
    assert page.count("<th>") == 4 and page.count("<th></th>") == 0  # every column has a heading
    assert page.count("<tr>") == 3 and all(row.count("<td") == 4 for row in page.split("<tr>")[2:])
    shown = pronunciations_html(pronouncer.pronounce("g2p", "Café!", 3, 2))
    assert "<h3>cafe</h3>" in shown and "read é as e" in shown and "left out punctuation: !" in shown


def test_bounds_and_bad_input(pronouncer):
    with pytest.raises(CharRNNError, match="type one or more words"):
        pronouncer.pronounce("g2p", "123 !!", 5, 3)
    many = pronouncer.pronounce("g2p", " ".join(x + y for x in "abcdefgh" for y in "abcdefgh"), beam=99, num=99)
    assert len(many["words"]) == MAX_WORDS and len(many["words"][0]["outputs"]) == 5


def test_kinds_stay_apart(registry, pronouncer):
    assert registry.names() == ["shakespeare"] and registry.names(kind="seq2seq") == ["g2p"]
    assert registry.default(None, "g2p", kind="seq2seq") == "g2p"
    with pytest.raises(UnknownModel, match="choose one of: g2p"):
        pronouncer.pronounce("shakespeare", "hello")
    with pytest.raises(UnknownModel, match="choose one of: shakespeare"):
        registry.load("g2p")


def test_translate_with_the_lexicon(capsys, tmp_path):
    from charrnn.cli import main

    words = tmp_path / "words.txt"
    words.write_text("hello\nzyxquabble\n", encoding="utf-8")
    assert main(["seq2seq", "translate", str(require(G2P)), "--lexicon", "--file", str(words), "--json",
                 "--num", "2"]) == 0
    hello, made_up = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert hello["from"] == "lexicon" and {o["text"] for o in hello["outputs"]} == {"HH AH0 L OW1", "HH EH0 L OW1"}
    assert made_up["from"] == "model" and len(made_up["outputs"]) == 2 and made_up["outputs"][0]["ended"]
    lexicon = tmp_path / "mine.tsv"
    lexicon.write_text("zyxquabble\tZ IH1 K S\n", encoding="utf-8")
    assert main(["seq2seq", "translate", str(G2P), "zyxquabble", "--lexicon", str(lexicon), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"][0]["text"] == "Z IH1 K S"


def test_eval_on_the_test_split(capsys, tmp_path):
    from charrnn.cli import main

    test = REPO / "corpora" / "cmudict.test.tsv"
    if not test.exists():
        from charrnn import corpora
        corpora.build("cmudict")
    rows = test.read_text(encoding="utf-8").splitlines()[:300]
    sample = tmp_path / "test-sample.tsv"
    sample.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["seq2seq", "eval", str(require(G2P)), str(sample), "--json", "--ignore-stress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["wer"] < 0.45 and result["ter"] < 0.12 and result["ignore_stress"]  # far better than chance


def test_the_service_pronounces_on_one_thread(registry, tmp_path):
    """The app's request threads start with torch's default threads; inference, this included, uses one."""
    service = Service(registry, JobManager(tmp_path / "runs", threads=1, device="cpu"), files_dir=tmp_path / "files")
    seen = {}

    def request():
        torch.set_num_threads(2)  # as a fresh worker thread on a machine of 2 cores or more starts
        seen["words"] = [w["word"] for w in service.pronounce("g2p", "hello world")["words"]]
        seen["threads"] = torch.get_num_threads()

    worker = threading.Thread(target=request)
    worker.start()
    worker.join()
    assert seen == {"words": ["hello", "world"], "threads": 1}
