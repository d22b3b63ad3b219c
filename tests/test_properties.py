"""Bad input by the thousand: property tests (hypothesis) for the readers of user input.

The property everywhere: a clear one-line error or a correct answer; never a traceback, an HTTP 500 or a
hang, and no file left half-written. The examples are generated and mutated from well-formed input.
Under the "ci" profile (the default; tests/conftest.py) each target runs a fixed number of examples from a
fixed seed (derandomized), so CI sees the same inputs every run; HYPOTHESIS_PROFILE=thorough tries 10x more.
Each target counts the inputs it tried into test-artifacts/property-counts.json (the README's table).
"""

from __future__ import annotations

import json
import math
import string

import pytest
import torch
from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_app_support import ARTIFACTS

from charrnn.data import encode_corpus
from charrnn.decoding.processors import SamplingSettings
from charrnn.errors import CharRNNError
from charrnn.folk.check import check_tune, split_tunes
from charrnn.folk.reader import tokenize
from charrnn.seq2seq.data import read_pairs

COUNTS: dict[str, int] = {}
FILES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)


def tried(target: str) -> None:
    COUNTS[target] = COUNTS.get(target, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "property-counts.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **COUNTS}, indent=1, sort_keys=True))


def one_line(e: CharRNNError) -> str:
    message = str(e)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


JIG = ("X:1\nT:The Kesh\nR:jig\nM:6/8\nL:1/8\nK:G\n|:GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|AGF G3:|\n"
       "|:BAB dBd|ege dBA|BAB dBG|ABA AGA|BAB dBd|ege dBd|gfg aga|bgf g3:|\n")
ABC_SYMBOLS = st.sampled_from(list("ABCDEFGabcdefgzxZ|:[]()123456789/><{}!+\"'^_=,~.-&%\\ \nKLMPVXTR"))


def mutated(text: str):
    """`text` with a few spans replaced by ABC-like junk."""
    edits = st.lists(st.tuples(st.integers(0, len(text)), st.integers(0, 6), st.text(ABC_SYMBOLS, max_size=8)),
                     max_size=8)

    def apply(changes):
        out = text
        for at, cut, put in changes:
            out = out[:at] + put + out[at + cut:]
        return out

    return edits.map(apply)


# --- the ABC reader and `folk check` -------------------------------------------------------------


@given(st.one_of(mutated(JIG), st.text(ABC_SYMBOLS, max_size=400), st.text(max_size=200)))
def test_the_abc_reader_and_checker_answer_every_text(text):
    tried("ABC reader and checker")
    tokens = list(tokenize(text.split("\n")[-1]))
    assert all(t.kind for t in tokens)
    for tune in split_tunes(text) or [text]:
        report = check_tune(tune)
        assert "parse-error" not in {f.kind for f in report.findings}, report.findings
        assert report.passed == (not any(f.severity == "error" for f in report.findings))
        bars = [-1 if f.bar is None else f.bar for f in report.findings]
        assert bars == sorted(bars)


@FILES
@given(st.one_of(mutated(JIG).map(lambda t: t.encode()), st.binary(max_size=300)))
def test_folk_check_answers_every_file_in_one_line_a_finding(tmp_path, capsys, data):
    from charrnn.cli import main

    tried("folk check (CLI)")
    path = tmp_path / "tunes.abc"
    path.write_bytes(data)
    capsys.readouterr()
    code = main(["folk", "check", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:  # unreadable: one line
        assert len(err.strip().splitlines()) == 1 and not out, err
    else:
        lines = out.splitlines()
        assert code in (0, 1) and lines[-1].startswith(f"{path}: ") and "checked" in lines[-1]
        assert all(line.startswith(f"{path}: tune ") for line in lines[:-1])
        assert (code == 1) == any(": error: " in line for line in lines[:-1])


# --- the TSV reader ----------------------------------------------------------------------------------

PAIR = st.tuples(st.text(string.ascii_letters + " é", min_size=1, max_size=12),
                 st.text(string.ascii_uppercase + "012 ", min_size=1, max_size=12)).map(lambda p: f"{p[0]}\t{p[1]}")
LINE = st.one_of(PAIR.map(str.encode), st.binary(max_size=30),
                 st.sampled_from([b"", b"\t", b"a\t", b"\tb", b"a\tb\tc", b"\xff\tb", b"a\x00\tb", b" \t ", b"\r"]))


@FILES
@given(st.lists(LINE, max_size=30), st.booleans())
def test_the_tsv_reader_gives_pairs_or_one_line_naming_the_line(tmp_path, lines, skip):
    tried("TSV reader")
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"\n".join(lines))
    try:
        pairs = read_pairs(path, skip_bad_lines=skip)
    except CharRNNError as e:
        message = one_line(e)
        assert str(path) in message
        return
    listed = [raw.removesuffix(b"\r") for raw in b"\n".join(lines).split(b"\n")]
    meant = [raw for raw in listed if raw.strip()]
    assert len(pairs) + pairs.skipped == len(meant) and (skip or pairs.skipped == 0)
    for source, target in zip(pairs.sources, pairs.targets, strict=True):
        assert source and target and "\t" not in "".join(source + target)


# --- corpus encoding ----------------------------------------------------------------------------------

CORPUS = st.one_of(
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.tuples(st.text(max_size=40),
              st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\r\n", b"\xef\xbb\xbf"]),
              st.text(max_size=40)).map(lambda p: p[0].encode() + p[1] + p[2].encode()),
    st.tuples(st.sampled_from("ab\x00é"), st.integers(10_000, 300_000)).map(lambda p: (p[0] * p[1]).encode()),
)


@FILES
@given(CORPUS)
def test_a_corpus_encodes_exactly_or_is_refused_in_one_line_leaving_no_partial_cache(tmp_path, data):
    tried("corpus encoding")
    path, cache = tmp_path / "corpus.txt", tmp_path / "cache"
    path.write_bytes(data)
    try:
        corpus = encode_corpus(path, cache)
    except CharRNNError as e:
        assert str(path) in one_line(e) or "empty" in str(e)
    else:
        assert corpus.vocab.decode(corpus.ids) == data.decode("utf-8").removeprefix("\ufeff")
    leftovers = [p.name for p in cache.glob("*") if not p.name.endswith((".bin", ".json", ".lock"))] \
        if cache.exists() else []
    assert leftovers == [], leftovers


# --- SamplingSettings ----------------------------------------------------------------------------------

ANY = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=5), st.lists(st.integers(), max_size=2))


