"""Sampling protocol, datasets, their storage and the simulate command."""

import json
import math
import threading

import numpy as np
import pytest

from ljvae_core.artifacts import list_datasets, load_dataset, save_dataset
from ljvae_core.cli import main
from ljvae_core.io import extxyz_text, read_configurations
from ljvae_core.sampling import (
    Cancelled,
    ParameterError,
    SimulationParams,
    equilibration_point,
    integrated_autocorrelation_time,
    simulate,
    threshold_lag,
)

SMALL = dict(n_particles=12, dim=2, box=6.0, gammas=(0.0, 1.0), n_samples=40, n_chains=2,
             tune_sweeps=100, prelim_sweeps=400, max_prelim_sweeps=2000)


@pytest.fixture(scope="module")
def small_dataset():
    return simulate(SimulationParams(**SMALL, seed=3))


def _ar1(phi, n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.0
    noise = rng.normal(size=n)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + noise[k]
    return x


def test_autocorrelation_time_of_an_ar1_process():
    phi = 0.9  # exact tau = (1 + phi) / (1 - phi) = 19, rho(k) = phi^k
    x = _ar1(phi, 200_000)
    assert integrated_autocorrelation_time(x) == pytest.approx(19.0, rel=0.1)
    assert threshold_lag(x, 0.1) == pytest.approx(math.log(0.1) / math.log(phi), abs=3)


def test_equilibration_point_finds_the_end_of_a_transient():
    x = _ar1(0.5, 4000, seed=1)
    x[:300] += np.linspace(30.0, 0.0, 300)
    t0, _ = equilibration_point(x)
    assert 150 <= t0 <= 600


def test_dataset_has_every_field_and_condition(small_dataset):
    ds = small_dataset
    assert ds.coords.shape == (80, 12, 2)
    for per_sample in (ds.energy, ds.gamma, ds.temperature, ds.chain, ds.condition):
        assert per_sample.shape == (80,)
    assert sorted(set(ds.gamma)) == [0.0, 1.0]
    assert len(set(ds.chain)) == 4  # chain ids are unique across conditions
    assert ds.coords.min() >= 0 and ds.coords.max() <= 6.0
    for cond in ds.conditions:
        assert cond["tau"] >= 1 and cond["stride"] >= 1
        assert 0.2 < cond["acceptance"] < 0.6
        assert len(cond["chains"]) == 2


def test_sample_energies_are_the_energies_of_the_samples(small_dataset):
    from ljvae_core.potential import total_energy

    ds = small_dataset
    for k in (0, 17, 79):
        e = total_energy(ds.coords[k], ds.box, ds.gamma[k])["total"]
        assert ds.energy[k] == pytest.approx(e, rel=1e-9, abs=1e-9)


def test_gravity_lowers_the_mean_height(small_dataset):
    ds = small_dataset
    z = ds.coords[..., -1].mean(axis=1)
    assert z[ds.gamma == 1.0].mean() < z[ds.gamma == 0.0].mean() - 0.5


def test_same_seed_same_dataset_whatever_the_workers(small_dataset):
    again = simulate(SimulationParams(**SMALL, seed=3), n_jobs=1)
    assert np.array_equal(again.coords, small_dataset.coords)
    assert np.array_equal(again.energy, small_dataset.energy)
    other = simulate(SimulationParams(**SMALL, seed=4), n_jobs=2)
    assert not np.array_equal(other.coords, small_dataset.coords)


def test_temperature_sweep_and_progress():
    seen = []
    params = SimulationParams(**{**SMALL, "gammas": (0.5,)}, temperatures=(0.8, 2.0))
    ds = simulate(params, progress=lambda f, m: seen.append((f, m)))
    assert sorted(set(ds.temperature)) == [0.8, 2.0]
    assert seen and seen[-1][0] == pytest.approx(1.0)
    assert all("T = " in m for _, m in seen)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)


def test_cancel_stops_the_run():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        simulate(SimulationParams(**SMALL), cancel=cancel)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"n_particles": 1}, "above 1"),
        ({"box": 0.0}, "positive"),
        ({"box": float("nan")}, "positive"),
        ({"temperatures": (0.0,)}, "temperatures"),
        ({"temperatures": (float("nan"),)}, "temperatures"),
        ({"gammas": (float("inf"),)}, "finite"),
        ({"n_particles": 500, "box": 5.0}, "too high"),
        ({"periodic": "xy"}, "reflecting up axis"),
        ({"periodic": "q"}, "periodic axes"),
        ({"dim": 4}, "dimension"),
        ({"cutoff": -1.0}, "cut-off"),
    ],
)
def test_bad_parameters_get_one_clear_sentence(change, message):
    with pytest.raises(ParameterError, match=message):
        SimulationParams(**{**SMALL, **change})


def test_gravity_free_periodic_up_axis_is_allowed():
    assert SimulationParams(**{**SMALL, "gammas": (0.0,), "periodic": "xy"}).periodic == "xy"


