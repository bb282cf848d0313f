"""Every input a person can give the Train and Simulate pages, within their widgets' ranges and
choices, either runs to the end (trains, evaluates and saves; simulates and saves) or is
refused before any work with one sentence: never an exception from inside."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ljvae_core.sampling import FORM_RANGES, ParameterError, params_from_form

# What an interpreter message looks like; a refusal is written for people.
INTERNALS = re.compile(r"Traceback|Error\b|Exception|\bself\b|object has no attribute|"
                       r"invalid literal|could not convert|unsupported operand|\bNone\b")


def _a_sentence(message: str) -> bool:
    return bool(message) and "\n" not in message and len(message) < 300 \
        and not INTERNALS.search(message)


def _number(low, high):
    if isinstance(low, int):
        return st.integers(low, high)
    return st.floats(low, high, allow_nan=False)


def _train_form():
    """Values for the Train page's inputs, drawn from the ranges and choices it offers."""
    from ljvae_core.settings import FORM_FIELDS, REPRESENTATION_PARAMS, setting_options


    drawn = {}
    for name in FORM_FIELDS:
        options = setting_options(name)
        if name == "representation_params":  # each representation's own inputs
            drawn[name] = st.fixed_dictionaries({
                kind: st.fixed_dictionaries({p: _parameter(spec) for p, spec in
                                             REPRESENTATION_PARAMS.get(kind, {}).items()})
                for kind in setting_options("representation")["choices"]})
        elif name == "epochs":  # the fuzz keeps runs short; the range is tested elsewhere
            drawn[name] = st.integers(1, 3)
        elif isinstance(options["default"], bool):
            drawn[name] = st.booleans()
        elif options["choices"]:
            drawn[name] = st.sampled_from(options["choices"])
        else:
            drawn[name] = _number(options["low"], options["high"])
    return st.fixed_dictionaries(drawn).map(_as_the_page_gives)


def _parameter(spec: dict):
    """Values of one representation parameter, from the range or choices its widget offers."""
    if isinstance(spec["default"], bool):
        return st.booleans()
    if spec.get("choices"):
        return st.sampled_from(spec["choices"])
    return _number(spec["low"], spec["high"])


def _as_the_page_gives(values: dict) -> dict:
    return {**values, "representation_params":
            values["representation_params"][values["representation"]]}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.sampling import SimulationParams, simulate

    root = tmp_path_factory.mktemp("fuzz-cache")
    params = SimulationParams(n_particles=8, dim=2, box=5.0, gammas=(0.0, 1.0), n_samples=48,
                              n_chains=2, seed=3)
    save_dataset(simulate(params), "tiny", root)
    return root


# Each example trains, refines the prior and evaluates a model (about a minute on 2 cores).
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=_train_form())
def test_every_train_form_trains_or_is_refused_in_one_sentence(tiny_dataset, values):
    from ljvae_core.model_store import load_model
    from ljvae_core.settings import TrainingError, settings_from_form
    from ljvae_core.workflows import train_and_save

    settings_ = settings_from_form(values)
    try:
        settings_.validate()
    except TrainingError as err:
        assert _a_sentence(str(err)), str(err)
        return
    name = train_and_save("tiny", settings_, "fuzzed", tiny_dataset, n_generate=20)
    trained = load_model(tiny_dataset / "models" / name)
    assert trained.settings == settings_
    assert np.isfinite(trained.meta["metrics"]["reconstruction"]["rmsd_median"])


def _simulate_form():
    ranges = {k: _number(*v) for k, v in FORM_RANGES.items()}
    # Runs stay short: the fuzz looks for refusals and crashes, not for throughput.
    ranges.update(n_particles=st.integers(2, 24), n_samples=st.integers(1, 12),
                  n_chains=st.integers(1, 3))
    numbers = st.lists(st.floats(-3, 3, allow_nan=False).map(lambda v: f"{v:g}"),
                       min_size=1, max_size=3).map(", ".join)
    typed = st.one_of(numbers, st.text(max_size=12), st.sampled_from(["1, 2", "0", "-1", "nan",
                                                                       "1e400", ";", "1,,2"]))
    return st.fixed_dictionaries({
        **ranges, "dim": st.sampled_from([3, 2]), "temperatures": typed, "gammas": typed,
        "periodic": st.sampled_from(["", "x", "xy"]),
        "cutoff": st.one_of(st.none(), _number(*FORM_RANGES["cutoff"]))})


@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=_simulate_form())
def test_every_simulate_form_runs_or_is_refused_in_one_sentence(values):
    from ljvae_core.sampling import simulate

    if values["dim"] == 2:  # the page offers only the axes a 2D box has
        values["periodic"] = values["periodic"][:1]
    try:
        params = params_from_form(values)
    except ParameterError as err:
        assert _a_sentence(str(err)), str(err)
        return
    dataset = simulate(params)
    assert dataset.coords.shape == (len(dataset), params.n_particles, params.dim)
    assert np.isfinite(dataset.energy).all()
