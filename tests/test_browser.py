"""The running app in a real headless browser: Playwright driving Debian's Chromium against
`streamlit run app.py` on a loopback port. Every page opens without an exception box; a tiny
simulation, a one-epoch training run and an XYZ upload go through the UI; 3D views render
from the locally served 3Dmol.js. A screenshot of each page goes to test-artifacts/screenshots
(or $LJVAE_SCREENSHOTS)."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import streamlit_server
from playwright import sync_api as playwright_api

from experiments.serving import CHROMIUM, CHROMIUM_ARGS, IDLE
from ljvae_core.settings import setting_options

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("LJVAE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))

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
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
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


# Bounding boxes of charts and tables against the column that holds them, the content of each
# table against its own frame (a table whose columns scroll out of sight is cut), and each
# metric's value against its own width.
OVERFLOWS = """() => {
  const found = [];
  const holder = e => e.closest('[data-testid=stColumn]')
      || e.closest('[data-testid=stMainBlockContainer]');
  for (const e of document.querySelectorAll(
      '[data-testid=stVegaLiteChart], [data-testid=stDataFrame]')) {
    const box = e.getBoundingClientRect(), outer = holder(e).getBoundingClientRect();
    if (box.right > outer.right + 2) found.push(`${e.dataset.testid} ${box.right - outer.right}px`);
    for (const c of e.querySelectorAll('canvas, svg.marks')) {
      const inner = c.getBoundingClientRect();
      if (inner.width > 0 && inner.right > box.right + 2)
        found.push(`chart drawn ${inner.right - box.right}px past its frame`);
    }
    const scroller = e.querySelector('.dvn-scroller');
    if (scroller && scroller.scrollWidth > scroller.clientWidth + 2)
      found.push(`table cut by ${scroller.scrollWidth - scroller.clientWidth}px`);
  }
  for (const m of document.querySelectorAll('[data-testid=stMetricValue]')) {
    const text = m.querySelector('div') || m;  // a value too long for its column ends in "…"
    if (text.scrollWidth > text.clientWidth + 1) found.push(`metric cut: ${m.textContent}`);
  }
  return found;
}"""
# Vega-Lite's titles for untitled channels, and raw field names.
DEFAULT_TITLES = r"""() => [...document.querySelectorAll(
    '[data-testid=stVegaLiteChart] svg text, [data-testid=stVegaLiteChart] [aria-label]')]
  .map(t => t.textContent || t.getAttribute('aria-label'))
  .filter(t => /Count of Records|\(binned\)|, y\b|^[a-z]+_[a-z_]+$/.test(t))"""


def _check_layout(page, where):
    """No exception box, nothing wider than its column, no default or raw title in a chart."""
    _no_exception(page)
    assert page.evaluate(OVERFLOWS) == [], where
    assert page.evaluate(DEFAULT_TITLES) == [], where


def _enabled_without_a_touch(page, name):
    """The job's start button is enabled again when the job ends, no other widget changed."""
    page.get_by_role("button", name=name, exact=True).and_(
        page.locator(":enabled")).wait_for(timeout=15_000)


def test_a_newcomers_walk_through_every_page(page, server, tmp_path):
    _open(page, server, "")
    started = time.perf_counter()
    page.get_by_role("button", name="Run the quick demo").click()
    # Each step is named on the progress bar while it runs.
    page.get_by_text(re.compile(r"Step [1-4]/4")).first.wait_for(timeout=30_000)
    page.get_by_text("fresh Monte Carlo configurations").wait_for(timeout=120_000)
    seconds = time.perf_counter() - started
    print(f"quick demo in the browser: {seconds:.1f} s")
    _settle(page)
    _enabled_without_a_touch(page, "Run the quick demo")
    _shoot(page, "home")
    _check_layout(page, "home after the demo")

    _generate_on_the_reconstruct_page(page, server)
    _score_uploads_on_the_latent_page(page, server, tmp_path)
    _train_on_the_demo_dataset(page, server)
    _simulate_then_inspect(page, server)