@given(ANY, ANY, ANY, ANY, ANY, st.integers(1, 300))
def test_sampling_settings_are_refused_in_one_line_or_give_a_distribution(temperature, top_k, top_p, seed, penalty,
                                                                          vocab):
    tried("SamplingSettings")
    try:
        chosen = SamplingSettings(temperature, top_k, top_p, seed=seed, repetition_penalty=penalty).validate(vocab)
    except CharRNNError as e:
        one_line(e)
        return
    logits = torch.randn(1, vocab, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(vocab, (1, 5), generator=torch.Generator().manual_seed(1))  # the text so far
    for processor in chosen.processors:
        logits = processor(ids, logits)
    if not chosen.greedy:
        probs = torch.softmax(logits, -1)
        assert torch.isfinite(probs).all() and math.isclose(float(probs.sum()), 1.0, rel_tol=1e-4)
        assert int((probs > 0).sum()) >= 1


# --- every JSON route of the app, against one real server -----------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63), st.floats(allow_nan=False),
                      st.text(max_size=30), st.text(max_size=20_000).filter(lambda t: len(t) > 5_000),
                      st.just(""), st.just("\u202e\U0001f600\x00é"), st.just("../../etc/passwd"))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                              st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=10)


def deep(levels: int) -> bytes:
    """A JSON object whose model is nested `levels` lists deep (written out: json.dumps would recurse)."""
    return b'{"model": ' + b"[" * levels + b"1" + b"]" * levels + b"}"


