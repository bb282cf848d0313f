"""The Streamlit app under AppTest: every page renders, a simulation run from the Simulate
page's widgets produces a dataset that the Dataset page shows."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["app_pages/home.py", "app_pages/simulate.py", "app_pages/dataset.py", "app_pages/train.py",
         "app_pages/reconstruct.py", "app_pages/latent.py"]


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_cache(page, cache):
    at = _app()
    at.switch_page(page)
    at.run()
    assert not at.exception


def test_home_and_data_pages_import_no_tensorflow(cache):
    # In a fresh interpreter: other test modules import Keras while pytest collects them.
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=120)\n"
        "at.run()\n"
        "for page in ('app_pages/simulate.py', 'app_pages/dataset.py', 'app_pages/train.py'):\n"
        "    at.switch_page(page)\n"
        "    at.run()\n"
        "assert not at.exception\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_bad_parameters_show_a_message_not_a_traceback(cache):
    at = _app()
    at.switch_page("app_pages/simulate.py")
    at.run()
    at.text_input(key="gammas").set_value("0, one")
    at.run()
    assert not at.exception
    assert any("numbers separated by commas" in e.value for e in at.error)
    at.text_input(key="gammas").set_value("1")
    at.number_input(key="n_particles").set_value(900)
    at.run()
    assert any("too high" in e.value for e in at.error)
    assert at.button(key="run").disabled


def _wait_for_job(at: AppTest, seconds: float = 120.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        at.run()
        if at.success or at.error:
            return
        time.sleep(0.3)
    raise AssertionError("the simulation did not finish in time")


def test_simulate_page_makes_a_dataset_the_dataset_page_shows(cache):
    at = _app()
    at.switch_page("app_pages/simulate.py")
    at.run()
    at.number_input(key="n_particles").set_value(10)
    at.radio(key="dim").set_value(2)
    at.number_input(key="box").set_value(6.0)
    at.text_input(key="gammas").set_value("0, 1")
    at.number_input(key="samples").set_value(20)
    at.number_input(key="chains").set_value(2)
    at.text_input(key="name").set_value("from the page")
    at.run()
    at.button(key="run").click()
    at.run()
    _wait_for_job(at)
    assert not at.exception
    assert "from_the_page" in at.success[0].value
    assert (cache / "datasets" / "from_the_page.joblib").is_file()

    at.switch_page("app_pages/dataset.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="dataset_picker").value == "from_the_page"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Particles N"] == "10" and metrics["Samples"] == "40"
    structure = next(d.value for d in at.dataframe if "valid (no pair < 0.8σ)" in d.value)
    assert structure["γ"].tolist() == [0.0, 1.0]
    assert structure["4γ/T"].tolist() == [0.0, 4.0]
    assert structure["U/N"].notna().all()
    charts = [str(c.proto) for c in at.get("vega_lite_chart")]
    assert any("Radial distribution" in c for c in charts)
    at.number_input(key="sample_index").set_value(39)
    at.selectbox(key="diag_condition").set_value(1)
    at.run()
    assert not at.exception
    assert "3Dmol-min.js" in str(at.get("iframe")[0].proto)

    at.switch_page("app_pages/home.py")
    at.run()
    assert "from_the_page" in at.dataframe[0].value["dataset"].tolist()



@pytest.fixture
def stored_dataset(cache):
    from ljvae_core.artifacts import save_dataset
    from ljvae_core.sampling import SimulationParams, simulate

    params = SimulationParams(n_particles=8, dim=2, box=5.0, gammas=(0.0, 1.0), n_samples=60,
                              n_chains=3, seed=4)
    return save_dataset(simulate(params), "tiny").stem


def test_train_page_trains_a_model_that_joins_the_list(stored_dataset):
    at = _app()
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception
    at.number_input(key="latent_dim").set_value(3)
    at.number_input(key="epochs").set_value(2)
    at.text_input(key="model_name").set_value("page model")
    at.run()
    at.button(key="train").click()
    at.run()
    _wait_for_job(at, 300)
    assert not at.exception
    assert not at.error, (at.error[0].value, at.session_state["training_job"].details)
    assert "page_model" in at.success[0].value
    charts = [str(c.proto) for c in at.get("vega_lite_chart")]
    assert any("Terms of the training loss" in c for c in charts)
    at.run()
    names = at.dataframe[-1].value["model"].tolist()
    assert names == ["page_model"]

    at.switch_page("app_pages/home.py")
    at.run()
    assert "page_model" in at.dataframe[-1].value["model"].tolist()

    at.switch_page("app_pages/reconstruct.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="model_picker").value == "page_model"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["RMSD"].endswith("σ")
    by_state = at.dataframe[0].value  # the held-out reconstructions of each state point
    assert by_state["γ"].tolist() == [0.0, 1.0] and (by_state["median RMSD (σ)"] > 0).all()
    assert len(at.get("iframe")) == 2
    _generate_on_the_reconstruct_page(at)
    _judge_every_state_point_on_the_reconstruct_page(at)

    _map_the_latent_space(at)
    _score_uploads_on_the_latent_page(at, stored_dataset)


def _generate_on_the_reconstruct_page(at):
    at.number_input(key="n_generate").set_value(20)
    # An unconditional model's samples span its training γ: judged against all of them.
    at.button(key="generate").click()
    at.run()
    assert not at.exception and not at.error
    assert at.dataframe[-1].value["set"].tolist() == [
        "the other half of the held-out data (floor)", "generated, raw"]
    assert any("every state point" in c.value for c in at.caption)
    at.selectbox(key="generate_gamma_relax").set_value(0.0)
    at.run()  # one γ to relax at: the sweeps open
    at.number_input(key="generate_sweeps").set_value(5)
    at.button(key="generate").click()
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert table["set"].tolist() == ["Monte Carlo, independent run (floor)", "generated, raw",
                                     "generated + 5 sweeps"]
    assert (table["valid"].between(0, 1)).all()
    assert table["classifier AUC"].between(0, 1).all()
    assert not any("_" in c for c in table.columns)
    assert at.get("download_button")
    # The plain mixture, before the physics loss refined and the calibration narrowed the
    # prior, is one choice away.
    assert at.radio(key="generate_prior").options == [
        "the fitted prior", "the plain mixture, as fitted", "N(0, I)"]
    at.radio(key="generate_prior").set_value("unrefined")
    at.button(key="generate").click()
    at.run()
    assert not at.exception and at.dataframe[-1].value["set"].tolist()[1] == "generated, raw"


def _map_the_latent_space(at):
    at.switch_page("app_pages/latent.py")
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert -1 <= float(metrics["γ silhouette"]) <= 1
    assert not at.radio(key="latent_colour").disabled
    at.checkbox(key="energy_map").check()
    at.run()
    # Over the map the points are white: the colour choice has nothing left to colour.
    assert at.radio(key="latent_colour").disabled
    at.slider(key="map_resolution").set_value(8)
    at.run()
    assert not at.exception
    assert any("decoded U/N" in str(c.proto) for c in at.get("vega_lite_chart"))


def _judge_every_state_point_on_the_reconstruct_page(at):
    at.text_input(key="judge_unseen").set_value("0.5, x")
    at.run()
    assert "Please fix" in at.error[0].value and "Traceback" not in at.error[0].value
    at.text_input(key="judge_unseen").set_value("0.5")
    at.number_input(key="judge_n").set_value(50)
    at.run()
    at.button(key="judge").click()
    at.run()
    _wait_for_job(at, 300)
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs] == ["γ = 0, T = 1", "γ = 0.5, T = 1 (unseen)",
                                          "γ = 1, T = 1"]
    rows = at.dataframe[-1].value["set"].tolist()
    assert rows[0] == "Monte Carlo, independent run (floor)" and "generated + 20 sweeps" in rows
    assert any("decorrelated configurations per second" in c.value for c in at.caption)


def _score_uploads_on_the_latent_page(at, dataset_name):
    from ljvae_core.artifacts import load_dataset
    from ljvae_core.io import extxyz_text

    ds = load_dataset(dataset_name)
    frames = ds.coords[:2].copy()
    frames[1, 1] = frames[1, 0] + 0.05  # one pair overlapping
    at.file_uploader(key="uploads").set_value([
        ("mine.xyz", extxyz_text(frames, ds.box).encode(), "text/plain"),
        ("wrong_n.csv", b"x,y\n1,2\n3,4\n", "text/csv"),
        ("empty.npy", b"", "application/octet-stream"),
        ("junk.xyz", bytes(range(256)) * 4, "text/plain"),
    ])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3
    assert any(e.startswith("wrong_n.csv") and "particles" in e for e in errors)
    assert any(e.startswith("empty.npy") and "empty" in e for e in errors)
    assert any(e.startswith("junk.xyz") for e in errors)
    table = at.dataframe[-1].value
    assert table["frame"].tolist() == [0, 1]
    assert table["verdict"].tolist()[1] == "anomalous"
    assert table["score"][1] > table["score"][0]
    assert any("uploaded" in str(c.proto) for c in at.get("vega_lite_chart"))
    at.selectbox(key="upload_shown").set_value(1)
    at.run()
    assert not at.exception
    # The overlapping pair is drawn red, the colour of the top of the energy range.
    assert "#a50026" in str(at.get("iframe")[0].proto)


def test_train_page_compares_every_representation_with_its_figures(stored_dataset):
    at = _app()
    at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception
    (expander,) = [e for e in at.expander if e.label == "Compare the representations"]
    text = " ".join(m.value for m in expander.markdown)
    for name in ("Distance matrices", "Sorted coordinates", "Voxel density grids"):
        assert f"**{name}**" in text
    assert text.count("median RMSD") == 3
    # Sorted coordinates offer their particle order; the template is the default.
    at.selectbox(key="representation").set_value("coords")
    at.run()
    assert at.radio(key="sort_axis").value == "template"


def test_reconstruct_page_generates_a_conditional_model_at_the_gamma_asked_for(
        stored_dataset, cache):
    from ljvae_core.settings import TrainSettings
    from ljvae_core.workflows import train_and_save

    settings = TrainSettings(latent_dim=3, epochs=2, conditional=True)
    train_and_save(stored_dataset, settings, "conditional", cache, n_generate=20)
    at = _app()
    at.switch_page("app_pages/reconstruct.py")
    at.run()
    assert not at.exception and not at.error
    # Its plain mixture is the one pooled over every state point, before the refinement.
    assert at.radio(key="generate_prior").options == [
        "the fitted prior", "one mixture over every state point",
        "the same mixture, as fitted", "N(0, I)"]
    at.number_input(key="n_generate").set_value(20)
    at.number_input(key="generate_gamma").set_value(0.5)  # between the trained 0 and 1
    at.number_input(key="generate_sweeps").set_value(2)
    at.button(key="generate").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    table = at.dataframe[-1].value
    assert table["set"].tolist()[1:] == ["generated, raw", "generated + 2 sweeps"]
    assert any("fresh Monte Carlo at γ = 0.5;" in c.value for c in at.caption)
    at.number_input(key="generate_gamma").set_value(5.0)
    at.button(key="generate").click()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Could not generate: γ = 5, T = 1 is too far from the state points this model was "
        "trained on (γ from 0 to 1, T = 1) to generate there."]
    # The γ = 0.5 samples no longer stand under the refusal.
    assert not [d for d in at.dataframe if "set" in d.value]


def test_train_page_refuses_bad_settings(stored_dataset):
    at = _app()
    at.switch_page("app_pages/train.py")
    at.run()
    # The hard core acts on decoded coordinates: off for a decoder of matrices.
    assert not at.number_input(key="repel_steps").disabled
    at.radio(key="decoder").set_value("direct")
    at.run()
    assert at.number_input(key="repel_steps").disabled
    # A conditional model is given gamma and T: no state head to read them back.
    assert not at.number_input(key="state_weight").disabled
    at.checkbox(key="conditional").check()
    at.run()
    assert at.number_input(key="state_weight").disabled
    at.selectbox(key="representation").set_value("voxels")
    at.run()
    assert not at.exception
    assert at.number_input(key="physics_weight").disabled
    # Voxel grids decoded as grids give the physics loss nothing to judge, in training or
    # prior.
    assert at.number_input(key="prior_physics_weight").disabled


def test_quick_demo_ends_on_a_summary_of_the_pretrained_models_figures(cache):
    at = _app()
    at.run()
    at.button(key="demo").click()
    at.run()
    deadline = time.time() + 300
    while time.time() < deadline and at.session_state["demo_job"].running:
        assert not at.exception and not at.error
        time.sleep(1.0)
        at.run()
    at.run()
    job = at.session_state["demo_job"]
    assert job.status == "done", job.details
    assert not at.exception and not at.error
    assert at.title[0].value.startswith("ljvae")
    assert "fresh Monte Carlo configurations" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    # The shipped model's quality, measured here on data it never saw.
    assert float(metrics["Median reconstruction error"].rstrip(" σ")) <= 0.3
    assert float(metrics["Valid generated samples"].rstrip("%")) >= 90
    assert not at.button(key="demo").disabled
    assert at.session_state["model"] == "demo-distances"
    assert "demo-distances" in at.dataframe[-1].value["model"].tolist()


def test_the_app_keeps_the_keras_session_between_runs(cache):
    # Streamlit's default clears it after every run, emptying TensorFlow's kernel cache under
    # a training thread (the quick demo took 80 s instead of 30 s in a browser).
    from streamlit.runtime.scriptrunner import script_runner

    from ljvae_ui.runtime import _keep_module_state

    _app()
    assert script_runner._clean_problem_modules is _keep_module_state


def test_model_list_compares_quenched_samples_with_quenched_monte_carlo():
    from ljvae_ui.state import models_table

    summary = {"name": "m", "representation": "distances", "latent_dim": 64, "beta": 1.0,
               "physics_weight": 0.0, "state_weight": 100.0, "conditional": False,
               "epochs_run": 100, "metrics": {"generation": {
                   "energy_w1_relaxed": 0.94, "energy_w1_relaxed_vs_quenched_mc": 0.07}}}
    table, columns = models_table([summary])
    assert table.iloc[0]["U/N W1, quenched"] == 0.07
    assert models_table([summary], expert=True)[0].iloc[0]["state head W"] == 100.0
    # Every column is explained on hover, none is snake_case.
    for table, columns in (models_table([summary]), models_table([summary], expert=True)):
        assert set(columns) == set(table.columns)
        assert all(c.get("help") for c in columns.values())
        assert not any("_" in c for c in table.columns)
    # Summaries of models saved before the state head existed still list.
    del summary["state_weight"]
    row = models_table([summary], expert=True)[0].iloc[0]
    assert row["state head W"] == 0.0 and row["prior physics W"] == 0.0
    assert "β" not in models_table([summary])[0].columns


def test_the_train_page_shows_a_newcomers_few_settings_and_hides_the_rest(stored_dataset):
    at = _app()
    at.switch_page("app_pages/train.py")
    at.run()
    (advanced,) = [e for e in at.expander if e.label.startswith("Advanced settings")]
    inside = {w.key for kind in ("number_input", "radio", "checkbox") for w in advanced.get(kind)}
    assert {"beta", "batch_size", "repel_steps", "distance_encoder", "state_weight"} <= inside
    outside = {w.key for kind in ("number_input", "selectbox", "checkbox")
               for w in at.get(kind) if w.key not in inside} - {"dataset_picker"}
    assert outside == {"representation", "latent_dim", "epochs", "train_seed", "conditional"}
    # Their defaults are the library's.
    from ljvae_core.settings import TrainSettings

    assert at.number_input(key="epochs").value == TrainSettings.epochs
    assert at.number_input(key="latent_dim").value == TrainSettings.latent_dim
    # The automatic epochs are named, and follow the conditional box above them.
    from ljvae_core.settings import AUTO_EPOCHS, AUTO_EPOCHS_CONDITIONAL

    note = "Automatic: up to {} epochs, as for every {}conditional model."
    assert note.format(AUTO_EPOCHS, "un") in [c.value for c in at.caption]
    at.checkbox(key="conditional").check().run()
    assert note.format(AUTO_EPOCHS_CONDITIONAL, "") in [c.value for c in at.caption]
    at.number_input(key="epochs").set_value(7).run()
    assert not any("Automatic:" in c.value for c in at.caption)


def test_icons_are_material_symbols_that_ship_with_streamlit():
    # Emoji need a font that a plain Debian machine lacks: they render as empty boxes.
    root = Path(APP).parent
    sources = [root / "app.py", *sorted((root / "app_pages").glob("*.py"))]
    icons = [m for path in sources
             for m in re.findall(r"icon=\"([^\"]*)\"", path.read_text())]
    assert icons and all(re.fullmatch(r":material/[a-z_]+:", icon) for icon in icons), icons


def test_models_without_figures_are_named_in_one_sentence_under_the_table():
    from ljvae_ui.state import unmeasured_note

    measured = {"name": "page_model", "metrics": {"reconstruction": {"rmsd_median": 0.2}}}
    cli = [{"name": f"cli_{k}", "metrics": {}} for k in range(5)]
    assert unmeasured_note([measured]) is None
    note = unmeasured_note([measured, cli[0]])
    assert "`cli_0`" in note and "page_model" not in note and "evaluate" in note
    assert "\n" not in note
    assert unmeasured_note(cli).count("`cli_") == 3 and "and others" in unmeasured_note(cli)


def test_a_steered_state_point_says_where_its_samples_were_drawn():
    from ljvae_ui.judging import steering_caption

    point = {"gamma": 0.75, "temperature": 1.0,
             "generated_at": {"gamma": 0.8111, "temperature": 1.0}}
    assert "γ = 0.811, T = 1" in steering_caption(point)
    assert steering_caption({**point, "generated_at": {"gamma": 0.75, "temperature": 1.0}}) == ""
    assert steering_caption({**point, "generated_at": None}) == ""


def test_generated_sets_are_drawn_in_their_order_with_colours_apart():
    import numpy as np

    from ljvae_core.system import System
    from ljvae_ui.charts import sample_comparison_charts

    system = System(box=5.0, dim=3)
    rng = np.random.default_rng(0)
    x = rng.random((20, 4, 3)) * 5.0
    sets = {"Monte Carlo": x, "generated, raw": x, "generated + 5 sweeps": x}
    for chart in sample_comparison_charts(sets, system):
        colour = chart.to_dict()["encoding"]["color"]
        assert colour["scale"]["domain"] == list(sets)
        assert len(set(colour["scale"]["range"])) == len(sets)
        # Titles of two short lines: a third of a 1024-pixel window cuts longer ones.
        title = chart.to_dict()["title"]
        assert isinstance(title, list) and max(map(len, title)) <= 18
