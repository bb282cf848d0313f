"""The hosted demo (LJVAE_DEMO=1): limits enforced by the server, one job at a time per
session, and private per-session artifacts."""

import pytest

from ljvae_core.hosted import (
    HOSTED,
    LimitError,
    check_simulation,
    check_training,
    demo_mode,
    session_root,
)
from ljvae_core.sampling import SimulationParams
from ljvae_core.settings import TrainSettings


def test_demo_mode_reads_the_environment(monkeypatch):
    monkeypatch.delenv("LJVAE_DEMO", raising=False)
    assert not demo_mode() and demo_mode(secrets_flag=True)
    monkeypatch.setenv("LJVAE_DEMO", "1")
    assert demo_mode()
    monkeypatch.setenv("LJVAE_DEMO", "0")
    assert not demo_mode()


@pytest.mark.parametrize("change,message", [
    ({"n_particles": HOSTED.max_particles + 1}, "particles"),
    ({"n_chains": HOSTED.max_chains + 1}, "chains"),
    ({"gammas": tuple(range(HOSTED.max_conditions + 1))}, "conditions"),
    ({"n_samples": HOSTED.max_samples + 1}, "samples in all"),
])
def test_simulations_over_the_limits_are_refused(change, message):
    params = SimulationParams(**{"n_particles": 30, "n_samples": 100, **change})
    with pytest.raises(LimitError, match=message):
        check_simulation(params)


def test_simulations_within_the_limits_pass():
    check_simulation(SimulationParams(n_particles=30, gammas=(0.0, 1.0, 2.0), n_samples=1000))


def test_training_over_the_limits_is_refused():
    with pytest.raises(LimitError, match="epochs"):
        check_training(TrainSettings(epochs=HOSTED.max_epochs + 1), 1000)
    with pytest.raises(LimitError, match="samples"):
        check_training(TrainSettings(epochs=5), HOSTED.max_training_samples + 1)
    check_training(TrainSettings(epochs=5), 1000)
    # The defaults train on the hosted demo, a conditional model's longer automatic run too.
    check_training(TrainSettings(), 1000)
    check_training(TrainSettings(conditional=True), 1000)
    with pytest.raises(LimitError, match="epochs"):
        check_training(TrainSettings(epochs=HOSTED.max_epochs + 1, conditional=True), 1000)


@pytest.mark.parametrize("token", ["../../etc", "short", "a/b" * 10, "", "x" * 65, "..%2f" * 5])
def test_crafted_session_tokens_cannot_leave_the_cache(token, tmp_path):
    with pytest.raises(LimitError):
        session_root(tmp_path, token)


def test_the_upload_limit_is_enforced_by_the_reader():
    from ljvae_core.scoring import score_files

    big = b"x,y\n" + b"1.0,2.0\n" * 1000
    [result] = score_files(None, [("big.csv", big)], max_bytes=1000)
    assert result.error and "limit" in result.error


@pytest.fixture
def hosted(cache, monkeypatch):
    monkeypatch.setenv("LJVAE_DEMO", "1")
    return cache


def _session(token=None):
    from test_app import _app

    at = _app()
    if token:
        at.query_params["session"] = token
    return at


def test_a_hosted_server_warms_up_once_when_first_visited(cache, monkeypatch):
    from ljvae_ui import hosting

    ran = []
    monkeypatch.setattr(hosting, "warm_up", lambda: ran.append(1))
    hosting._warm_server.clear()
    try:
        monkeypatch.delenv("LJVAE_DEMO", raising=False)
        _session().run()
        assert ran == []  # local use: nobody else's demo to wait for
        monkeypatch.setenv("LJVAE_DEMO", "1")
        for token in ("a" * 24, "b" * 24):
            _session(token).run()
            hosting._warm_server().join(10)
        assert ran == [1]
    finally:
        hosting._warm_server.clear()


def test_each_session_gets_a_private_cache(hosted):
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.sampling import simulate

    alice, bob = "a" * 24, "b" * 24
    ds = simulate(SimulationParams(n_particles=6, dim=2, n_samples=10, n_chains=1))
    save_dataset(ds, "alices", session_root(hosted, alice))
    save_dataset(ds, "shared", hosted)  # outside every session folder

    at = _session(alice)
    at.run()
    assert not at.exception
    assert at.dataframe[0].value["dataset"].tolist() == ["alices"]
    # Streamlit drops the query when the visitor switches pages: the folder stays hers.
    del at.query_params["session"]
    at.switch_page("app_pages/dataset.py")
    at.run()
    assert not at.exception and at.selectbox[0].value == "alices"
    assert at.query_params["session"] in (alice, [alice])
    at = _session(bob)
    at.run()
    assert not at.dataframe, "another session's datasets are listed"
    at.switch_page("app_pages/dataset.py")
    at.run()
    assert not at.exception and not at.selectbox

    # A visitor without a token gets a fresh one, kept in the URL.
    at = _session()
    at.run()
    token = at.query_params["session"]
    token = token[0] if isinstance(token, list) else token
    assert len(token) >= 16 and token not in (alice, bob)


def test_limits_are_enforced_on_the_simulate_page(hosted):
    at = _session("c" * 24)
    at.switch_page("app_pages/simulate.py")
    at.run()
    at.number_input(key="n_particles").set_value(HOSTED.max_particles + 50)
    at.run()
    assert not at.exception
    assert any("hosted demo allows at most" in e.value for e in at.error)
    assert at.button(key="run").disabled


def test_one_job_at_a_time_per_session(hosted):
    at = _session("d" * 24)
    at.switch_page("app_pages/simulate.py")
    at.run()
    at.number_input(key="n_particles").set_value(60)
    at.number_input(key="samples").set_value(3000)
    at.run()
    at.button(key="run").click()
    at.run()
    job = at.session_state["simulation_job"]
    try:
        assert job.running
        at.switch_page("app_pages/home.py")
        at.run()
        assert at.button(key="demo").disabled
    finally:
        job.cancel()
        job.wait(60)


def _start_second_job():
    import threading

    import streamlit as st

    from ljvae_core.hosted import HOSTED
    from ljvae_ui.hosting import LIMITS_KEY
    from ljvae_ui.state import start_job

    st.session_state[LIMITS_KEY] = HOSTED
    release = st.session_state.setdefault("release", threading.Event())

    def wait(progress=None, cancel=None):
        release.wait(30)

    if "first" not in st.session_state:
        start_job("first", wait, label="first")
    st.session_state["second_started"] = start_job("second", wait, label="second")


def test_the_server_refuses_a_second_job_whatever_the_buttons_show():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_start_second_job)
    at.run()
    try:
        assert at.session_state["second_started"] is False
        assert "one job at a time" in at.error[0].value
    finally:
        at.session_state["release"].set()
