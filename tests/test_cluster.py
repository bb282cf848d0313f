"""Scale-out: simulation sweeps on a Dask cluster through joblib's Dask backend."""

import subprocess
import sys
import types

import distributed
import numpy as np
import pytest

from ljvae_core.sampling import SchedulerError, SimulationParams, simulate


@pytest.fixture(scope="module")
def cluster():
    # Worker processes, as on a real cluster: chains are pickled and sent over loopback TCP.
    # A page test run earlier in this process can leave its Streamlit script as __main__,
    # which spawned workers would run again: they start from a bare __main__.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as local:
            yield local


def test_the_same_seed_gives_the_same_dataset_locally_and_on_the_cluster(cluster):
    params = SimulationParams(n_particles=8, dim=2, box=5.0, gammas=(0.0, 1.0), n_samples=40,
                              n_chains=2, seed=11)
    seen = []
    on_cluster = simulate(params, progress=lambda f, m: seen.append(f),
                          scheduler=cluster.scheduler_address)
    local = simulate(params)
    np.testing.assert_array_equal(on_cluster.coords, local.coords)
    np.testing.assert_array_equal(on_cluster.energy, local.energy)
    np.testing.assert_array_equal(on_cluster.chain, local.chain)
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cli_simulates_on_the_cluster(cluster, tmp_path):
    out = tmp_path / "remote.joblib"
    run = subprocess.run(
        [sys.executable, "-m", "ljvae_core", "simulate", "--particles", "6", "--dim", "2",
         "--gamma", "0", "--samples", "20", "--chains", "2", "--seed", "3",
         "--scheduler", cluster.scheduler_address, "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.exists()


@pytest.fixture
def impatient(monkeypatch):
    monkeypatch.setattr("ljvae_core.sampling.SCHEDULER_TIMEOUT_S", 1.0)


def test_an_unreachable_scheduler_is_one_clear_error(impatient):
    params = SimulationParams(n_particles=6, dim=2, box=5.0, n_samples=10, n_chains=1)
    with pytest.raises(SchedulerError, match="cannot reach the Dask scheduler"):
        simulate(params, scheduler="tcp://127.0.0.1:9")


def _simulate_from_the_page(scheduler: str):
    from test_app import _app, _wait_for_job

    at = _app()
    at.switch_page("app_pages/simulate.py")
    at.run()
    at.number_input(key="n_particles").set_value(6)
    at.radio(key="dim").set_value(2)
    at.text_input(key="gammas").set_value("0")
    at.number_input(key="samples").set_value(20)
    at.number_input(key="chains").set_value(2)
    at.text_input(key="scheduler").set_value(scheduler)
    at.run()
    at.button(key="run").click()
    at.run()
    _wait_for_job(at)
    assert not at.exception
    return at


def test_simulate_page_runs_on_the_cluster(cluster, cache):
    at = _simulate_from_the_page(cluster.scheduler_address)
    assert at.success and not at.error
    assert len(list((cache / "datasets").glob("*.joblib"))) == 1


def test_simulate_page_reports_an_unreachable_scheduler(cache, impatient):
    at = _simulate_from_the_page("tcp://127.0.0.1:9")
    assert "cannot reach the Dask scheduler" in at.error[0].value
    assert not (cache / "datasets").exists() or not list((cache / "datasets").iterdir())
