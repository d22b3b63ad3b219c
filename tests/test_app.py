"""The web app through its API (gradio_client), launched as `python app.py` on a free local port.

Slow: each server takes a few seconds to start (importing gradio). The servers run with a guard that
fails and records any connection to anything but this machine: the app must never use the network.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from test_app_support import ARTIFACTS, AppServer, models_folder

from charrnn.decoding.suggest import KINDS

from conftest import REPO

pytestmark = pytest.mark.slow

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import ValidationError  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_run):
    return models_folder(tmp_path_factory, tiny_run, "api-models")


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("api-app")
    app = AppServer(models, work / "runs", work, "--max-upload-mb", "1")
    yield app
    app.stop()
    assert app.network_attempts() == [], "the app tried to reach the network"


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False, download_files=False)


def test_first_response_is_quick(server):
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "app-startup.json").write_text(json.dumps({"first_response_s": round(server.first_response_s, 2)}))
    assert server.first_response_s < 30  # the README's figure is measured on an idle machine: under 10 s


def test_the_log_names_the_address_and_no_share_link(server):
    deadline = time.monotonic() + 30  # the line comes once launch() returns, just after the first answer
    while "charrnn app ready in " not in (log := server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "charrnn app ready in " in log and server.url in log
    assert "share=True" not in log and "public link" not in log  # the README promises no share link


def test_the_api_names_every_value(client):
    """view_api() names each input and result after its component's label, never value_89."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/generate", "/complete", "/folk", "/train_start", "/train_stop", "/corpus_build_folk"):
        values = endpoints[name]["parameters"] + endpoints[name]["returns"]
        assert values and not [v["label"] for v in values if v["label"].startswith("value_")], name
    assert [r["label"] for r in endpoints["/train_start"]["returns"]] == ["Status", "Loss curve", "Job"]


def test_models_are_listed(client):
    listed = {m["name"]: m for m in client.predict(api_name="/models")}
    assert set(listed) == {"shakespeare", "folk"}
    assert listed["folk"]["folk"] and not listed["shakespeare"]["folk"]


def test_generate_returns_text_and_speed(client):
    text, stats = client.predict("shakespeare", "ROMEO:", 120, "sample", 0.8, 0, 1.0, 42, 8, api_name="/generate")
    assert text.startswith("ROMEO:") and len(text) == 126
    assert "chars/s" in stats and "seed 42" in stats
    again, _ = client.predict("shakespeare", "ROMEO:", 120, "sample", 0.8, 0, 1.0, 42, 8, api_name="/generate")
    assert again == text
    beam, stats = client.predict("shakespeare", "The ", 40, "beam", 0.8, 0, 1.0, -1, 4, api_name="/generate")
    assert beam.startswith("The ") and "beam width 4" in stats


def test_generation_streams(client):
    job = client.submit("shakespeare", "ROMEO:", 3000, "sample", 0.8, 0, 1.0, 1, 8, api_name="/generate")
    job.result(timeout=120)
    updates = job.outputs()
    assert len(updates) >= 3
    lengths = [len(text) for text, _ in updates]
    assert lengths == sorted(lengths) and lengths[-1] == 3006 and lengths[0] < 3006


def test_server_side_bounds(client, server):
    # refused before Gradio reads them (web/payloads.py), each in one line, with no traceback in the log
    with pytest.raises(ValidationError, match="length: must be a number from 1 to 5,000, not 10000000"):
        client.predict("shakespeare", "ROMEO:", 10**7, "sample", 0.8, 0, 1.0, 1, 8, api_name="/generate")
    with pytest.raises(ValidationError, match="num: must be a number from 1 to 5, not 99"):
        client.predict("shakespeare", "To be", 99, "word", 30, api_name="/complete")
    with pytest.raises(ValidationError, match="temperature: must be a number from 0 to 3, not an object"):
        client.predict("shakespeare", "ROMEO:", 10, "sample", {"t": 1}, 0, 1.0, 1, 8, api_name="/generate")
    assert "Traceback" not in server.log.read_text()
    long_prime = "ROMEO: " * 5000  # 35,000 characters: the page's max length is not enforced by Gradio
    text, _ = client.predict("shakespeare", long_prime, 10, "greedy", 0, 0, 1.0, 1, 8, api_name="/generate")
    assert len(text) == 2000 + 10 and text.startswith(long_prime[:2000])
    answer = client.predict("shakespeare", "x" * 100_000, 3, "word", 30, api_name="/complete")
    assert answer["text_len"] == 100_000 and len(answer["tail"]) == 32