def test_store_round_trip_and_listing(small_dataset, cache):
    path = save_dataset(small_dataset, "demo set", root=cache)
    assert path.name == "demo_set.joblib"
    listed = list_datasets(cache)
    assert [d["name"] for d in listed] == ["demo_set"]
    assert listed[0]["samples"] == 80 and listed[0]["particles"] == 12
    loaded = load_dataset("demo_set", root=cache)
    assert np.array_equal(loaded.coords, small_dataset.coords)
    assert loaded.params == small_dataset.params
    assert not list(path.parent.glob("*.tmp"))


def test_listing_skips_corrupt_summaries(small_dataset, cache):
    save_dataset(small_dataset, "good", root=cache)
    (cache / "datasets" / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning, match="broken"):
        names = [d["name"] for d in list_datasets(cache)]
    assert names == ["good"]


def test_extxyz_round_trip(small_dataset):
    ds = small_dataset
    text = extxyz_text(ds.coords[:3], ds.box, "", {"energy": ds.energy[:3]})
    import io

    back = read_configurations(io.BytesIO(text.encode()), name="x.xyz")
    assert back.coords.shape == (3, 12, 2)
    assert np.allclose(back.coords, ds.coords[:3], atol=1e-7)
    assert back.box == ds.box and back.periodic == ""


def test_simulate_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "run.joblib"
    args = ["simulate", "--particles", "10", "--dim", "2", "--box", "6", "--gamma", "0", "1",
            "--samples", "20", "--chains", "2", "--seed", "5", "--out", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "saved 40 configurations" in err and "%" in err
    ds = load_dataset(out)
    assert ds.coords.shape == (40, 10, 2) and ds.seed == 5


@pytest.mark.parametrize(
    "args,message",
    [
        (["--particles", "1"], "above 1"),
        (["--temperature", "-1"], "temperatures"),
        (["--gamma", "1", "--periodic", "xyz"], "reflecting up axis"),
        (["--particles", "1000", "--box", "3"], "too high"),
    ],
)
def test_simulate_command_reports_bad_input(args, message, tmp_path, capsys):
    assert main(["simulate", *args, "--out", str(tmp_path / "x.joblib")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_energy_command_reports_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\n\nAr 0 0\n")
    assert main(["energy", str(bad), "--box", "5"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    outside = tmp_path / "out.csv"
    outside.write_text("x,y\n1,1\n9,1\n")
    assert main(["energy", str(outside), "--box", "5"]) == 2
    assert "outside the box" in capsys.readouterr().err


def test_energy_command_csv_with_gravity(tmp_path, capsys):
    path = tmp_path / "two.csv"
    path.write_text("x,y\n1,1\n2.5,1\n")
    assert main(["energy", str(path), "--box", "5", "--gamma", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gravity"] == pytest.approx(4 * 0.5 * 2)
    assert out["pair"] == pytest.approx(4 * (1.5**-12 - 1.5**-6))


def test_stored_energies_are_those_of_the_stored_configurations(small_dataset):
    from ljvae_core.potential import configuration_energies

    ds = small_dataset
    for g in np.unique(ds.gamma):
        mine = ds.gamma == g
        expected = configuration_energies(ds.coords[mine], ds.box, g, ds.params.get("periodic", ""))
        assert np.allclose(ds.energy[mine], expected, rtol=1e-12, atol=1e-12)


def test_first_of_each_chain_keeps_every_chain_and_its_samples(small_dataset):
    ds = small_dataset
    cut = ds.first_of_each_chain(3)
    assert len(cut) == 3 * len(np.unique(ds.chain))
    for c in np.unique(ds.chain):
        assert np.array_equal(cut.coords[cut.chain == c], ds.coords[ds.chain == c][:3])
        assert np.array_equal(cut.energy[cut.chain == c], ds.energy[ds.chain == c][:3])
    assert set(cut.condition) == set(ds.condition) and cut.params == ds.params


def test_the_simulate_command_and_page_start_from_simulation_params_defaults():
    from streamlit.testing.v1 import AppTest

    from ljvae_core.cli import build_parser

    defaults = SimulationParams()
    args = build_parser().parse_args(["simulate", "--out", "x.joblib"])
    assert (args.particles, args.dim, args.box, tuple(args.temperature), tuple(args.gamma),
            args.samples, args.chains, args.seed) == (
        defaults.n_particles, defaults.dim, defaults.box, defaults.temperatures,
        defaults.gammas, defaults.n_samples, defaults.n_chains, defaults.seed)
    page = AppTest.from_file("../app_pages/simulate.py").run()
    assert page.number_input(key="n_particles").value == defaults.n_particles
    assert page.number_input(key="samples").value == defaults.n_samples
    shown = page.text_input(key="gammas").value
    assert tuple(float(g) for g in shown.split(",")) == defaults.gammas
