"""A free cluster made elsewhere, end to end: imported LJ13 clusters train, reconstruct,
generate, are judged, scored and shown like the simulator's configurations."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A cache holding 600 reference LJ13 clusters and a short-trained model of them."""
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.lj13 import REFERENCE
    from ljvae_core.settings import TrainSettings
    from ljvae_core.trajectory import ImportOptions, import_dataset
    from ljvae_core.workflows import train_and_save

    root = tmp_path_factory.mktemp("free-cache")
    source = root / "lj13_part.npy"
    np.save(source, np.load(REFERENCE)[:600])
    save_dataset(import_dataset([source], ImportOptions(potential="lj13")), "lj13", root)
    settings = TrainSettings(latent_dim=8, epochs=8, batch_size=16, prior_physics_weight=30.0)
    name = train_and_save("lj13", settings, "cluster", root, n_generate=40)
    return root, name


def _loaded(store):
    from ljvae_core.artifacts import load_dataset
    from ljvae_core.model_store import load_model

    root, name = store
    return load_model(root / "models" / name), load_dataset("lj13", root)


def test_a_cluster_model_sees_neither_place_nor_orientation(store):
    trained, ds = _loaded(store)
    assert trained.system.free and trained.system.potential == "lj13"
    clusters = ds.coords[:20]
    turned = Rotation.random(random_state=0).apply(clusters.reshape(-1, 3)).reshape(20, 13, 3)
    moved = turned[:, np.random.default_rng(1).permutation(13)] + 4.0
    # The distances (the model's input) are the same, so are the latent means.
    assert np.allclose(trained.encode(clusters), trained.encode(moved), atol=1e-4)
    rebuilt = trained.reconstruct(clusters)
    assert rebuilt.shape == (20, 13, 3) and np.abs(rebuilt.mean(axis=1)).max() < 1e-6
    generated = trained.generate(30, seed=2)
    assert generated.shape == (30, 13, 3) and np.isfinite(generated).all()


def test_a_cluster_model_generates_from_a_kernel_density_that_survives_export(store, tmp_path):
    from ljvae_core.calibration import KERNEL_BANDWIDTHS
    from ljvae_core.model_store import export_model, import_model
    from ljvae_core.priors import KernelPrior

    trained, ds = _loaded(store)
    prior = trained.latent_prior
    assert isinstance(prior, KernelPrior)
    # A bandwidth of the grid, or midway between two neighbours of it.
    grid = sorted(KERNEL_BANDWIDTHS)
    middles = [0.5 * (a + b) for a, b in zip(grid[:-1], grid[1:], strict=True)]
    assert prior.bandwidth in grid + middles
    assert len(prior.points) == len(trained.meta["train_indices"])
    assert trained.meta["latent_prior_bandwidth"] == prior.bandwidth
    assert trained.available_priors() == ["default", "unrefined", "normal"]
    portable = import_model(export_model(trained, tmp_path / "portable"))
    assert np.allclose(portable.generate(20, seed=4), trained.generate(20, seed=4), atol=1e-5)


def test_the_nearest_training_cluster_tells_replayed_clusters_from_fresh_ones():
    from ljvae_core.lj13 import nearest_distance, reference_clusters

    clusters = reference_clusters()
    seen, fresh = clusters[:3000], clusters[3000:4000]
    assert nearest_distance(seen[:500], seen) == 0.0
    assert nearest_distance(fresh, seen) > 0.2
    # A replay blurred by a little noise stays far closer than fresh clusters do.
    blurred = seen[:1000] + 0.01 * np.random.default_rng(0).normal(size=(1000, 13, 3))
    assert nearest_distance(blurred, seen) < 0.5 * nearest_distance(fresh, seen)


def test_evaluation_judges_clusters_raw_against_held_out_imported_data(store):
    from ljvae_core.evaluation import evaluate
    from ljvae_core.statepoints import evaluate_state_points

    trained, ds = _loaded(store)
    result = evaluate(trained, ds, n_reconstruct=100, n_generate=50)
    generation = result["generation"]
    assert "energy_w1_relaxed" not in generation  # a quench is judged in a box only
    assert np.isfinite(generation["energy_w1"]) and 0 <= generation["valid_fraction"] <= 1
    # Better than another cluster picked at random, matched and aligned: the model has learnt.
    rebuilt = result["reconstruction"]
    assert 0 < rebuilt["rmsd_median"] < rebuilt["baseline_rmsd_median"]
    points = evaluate_state_points(trained, ds, n=40, sweeps=(0, 5))
    assert points["sweeps"] == [0, 5]  # the cluster's own Metropolis chain relaxes them
    (point,) = points["state_points"]
    assert point["reference"] == "held-out imported data" and point["cost"] is None
    assert set(point["generated"]) == {"0", "5"} and 0 <= point["floor"]["auc"] <= 1
    with pytest.raises(ValueError, match="unseen gamma"):
        evaluate_state_points(trained, ds, unseen_gammas=(0.5,), n=40)


def test_uploads_are_scored_wherever_the_cluster_lies(store):
    from ljvae_core.scoring import score_configurations

    trained, ds = _loaded(store)
    clusters = ds.coords[:6] + 10.0
    broken = clusters.copy()
    broken[:, 1] = broken[:, 0] + 0.1  # two particles nearly on top of each other
    rows = score_configurations(trained, np.concatenate([clusters, broken]))
    scores = np.array([r["score"] for r in rows])
    assert np.all(scores[6:] > scores[:6].max())
    assert all(r["anomalous"] for r in rows[6:])


