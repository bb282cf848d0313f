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
    radial_distribution(warm, 5.0)
    structure_statistics(warm, 5.0, 1.0, 1.0)
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
