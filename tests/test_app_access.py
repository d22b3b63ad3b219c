"""Who may reach the web app: --auth/--auth-file, loopback only without them, --read-only, a port in use.

The refusals that happen before Gradio is imported run `python app.py` for real and are quick; the
servers (a login, a read-only demo) are slow and marked so.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import torch
from helpers import run_in_threads
from test_app_support import AppServer, models_folder

from charrnn.checkpoint import load_model
from charrnn.decoding.sampling import prepare_prompt
from charrnn.decoding.suggest import SuggestSettings, suggest
from charrnn.errors import CharRNNError
from charrnn.models.rnn import serving_precision
from charrnn.serve.jobs import JobManager
from charrnn.serve.registry import Registry
from charrnn.serve.service import Service
from charrnn.web import access

from conftest import REPO

USERS = [("ada", "pw:with:colons"), ("bob", "s3cret")]


def run_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "app.py"), *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The app's stderr, which must be one line saying what is wrong (no traceback), and a non-zero exit."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --- the flags ------------------------------------------------------------------------------------------

def test_credentials_from_flags_and_a_file(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("bob:s3cret\n\n  carol:a b c  \n", encoding="utf-8")
    assert access.credentials(["ada:pw:with:colons"], str(users)) == [
        ("ada", "pw:with:colons"), ("bob", "s3cret"), ("carol", "a b c")]


@pytest.mark.parametrize("line", ["bob", "bob:", ":pw", "   :pw"])
def test_a_bad_auth_file_line_names_its_line(tmp_path, line):
    users = tmp_path / "users.txt"
    users.write_text(f"ada:pw\n{line}\n", encoding="utf-8")
    with pytest.raises(CharRNNError, match=r"users.txt line 2: expected USER:PASSWORD"):
        access.credentials([], str(users))


def test_bad_credentials_are_refused(tmp_path):
    with pytest.raises(CharRNNError, match="given more than once"):
        access.credentials(["ada:1", "ada:2"])
    with pytest.raises(CharRNNError, match="cannot read --auth-file"):
        access.credentials([], str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(CharRNNError, match="no USER:PASSWORD line"):
        access.credentials([], str(tmp_path / "empty.txt"))


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.5", False), ("example.org", False)])
def test_only_loopback_is_served_without_a_login(host, loopback):
    assert access.is_loopback(host) == loopback
    assert access.exposure(host, 80, has_auth=True, no_auth=False, read_only=False) == ""
    if loopback:
        assert access.exposure(host, 80, has_auth=False, no_auth=False, read_only=False) == ""
    else:
        with pytest.raises(CharRNNError, match="--auth USER:PASSWORD.*--no-auth"):
            access.exposure(host, 80, has_auth=False, no_auth=False, read_only=False)
        assert access.exposure(host, 80, has_auth=False, no_auth=True, read_only=False).startswith("warning:")
    with pytest.raises(CharRNNError, match="contradict"):
        access.exposure(host, 80, has_auth=True, no_auth=True, read_only=False)


# --- refusals of `python app.py`, before any server starts ------------------------------------------------

@pytest.fixture
def taken_port():
    """A port something already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_in_use_is_one_line(taken_port):
    line = one_error_line(run_app("--port", str(taken_port)))
    assert f"port {taken_port}" in line and "--port" in line and "in use" in line


def test_the_port_variable_is_the_default_port(taken_port):
    line = one_error_line(run_app(env={access.PORT_VARIABLE: str(taken_port)}))
    assert f"port {taken_port}" in line  # the app tried the variable's port, not 7860
    bad = run_app(env={access.PORT_VARIABLE: "x"})
    assert bad.returncode == 2 and one_error_line(bad).endswith(f"(from --port or ${access.PORT_VARIABLE}), not 'x'")


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--queue-size", "0", "must be at least 1, got 0"), ("--max-sessions", "-3", "must be at least 1, got -3"),
    ("--train-threads", "x", "must be a whole number, got 'x'"), ("--max-upload-mb", "0", "must be above 0, got 0"),
])
def test_a_bad_number_flag_is_one_line(flag, value, says):
    """Each is refused before anything starts, as the command line refuses its own (one line, exit 2)."""
    bad = run_app(flag, value)
    assert bad.returncode == 2 and one_error_line(bad) == f"app.py: error: argument {flag}: {says}"


def test_another_address_needs_a_login():
    line = one_error_line(run_app("--host", "0.0.0.0", "--port", "1"))
    assert "--auth" in line and "--no-auth" in line


