"""Models in the ``cache/`` store of :mod:`ljvae_core.artifacts`: saving, loading, the portable
format, and the summary the model list shows (imports TensorFlow when called).

A saved model is a directory: ``model.keras`` (loads with ``safe_mode=True``),
``meta.joblib`` (signed plain data: settings, fitted representation, condition scaling, split,
history, timings, metrics, dataset fingerprint) and ``summary.json`` (for listing without
unpickling). The portable format (:func:`export_model`) replaces ``meta.joblib`` with
``meta.json`` + ``meta.npz``, which any machine can read without trusting the writer.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .artifacts import (
    META_FILE,
    MODEL_FILE,
    MODEL_SUMMARY,
    atomic_folder,
    dump_signed,
    load_signed,
)
from .features import representation_from_dict, representation_to_dict
from .settings import TrainSettings
from .trained import TrainedModel

# The portable format's meta: PORTABLE_META.json and PORTABLE_META.npz.
PORTABLE_META = "meta"


def save_model(trained: TrainedModel, directory) -> Path:
    """Write the model directory atomically (a temporary sibling, then a rename)."""
    from .vae import exportable

    def write(tmp: Path) -> None:
        exportable(trained.model).save(tmp / MODEL_FILE)
        dump_signed(_meta_to_store(trained), tmp / META_FILE)
        (tmp / MODEL_SUMMARY).write_text(json.dumps(model_summary(trained)))

    return atomic_folder(directory, write)


def _meta_to_store(trained: TrainedModel) -> dict:
    """The meta with the settings and the fitted representation as plain data."""
    return {**trained.meta, "settings": asdict(trained.settings),
            "representation": representation_to_dict(trained.representation)}


def model_summary(trained: TrainedModel) -> dict:
    """What the model list shows (JSON-ready)."""
    s, meta = trained.settings, trained.meta
    params = meta.get("dataset_params", {})
    history = meta.get("history", {})
    return {
        "representation": s.representation, "latent_dim": s.latent_dim, "beta": s.beta,
        "physics_weight": s.physics_weight, "conditional": s.conditional,
        "heights": getattr(trained.representation, "with_heights", None),
        "match_every": s.match_every, "distance_encoder": s.distance_encoder,
        "repel_steps": s.repel_steps if s.decodes_coordinates else 0,
        "repel_distance": s.repel_distance, "repel_trigger": s.repel_trigger,
        "log_heights": s.log_heights and s.decodes_coordinates,
        "height_noise": s.height_noise if trained.has_height_noise else 0.0,
        "state_weight": s.state_weight if meta.get("state_columns") else 0.0,
        "prior_physics_weight": (meta.get("latent_prior") or {}).get("physics_weight", 0.0),
        "epochs_run": meta.get("epochs_run"), "seconds_per_epoch": meta.get("seconds_per_epoch"),
        "val_loss": history.get("val_loss", [None])[-1],
        "particles": trained.representation.n_particles_, "dim": trained.representation.d,
        "box": trained.system.box, "potential": trained.system.potential,
        "gammas": params.get("gammas"),
        "dataset_fingerprint": meta.get("dataset_fingerprint"),
        "dataset": meta.get("dataset_name"),
        "metrics": meta.get("metrics", {}),
    }


def load_model(directory) -> TrainedModel:
    """A model directory written by :func:`save_model` (Keras safe mode)."""
    import keras

    from . import models  # noqa: F401  (registers the custom classes)

    directory = Path(directory)
    if not (directory / MODEL_FILE).is_file() or not (directory / META_FILE).is_file():
        raise FileNotFoundError(f"{directory} is not a saved model (needs {MODEL_FILE} and "
                                f"{META_FILE})")
    meta = load_signed(directory / META_FILE)
    model = keras.models.load_model(directory / MODEL_FILE, safe_mode=True)
    return _trained_from_meta(model, meta)


def _trained_from_meta(model, meta: dict) -> TrainedModel:
    # Models saved before the hard core, its trigger, the log-heights, the state head, the
    # prior's physics loss and the generated heights' noise existed have none.
    settings = TrainSettings(**{"repel_steps": 0, "repel_trigger": 0.0, "log_heights": False,
                                "state_weight": 0.0, "prior_physics_weight": 0.0,
                                "height_noise": 0.0,
                                **_current_names(meta.pop("settings"))})
    rep = representation_from_dict(meta.pop("representation"))
    return TrainedModel(model, rep, settings, meta)


def _current_names(saved: dict) -> dict:
    """Saved settings under today's names: ``distance_decoder`` became ``decoder``, which
    then chose only a distances model's decoder (the others decoded their values directly)."""
    saved = dict(saved)
    if "distance_decoder" in saved:
        old = saved.pop("distance_decoder")
        distances = saved.get("representation", "distances") == "distances"
        saved["decoder"] = old if distances else "direct"
    return saved


def export_model(trained: TrainedModel, directory) -> Path:
    """Write the model in the portable format that ships with ljvae: ``model.keras`` and its
    meta as ``meta.json`` + ``meta.npz`` (:mod:`ljvae_core.portable`), which any machine can
    load without trusting the writer (:func:`import_model`). Atomically, as
    :func:`save_model`."""
    from .portable import write_tree
    from .vae import exportable

    def write(tmp: Path) -> None:
        exportable(trained.model).save(tmp / MODEL_FILE)
        write_tree(_meta_to_store(trained), tmp / PORTABLE_META)
        tmp.chmod(0o755)  # mkdtemp's owner-only folder would ship unreadable to others

    return atomic_folder(directory, write)


def import_model(directory) -> TrainedModel:
    """A model written by :func:`export_model` (Keras safe mode; nothing is unpickled)."""
    import keras

    from . import models  # noqa: F401  (registers the custom classes)
    from .portable import read_tree

    directory = Path(directory)
    meta = read_tree(directory / PORTABLE_META)
    model = keras.models.load_model(directory / MODEL_FILE, safe_mode=True)
    return _trained_from_meta(model, meta)