def _generate_on_the_reconstruct_page(page, server):
    _open(page, server, "reconstruct")  # the demo's model is the one selected now
    _check_layout(page, "reconstruct")
    rmsd = page.locator("[data-testid=stMetric]").filter(has_text="Median RMSD (held out)")
    assert float(rmsd.locator("[data-testid=stMetricValue]").inner_text().rstrip(" σ")) <= 0.30
    _assert_3d_view_renders(page)
    _set(page, "Samples", 100)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Each figure compares").wait_for(timeout=120_000)
    _settle(page)
    _shoot(page, "reconstruct")
    _check_layout(page, "reconstruct with generated samples")


def _score_uploads_on_the_latent_page(page, server, tmp_path):
    _open(page, server, "latent")
    good, bad = _demo_configurations(tmp_path), tmp_path / "bad.xyz"
    bad.write_bytes(bytes([0x93, 0xff, 0x00, 0x81]) * 64)
    page.locator("input[type='file']").set_input_files([str(good), str(bad)])
    page.get_by_text("frame 0").first.wait_for(timeout=120_000)
    _settle(page)
    _shoot(page, "latent")
    _check_layout(page, "latent with uploads")
    message = page.locator("[data-testid=stAlertContentError]").first.inner_text()
    assert message.count("bad.xyz") == 1 and "codec" not in message and "'" not in message


def _train_on_the_demo_dataset(page, server):
    _open(page, server, "train")  # on the demo's dataset
    _set(page, setting_options("epochs")["label"], 2)
    page.get_by_role("button", name="Train", exact=True).click()
    _wait_for_text(page, "Saved model", 300)
    _settle(page)
    _enabled_without_a_touch(page, "Train")
    _shoot(page, "train")
    _check_layout(page, "train after training")


def _simulate_then_inspect(page, server):
    _open(page, server, "simulate")
    _set(page, "Particles N", 8)
    page.get_by_text("2D", exact=True).click()
    _settle(page)
    _set(page, "Samples per (T, γ)", 40)
    _set(page, "Independent chains", 2)
    page.get_by_role("button", name="Run simulation").click()
    _wait_for_text(page, "Saved dataset", 180)
    _enabled_without_a_touch(page, "Run simulation")
    _shoot(page, "simulate")
    _check_layout(page, "simulate")

    _open(page, server, "dataset")
    _shoot(page, "dataset")
    _check_layout(page, "dataset")


def _demo_configurations(tmp_path):
    """Two fresh Monte Carlo configurations of the demo's system, as extended XYZ."""
    from dataclasses import replace

    from ljvae_core.demo import DEMO_PARAMS
    from ljvae_core.io import write_extxyz
    from ljvae_core.sampling import simulate

    dataset = simulate(replace(DEMO_PARAMS, gammas=(1.0,), n_samples=2, n_chains=1, seed=7))
    path = tmp_path / "mine.xyz"
    write_extxyz(path, dataset.coords, dataset.box)
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


def test_installing_into_the_virtualenv_does_not_flood_the_servers_watcher(page, tmp_path):
    # The README's Quickstart keeps .venv inside the folder the app is served from; the next
    # command installs thousands of files there while the server runs.
    log = tmp_path / "server.log"
    flood = ROOT / "test-artifacts" / "watcher-flood"
    with streamlit_server(tmp_path / "cache", log=log, watch=True) as (url, _):
        tab = page.context.new_page()
        tab.goto(url)
        _settle(tab)  # a session is open: its script's folder is being watched
        try:
            for k in range(20_000):
                folder = flood / f"d{k // 500}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"m{k}.py").write_text("x = 1\n")
            tab.wait_for_timeout(3000)
        finally:
            shutil.rmtree(flood, ignore_errors=True)
        _no_exception(tab)
        tab.close()
    assert "Inotify" not in log.read_text(errors="replace")
