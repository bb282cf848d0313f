"""Visitors sharing one hosted server (`streamlit run app.py` in demo mode, one job slot):
heavy work waits its turn in a server-wide queue, each waiting visitor is told their place,
a closed tab frees its place and a visitor can leave the queue. Bounded: three Chromium
contexts on loopback, about a minute. The crowd's figures (eight visitors, the default
slots) come from ``python -m experiments.crowd_check``."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest
from conftest import streamlit_server
from playwright import sync_api as playwright_api

# Through test_browser, which skips its importers where there is no Chromium.
from test_browser import CHROMIUM, CHROMIUM_ARGS, IDLE


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("crowd") / "server.log"
    with streamlit_server(tmp_path_factory.mktemp("crowd-cache"), log=log, LJVAE_DEMO="1",
                          LJVAE_JOB_SLOTS="1") as (url, _):
        yield url


def _visitor(browser, url, path=""):
    page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{url}/{path}")
    page.wait_for_selector(IDLE)
    return page


def _health_ms(url) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as reply:
        assert reply.read().strip() == b"ok"
    return 1000 * (time.perf_counter() - started)


def _start_a_long_simulation(page):
    # The hosted demo's largest: minutes of work, cancelled at the end.
    for label, value in (("Particles N", 100), ("Samples per (T, γ)", 5000)):
        field = page.get_by_label(label, exact=True)
        field.fill(str(value))
        field.press("Enter")
        page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Run simulation").click()
    page.get_by_role("progressbar").first.wait_for(timeout=30_000)


def test_visitors_queue_for_the_one_slot_and_can_leave(server, tmp_path):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        first = _visitor(browser, server, "simulate")
        _start_a_long_simulation(first)
        second, third = _visitor(browser, server), _visitor(browser, server)
        for page in (second, third):
            page.get_by_role("button", name="Run the quick demo").click()
            page.get_by_text("in line").wait_for(timeout=30_000)
        assert second.get_by_text("yours is next in line").count() == 1
        # The running simulation's progress gives the next visitor an estimate.
        second.get_by_text("starting in about").wait_for(timeout=30_000)
        third.get_by_text("yours is number 2 in line").wait_for()
        third.screenshot(path=str(tmp_path / "queued.png"))

        second.context.close()  # the second visitor closes the tab: the third moves up
        third.get_by_text("yours is next in line").wait_for(timeout=40_000)
        assert max(_health_ms(server) for _ in range(5)) < 2000

        third.get_by_role("button", name="Leave the queue").click()
        third.get_by_text("You left the queue: the demo did not start.").wait_for(timeout=20_000)
        assert first.get_by_role("progressbar").count() == 1, "the running job was disturbed"
        first.get_by_role("button", name="Cancel").click()
        first.get_by_text("cancelled").first.wait_for(timeout=60_000)
        for page in (first, third):
            assert page.locator("[data-testid='stException']").count() == 0
        browser.close()


def test_a_visitor_keeps_their_private_folder_from_page_to_page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = _visitor(browser, server)
        token = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["session"]
        for name, path in (("Dataset", "dataset"), ("Home", "")):
            page.get_by_role("link", name=name, exact=True).first.click()
            # The switch drops the query; the page puts the visitor's own token back.
            page.wait_for_url(f"{server}/{path}?session={token[0]}", timeout=20_000)
            page.wait_for_selector(IDLE)
        browser.close()
