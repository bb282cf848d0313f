"""Training VAEs on datasets, saving and loading them (imports TensorFlow when called).

``train(dataset, settings, progress=..., stop=...)`` splits the samples by *chain* (successive
samples of one chain are correlated, so a random split would leak), fits the representation on
the training part, builds the model of :mod:`ljvae_core.models`, trains it with early stopping
on the validation loss, and returns a :class:`TrainedModel`. The same ``progress`` callback
(a dict per epoch) and ``stop`` event drive the app's live chart and the CLI's progress line.

A saved model is a directory: ``model.keras`` (loads with ``safe_mode=True``),
``meta.joblib`` (plain data: settings, fitted representation, condition scaling, split,
history, timings, metrics, dataset fingerprint) and ``summary.json`` (for listing without
unpickling).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .analysis import MIN_VALID_DISTANCE
from .artifacts import MODEL_SUMMARY, dump_signed, load_signed
from .features import make_representation, representation_from_dict, representation_to_dict
from .potential import batch_pair_energies, periodic_mask

# Batches per compiled call: amortizes Keras' per-step Python overhead, which dominates small
# models on a CPU (an epoch of the dense reference VAE takes a third of the time with it).
STEPS_PER_EXECUTION = 16
# Configurations per forward pass outside training.
PREDICT_BATCH = 256
# XLA takes ~8 s to compile a coordinates-decoder VAE on a CPU and then runs its steps ~35 %
# faster (measured on 2 cores): worth it from this many training samples x epochs on. Keras
# leaves XLA off on CPU-only machines by default.
XLA_MIN_SAMPLE_EPOCHS = 200_000
MODEL_FILE = "model.keras"
META_FILE = "meta.joblib"
# The portable format's meta: PORTABLE_META.json and PORTABLE_META.npz.
PORTABLE_META = "meta"
META_VERSION = 1


class TrainingError(ValueError):
    """Settings or data that training cannot work with (one clear sentence)."""


def _option(default, label: str, help: str = "", low=None, high=None, step=None,
            choices=None, applies=None):
    """A training setting with what a form needs to offer it: its label, range or choices,
    help text, and ``applies(settings)``, whether it matters for the rest of the settings
    (forms disable it where it does not)."""
    return field(default=default, metadata={
        "label": label, "help": help, "low": low, "high": high, "step": step,
        "choices": choices, "applies": applies})


def _decodes_coordinates(s) -> bool:
    return s.representation == "distances" and s.distance_decoder == "coordinates"


def _not_voxels(s) -> bool:
    return s.representation != "voxels"


@dataclass(frozen=True)
class TrainSettings:
    """What to train; defaults are the ones the documented results use. Each field's
    metadata (label, range, help; :func:`setting_options`) is what the Train page offers."""

    representation: str = _option(
        "distances", "Representation", choices=("distances", "coords", "voxels"))
    latent_dim: int = _option(64, "Latent size", low=1, high=512)
    beta: float = _option(1.0, "β (KL weight)", low=0.0, high=100.0, step=0.1,
                          help="Weight of the KL term of the loss.")
    warmup_epochs: int = _option(0, "KL warm-up epochs", low=0, high=500,
                                 help="The KL weight rises linearly from 0 to β over these "
                                      "epochs.")
    physics_weight: float = _option(
        0.0, "Physics loss weight λ (training)", low=0.0, high=1000.0, step=1.0,
        applies=_not_voxels,
        help="Penalizes, during training, the LJ energy of decoded configurations above the "
             "highest energy seen in training and their overflow out of the box.")
    conditional: bool = _option(False, "Conditional on (γ, T)",
                                help="Feeds γ and T to encoder and decoder, so the decoder "
                                     "can generate at a chosen γ.")
    epochs: int = _option(40, "Epochs", low=1, high=2000)
    batch_size: int = _option(64, "Batch size", low=1, high=4096)
    learning_rate: float = 1e-3
    validation_fraction: float = 0.25
    patience: int = _option(10, "Early-stopping patience (epochs)", low=1, high=1000,
                            help="Stop after this many epochs without a better validation "
                                 "loss (the best weights are kept).")
    lr_patience: int = _option(3, "Learning-rate patience (epochs, 0: never)", low=0,
                               high=1000,
                               help="Halve the learning rate after this many epochs without "
                                    "a better validation loss.")
    seed: int = _option(0, "Seed", low=0, high=2**31 - 1)
    # Per representation: "heights" (distances), "n_cells" and "smearing" (voxels).
    representation_params: dict = field(default_factory=dict)
    # "coordinates" (the decoder outputs coordinates and their distances, a Euclidean matrix
    # by construction; measured far better) or "direct" (the matrix itself).
    distance_decoder: str = _option(
        "coordinates", "Distance decoder", choices=("coordinates", "direct"),
        applies=lambda s: s.representation == "distances",
        help="coordinates: the decoder outputs coordinates and their distances, always a valid "
             "Euclidean matrix; direct: it outputs the matrix (made symmetric).")
    # Rows or conv encoder: between stretches of this many epochs, each target's particles are
    # put in the order that best matches the decoder's output, so that the decoder need not
    # learn the input order's jumps (distance from the origin). The mds frame orders them.
    match_every: int = _option(
        2, "Match particle orders every K epochs (0: never)", low=0, high=100,
        applies=lambda s: s.representation == "distances" and s.distance_encoder != "mds",
        help="Between stretches of K epochs, each target's particles are put in the order that "
             "best matches the decoder's output, so the decoder need not learn the input "
             "order's jumps (two particles swapping distance from the origin). The mds "
             "encoder's frame orders them itself.")
    distance_encoder: str = _option(
        "mds", "Distance encoder", choices=("mds", "rows", "conv"),
        applies=lambda s: s.representation == "distances",
        help="mds: classical MDS turns each matrix back into its shape, put in one frame "
             "(turned, shifted and ordered onto the training set's mean shape), then a dense "
             "network (needs the height channels and the coordinates decoder); rows: kernels "
             "spanning whole rows, so that each particle is first described by all its "
             "distances; conv: 3x3 convolutions.")
    # Targets: the shapes in the mds frame, or, with the other encoders, each configuration
    # matched and moved into the decoder's frame (needs match_every > 0).
    coordinate_weight: float = _option(
        30.0, "Coordinate loss weight", low=0.0, high=1000.0, applies=_decodes_coordinates,
        help="Weight of a loss on the decoded coordinates themselves, next to their distances: "
             "scored through distances alone, decoded shapes settle into folded or mirrored "
             "ones.")
    # A hard core the decoder learns through (ljvae_core.models.Repel).
    repel_steps: int = _option(
        4, "Hard-core steps (0: off)", low=0, high=20, applies=_decodes_coordinates,
        help="The decoded coordinates end with this many steps pushing pairs closer than the "
             "contact distance apart; the decoder learns through them. Without them, decoded "
             "samples almost always hold an overlapping pair.")
    # 1.06 sigma, the median nearest-neighbour distance of the study system's Monte Carlo
    # samples: at 1 sigma, where u(r) = 0, decoded contacts carry no binding energy.
    repel_distance: float = _option(
        1.06, "Contact distance (σ)", low=0.5, high=1.5, step=0.01,
        applies=lambda s: _decodes_coordinates(s) and s.repel_steps > 0,
        help="Pairs of decoded particles closer than this are pushed apart.")
    log_heights: bool = _option(
        True, "Decode log-heights", applies=_decodes_coordinates,
        help="The decoder emits the logarithm of each height: decoded particles stay above the "
             "floor, and a barometric profile's scale is one shift.")
    # Without the head a linear probe read gamma off the study model's latent with R^2 0.82
    # instead of 0.98. Conditional models, and datasets of one state point, have none.
    state_weight: float = _option(
        100.0, "State head weight", low=0.0, high=1000.0, step=1.0,
        applies=lambda s: not s.conditional,
        help="Weight of a linear head reading (γ, T) off the latent, so that the latent "
             "carries the state point where a straight line reads it (the Latent page's γ "
             "probe). Unconditional models only; 0: the latent organizes itself.")
    prior_physics_weight: float = _option(
        300.0, "Physics weight of the generation prior", low=0.0, high=10000.0, step=10.0,
        applies=_not_voxels,
        help="After training, the generation prior (a Gaussian mixture over the latent means) "
             "is fitted with the same physics penalty on its decoded samples, so generation "
             "avoids latent regions that decode to overlapping or too wide configurations. "
             "The decoder, hence every reconstruction, is left as trained. 0: the plain "
             "mixture (ljvae_core.priors.LatentPrior.refine).")

    def errors(self):
        if self.representation not in ("coords", "distances", "voxels"):
            yield f"unknown representation {self.representation!r}"
        if self.latent_dim < 1:
            yield "the latent size must be at least 1"
        if self.epochs < 1 or self.batch_size < 1:
            yield "epochs and batch size must be at least 1"
        if self.beta < 0 or self.physics_weight < 0 or self.prior_physics_weight < 0:
            yield "beta and the physics weights cannot be negative"
        if not 0 < self.validation_fraction < 1:
            yield "the validation fraction must lie strictly between 0 and 1"
        if self.physics_weight > 0 and self.representation == "voxels":
            yield "the physics loss needs the coords or distances representation"
        if self.distance_decoder not in ("direct", "coordinates"):
            yield f"unknown distance decoder {self.distance_decoder!r}"
        if self.distance_encoder not in ("conv", "rows", "mds"):
            yield f"unknown distance encoder {self.distance_encoder!r}"
        if self.match_every < 0:
            yield "match_every cannot be negative"
        if self.coordinate_weight < 0 or self.state_weight < 0:
            yield "the coordinate and state weights cannot be negative"
        if self.repel_steps < 0 or self.repel_distance <= 0:
            yield "repel steps cannot be negative and the repel distance must be positive"
        if self.representation == "distances" and self.distance_encoder == "mds":
            if not self.representation_params.get("heights", True):
                yield ("the mds encoder needs the height channels; without them choose the "
                       "rows or conv encoder")
            if self.distance_decoder != "coordinates":
                yield "the mds encoder needs the decoder through coordinates"

    @property
    def decodes_coordinates(self) -> bool:
        """Whether the decoder emits coordinates (distances through coordinates): the ones
        the hard core and log-heights apply to."""
        return self.representation == "distances" and self.distance_decoder == "coordinates"

    def validate(self):
        problems = list(self.errors())
        if problems:
            raise TrainingError("; ".join(problems))

    def applies(self, name: str) -> bool:
        """Whether setting ``name`` matters given the others (forms disable it otherwise)."""
        rule = setting_options(name).get("applies")
        return rule is None or bool(rule(self))

    def with_value(self, name: str, value) -> TrainSettings:
        """These settings with ``name`` set to ``value`` as a form gives it, or to its default
        where it does not apply given the others (its widget is disabled then)."""
        default = setting_options(name)["default"]
        if not self.applies(name):
            value = default
        elif not isinstance(default, dict):
            value = type(default)(value)
        return replace(self, **{name: value})


# The Train page's inputs, each after those that decide whether it applies.
FORM_FIELDS = ("representation", "latent_dim", "epochs", "seed", "conditional",
               "distance_decoder", "distance_encoder", "representation_params", "match_every",
               "coordinate_weight", "repel_steps", "repel_distance", "log_heights", "beta",
               "warmup_epochs", "physics_weight", "prior_physics_weight", "state_weight",
               "batch_size")


def settings_from_form(values: dict) -> TrainSettings:
    """Training settings from a form's values ({field name: value}, in :data:`FORM_FIELDS`
    order); fields left out keep their defaults."""
    settings = TrainSettings()
    for name in FORM_FIELDS:
        if name in values:
            settings = settings.with_value(name, values[name])
    return settings


def setting_options(name: str) -> dict:
    """Label, range (low, high, step) or choices, help and ``applies`` of a training setting,
    with its default."""
    (spec,) = [f for f in fields(TrainSettings) if f.name == name]
    default = spec.default if spec.default_factory is MISSING else spec.default_factory()
    return {**spec.metadata, "default": default}


@dataclass
class TrainedModel:
    """A trained VAE with everything needed to use it on new configurations."""

    model: object
    representation: object
    settings: TrainSettings
    meta: dict

    @property
    def history(self) -> dict:
        return self.meta["history"]

    def condition_features(self, gamma, temperature) -> np.ndarray:
        """(M, 2) scaled (gamma, T) inputs of conditional models."""
        raw = np.stack([np.asarray(gamma, float), np.asarray(temperature, float)], axis=-1)
        scale = self.meta["condition_scale"]
        return ((raw - scale["mean"]) / scale["std"]).astype("float32")

    @property
    def frame(self):
        """The :class:`ljvae_core.features.ShapeFrame` of models with the ``mds`` encoder
        (None for the others)."""
        if self.meta.get("frame") is None:
            return None
        if getattr(self, "_frame", None) is None:
            from .features import ShapeFrame

            self._frame = ShapeFrame.from_dict(self.representation, self.meta["frame"])
        return self._frame

    def trained_on(self, dataset) -> bool:
        """Whether ``dataset`` is the one this model was trained on (its validation chains
        are then held out, the others seen)."""
        return self.meta.get("dataset_fingerprint") == dataset_fingerprint(dataset)

    @property
    def latent_prior(self):
        """The generation prior fitted after training (:class:`ljvae_core.priors.LatentPrior`),
        or None for models that have none (generation then samples N(0, I))."""
        if self.meta.get("latent_prior") is None:
            return None
        from .priors import LatentPrior

        return LatentPrior.from_dict(self.meta["latent_prior"])

    @property
    def conditional_prior(self):
        """The per-state-point generation prior of a conditional model
        (:class:`ljvae_core.priors.ConditionalPrior`), or None (unconditional models, and
        conditional ones saved without it)."""
        if self.meta.get("conditional_prior") is None:
            return None
        from .priors import ConditionalPrior

        return ConditionalPrior.from_dict(self.meta["conditional_prior"])

    @property
    def plain_latent_prior(self):
        """The generation prior's plain maximum-likelihood fit, before the joint physics loss
        refined it (the prior itself when it was not refined; None without one)."""
        if self.meta.get("latent_prior_plain") is None:
            return self.latent_prior
        from .priors import LatentPrior

        return LatentPrior.from_dict(self.meta["latent_prior_plain"])

    def model_data(self, coords, gamma=None, temperature=None, targets: bool = True) -> dict:
        """What the model makes of configurations: its input ``x`` (with ``condition`` for
        conditional models) and its reconstruction ``target``. With the ``mds`` encoder the
        input is the shape in the :attr:`frame` (in units of the box) and the target is its
        matrix, in the same particle order, plus its ``coordinates`` (sigma)."""
        matrices = self.representation.transform(coords)
        if self.frame is None:
            data = {"x": matrices.astype("float32")}
            data["target"] = data["x"]
        else:
            _, shapes = self.frame.transform(matrices)
            data = {"x": (shapes / self.representation.L).astype("float32"),
                    "coordinates": shapes.astype("float32")}
            if targets:  # the shapes' own matrices: seconds for thousands, unused as input
                data["target"] = self.representation.matrices(shapes).astype("float32")
        if self.settings.conditional:
            data["condition"] = self.condition_features(gamma, temperature)
        return data

    def model_inputs(self, coords, gamma=None, temperature=None):
        """The model's input: x, or (x, condition) for conditional models."""
        return self.inputs_of(self.model_data(coords, gamma, temperature, targets=False))

    def inputs_of(self, data: dict):
        """The model's input in a :meth:`model_data` dict: x, or (x, condition)."""
        return (data["x"], data["condition"]) if self.settings.conditional else data["x"]

    def posterior(self, data: dict) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances (M, latent) of a :meth:`model_data` dict."""
        x = self.inputs_of(data)
        mean, log_var = self.model.encoder.predict(list(x) if isinstance(x, tuple) else x,
                                                   verbose=0, batch_size=PREDICT_BATCH)
        return np.asarray(mean, np.float64), np.asarray(log_var, np.float64)

    def decoder_output(self, latent, condition=None) -> np.ndarray:
        """What the decoder makes of latent vectors (M, latent), under condition features
        (M, 2) for conditional models: the representation's values."""
        z = np.asarray(latent, dtype="float32")
        out = self.model.decoder.predict([z, condition] if self.settings.conditional else z,
                                         verbose=0, batch_size=PREDICT_BATCH)
        return np.asarray(out)

    def output(self, data: dict) -> np.ndarray:
        """The whole model's output (posterior mean decoded) for a :meth:`model_data` dict."""
        return np.asarray(self.model.predict(self.inputs_of(data), verbose=0,
                                             batch_size=PREDICT_BATCH))