@pytest.mark.parametrize("name", ["../shakespeare", "/etc/passwd", "shakespeare/../folk", "trained/../../x", ""])
def test_models_are_chosen_by_name_only(client, name):
    with pytest.raises(Exception, match="no model|choose a model"):
        client.predict(name, "To be", 3, "word", 30, api_name="/complete")
    with pytest.raises(Exception, match="no model|choose a model"):  # a streaming event says so too
        client.predict(name, "ROMEO:", 10, "sample", 0.8, 0, 1.0, 1, 8, api_name="/generate")


def test_autocomplete(client):
    answer = client.predict("shakespeare", "To be, or not to b", 3, "word", 30, api_name="/complete")
    assert answer["text_len"] == 18 and answer["tail"] == "To be, or not to b"
    assert 1 <= len(answer["completions"]) <= 3  # words, words with their punctuation, a phrase: 3 in all
    assert {c["kind"] for c in answer["completions"]} <= set(KINDS)
    first = answer["completions"][0]
    assert first["text"] and 0 < first["prob"] <= 1 and first["pct"].endswith("%")
    again = client.predict("shakespeare", "To be, or not to b", 3, "word", 30, api_name="/complete")
    assert again["cache"] == "result" and again["completions"] == answer["completions"]


def test_inspect(client):
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    summary, coloured, menu, plot = client.predict("shakespeare", text, api_name="/inspect")
    assert f"{len(text)} characters" in summary and "bits per character" in summary
    assert coloured.count('title="') == len(text) and "bits;" in coloured
    assert "<svg" in plot and plot.count("<circle") == 2 * 32 * 3  # two layers of 32 cells, three gates
    cell = client.predict("shakespeare", text, "1:4:c", api_name="/inspect_cell")
    assert "cell 1:4:c" in cell and cell.count("background:rgb(") == len(text)
    with pytest.raises(Exception, match="index must be 0 to 31"):
        client.predict("shakespeare", text, "0:99", api_name="/inspect_cell")
    long, _, _, _ = client.predict("shakespeare", "ab " * 10_000, api_name="/inspect")
    assert "10,000 characters" in long  # the handler cuts the text to its limit


def test_folk_tune(client, server):
    sheet, audio, abc, findings, files, table, form = client.predict(
        "folk", "6/8", "D", "major", "jig", "", 0.5, 1, 8, 120, api_name="/folk")
    assert abc.startswith("X:1\nT:") and "K:D" in abc
    assert "| Parts × bars |" in form and "| Longest run shared with the corpus |" in form, form  # beside the sheet
    assert "Passed every check" in findings, findings
    assert "<svg" in sheet and audio
    assert sorted(f.rsplit(".", 1)[1] for f in (x if isinstance(x, str) else x["path"] for x in files)) == [
        "abc", "mid", "wav"]
    assert table["data"][0][-1] == "yes"
    # /folk_show, listed by view_api, shows a tune of this session's history again (the client's session).
    tracebacks = server.log.read_text().count("Traceback")
    again = client.predict(0, 100, api_name="/folk_show")
    assert again[2] == abc and "<svg" in again[0] and again[5]["data"] == table["data"]
    with pytest.raises(Exception, match=r"no tune 3 in this session's history \(rows 0 to 0\)"):
        client.predict(3, 100, api_name="/folk_show")
    with pytest.raises(Exception, match="none yet: write one with /folk first"):
        Client(client.src, verbose=False, download_files=False).predict(0, 100, api_name="/folk_show")
    assert server.log.read_text().count("Traceback") == tracebacks
    with pytest.raises(Exception, match="not a folk model"):
        client.predict("shakespeare", "6/8", "D", "major", "jig", "", 0.5, 1, 2, 120, api_name="/folk")
    with pytest.raises(ValidationError, match="meter: must be one of \"6/8\", .*, not '5/4'"):
        client.predict("folk", "5/4", "D", "major", "jig", "", 0.5, 1, 2, 120, api_name="/folk")
    assert server.log.read_text().count("Traceback") == tracebacks


