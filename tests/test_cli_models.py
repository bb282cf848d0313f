"""The train, evaluate, demo and generate commands, end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ljvae_core", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset and a model trained on it by the command line, with train's output."""
    tmp = tmp_path_factory.mktemp("cli-train")
    data, model = tmp / "tiny.joblib", tmp / "model"
    out = _run("simulate", "--particles", 8, "--dim", 2, "--box", 5, "--gamma", 0, 1,
               "--samples", 60, "--chains", 3, "--seed", 2, "--out", data)
    assert out.returncode == 0, out.stderr
    out = _run("train", data, "--representation", "distances", "--latent-dim", 4,
               "--epochs", 2, "--match-every", 1, "--lr-patience", 1, "--state-weight", 10,
               "--prior-physics-weight", 50, "--height-noise", 0.02, "--out", model)
    return data, model, out


def test_train_prints_its_figures_and_keeps_the_options(trained):
    _, model, out = trained
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["epochs_run"] == printed["epochs_planned"] == 2
    assert "epoch 2/2" in out.stderr
    summary = json.loads((model / "summary.json").read_text())
    assert summary["match_every"] == 1 and summary["heights"] is True
    assert summary["prior_physics_weight"] == 50 and summary["height_noise"] == 0.02
    assert summary["dataset"] == "tiny"  # the model list says what it was trained on


def _check_state_points(points):
    # The headline: each state point judged against its own Monte Carlo, floor beside it.
    assert [(p["gamma"], p["trained"], p["reference"]) for p in points] == [
        (0.0, True, "held-out Monte Carlo"), (0.5, False, "fresh Monte Carlo"),
        (1.0, True, "held-out Monte Carlo")]
    for point in points:
        assert set(point["generated"]) == set(point["reconstructed"]) == {"0", "3"}
        for figures in (point["floor"], *point["generated"].values()):
            assert 0 <= figures["auc"] <= 1 and figures["energy_w1"] >= 0
        assert point["cost"]["monte_carlo_decorrelated_per_second"] > 0


def _check_generation(gen):
    # A two-epoch model's samples are not Monte Carlo's, before or after the quench.
    assert gen["energy_w1"] > 0 and gen["energy_w1_relaxed"] > 0
    # The quench only moves particles downhill: relaxation cannot lose validity on average.
    assert 0 <= gen["valid_fraction"] <= gen["valid_fraction_relaxed"] <= 1
    # Generated from the fitted prior; what N(0, I) gives is reported beside it, and so is
    # what the plain mixture, before the physics loss refined it, gives.
    assert gen["prior"] == "default"
    assert 0 <= gen["normal_prior"]["valid_fraction"] <= 1
    assert gen["prior_physics_weight"] == 50
    assert 0 <= gen["unrefined_prior"]["valid_fraction"] <= 1


def test_evaluate_prints_the_contract(trained):
    data, model, _ = trained
    out = _run("evaluate", model, data, "--generate", 40, "--regressor-epochs", 2, "--anomalies",
               "--state-samples", 30, "--unseen-gamma", 0.5, "--sweeps", 0, 3)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert list(result)[:2] == ["sweeps", "state_points"] and result["sweeps"] == [0, 3]
    _check_state_points(result["state_points"])
    rec = result["reconstruction"]
    assert 0 < rec["rmsd_median"] <= rec["rmsd_p90"]
    assert rec["baseline_rmsd_median"] > 0 and np.isfinite(rec["energy_rel_error_median"])
    assert 0 <= rec["valid_fraction"] <= 1
    by_state = rec["by_state"]  # the dataset's two state points, the pooled figure between
    assert [(r["gamma"], r["temperature"]) for r in by_state] == [(0.0, 1.0), (1.0, 1.0)]
    assert sum(r["samples"] for r in by_state) == result["held_out_samples"]
    medians = [r["rmsd_median"] for r in by_state]
    assert min(medians) <= rec["rmsd_median"] <= max(medians)
    _check_generation(result["generation"])
    assert result["training"]["seconds_per_epoch"] > 0
    assert {"mds_rmsd_median", "regressor_rmsd_median"} <= set(result["regressor"])
    assert set(result["latent"]) == {"gamma_r2", "gamma_silhouette"}
    assert set(result["anomaly"]["auc"]) == {"uniform", "overlap", "gamma_out_of_range",
                                             "temperature", "perturbed"}


def test_score_flags_an_overlap_and_refuses_a_bad_file_alone(trained, tmp_path):
    from ljvae_core.artifacts import load_dataset
    from ljvae_core.io import write_extxyz

    data, model, _ = trained
    # One XYZ file with two frames, one of them with two particles on top of each other.
    frames = load_dataset(data).coords[:2].copy()
    frames[1, 1] = frames[1, 0] + 0.05
    xyz = tmp_path / "mine.xyz"
    write_extxyz(xyz, frames, 5.0)
    out = _run("score", model, xyz)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["results"]
    assert [(r["file"], r["frame"]) for r in rows] == [(str(xyz), 0), (str(xyz), 1)]
    assert rows[1]["anomalous"] and rows[1]["score"] > rows[0]["score"]
    assert len(rows[0]["latent"]) == 4
    # The state head's reading of gamma (only gamma varies in this dataset).
    assert set(rows[0]["state"]) == {"gamma"} and np.isfinite(rows[0]["state"]["gamma"])
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,4\n")
    out = _run("score", model, bad, xyz)
    assert out.returncode == 2 and "particles" in out.stderr and "Traceback" not in out.stderr
    # The good file is still scored.
    assert [r["frame"] for r in json.loads(out.stdout)["results"]] == [0, 1]


