"""The Pronounce tab in the running app: its API (/translate through gradio_client) and a real browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO, require
from test_app_support import ARTIFACTS, AppServer

pytestmark = pytest.mark.slow

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

CHROMIUM = os.environ.get("CHARRNN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("pronounce-app-models")
    shutil.copytree(require(REPO / "models" / "g2p"), models / "g2p")
    shutil.copytree(REPO / "models" / "shakespeare", models / "shakespeare")
    work = tmp_path_factory.mktemp("pronounce-app")
    app = AppServer(models, work / "runs", work)
    yield app
    app.stop()
    assert app.network_attempts() == []


def test_translate_api(server):
    client = Client(server.url, verbose=False, download_files=False)
    page, data = client.predict("g2p", "Hello, world", 5, 3, api_name="/translate")
    assert [w["word"] for w in data["words"]] == ["hello", "world"]
    assert len(data["words"][0]["outputs"]) == 3 and "<svg" in page
    assert {d["arpabet"] for d in data["words"][1]["dictionary"]} == {"W ER1 L D"}
    models = {m["name"]: m["kind"] for m in client.predict(api_name="/models")}
    assert models == {"g2p": "seq2seq", "shakespeare": "lm"}
    with pytest.raises(Exception, match="type one or more words"):
        client.predict("g2p", "1234", 5, 3, api_name="/translate")


def test_pronounce_tab_in_a_browser(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server.url)
        page.get_by_role("tab", name="Pronounce").click()
        box = page.locator("#pronounce-input textarea")
        box.fill("pytorch gradio")
        page.get_by_role("button", name="Pronounce").click()
        page.wait_for_selector("#pronounce-output svg.attention", timeout=60_000)
        words = page.locator("#pronounce-output .pronounce-word h3").all_inner_texts()
        assert words == ["pytorch", "gradio"]
        assert page.locator("#pronounce-output svg.attention").count() == 2
        assert "ms" in page.locator("#pronounce-output .timing").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "pronounce.png"), full_page=True)
        browser.close()
