"""The Dataset page under AppTest: the first view of a large system is quick, every chart axis
and legend and every table header is in human words, and chains are numbered alike in the
diagnostics and under the 3D view."""

import json
import math
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ljvae_core.analysis import (
    STRUCTURE_MIN_CONFIGURATIONS,
    STRUCTURE_PAIRS,
    radial_distribution,
    structure_statistics,
)
from ljvae_core.artifacts import save_dataset
from ljvae_core.sampling import SimulationParams, simulate
from ljvae_core.system import System

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "dataset.py")
SNAKE_CASE = re.compile(r"[a-z]+_[a-z]+")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _quick_params(**kw) -> SimulationParams:
    return SimulationParams(dim=3, gammas=(0.0, 1.0), n_chains=2, seed=3, tune_sweeps=100,
                            prelim_sweeps=200, **kw)


@pytest.fixture
def small_dataset(cache):
    ds = simulate(_quick_params(n_particles=8, box=5.0, n_samples=40))
    save_dataset(ds, "small")
    return ds


def _large_dataset(n_particles=300, box=10.77, per_condition=1500):
    """A dataset shaped like a 300-particle liquid (ρ = 0.24) with 1500 configurations per
    condition: the chains and diagnostics of a quick 2-particle run, carrying jittered lattice
    configurations of 300 particles (the page's cost is in their pairs, not in their physics)."""
    ds = simulate(_quick_params(n_particles=2, box=box, n_samples=per_condition))
    rng = np.random.default_rng(0)
    side = math.ceil(n_particles ** (1 / 3))
    spacing = box / side
    grid = (np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
            + 0.5) * spacing
    sites = np.stack([rng.permutation(len(grid))[:n_particles] for _ in range(len(ds))])
    coords = grid[sites] + rng.uniform(-0.2, 0.2, (len(ds), n_particles, 3))
    return replace(ds, coords=coords, params={**ds.params, "n_particles": n_particles})


def test_first_view_of_a_300_particle_dataset_is_quick(cache):
    save_dataset(_large_dataset(), "large")
    # Imports and compiled kernels are paid once per server process, not per view.
    warm = np.random.default_rng(1).uniform(0, 5, (2, 5, 3))
    box = System(box=5.0, dim=3)
    radial_distribution(warm, box)
    structure_statistics(warm, box, 1.0, 1.0)
    start = time.perf_counter()
    at = _page()
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"the first view took {elapsed:.1f} s"
    table = next(d.value for d in at.dataframe if "4γ/T" in d.value)
    pairs = 300 * 299 // 2
    assert (table["configurations"] >= STRUCTURE_MIN_CONFIGURATIONS).all()
    assert (table["configurations"] * pairs <= STRUCTURE_PAIRS).all()
    assert table["nearest neighbour (σ)"].between(0.9, 1.6).all()
    assert any(f"{table['configurations'][0]} configurations per condition" in c.value
               for c in at.caption)