FIELDS = {"api/complete": {"model": st.sampled_from(["shakespeare", "folk", "nope"]), "text": st.text(max_size=60),
                           "num": st.integers(-3, 20), "until": st.sampled_from(["word", "phrase", "line", "x"]),
                           "max_len": st.integers(-3, 100)},
          "api/translate": {"model": st.sampled_from(["g2p", "shakespeare"]), "text": st.text(max_size=60),
                            "beam": st.integers(-3, 20), "num": st.integers(-3, 20)}}


def body_of(route: str):
    """A request body: right fields with wrong or odd values, missing or extra fields, non-objects, deep nesting."""
    fields = FIELDS[route]
    good = st.fixed_dictionaries({}, optional={k: st.one_of(v, JSON_VALUE) for k, v in fields.items()})
    extra = st.dictionaries(st.text(max_size=10), JSON_VALUE, max_size=3)
    return st.one_of(st.tuples(good, extra).map(lambda p: json.dumps({**p[1], **p[0]}).encode()),
                     JSON_VALUE.map(lambda v: json.dumps(v).encode()),
                     st.integers(50, 5_000).map(deep),
                     st.binary(max_size=40))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run):
    import shutil

    from test_app_support import AppServer, models_folder

    models = models_folder(tmp_path_factory, tiny_run, "property-models")
    shutil.copytree(REPO / "models" / "g2p", models / "g2p")
    work = tmp_path_factory.mktemp("property-app")
    app = AppServer(models, work / "runs", work, "--read-only")
    yield app
    app.stop()


def post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.slow
@pytest.mark.parametrize("route", list(FIELDS))
def test_every_json_route_answers_every_body_without_a_500(server, route):
    @FILES
    @given(body_of(route))
    def check(body):
        tried(f"JSON route /{route}")
        status, answer = post(server.url + route, body)
        assert status in (200, 400, 404, 413, 422, 503), (status, answer[:300])
        data = json.loads(answer)
        if status != 200:
            assert "\n" not in data["error"] and data["error"], data

    check()
    _health = post(server.url + "api/health", b"")  # GET only: a POST is refused, never a 500
    assert _health[0] in (200, 405)
    log = server.log.read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]


GRADIO_EVENTS = {"complete": 5, "generate": 9, "folk": 10, "folk_show": 2, "translate": 4, "inspect": 2,
                 "inspect_cell": 3, "models": 0}  # an event's API name and how many values it takes


@pytest.mark.slow
def test_every_gradio_event_answers_every_json_body_with_a_result_or_an_error(server):
    """POST /gradio_api/call/NAME with generated data: a value its component would not take is a 422 with one
    line (web/payloads.py); else the event stream ends in 'complete' or 'error'; never a 500, a hang or a
    traceback in the server log."""
    import urllib.request

    @FILES
    @given(st.sampled_from(sorted(GRADIO_EVENTS)), st.data())
    def check(name, data):
        tried("Gradio events (/gradio_api/call/NAME)")
        values = data.draw(st.one_of(st.lists(JSON_VALUE, min_size=GRADIO_EVENTS[name], max_size=GRADIO_EVENTS[name]),
                                     JSON_VALUE))
        status, answer = post(f"{server.url}gradio_api/call/{name}", json.dumps({"data": values}).encode())
        assert status in (200, 400, 404, 413, 422), (status, answer[:300])
        if status != 200:
            if status == 422 and isinstance(detail := json.loads(answer), dict) and "error" in detail:
                assert detail["error"] and "\n" not in detail["error"], detail
            return
        event = json.loads(answer)["event_id"]
        with urllib.request.urlopen(f"{server.url}gradio_api/call/{name}/{event}", timeout=120) as r:
            stream = r.read().decode()
        assert "event: complete" in stream or "event: error" in stream, stream[-500:]

    check()
    log = server.log.read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