def test_the_lj13_benchmark_of_a_model_uses_its_held_out_clusters(store, tmp_path, capsys):
    from ljvae_core.cli import main

    root, name = store
    samples, model = tmp_path / "gen.npz", str(root / "models" / name)
    assert main(["generate", model, "--samples", "200", "--out", str(samples)]) == 0
    capsys.readouterr()
    assert main(["benchmark", "lj13", "--data", str(samples), "--model", model,
                 "--dataset", str(root / "datasets" / "lj13.joblib")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["held_out_samples"] == 150  # the validation blocks: a quarter of 600
    assert result["generated"]["samples"] == 200 and result["floor"]["samples"] == 200
    assert result["generated"]["energy_w2"] > result["floor"]["energy_w2"] > 0


def test_generated_clusters_relax_by_their_own_chain(store, tmp_path, capsys):
    from ljvae_core.cli import main
    from ljvae_core.lj13 import figures

    root, name = store
    model, out = str(root / "models" / name), tmp_path / "relaxed.npz"
    assert main(["generate", model, "--samples", "5", "--gamma", "0", "--out", str(out)]) == 2
    assert "no field" in capsys.readouterr().err and not out.exists()
    trained, ds = _loaded(store)
    reference = ds.coords[trained.meta["validation_indices"]]
    raw = figures(trained.generate(150, seed=0, prior="unrefined"), reference)
    assert main(["generate", model, "--samples", "150", "--prior", "unrefined", "--sweeps",
                 "300", "--out", str(out)]) == 0
    assert "relaxed by 300 sweeps at T=1\n" in capsys.readouterr().err
    with np.load(out, allow_pickle=False) as data:
        relaxed = figures(data["coords"], reference)
    # A short-trained model's clusters are far from the data; a thermal chain brings them in.
    assert relaxed["energy_w2"] < 0.5 * raw["energy_w2"]
    assert relaxed["distance_w1"] < 0.5 * raw["distance_w1"]


def _opened(store, monkeypatch, page) -> AppTest:
    """The app on the store's cache, at ``page``."""
    monkeypatch.setenv("LJVAE_CACHE", str(store[0]))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page(page)
    at.run()
    return at


@pytest.mark.parametrize("page", ["app_pages/reconstruct.py", "app_pages/latent.py",
                                  "app_pages/dataset.py", "app_pages/train.py"])
def test_every_page_shows_the_cluster_model(store, monkeypatch, page):
    at = _opened(store, monkeypatch, page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    # A free cluster has no field: no page names a γ for its configurations (the Train
    # page's figures of the study system in a box keep theirs).
    shown = [m.value for m in [*at.markdown, *at.caption]] + [
        str(o) for box in at.selectbox for o in box.options]
    assert not [text for text in shown
                if ("γ = " in text or "γ∈" in text) and "study system" not in text]


def test_generating_on_the_reconstruct_page_judges_raw_and_relaxed_samples(store, monkeypatch):
    at = _opened(store, monkeypatch, "app_pages/reconstruct.py")
    assert "generate_gamma_relax" not in [box.key for box in at.selectbox]  # no field
    at.number_input(key="n_generate").set_value(40)
    at.button(key="generate").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    table = at.dataframe[-1].value
    floor = "the other half of the held-out data (floor)"
    assert table["set"].tolist() == [floor, "generated, raw"]
    at.number_input(key="generate_sweeps").set_value(5)
    at.button(key="generate").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    table = at.dataframe[-1].value
    assert table["set"].tolist() == [floor, "generated, raw", "generated + 5 sweeps"]
    assert "distance-from-centre W1 (σ)" in table.columns and "height W1 (σ)" not in table


def test_the_reconstruct_page_judges_the_cluster_against_its_held_out_halves(store,
                                                                             monkeypatch):
    at = _opened(store, monkeypatch, "app_pages/reconstruct.py")
    at.number_input(key="judge_n").set_value(40)
    at.button(key="judge").click()
    deadline = time.time() + 300
    while not (at.success or at.error or at.exception) and time.time() < deadline:
        time.sleep(0.3)
        at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert [t.label for t in at.tabs] == ["T = 1"]  # no field to name
    rows = at.dataframe[-1].value["set"].tolist()
    assert rows[0] == "the other half of the held-out data (floor)"
    assert "generated + 20 sweeps" in rows and "reconstructed + 20 sweeps" in rows
    assert not any("decorrelated" in c.value for c in at.caption)  # no Monte Carlo run to price


def test_the_train_page_offers_a_free_cluster_distances_only(store, monkeypatch):
    at = _opened(store, monkeypatch, "app_pages/train.py")
    assert any("A free cluster" in c.value for c in at.caption)
    at.selectbox(key="representation").set_value("coords")
    at.run()
    assert not at.exception and "trains on distance matrices" in at.error[0].value
    assert at.button(key="train").disabled


def test_the_train_page_disables_what_a_free_cluster_makes_moot(store, monkeypatch):
    # Auto samples a free cluster's kernel density, which the physics loss never refines; it
    # has no up for height channels, log-heights or height noise. A mixture is refined.
    at = _opened(store, monkeypatch, "app_pages/train.py")
    moot = ("prior_physics_weight", "log_heights", "height_noise", "distance_heights")
    widgets = {w.key: w for w in [*at.number_input, *at.checkbox] if w.key in moot}
    assert sorted(widgets) == sorted(moot) and all(w.disabled for w in widgets.values())
    at.radio(key="generation_prior").set_value("mixture")
    at.run()
    assert not at.number_input(key="prior_physics_weight").disabled