def _encodings(spec):
    """Every encoding block of a Vega-Lite spec, layers and concatenations included."""
    if isinstance(spec, dict):
        if isinstance(spec.get("encoding"), dict):
            yield spec["encoding"]
        for value in spec.values():
            yield from _encodings(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from _encodings(value)


def test_every_axis_and_legend_has_a_human_title(small_dataset):
    at = _page()
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == 5
    titles = set()
    for spec in specs:
        axis_titles = {}
        for encoding in _encodings(spec):
            for channel in ("x", "y", "color", "strokeDash"):
                if channel in encoding:
                    title = encoding[channel].get("title")
                    assert isinstance(title, str) and title, (spec.get("title"), channel)
                    assert not SNAKE_CASE.search(title), title
                    axis_titles.setdefault(channel, set()).add(title)
        # Layers naming one axis differently would show their titles joined by commas.
        assert all(len(names) == 1 for names in axis_titles.values()), axis_titles
        titles |= set().union(*axis_titles.values())
    assert {"configurations", "U / N (ε)", "sweep", "lag (sweeps)", "energy autocorrelation",
            "height z (σ)", "ρ(z) (σ⁻³)", "r (σ)", "g(r)", "γ"} <= titles


def test_tables_have_human_headers_and_the_stride_follows_from_the_tau_shown(small_dataset):
    at = _page()
    for frame in at.dataframe:
        labels = {name: conf.get("label", name)
                  for name, conf in json.loads(frame.proto.columns).items()}
        for column in frame.value.columns:
            assert not SNAKE_CASE.search(labels.get(column, column)), column
    conditions = at.dataframe[0].value
    k = small_dataset.params["stride_factor"]
    for row, cond in zip(conditions.to_dict("records"), small_dataset.conditions, strict=True):
        taus = [chain["tau"] for chain in cond["chains"]]
        assert row["τ mean (sweeps)"] == pytest.approx(np.mean(taus))
        assert row["τ max (sweeps)"] == max(taus)
        assert row["stride, max (sweeps)"] == max(1, math.ceil(k * row["τ max (sweeps)"]))
    assert any("⌈1 × τ max⌉" in c.value for c in at.caption)
    # The strides follow τ: the threshold rule's lag would only stand in its way.
    assert "lag, max (sweeps)" not in conditions
    assert any("Potential: LJ + gravity, in a box" in c.value for c in at.caption)
    structure = json.loads(at.dataframe[1].proto.columns)
    assert structure["U/N"]["label"] == "U/N (ε)"
    assert structure["4γ/T"]["label"] == "4γ/T (σ⁻¹)"


def test_chains_are_numbered_from_one_in_the_diagnostics_and_the_3d_view(small_dataset):
    at = _page()
    # The last sample belongs to the second chain of the second condition.
    at.number_input(key="sample_index").set_value(len(small_dataset) - 1)
    at.run()
    assert not at.exception
    assert any("γ = 1, T = 1, chain 2 of 2" in m.value for m in at.markdown)
    assert at.selectbox(key="diag_chain").options == ["chain 1 of 2", "chain 2 of 2"]
    at.selectbox(key="diag_chain").set_value(1)
    at.run()
    chain = small_dataset.conditions[0]["chains"][1]
    assert any(c.value.startswith("Chain 2:") and f"= {chain['stride']} sweeps" in c.value
               for c in at.caption)


def _in_the_app() -> AppTest:
    """The Dataset page inside the whole app (its links need the app's navigation)."""
    at = AppTest.from_file(str(Path(PAGE).parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/dataset.py")
    at.run()
    assert not at.exception
    return at


def _npy_bytes(array) -> bytes:
    import io

    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def test_an_uploaded_trajectory_becomes_a_dataset_shown_like_a_simulated_one(cache):
    from ljvae_core.artifacts import list_datasets
    from ljvae_core.io import extxyz_text

    rng = np.random.default_rng(0)
    at = _in_the_app()
    assert any("import one above" in i.value for i in at.info)  # no dataset yet
    frames = rng.uniform(0.5, 4.5, (40, 6, 3))
    at.file_uploader(key="import_files").set_value([
        ("run.xyz", extxyz_text(frames, 5.0, info={"gamma": np.full(40, 0.5)}).encode(),
         "text/plain")])
    at.text_input(key="import_name").set_value("mine")
    at.run()
    at.button(key="import_button").click()
    at.run()
    assert not at.exception and not at.error
    assert "Saved dataset 'mine': 40 configurations of 6 particles" in at.success[0].value
    assert [d["name"] for d in list_datasets()] == ["mine"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Box L"] == "5 σ" and metrics["Blocks"] == "8"
    assert any("Imported from run.xyz" in c.value for c in at.caption)
    assert any("no sampling diagnostics" in i.value for i in at.info)


def test_a_free_cluster_upload_and_a_bad_one(cache):
    rng = np.random.default_rng(1)
    at = _in_the_app()
    at.radio(key="import_potential").set_value("lj13")
    at.radio(key="import_box").set_value("free")
    at.file_uploader(key="import_files").set_value([
        ("cluster.npy", _npy_bytes(rng.normal(0, 0.7, (30, 13, 3))), "x")])
    at.run()
    at.button(key="import_button").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Box L"] == "none"
    assert any("potential: LJ13 cluster (free)" in c.value for c in at.caption)
    titles = {json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")}
    assert "Distances from the centre of mass" in titles
    table = next(d.value for d in at.dataframe if "configurations" in d.value)
    assert "distance from the centre (σ)" in table and "4γ/T" not in table
    # A file that is no trajectory: one sentence, naming it, and nothing stored.
    at.file_uploader(key="import_files").set_value([("junk.npy", b"\x93NUMPY garbage", "x")])
    at.run()
    at.button(key="import_button").click()
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("junk.npy: ")
    assert at.error[0].value.count(".") <= 3 and "Traceback" not in at.error[0].value


def test_the_hosted_demo_refuses_a_large_upload_before_reading_it(cache, monkeypatch):
    monkeypatch.setenv("LJVAE_DEMO", "1")
    at = _in_the_app()
    big = np.zeros((9000, 13, 3)) + np.arange(13)[:, None]
    at.file_uploader(key="import_files").set_value([("big.npy", _npy_bytes(big), "x")])
    at.run()
    at.button(key="import_button").click()
    at.run()
    assert not at.exception
    assert at.error[0].value.startswith("The hosted demo allows uploads of at most 2 MB")