def test_training_job(client, small_text, tmp_path):
    upload = tmp_path / "my text.txt"
    upload.write_text(small_text.read_text(encoding="utf-8"), encoding="utf-8")
    status, _, details = client.predict("upload", handle_file(str(upload)), "api run", "gru", "tiny", 6,
                                           api_name="/train_start")
    assert details["name"] == "api-run" and details["status"] in ("starting", "running")
    with pytest.raises(Exception, match="Busy"):
        client.predict("upload", handle_file(str(upload)), "", "lstm", "tiny", 6, api_name="/train_start")
    deadline = time.monotonic() + 120
    while (snapshot := client.predict(api_name="/train_status"))["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, snapshot
        time.sleep(0.5)
    assert snapshot["status"] == "done", snapshot["message"]
    assert len(snapshot["history"]) >= 2 and snapshot["best_val_loss"] is not None
    names = [m["name"] for m in client.predict(api_name="/models")]
    assert "trained/api-run" in names
    answer = client.predict("trained/api-run", "To be, or not to b", 3, "word", 30, api_name="/complete")
    assert answer["completions"]


def test_training_needs_a_text(client):
    with pytest.raises(Exception, match="upload a text file first"):
        client.predict("upload", None, "", "lstm", "tiny", 5, api_name="/train_start")
    # the choices are "upload" and the corpora built on this machine
    with pytest.raises(ValidationError, match=r"source: must be one of (\"\w+\", )*\"upload\", not '\.\./\.\./etc'"):
        client.predict("../../etc", None, "", "lstm", "tiny", 5, api_name="/train_start")


def test_uploads_are_size_limited(client, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("To be, or not to be.\n" * 60_000)  # 1.26 MB; this server allows 1 MB
    with pytest.raises(Exception, match="413|too large|exceeds|File size"):
        client.predict("upload", handle_file(str(big)), "", "lstm", "tiny", 5, api_name="/train_start")


def test_only_meant_files_are_served(server, models):
    for path in (models / "shakespeare" / "model.safetensors", "/etc/passwd", models / "shakespeare" / "config.json"):
        url = f"{server.url}gradio_api/file={path}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        assert e.value.code in (403, 404)


def test_the_page_gets_its_styles_and_script_from_the_app(server):
    """charrnn/web/static/: named in the page's <head>, and served by the app itself as they are on disk."""
    with urllib.request.urlopen(f"{server.url}config", timeout=10) as r:
        head = json.loads(r.read())["head"]
    served = {}
    for link in re.findall(r'(?:href|src)="([^"]+)"', head):
        assert not re.match(r"\w+:|//", link), link  # relative: from this server
        with urllib.request.urlopen(server.url + link, timeout=10) as r:
            served[Path(urllib.parse.unquote(link)).name] = (r.headers.get_content_type(), r.read())
    static = REPO / "charrnn" / "web" / "static"
    assert sorted(served) == ["app.css", "autocomplete.js"]
    assert served["app.css"] == ("text/css", (static / "app.css").read_bytes())
    kind, script = served["autocomplete.js"]
    assert kind.endswith("javascript") and script == (static / "autocomplete.js").read_bytes()


def test_an_empty_models_folder_still_works(tmp_path):
    app = AppServer(tmp_path / "no-models", tmp_path / "runs", tmp_path)
    try:
        client = Client(app.url, verbose=False, download_files=False)
        assert client.predict(api_name="/models") == []
        with pytest.raises(Exception, match="Train tab"):
            client.predict("shakespeare", "To be", 3, "word", 30, api_name="/complete")
        page = urllib.request.urlopen(app.url, timeout=10).read().decode()
        assert "charrnn" in page
    finally:
        app.stop()
    assert app.network_attempts() == []
    assert f"warning: no models folder at {tmp_path / 'no-models'}" in app.log.read_text()