def test_no_auth_warns(taken_port):
    # The warning comes before the port is tried: the taken port stops the app before gradio starts.
    result = run_app("--host", "0.0.0.0", "--no-auth", "--port", str(taken_port))
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("warning: --no-auth on 0.0.0.0") and f"port {taken_port}" in error


def test_a_bad_auth_file_stops_the_app(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("ada:pw\nno colon here\n")
    assert one_error_line(run_app("--auth-file", str(users))).endswith("users.txt line 2: expected USER:PASSWORD "
                                                                         "(a user name, a colon, a password)")


# --- the servers ----------------------------------------------------------------------------------------

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import ValidationError  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_run):
    return models_folder(tmp_path_factory, tiny_run, "access-models")


@pytest.fixture(scope="module")
def locked(models, tmp_path_factory):
    """The app with two users, one from --auth and one from --auth-file."""
    work = tmp_path_factory.mktemp("locked-app")
    (work / "users.txt").write_text(f"{USERS[1][0]}:{USERS[1][1]}\n")
    app = AppServer(models, work / "runs", work, "--auth", ":".join(USERS[0]), "--auth-file", str(work / "users.txt"))
    yield app
    app.stop()
    assert app.network_attempts() == []


def status_of(url: str, data: dict | None = None, headers: dict | None = None,
              opener: urllib.request.OpenerDirector | None = None) -> int:
    request = urllib.request.Request(url, json.dumps(data).encode() if data is not None else None,
                                     {"Content-Type": "application/json", **(headers or {})})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=20) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


JSON_ROUTES = {"api/complete": {"model": "shakespeare", "text": "To be, or not to b"},
               "api/translate": {"model": "g2p", "text": "hello"}}  # no g2p here: 400 once past the login


API = {"generate": ["shakespeare", "ROMEO:", 10, "sample", 0.8, 0, 1.0, 1, 8],
       "complete": ["shakespeare", "To be", 3, "word", 30], "models": [], "train_status": [],
       "train_start": ["upload", None, "", "lstm", "tiny", 5], "train_stop": [], "folk": [], "refresh": []}


@pytest.mark.slow
def test_without_a_login_everything_is_refused(locked, models):
    with urllib.request.urlopen(locked.url, timeout=20) as r:  # the page is the login page, and nothing else
        page = r.read().decode()
    config = json.loads(page.split("window.gradio_config = ", 1)[1].split(";</script>", 1)[0])
    assert config["auth_required"] and config["components"] == [] and config["dependencies"] == []
    refused = (401, 403)
    for route in ("config", "gradio_api/info", "gradio_api/openapi.json",
                  f"gradio_api/file={models / 'shakespeare' / 'config.json'}",
                  f"gradio_api/file={REPO / 'charrnn' / 'web' / 'static' / 'app.css'}",
                  "gradio_api/queue/data?session_hash=x", "gradio_api/upload_progress?upload_id=x"):
        assert status_of(locked.url + route) in refused, route
    for name, data in API.items():
        for route in (f"gradio_api/call/{name}", f"gradio_api/run/{name}", f"gradio_api/api/{name}"):
            assert status_of(locked.url + route, {"data": data}) in refused, route
            # values of the wrong type too: the login comes first (web/payloads.py would say what is wrong)
            assert status_of(locked.url + route, {"data": [{"a": 1}] * 9}) in refused, route
    assert status_of(locked.url + "gradio_api/queue/join", {"data": API["complete"], "fn_index": 0,
                                                            "session_hash": "x"}) in refused
    assert status_of(locked.url + "gradio_api/upload", {}) in refused
    for route, body in JSON_ROUTES.items():  # the JSON routes beside Gradio's (web/rest.py)
        for headers in ({}, basic(USERS[0][0], "wrong"), basic("eve", USERS[0][1]), {"Authorization": "Basic !!"}):
            assert status_of(locked.url + route, body, headers) == 401, (route, headers)
        assert status_of(locked.url + route, {}, {}) == 401  # refused before the body is even read
    with pytest.raises(ValueError, match="Could not login"):
        Client(locked.url, auth=(USERS[0][0], "wrong"), verbose=False)


