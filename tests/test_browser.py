"""The running app in a real headless browser: Playwright driving Debian's Chromium against
`streamlit run app.py` on a loopback port. Every page opens without an exception box; a tiny
simulation, a one-epoch training run and an XYZ upload go through the UI; 3D views render
from the locally served 3Dmol.js. A screenshot of each page goes to test-artifacts/screenshots
(or $LJVAE_SCREENSHOTS)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import streamlit_server

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LJVAE_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("LJVAE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
# Headless Chromium on a closed network, as root, with WebGL in software for 3Dmol.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-gl=angle", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

if not Path(CHROMIUM).exists():
    if os.environ.get("LJVAE_REQUIRE_BROWSER"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}; scripts/test.sh installs Debian's")
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test.sh installs it)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with streamlit_server(tmp_path_factory.mktemp("browser-cache")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def _open(page, server, path=""):
    page.goto(f"{server}/{path}")
    _settle(page)


def _settle(page, timeout=90_000):
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)


def _no_exception(page):
    boxes = page.locator("[data-testid='stException']")
    assert boxes.count() == 0, boxes.first.inner_text()


def _shoot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The app scrolls inside its main section, not the document: grow the window to fit it.
    height = page.evaluate("Math.max(...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stAppViewContainer]')]"
                           ".map(e => e.scrollHeight))")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(max(height, 600), 6000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def _set(page, label, value):
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    _settle(page)


def _wait_for_text(page, text, seconds):
    page.get_by_text(text).first.wait_for(timeout=seconds * 1000)


@pytest.mark.parametrize("path", ["", "simulate", "dataset", "train", "reconstruct", "latent"])
def test_every_page_opens_on_an_empty_cache(page, server, path):
    _open(page, server, path)
    _no_exception(page)


def test_simulate_train_and_score_through_the_browser(page, server, tmp_path):
    _open(page, server, "simulate")
    _set(page, "Particles N", 8)
    page.get_by_text("2D", exact=True).click()
    _settle(page)
    _set(page, "Gravity couplings γ", "0, 1")
    _set(page, "Samples per (T, γ)", 60)
    _set(page, "Independent chains", 2)
    _set(page, "Dataset name (optional)", "browser")
    page.get_by_role("button", name="Run simulation").click()
    _wait_for_text(page, "Saved dataset", 180)
    _no_exception(page)
    _shoot(page, "simulate")

    _open(page, server, "dataset")
    _no_exception(page)
    _shoot(page, "dataset")

    _open(page, server, "train")
    _set(page, "Latent size", 4)
    _set(page, "Epochs", 1)
    _set(page, "Model name (optional)", "browser model")
    page.get_by_role("button", name="Train", exact=True).click()
    _wait_for_text(page, "Saved model", 300)
    _settle(page)
    _no_exception(page)
    # The model list, drawn while the job ran, is redrawn when it ends.
    assert page.get_by_text("No model yet.").count() == 0
    _shoot(page, "train")

    _open(page, server, "reconstruct")
    _no_exception(page)
    _assert_3d_view_renders(page)

    _open(page, server, "latent")
    xyz = _uploaded_configuration(tmp_path)
    page.locator("input[type='file']").set_input_files(str(xyz))
    _wait_for_text(page, "frame 0", 120)
    _settle(page)
    _no_exception(page)
    assert page.get_by_text("anomalous").count() + page.get_by_text("normal").count() > 0
    _shoot(page, "latent")

    _open(page, server, "")
    _no_exception(page)
    _shoot(page, "home")


def test_quick_demo_in_the_browser_ends_on_its_latent_map(page, server):
    _open(page, server, "")
    started = time.perf_counter()
    page.get_by_role("button", name="Run the quick demo").click()
    page.get_by_text("Step 1/4").first.wait_for(timeout=60_000)
    page.get_by_role("heading", name="Latent & Anomaly").wait_for(timeout=240_000)
    _settle(page)
    print(f"quick demo in the browser: {time.perf_counter() - started:.1f} s")
    _no_exception(page)
    page.get_by_text("Energy map of decoded configurations").click()
    _settle(page)
    _no_exception(page)
    _shoot(page, "latent-demo")
    _open(page, server, "reconstruct")  # the demo's model is the one selected now
    _no_exception(page)
    _assert_3d_view_renders(page)
    _shoot(page, "reconstruct")


def _uploaded_configuration(tmp_path):
    import numpy as np

    from ljvae_core.io import write_extxyz

    # Two frames of 8 particles in 2D inside the 5x5 box: a loose lattice and one overlap.
    side = np.linspace(0.8, 4.2, 4)
    grid = np.array([(x, y) for x in side for y in side[:2]])
    overlapping = grid.copy()
    overlapping[1] = overlapping[0] + 0.05
    path = tmp_path / "upload.xyz"
    write_extxyz(path, np.stack([grid, overlapping]), 5.0)
    return path


def _assert_3d_view_renders(page):
    """A py3Dmol view loads 3Dmol.js from the app's static folder and draws a WebGL canvas."""
    frame_element = page.locator("iframe").first
    frame_element.wait_for()
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_selector("canvas", timeout=30_000)
    assert frame.locator("script[src*='/app/static/3Dmol-min.js']").count() == 1
    assert frame.evaluate("typeof $3Dmol") == "object"
    size = frame.evaluate("[document.querySelector('canvas').width,"
                          " document.querySelector('canvas').height]")
    assert min(size) > 100
