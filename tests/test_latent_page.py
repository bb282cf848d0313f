"""The Latent & Anomaly page under AppTest, on a small stored dataset and mds model: the first
view's progress bar names its step, bad uploads get one plain sentence each, and uploaded
configurations on the map stay readable, keep off the γ colours and can be clicked."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "app_pages/latent.py"


@pytest.fixture(scope="module")
def stored(tmp_path_factory, signing_key):
    """A cache folder holding a dataset and a model (mds encoder) trained on it for one
    epoch, with its anomaly threshold."""
    import os

    from ljvae_core.artifacts import models_dir, save_dataset
    from ljvae_core.calibration import attach_anomaly_scorer
    from ljvae_core.model_store import save_model
    from ljvae_core.sampling import SimulationParams, simulate
    from ljvae_core.settings import TrainSettings
    from ljvae_core.training import train

    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("LJVAE_CACHE")
    os.environ["LJVAE_CACHE"] = str(root)
    try:
        ds = simulate(SimulationParams(n_particles=8, dim=2, box=5.0, gammas=(0.0, 1.0),
                                       n_samples=120, n_chains=2, seed=4))
        save_dataset(ds, "tiny")
        trained = train(ds, TrainSettings(latent_dim=2, epochs=1, prior_physics_weight=0.0))
        attach_anomaly_scorer(trained, ds)
        save_model(trained, models_dir() / "tiny-mds")
    finally:
        if old is None:
            os.environ.pop("LJVAE_CACHE")
        else:
            os.environ["LJVAE_CACHE"] = old
    return root, ds


@pytest.fixture
def page(stored, monkeypatch) -> AppTest:
    root, _ = stored
    monkeypatch.setenv("LJVAE_CACHE", str(root))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page(PAGE)
    return at


def _npy(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _chart(at: AppTest):
    [chart] = [c for c in at.get("vega_lite_chart") if "latent 1" in c.proto.spec]
    return chart.proto, json.loads(chart.proto.spec)


def _upload_layers(spec: dict) -> list[dict]:
    """The layers drawing the uploaded configurations (those on the data of the layer whose
    shape tells the verdict)."""
    [marks] = [layer for layer in spec["layer"]
               if layer.get("encoding", {}).get("shape", {}).get("field") == "verdict"]
    return [layer for layer in spec["layer"] if layer["data"] == marks["data"]]


def test_first_view_names_the_encoding_step_while_it_works(page, monkeypatch):
    from streamlit.delta_generator import DeltaGenerator

    texts = []
    progress = DeltaGenerator.progress

    def recorded(self, value, text=None, **kwargs):
        texts.append(text)
        return progress(self, value, text=text, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "progress", recorded)
    page.run()
    assert not page.exception
    assert "Encoding 240 configurations: putting their shapes in the model's frame (0 done)…" \
        in texts
    # The bar is gone once the map is drawn.
    assert not page.get("progress")


def test_bad_uploads_get_one_plain_sentence_each(page):
    page.run()
    page.file_uploader(key="uploads").set_value([
        ("bad.xyz", b"\x93\x00\xff\xfe" * 300, "text/plain"),
        ("latin.csv", "x,y\n1,é\n".encode("latin-1"), "text/csv"),
        ("objects.npy", _npy(np.array([{"a": 1}], dtype=object)), "application/octet-stream"),
        ("three.npy", _npy(np.ones((2, 8, 3))), "application/octet-stream"),
    ])
    page.run()
    assert not page.exception
    assert [e.value for e in page.error] == [
        "bad.xyz: the file holds binary data, not the text of an XYZ or CSV file.",
        "latin.csv: the file is not UTF-8 text; save it as UTF-8.",
        "objects.npy: the array holds Python objects, which are never unpickled here; save "
        "it as an array of numbers.",
        "three.npy: the configurations are 3D, the model is 2D.",
    ]


def _click(at: AppTest, selection: dict) -> None:
    """A click on the map, reported as the browser does (AppTest has no chart clicks of its
    own): a click on one layer's mark leaves an empty entry in the others' selections."""
    chart, _ = _chart(at)
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = chart.id
    state.string_value = json.dumps({"selection": selection})
    at._run(states)


def test_clicking_an_uploaded_marker_shows_that_configuration(page, stored):
    _, ds = stored
    page.run()
    frames = ds.coords[:3].copy()
    frames[2, 1] = frames[2, 0] + 0.05  # one pair overlapping
    page.file_uploader(key="uploads").set_value([("mine.npy", _npy(frames), "x")])
    page.run()
    assert page.selectbox(key="upload_shown").value == 0
    _, spec = _chart(page)
    assert {p["name"] for p in spec.get("params", [])} >= {"picked", "upload"}
    _click(page, {"picked": [{}], "upload": [{"row": 2}]})
    assert not page.exception
    assert page.selectbox(key="upload_shown").value == 2
    # A dataset point clicked instead shows that configuration and leaves the box alone.
    _click(page, {"picked": [{"index": 3}], "upload": [{}]})
    assert not page.exception
    assert page.selectbox(key="upload_shown").value == 2
    assert any("Configuration 3" in m.value for m in page.markdown)
    # Choosing another one in the box afterwards is kept.
    page.selectbox(key="upload_shown").set_value(1)
    page.run()
    assert page.selectbox(key="upload_shown").value == 1


def test_a_big_upload_stays_readable_on_the_map(page, stored):
    _, ds = stored
    page.run()
    rng = np.random.default_rng(0)
    many = np.clip(ds.coords[rng.integers(0, len(ds), 1200)] + rng.normal(0, 0.05, (1200, 8, 2)),
                   0.0, 5.0)
    page.file_uploader(key="uploads").set_value([("many.npy", _npy(many), "x")])
    page.run()
    assert not page.exception
    assert len(page.dataframe[-1].value) == 1200  # every frame is scored and listed
    chart, spec = _chart(page)
    layers = _upload_layers(spec)
    assert layers, "no uploaded configurations on the map"
    drawn = [d for d in chart.datasets if d.name == layers[0]["data"]["name"]]
    assert drawn and 0 < _rows(drawn[0]) <= 300
    assert any("shows 300 of the 1,200 uploaded configurations" in c.value
               for c in page.caption)
    for layer in layers:
        assert not layer["mark"]["filled"] and layer["mark"]["size"] <= 50
        # Black and white, colours of neither the viridis γ scale nor the magma energy map.
        assert layer["mark"]["color"] in ("black", "white")
    [legend] = [layer["encoding"]["shape"] for layer in layers if "encoding" in layer
                and "shape" in layer["encoding"]]
    assert legend["title"] == "uploaded"
    assert legend["scale"]["domain"] == ["normal", "anomalous"]


def _rows(dataset) -> int:
    import pyarrow as pa

    return pa.ipc.open_stream(dataset.data.data).read_all().num_rows