@pytest.mark.slow
def test_with_a_login_everything_works(locked, small_text, tmp_path):
    for user in USERS:
        client = Client(locked.url, auth=user, verbose=False, download_files=False)
        assert {m["name"] for m in client.predict(api_name="/models")} == {"shakespeare", "folk"}
    answer = client.predict("shakespeare", "To be, or not to b", 3, "word", 30, api_name="/complete")
    assert answer["completions"]
    text, _ = client.predict("shakespeare", "ROMEO:", 20, "sample", 0.8, 0, 1.0, 1, 8, api_name="/generate")
    assert text.startswith("ROMEO:") and len(text) == 26
    upload = tmp_path / "mine.txt"
    upload.write_text(small_text.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    _, _, details = client.predict("upload", handle_file(str(upload)), "locked", "lstm", "tiny", 5,
                                   api_name="/train_start")
    assert details["name"] == "locked"
    client.predict(api_name="/train_stop")


@pytest.mark.slow
def test_the_json_routes_take_a_login_or_basic_credentials(locked):
    for user in USERS:
        assert status_of(locked.url + "api/complete", JSON_ROUTES["api/complete"], basic(*user)) == 200
    assert status_of(locked.url + "api/translate", JSON_ROUTES["api/translate"], basic(*USERS[0])) == 400
    session = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # as the page logs in
    login = urllib.parse.urlencode({"username": USERS[1][0], "password": USERS[1][1]}).encode()
    session.open(urllib.request.Request(locked.url + "login", login), timeout=20)
    assert status_of(locked.url + "api/complete", JSON_ROUTES["api/complete"], opener=session) == 200


@pytest.fixture(scope="module")
def demo(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("read-only-app")
    app = AppServer(models, work / "runs", work, "--read-only", "--host", "0.0.0.0", "--no-auth")  # a public demo
    yield app
    app.stop()
    assert app.network_attempts() == []


@pytest.mark.slow
def test_read_only_has_no_training_and_takes_no_files(demo, tmp_path):
    client = Client(demo.url, verbose=False, download_files=False)
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/complete", "/generate", "/folk", "/models"} <= set(named)
    assert not {n for n in named if n.startswith("/train")}, named
    for name in ("train_start", "train_stop", "train_status", "train_poll", "corpus_build_folk"):
        for route in (f"gradio_api/call/{name}", f"gradio_api/run/{name}"):  # Gradio alone: 500 and a traceback
            assert status_of(demo.url + route, {"data": API.get(name, [])}) == 404, route
    log = demo.log.read_text()
    assert "Traceback" not in log and "every network interface of this machine (--host 0.0.0.0)" in log, log
    assert not (demo.workdir / "runs").exists()
    with urllib.request.urlopen(f"{demo.url}config", timeout=20) as r:
        labels = [c["props"].get("label") for c in json.loads(r.read())["components"]]
    assert "Train" not in labels and "Training text" not in labels
    upload = tmp_path / "mine.txt"
    upload.write_text("To be, or not to be.\n")
    boundary = "charrnn-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"mine.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nTo be, or not to be.\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{demo.url}gradio_api/upload", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert refused.value.code == 403 and b"--read-only" in refused.value.read()
    answer = client.predict("shakespeare", "To be, or not to b", 3, "word", 30, api_name="/complete")
    assert answer["completions"]
    assert status_of(demo.url + "api/complete", JSON_ROUTES["api/complete"]) == 200  # no login on loopback
    with pytest.raises(ValidationError, match=r"length: must be a number from 1 to 5,000, not 10000000"):  # bounds kept
        client.predict("shakespeare", "ROMEO:", 10**7, "sample", 0.8, 0, 1.0, 1, 8, api_name="/generate")


@pytest.mark.parametrize(("body", "says"), [(b"{", "the body is not valid JSON"), (b"[1]", "a JSON object with"),
                                            (b'{"text": "To be"}', "model: field required"),
                                            (b'{"model": "shakespeare", "num": "x"}', "num: input should be")])
def test_a_malformed_json_body_is_a_400_with_one_line(demo, body, says):
    request = urllib.request.Request(demo.url + "api/complete", body, {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=20)
    assert caught.value.code == 400
    error = json.loads(caught.value.read())["error"]
    assert says in error and "\n" not in error, error


def post_json(url: str, data: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(data).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def test_the_json_route_adapts_per_session_and_forgets(demo):
    """/api/complete with "adapt": the server issues the session key; /api/forget drops what it learned."""
    url = demo.url + "api/complete"
    first = post_json(url, {"model": "shakespeare", "text": "To be, or not to b", "adapt": True})
    key = first["session"]
    assert len(key) >= 20 and first["learned_chars"] == 0
    assert all({"kind", "space"} <= set(c) for c in first["completions"])
    again = post_json(url, {"model": "shakespeare", "text": "To be, or not to be " * 10, "adapt": True,
                            "session": key})
    assert again["session"] == key
    assert post_json(url, {"model": "shakespeare", "text": "x", "adapt": True, "session": "mine"})["session"] != "mine"
    assert "session" not in post_json(url, {"model": "shakespeare", "text": "To be"})  # no adaptation asked
    assert post_json(demo.url + "api/forget", {"session": key}) == {"forgotten": 1}
    assert post_json(demo.url + "api/forget", {"session": key}) == {"forgotten": 0}


@pytest.mark.parametrize("text", ["ROMEO:\nI will not th", "ROMEO:\nI will "])
def test_both_json_routes_offer_the_default_suggestions(demo, tiny_run, text):
    """/api/complete and the page's /api/page/complete answer what decoding.suggest offers by default: inside a
    word and at a word start, each suggestion with its kind and whether accepting it types a space."""
    model, vocab, _ = load_model(tiny_run)
    model.step_precision = serving_precision(model.device)  # as the app serves a language model
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # and on one thread a request
    try:
        expected = suggest(model, vocab, prepare_prompt(model, vocab, text), SuggestSettings())
    finally:
        torch.set_num_threads(threads)
    for route in ("api/complete", "api/page/complete"):
        answer = post_json(demo.url + route, {"model": "shakespeare", "text": text})
        assert [(c["text"], c["kind"], c["space"]) for c in answer["completions"]] == \
               [(s.text, s.kind, s.space) for s in expected], route
        assert [c["prob"] for c in answer["completions"]] == pytest.approx([s.prob for s in expected], rel=1e-3)
    assert post_json(demo.url + "api/page/complete", {"model": "shakespeare", "text": text})["auto_space"] is True


def test_writers_typing_at_once_on_a_real_server_each_get_their_own_learning(demo, models, tmp_path):
    """Two pages type at the same time with "learn from my text" on, through the page's own route: each one's
    answers are those of a server that saw that writer's text alone, and a page without it gets the trained model."""
    url, probe = demo.url + "api/page/complete", "Then came Morb"
    writing = {"a": "Morbrin the quiet came to Padua. " * 4, "b": "The weather in Mantua is fair and mild today. " * 3}

    def words(answer: dict) -> list[tuple[str, float]]:
        return [(c["text"], c["logprob"]) for c in answer["completions"] if c["kind"] == "word"]

    def write(text: str) -> str:
        key, answer = "", {}
        for cut in range(8, len(text) + 1, 8):  # a few keystrokes at a time, as the page asks
            answer = post_json(url, {"model": "shakespeare", "text": text[:cut], "adapt": True, "session": key})
            key = answer["session"]
        whole = 64 * ((len(text[:cut]) - 1) // 64)  # the whole segments of 64 (and the character after each)
        for _ in range(600):  # learning runs in the background: ask again until it has learned them
            if answer["learned_chars"] == whole:
                return key
            time.sleep(0.1)
            answer = post_json(url, {"model": "shakespeare", "text": text[:cut], "adapt": True, "session": key})
        raise AssertionError(f"learned {answer['learned_chars']} of {whole} characters")

    keys = dict(zip(writing, run_in_threads([lambda t=t: write(t) for t in writing.values()]), strict=True))
    got = {w: words(post_json(url, {"model": "shakespeare", "text": probe, "adapt": True, "session": keys[w]}))
           for w in writing}
    trained = words(post_json(url, {"model": "shakespeare", "text": probe}))
    alone = Service(Registry(models, tmp_path / "runs"), JobManager(tmp_path / "runs", threads=1, device="cpu"),
                    files_dir=tmp_path / "files")
    for w, text in writing.items():
        key = alone.complete("shakespeare", text[: 8 * (len(text) // 8)], adapt=True)["session"]
        assert alone.sessions.idle(60)
        expected = words(alone.complete("shakespeare", probe, adapt=True, session=key))
        assert [t for t, _ in got[w]] == [t for t, _ in expected], w
        assert all(abs(a - b) < 2e-3 for (_, a), (_, b) in zip(got[w], expected, strict=True)), (w, got[w], expected)
    assert got["a"] != got["b"] and trained not in got.values()
    assert trained == words(alone.complete("shakespeare", probe))