def test_train_and_evaluate_errors_are_one_sentence(tmp_path):
    out = _run("train", tmp_path / "missing.joblib", "--out", tmp_path / "m")
    assert out.returncode == 2 and out.stderr.startswith("error:")
    assert "Traceback" not in out.stderr
    out = _run("evaluate", tmp_path / "nothing", tmp_path / "missing.joblib")
    assert out.returncode == 2 and "not a saved model" in out.stderr


def test_demo_command_runs_every_step(cache, monkeypatch, capsys):
    from dataclasses import replace

    from ljvae_core import demo
    from ljvae_core.cli import main

    # The shipped model's system, with fewer fresh configurations.
    monkeypatch.setattr(demo, "DEMO_PARAMS", replace(demo.DEMO_PARAMS, n_samples=40))
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["model"] == "demo-distances" and result["dataset"] == "demo"
    assert result["trained_on"] == "study" and result["epochs_trained"] == 100
    assert result["held_out_samples"] == 160  # every fresh configuration is unseen
    assert 0 < result["reconstruction"]["rmsd_median"] <= 0.3
    assert (cache / "models" / "demo-distances" / "model.keras").is_file()
    for step in ("Step 1/4: simulating", "Step 2/4: loading", "Step 3/4: evaluating",
                 "Step 4/4: encoding"):
        assert step in captured.err


def test_warm_up_runs_the_demo_in_memory_and_leaves_nothing_behind(cache):
    from ljvae_core.demo import warm_up

    assert warm_up() > 0
    assert not cache.exists() or not any(cache.rglob("*"))


def test_demo_build_writes_a_portable_model_any_installation_loads(tmp_path, monkeypatch):
    import numpy as np

    from ljvae_core import demo
    from ljvae_core.model_store import import_model
    from ljvae_core.sampling import SimulationParams
    from ljvae_core.settings import TrainSettings

    monkeypatch.setattr(demo, "STUDY_PARAMS", SimulationParams(
        n_particles=8, dim=2, box=5.0, gammas=(0.0, 1.0), n_samples=60, n_chains=2, seed=1))
    out = tmp_path / "demo-model"
    metrics = demo.build_demo_model(out, TrainSettings(latent_dim=3, epochs=2))
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "meta.npz", "model.keras"]
    # Another installation (another signing key) loads it: nothing in it is signed or pickled.
    monkeypatch.setenv("LJVAE_KEY_FILE", str(tmp_path / "someone-elses-key"))
    trained = import_model(out)
    assert trained.meta["metrics"] == metrics and trained.settings.latent_dim == 3
    assert trained.latent_prior is not None and "anomaly" in trained.meta
    coords = np.random.default_rng(0).uniform(0.5, 4.5, (4, 8, 2))
    assert trained.reconstruct(coords).shape == (4, 8, 2)
    assert trained.generate(5).shape == (5, 8, 2)


SHIPPED = str(Path(__file__).resolve().parents[1] / "ljvae_core" / "data" / "demo-model")


def test_generate_writes_samples_relaxed_at_the_state_point(tmp_path, capsys):
    import ase.io
    import numpy as np

    from ljvae_core.analysis import valid_fraction
    from ljvae_core.cli import main
    from ljvae_core.system import System

    out = tmp_path / "gen.npz"
    assert main(["generate", SHIPPED, "--samples", "12", "--gamma", "1", "--sweeps", "5",
                 "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        coords, gamma, temperature = data["coords"], data["gamma"], data["temperature"]
    assert coords.shape == (12, 30, 3) and (gamma == 1).all() and (temperature == 1).all()
    assert coords.min() >= 0 and coords.max() <= 5.0
    # Thermal sweeps at T = 1 leave no overlap.
    assert valid_fraction(coords, System(box=5.0, dim=3)) == 1.0
    assert "relaxed by 5 sweeps at T=1, gamma=1" in capsys.readouterr().err
    # Raw samples, as extended XYZ; the same seed gives the same samples.
    xyz = tmp_path / "gen.xyz"
    assert main(["generate", SHIPPED, "--samples", "3", "--out", str(xyz)]) == 0
    frames = ase.io.read(xyz, index=":")
    assert len(frames) == 3 and frames[0].positions.shape == (30, 3)
    again = tmp_path / "again.npz"
    main(["generate", SHIPPED, "--samples", "3", "--out", str(again)])
    with np.load(again) as data:
        assert np.allclose(data["coords"], [f.positions for f in frames], atol=1e-6)


@pytest.mark.parametrize("argv, suffix, sentence", [
    (["--gamma", "1"], ".npz", "unconditional and cannot generate at a chosen gamma"),
    (["--sweeps", "5"], ".npz", "needs the --gamma"),
    (["--sweeps", "-1"], ".npz", "--sweeps cannot be negative"),
    ([], ".csv", "must end in .npz or .xyz"),
    (["--prior", "pooled"], ".npz", "has no pooled prior"),
])
def test_generate_refuses_what_the_model_cannot_honour(tmp_path, capsys, argv, suffix,
                                                       sentence):
    from ljvae_core.cli import main

    out = tmp_path / f"gen{suffix}"
    assert main(["generate", SHIPPED, "--samples", "5", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert sentence in err and "Traceback" not in err and not out.exists()