# --------------------------------------------------------------------------- data
def split_by_chain(dataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices (train, validation): whole chains go to validation, at least one per
    condition when a condition has two or more chains."""
    rng = np.random.default_rng(seed)
    held_out = []
    for k in np.unique(dataset.condition):
        chains = np.unique(dataset.chain[dataset.condition == k])
        if len(chains) < 2:
            continue
        n_val = min(len(chains) - 1, max(1, round(fraction * len(chains))))
        held_out.extend(rng.choice(chains, n_val, replace=False))
    if not held_out:
        raise TrainingError("a validation split needs at least two chains per condition; "
                            "simulate with more chains")
    val = np.isin(dataset.chain, held_out)
    return np.flatnonzero(~val), np.flatnonzero(val)


def dataset_fingerprint(dataset) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(dataset.coords).tobytes())
    digest.update(np.ascontiguousarray(dataset.energy).tobytes())
    return digest.hexdigest()[:16]


def _physics_config(dataset, rep, settings, train_idx, weight=None):
    """The joint physics loss's settings (None when its weight is 0): by default the VAE's
    own weight."""
    weight = settings.physics_weight if weight is None else weight
    if weight <= 0:
        return None
    coords = np.ascontiguousarray(dataset.coords[train_idx])
    mask = periodic_mask(dataset.params.get("periodic", ""), dataset.dim)
    pair = batch_pair_energies(coords, dataset.box, mask, np.inf) / dataset.n_particles
    distances = settings.representation == "distances"
    return {"weight": float(weight), "energy_cap": float(pair.max()),
            "kind": "distances" if distances else "coords", "n_particles": dataset.n_particles,
            "dim": dataset.dim, "scale": float(rep.scale if distances else 0.5 * dataset.box),
            # Walls for decoded coordinates (in the mds frame: heights absolute); a periodic
            # side axis has none, and a frame turned about the vertical mixes the side axes.
            "box": None if mask[-1] else float(dataset.box),
            "side_walls": not mask[:-1].any()}


def _jit_compile(settings, n_train: int, strategy) -> bool | str:
    """Keras' ``jit_compile`` argument: True (XLA) for long runs of the coordinates decoder,
    where it was measured to pay, else "auto" (Keras decides)."""
    long_run = settings.epochs * n_train >= XLA_MIN_SAMPLE_EPOCHS
    return True if settings.decodes_coordinates and long_run and strategy is None else "auto"


def _through_coordinates(rep, settings):
    if settings.decodes_coordinates:
        return rep.d, rep.scale
    return None


def _tf_dataset(x, batch_size, shuffle, seed):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(x)
    if shuffle:
        data = data.shuffle(len(tf.nest.flatten(x)[0]), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(2)


def _as_dict(inputs) -> dict:
    """Model inputs x, (x, c) or a batch dict as a batch dict."""
    if isinstance(inputs, dict):
        return inputs
    if isinstance(inputs, tuple):
        return {"x": inputs[0], "condition": inputs[1]}
    return {"x": inputs}


class OrderMatcher:
    """Decoder targets whose particle order follows the decoder's own.

    A distance matrix lists particles in an arbitrary order (distance from the origin) that
    jumps whenever two particles swap ranks; a decoder made to reproduce it must learn those
    jumps. Between stretches of training, :meth:`match` decodes every configuration, matches
    its particles to the decoded ones and rebuilds its target matrix in that order; the
    encoder's inputs keep the representation's order.

    Decoders that go through coordinates are matched on those, in their own frame, by the
    motions that keep heights (:func:`ljvae_core.geometry.match_across`); with ``coordinates``
    the moved configurations become targets too (the VAE's coordinate term). Other decoders
    are matched on the MDS of their output (:func:`ljvae_core.geometry.matching_orders`)."""

    def __init__(self, rep, inputs: dict, coords: dict, coordinates: bool = False):
        self.rep = rep
        self.inputs = {part: _as_dict(x) for part, x in inputs.items()}
        self.ordered = {part: rep.sort(c) for part, c in coords.items()}
        self.targets = {part: x["x"] for part, x in self.inputs.items()}
        self.coordinates = {} if coordinates else None

    def data(self, part: str) -> dict:
        data = {**self.inputs[part], "target": self.targets[part]}
        if self.coordinates is not None and part in self.coordinates:
            data["coordinates"] = self.coordinates[part]
        return data

    def match(self, model, batch_size: int = 512) -> float:
        """Re-order every target; returns the fraction of particles whose place changed."""
        moved = []
        for part, ordered in self.ordered.items():
            orders, aligned = self._orders(model, part, ordered, batch_size)
            self.targets[part] = self.rep.matrices(
                np.take_along_axis(ordered, orders[..., None], axis=1)).astype("float32")
            if self.coordinates is not None:
                self.coordinates[part] = aligned.astype("float32")
            moved.append(np.mean(orders != np.arange(orders.shape[1])))
        return float(np.mean(moved))

    def _orders(self, model, part, ordered, batch_size):
        from .geometry import classical_mds, kabsch, match_across, matching_orders

        x, c = self.inputs[part]["x"], self.inputs[part].get("condition")
        if model.has_coordinates:
            decoded = model.decoded_coordinates(x, c, batch_size)
            if getattr(self.rep, "heights", False):
                return match_across(ordered, decoded, principal_starts=False)
            # Without heights the decoder's frame is arbitrary in every direction.
            orders = matching_orders(ordered, decoded)
            return orders, kabsch(np.take_along_axis(ordered, orders[..., None], 1), decoded)
        out = np.asarray(model.predict(x if c is None else (x, c), verbose=0,
                                       batch_size=batch_size))
        # The decoded shape up to a rigid motion is all that matching needs.
        decoded = classical_mds(self.rep.distances(out), self.rep.d)
        return matching_orders(ordered, decoded), None


# --------------------------------------------------------------------------- training
def train(dataset, settings: TrainSettings | None = None, progress=None, stop=None,
          strategy=None) -> TrainedModel:
    """Fit a VAE to a dataset. ``progress(dict)`` is called after every epoch with the epoch,
    the number of epochs and the logged losses; setting the ``stop`` event ends training
    after the current batch (the model trained so far is kept).

    ``strategy``: a ``tf.distribute`` strategy to build and train the model under. On a machine
    with several GPUs, ``tf.distribute.MirroredStrategy()`` splits every batch across them
    (raise ``batch_size`` in proportion); ``OneDeviceStrategy("/gpu:0")`` pins one device.
    Without one, TensorFlow's default placement is used."""
    settings = settings or TrainSettings()
    settings.validate()
    train_idx, val_idx = split_by_chain(dataset, settings.validation_fraction, settings.seed)
    rep = make_representation(settings.representation, L=dataset.box, d=dataset.dim,
                              **settings.representation_params)
    rep.fit(dataset.coords[train_idx])
    conditions = np.stack([dataset.gamma, dataset.temperature], axis=-1)
    std = conditions[train_idx].std(axis=0)
    scale = {"mean": conditions[train_idx].mean(axis=0), "std": np.where(std > 0, std, 1.0)}
    trained = TrainedModel(None, rep, settings, {"condition_scale": scale})
    mds = settings.representation == "distances" and settings.distance_encoder == "mds"
    if mds:
        trained.meta["frame"] = _fitted_frame(rep, dataset.coords[train_idx], settings.seed)
    states = _state_targets(trained, dataset, std > 0)
    trained.meta["state_columns"] = [] if states is None else np.flatnonzero(std > 0).tolist()

    def inputs(idx):
        data = trained.model_data(dataset.coords[idx], dataset.gamma[idx],
                                  dataset.temperature[idx])
        if states is not None:
            data["state"] = states[idx]
            return data
        # Models whose targets are their inputs take (x[, c]); the others the whole dict.
        return data if mds else trained.inputs_of(data)

    x_train, x_val = inputs(train_idx), inputs(val_idx)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _compiled_vae(dataset, rep, settings, train_idx, states, strategy)
    timer, early = _EpochTimer(), _EarlyStopping(settings.patience)
    callbacks = [timer, early, *_schedules(settings), _Progress(settings.epochs, progress, stop)]
    matcher = None
    if settings.match_every > 0 and settings.representation == "distances" and not mds:
        matcher = OrderMatcher(rep, {"train": x_train, "validation": x_val},
                               {"train": dataset.coords[train_idx],
                                "validation": dataset.coords[val_idx]},
                               coordinates=model.coordinate_weight > 0)
        if model.coordinate_weight > 0:  # coordinate targets from the first epoch on
            matcher.match(model)
    history = _fit(model, x_train, x_val, settings, callbacks, matcher)
    early.restore_best()
    trained.model = model
    trained.meta.update(_training_record(model, dataset, history, timer, train_idx, val_idx))
    return trained


def _training_record(model, dataset, history, timer, train_idx, val_idx) -> dict:
    """What a trained model's meta keeps of its training."""
    return {
        "version": META_VERSION,
        "history": history,
        "seconds_per_epoch": timer.median(),
        "epochs_run": len(history.get("loss", [])),
        "train_indices": train_idx, "validation_indices": val_idx,
        "dataset_fingerprint": dataset_fingerprint(dataset),
        "dataset_params": dict(dataset.params),
        "decoder_log_var": float(model.decoder_log_var.numpy()),
        "height_log_var": (float(model.height_log_var.numpy()) if model.height_channels
                           else None),
        "metrics": {},
    }


def _compiled_vae(dataset, rep, settings, train_idx, states, strategy):
    """The VAE the settings describe for this dataset's representation, compiled."""
    import keras

    from .models import build_vae

    model = build_vae(settings.representation, rep.input_shape(), settings.latent_dim,
                      beta=settings.beta, conditional=settings.conditional,
                      physics=_physics_config(dataset, rep, settings, train_idx),
                      seed=settings.seed,
                      through_coordinates=_through_coordinates(rep, settings),
                      height_scale=rep.height_scale if getattr(rep, "heights", False) else None,
                      distance_encoder=settings.distance_encoder,
                      coordinate_weight=settings.coordinate_weight,
                      repel={"distance": settings.repel_distance,
                             "steps": settings.repel_steps, "height": dataset.box},
                      log_heights=settings.log_heights,
                      n_states=0 if states is None else states.shape[1],
                      state_weight=settings.state_weight)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  steps_per_execution=STEPS_PER_EXECUTION,
                  jit_compile=_jit_compile(settings, len(train_idx), strategy))
    return model


def _schedules(settings) -> list:
    """The learning-rate halving and the KL warm-up the settings ask for (Keras callbacks)."""
    import keras

    from .models import BetaWarmup

    callbacks = []
    if settings.lr_patience > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=settings.lr_patience, min_lr=1e-5))
    if settings.warmup_epochs > 0:
        callbacks.append(BetaWarmup(settings.warmup_epochs))
    return callbacks


