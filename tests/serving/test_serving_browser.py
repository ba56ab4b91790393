"""The web page in a real headless Chromium (Debian's, driven by playwright)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = "/tmp/serving_page.png"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found; install Debian's chromium (make browser-deps)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_generate_in_the_page(browser, live_server, shapes):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.goto(live_server.url + "/")
    page.wait_for_function("document.getElementById('model-badge').textContent.includes('version')")
    count = 3
    page.fill("#count", str(count))
    page.fill("#seed", "11")
    page.click("#generate")
    page.wait_for_function(f"document.querySelectorAll('#samples .card').length === {count}")
    page.wait_for_function("!document.getElementById('generate').disabled")
    status = page.text_content("#status")
    assert "version 1" in status and "Error" not in status, status

    images = page.eval_on_selector_all(
        "#samples img", "els => els.map(e => [e.src, e.naturalWidth, e.naturalHeight])")
    assert len(images) == count
    for src, width, height in images:
        assert src.startswith("data:image/png;base64,") and len(src) > 100
        assert (width, height) == (shapes["width"], shapes["height"])

    audios = page.eval_on_selector_all(
        "#samples audio", "els => els.map(e => [e.src, Number(e.dataset.samples)])")
    assert len(audios) == count
    for src, samples in audios:
        assert src.startswith("blob:")
        assert samples == shapes["samples"]
        data = bytes(page.evaluate(
            "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", src))
        assert len(data) == 44 + 2 * shapes["samples"]  # 16-bit mono PCM + header
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == shapes["sample_rate"] and audio.shape == (shapes["samples"],)
        assert np.abs(audio).max() > 0.1

    # Everything came from our server: no CDNs.
    assert all(u.startswith((live_server.url, "data:", "blob:")) for u in requested), requested
    assert not console_errors, console_errors
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.close()


def test_page_shows_server_errors(browser, live_server):
    page = browser.new_page()
    page.goto(live_server.url + "/")
    page.fill("#count", "500")  # above the server's --max-batch
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert "maximum input batch size" in page.text_content("#status")
    page.close()


def test_class_picker_generates_the_chosen_class(browser, conditional_exported, server_factory):
    """A class-conditional model: the picker lists its classes and asks for the chosen one."""
    import json

    base, _ = conditional_exported
    with server_factory(base) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        bodies = []
        page.on("request", lambda r: bodies.append(r.post_data) if r.method == "POST" else None)
        page.goto(server.url + "/")
        page.wait_for_function("!document.getElementById('class-field').hidden")
        options = page.eval_on_selector_all("#class option", "els => els.map(e => e.value)")
        assert options == ["", "kick", "sine", "snare"]
        page.select_option("#class", "snare")
        page.fill("#count", "3")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#samples .card').length === 3")
        page.wait_for_function("!document.getElementById('generate').disabled")
        assert "Error" not in page.text_content("#status")
        names = page.eval_on_selector_all("#samples .card", "els => els.map(e => e.dataset.className)")
        assert names == ["snare"] * 3
        sent = [json.loads(b) for b in bodies if b]
        assert sent[0]["signature_name"] == "generate_by_name"
        assert sent[0]["inputs"]["class_name"] == "snare"
        # The audio was asked for with the class the generator returned: snare is index 2.
        assert sent[1]["signature_name"] == "audio" and sent[1]["inputs"]["label"] == [2, 2, 2]

        # Every class in turn.
        page.select_option("#class", "")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#samples .card').dataset.className === 'kick'")
        page.wait_for_function("!document.getElementById('generate').disabled")
        names = page.eval_on_selector_all("#samples .card", "els => els.map(e => e.dataset.className)")
        assert names == ["kick", "sine", "snare"]
        page.screenshot(path="/tmp/serving_page_conditional.png", full_page=True)
        page.close()