def _state_targets(trained, dataset, varying) -> np.ndarray | None:
    """The state head's targets: the (gamma, T) columns that vary in the training set
    (``varying``), standardized on it as conditional models' inputs are; None when the head
    is off (weight 0, a conditional model, or a single state point)."""
    settings = trained.settings
    if settings.state_weight <= 0 or settings.conditional or not varying.any():
        return None
    return trained.condition_features(dataset.gamma, dataset.temperature)[:, varying]


def _fitted_frame(rep, coords, seed: int) -> dict:
    from .features import ShapeFrame

    if not getattr(rep, "heights", False):
        raise TrainingError("the mds encoder needs the height channels (heights=True)")
    return ShapeFrame(rep).fit(rep.transform(coords), seed=seed).to_dict()


def _fit(model, x_train, x_val, settings, callbacks, matcher=None) -> dict:
    """``model.fit`` over the epochs; with a matcher, in stretches of ``match_every`` epochs
    between which the targets' particle orders are matched to the decoder's. The history as
    plain lists, with the fraction of re-ordered particles after each stretch."""
    history: dict = {}
    done = 0
    stretch = settings.match_every if matcher is not None else settings.epochs
    while done < settings.epochs:
        end = min(done + stretch, settings.epochs)
        train_data = matcher.data("train") if matcher else x_train
        val_data = matcher.data("validation") if matcher else x_val
        fitted = model.fit(
            _tf_dataset(train_data, settings.batch_size, True, settings.seed + done),
            validation_data=_tf_dataset(val_data, settings.batch_size, False, settings.seed),
            initial_epoch=done, epochs=end, callbacks=callbacks, verbose=0, shuffle=False)
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        done += len(fitted.history.get("loss", []))
        if model.stop_training or done < end or done >= settings.epochs:
            break
        history.setdefault("reordered", []).append(matcher.match(model))
    return history


class _EarlyStopping:
    """Early stopping on the validation loss that lasts across several ``fit`` calls (Keras'
    own starts afresh at each); :meth:`restore_best` puts the best weights back."""

    def __new__(cls, patience: int):
        import keras

        class Stopping(keras.callbacks.EarlyStopping):
            def on_train_begin(self, logs=None):
                if not getattr(self, "started", False):
                    super().on_train_begin(logs)
                    self.started = True

            def on_train_end(self, logs=None):
                pass

            def restore_best(self):
                if self.best_weights is not None:
                    self.model.set_weights(self.best_weights)

        return Stopping(monitor="val_loss", patience=patience, restore_best_weights=True)


class _EpochTimer:
    """Wall time of each epoch (a Keras callback, built lazily to keep imports light)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

            def median(self):
                return float(np.median(self.seconds)) if self.seconds else float("nan")

        return Timer()


class _Progress:
    """Relays epoch logs to a plain callable, and a stop event to Keras."""

    def __new__(cls, epochs, progress, stop):
        import keras

        class Relay(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if stop is not None and stop.is_set():
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                if progress is not None:
                    progress({"epoch": epoch + 1, "epochs": epochs,
                              **{k: float(v) for k, v in (logs or {}).items()}})
                if stop is not None and stop.is_set():
                    self.model.stop_training = True

        return Relay()


# --------------------------------------------------------------------------- persistence
def save_model(trained: TrainedModel, directory) -> Path:
    """Write the model directory atomically (a temporary sibling, then a rename)."""
    from .models import exportable

    def write(tmp: Path) -> None:
        exportable(trained.model).save(tmp / MODEL_FILE)
        dump_signed(_meta_to_store(trained), tmp / META_FILE)
        (tmp / MODEL_SUMMARY).write_text(json.dumps(model_summary(trained)))

    return _write_folder(directory, write)


def _meta_to_store(trained: TrainedModel) -> dict:
    """The meta with the settings and the fitted representation as plain data."""
    return {**trained.meta, "settings": asdict(trained.settings),
            "representation": representation_to_dict(trained.representation)}


def _write_folder(directory, write) -> Path:
    """``write(tmp)`` fills a temporary sibling folder, which then replaces ``directory``; a
    failure leaves nothing half-written under its name."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write(tmp)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_into_place(tmp: Path, directory: Path, attempts: int = 20) -> None:
    """Rename the finished folder ``tmp`` to ``directory``, moving an existing one aside
    first. Two processes saving the same name both succeed; the last one stays."""
    for _ in range(attempts):
        if directory.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            try:
                os.replace(directory, aside / "model")
            except FileNotFoundError:  # another writer moved it first
                pass
            finally:
                shutil.rmtree(aside, ignore_errors=True)
        try:
            os.replace(tmp, directory)
            return
        except OSError:  # another writer put its folder there in between: go again
            continue
    raise OSError(f"could not save {directory.name}: other processes keep replacing it")


def model_summary(trained: TrainedModel) -> dict:
    """What the model list shows (JSON-ready)."""
    s, meta = trained.settings, trained.meta
    params = meta.get("dataset_params", {})
    history = meta.get("history", {})
    return {
        "representation": s.representation, "latent_dim": s.latent_dim, "beta": s.beta,
        "physics_weight": s.physics_weight, "conditional": s.conditional,
        "heights": getattr(trained.representation, "heights", None),
        "match_every": s.match_every, "distance_encoder": s.distance_encoder,
        "repel_steps": s.repel_steps if s.decodes_coordinates else 0,
        "repel_distance": s.repel_distance,
        "log_heights": s.log_heights and s.decodes_coordinates,
        "state_weight": s.state_weight if meta.get("state_columns") else 0.0,
        "prior_physics_weight": (meta.get("latent_prior") or {}).get("physics_weight", 0.0),
        "epochs_run": meta.get("epochs_run"), "seconds_per_epoch": meta.get("seconds_per_epoch"),
        "val_loss": history.get("val_loss", [None])[-1],
        "particles": trained.representation.n_particles_, "dim": trained.representation.d,
        "box": trained.representation.L, "gammas": params.get("gammas"),
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
    # Models saved before the hard core, the log-heights, the state head and the prior's
    # physics loss existed have none.
    settings = TrainSettings(**{"repel_steps": 0, "log_heights": False, "state_weight": 0.0,
                                "prior_physics_weight": 0.0,
                                **meta.pop("settings")})
    rep = representation_from_dict(meta.pop("representation"))
    return TrainedModel(model, rep, settings, meta)


def export_model(trained: TrainedModel, directory) -> Path:
    """Write the model in the portable format that ships with ljvae: ``model.keras`` and its
    meta as ``meta.json`` + ``meta.npz`` (:mod:`ljvae_core.portable`), which any machine can
    load without trusting the writer (:func:`import_model`). Atomically, as
    :func:`save_model`."""
    from .models import exportable
    from .portable import write_tree

    def write(tmp: Path) -> None:
        exportable(trained.model).save(tmp / MODEL_FILE)
        write_tree(_meta_to_store(trained), tmp / PORTABLE_META)
        tmp.chmod(0o755)  # mkdtemp's owner-only folder would ship unreadable to others

    return _write_folder(directory, write)


def import_model(directory) -> TrainedModel:
    """A model written by :func:`export_model` (Keras safe mode; nothing is unpickled)."""
    import keras

    from . import models  # noqa: F401  (registers the custom classes)
    from .portable import read_tree

    directory = Path(directory)
    meta = read_tree(directory / PORTABLE_META)
    model = keras.models.load_model(directory / MODEL_FILE, safe_mode=True)
    return _trained_from_meta(model, meta)


def train_and_save(dataset_name, settings: TrainSettings, name=None, root=None, progress=None,
                   cancel=None, epoch_log=None, n_generate: int = 200) -> str:
    """Train on a stored dataset, evaluate on its held-out chains, store the model in
    ``cache/models/``; returns the model's name. What a background job of the app runs.

    ``progress(fraction, message)`` follows the epochs (then the evaluation); every epoch's
    losses are appended to ``epoch_log`` (a list) for live charts; setting ``cancel`` stops
    training early and keeps the model trained so far.
    """
    from .artifacts import load_dataset, models_dir, safe_name
    from .evaluation import evaluate

    dataset = load_dataset(dataset_name, root)
    report = progress or (lambda fraction, message="": None)

    def on_epoch(logs):
        if epoch_log is not None:
            epoch_log.append(logs)
        report(0.9 * logs["epoch"] / logs["epochs"],
               f"epoch {logs['epoch']}/{logs['epochs']}: loss {logs['loss']:.4g}, "
               f"validation {logs.get('val_loss', float('nan')):.4g}")

    trained = train(dataset, settings, on_epoch, cancel)
    trained.meta["dataset_name"] = Path(str(dataset_name)).stem
    base = safe_name(name or f"{Path(str(dataset_name)).stem}-{settings.representation}"
                             f"-z{settings.latent_dim}")
    folder = models_dir(root)
    final, k = base, 2
    while name is None and (folder / final).exists():
        final, k = f"{base}-{k}", k + 1
    try:
        report(0.91, "fitting the anomaly threshold and the generation prior")
        attach_after_training(trained, dataset, lambda f: report(
            0.91 + 0.02 * f, "refining the generation prior with the joint physics loss"))
        report(0.93, "evaluating on held-out chains")
        trained.meta["metrics"] = evaluate(trained, dataset, n_reconstruct=500,
                                           n_generate=n_generate, seed=settings.seed)
    except Exception as err:
        # Minutes of training are not thrown away for a failure after them.
        save_model(trained, folder / final)
        raise EvaluationError(final, err) from err
    report(0.98, "saving")
    save_model(trained, folder / final)
    return final


class EvaluationError(TrainingError):
    """Training finished and the model was saved (as ``model_name``), but what follows it
    (the anomaly threshold, the generation prior or the evaluation) failed."""

    def __init__(self, model_name: str, cause: BaseException):
        self.model_name = model_name
        super().__init__(f"the model was trained and saved as {model_name}, but evaluating it "
                         f"failed ({str(cause) or type(cause).__name__})")


def attach_latent_prior(trained: TrainedModel, dataset, components: int = 10,
                        max_samples: int = 5000, progress=None) -> None:
    """Fit the generation prior (a Gaussian mixture over the posterior means of at most
    ``max_samples`` training configurations, :class:`ljvae_core.priors.LatentPrior`), then,
    with a prior physics weight, refine it with the joint physics loss of its decoded
    samples. Kept in the meta: the prior generation uses, and the plain fit beside it
    (``latent_prior_plain``) when the two differ."""
    from .latent import encode
    from .priors import LatentPrior

    idx = np.asarray(trained.meta["train_indices"])
    rng = np.random.default_rng(trained.settings.seed)
    if len(idx) > max_samples:
        idx = np.sort(rng.choice(idx, max_samples, replace=False))
    latent = encode(trained, dataset.coords[idx], dataset.gamma[idx], dataset.temperature[idx])
    prior = LatentPrior.fit(latent, components, trained.settings.seed)
    trained.meta.pop("latent_prior_plain", None)
    penalty = _prior_penalty(trained, dataset, idx)
    conditional = trained.settings.conditional
    # A conditional model refines its pooled mixture, then one per state point.
    first, rest = _split_progress(progress) if conditional else (progress, None)
    if penalty is not None:
        trained.meta["latent_prior_plain"] = prior.to_dict()
        prior = prior.refine(penalty, latent, trained.settings.prior_physics_weight,
                             seed=trained.settings.seed, progress=first)
    trained.meta["latent_prior"] = prior.to_dict()
    if conditional:
        attach_conditional_prior(trained, dataset, components, max_samples, rest)


def _split_progress(progress):
    """Two reporters of fractions, for the first and the second half of ``progress``."""
    if progress is None:
        return None, None
    return (lambda f: progress(0.5 * f)), (lambda f: progress(0.5 + 0.5 * f))


def attach_conditional_prior(trained: TrainedModel, dataset, components: int = 10,
                             max_samples: int = 5000, progress=None) -> None:
    """Fit the per-state-point generation prior of a conditional model
    (:class:`ljvae_core.priors.ConditionalPrior`): a mixture over the posterior means of at
    most ``max_samples`` training configurations of each state point, refined (with a prior
    physics weight) by the joint physics loss of its samples decoded at that state point;
    kept in the meta."""
    from .latent import encode
    from .priors import ConditionalPrior, LatentPrior

    idx = np.asarray(trained.meta["train_indices"])
    rng = np.random.default_rng(trained.settings.seed)
    states = np.unique(dataset.condition[idx])
    conditions, priors = [], []
    for k, state in enumerate(states):
        mine = np.sort(rng.permutation(idx[dataset.condition[idx] == state])[:max_samples])
        gamma, temperature = dataset.gamma[mine], dataset.temperature[mine]
        latent = encode(trained, dataset.coords[mine], gamma, temperature)
        prior = LatentPrior.fit(latent, components, trained.settings.seed)
        penalty = _prior_penalty(trained, dataset, mine)
        if penalty is not None:
            report = None if progress is None else (
                lambda f, k=k: progress((k + f) / len(states)))
            prior = prior.refine(penalty, latent, trained.settings.prior_physics_weight,
                                 seed=trained.settings.seed, progress=report)
        conditions.append((gamma[0], temperature[0]))
        priors.append(prior)
    trained.meta["conditional_prior"] = ConditionalPrior(np.array(conditions), priors).to_dict()


def _prior_penalty(trained: TrainedModel, dataset, idx):
    """The joint physics loss of decoded latent points, for refining the generation prior
    (None without a prior physics weight, or for voxel grids). Conditional models decode
    each point under the (gamma, T) of a random training configuration."""
    settings = trained.settings
    physics = _physics_config(dataset, trained.representation, settings, idx,
                              settings.prior_physics_weight)
    if physics is None or settings.representation == "voxels":
        return None
    # Shapes with contacts at the hard core's distance can overflow the box by that much less
    # 0.8 sigma and still be put into it without a pair coming closer than 0.8 sigma.
    if settings.decodes_coordinates and settings.repel_steps > 0:
        physics["wall_tolerance"] = max(settings.repel_distance - MIN_VALID_DISTANCE, 0.0)
    penalty = trained.model.latent_penalty(physics)
    if not settings.conditional:
        return penalty
    import tensorflow as tf

    table = tf.constant(trained.condition_features(dataset.gamma[idx],
                                                   dataset.temperature[idx]), tf.float32)
    draws = tf.random.Generator.from_seed(settings.seed)

    def conditioned(z):
        rows = draws.uniform((tf.shape(z)[0],), 0, len(idx), dtype=tf.int32)
        return penalty(z, tf.gather(table, rows))
    return conditioned


def attach_after_training(trained: TrainedModel, dataset, progress=None) -> None:
    """What a trained model keeps besides its weights: the anomaly scorer (fitted on the
    held-out chains) and the generation prior (on the training chains); ``progress(fraction)``
    follows the prior's refinement."""
    attach_anomaly_scorer(trained, dataset)
    attach_latent_prior(trained, dataset, progress=progress)


def attach_anomaly_scorer(trained: TrainedModel, dataset, percentile: float = 99.0) -> None:
    """Fit the anomaly scorer (and its threshold) on the held-out chains; kept in the meta."""
    from .latent import fit_anomaly_scorer

    idx = np.asarray(trained.meta["validation_indices"])
    scorer = fit_anomaly_scorer(trained, dataset, idx, percentile, seed=trained.settings.seed)
    trained.meta["anomaly"] = scorer.to_dict()
