"""Fitting a VAE to a dataset: :func:`train` (imports TensorFlow).

``train(dataset, settings, progress=..., stop=...)`` splits the samples by *chain* (successive
samples of one chain are correlated, so a random split would leak), fits the representation on
the training part, builds the model of :mod:`ljvae_core.models`, trains it with early stopping
on the validation loss, and returns a :class:`ljvae_core.trained.TrainedModel`. The same
``progress`` callback (a dict per epoch) and ``stop`` event drive the app's live chart and the
command line's progress line.
"""

from __future__ import annotations

import contextlib
import math
import time

import keras
import numpy as np

from .features import make_representation
from .geometry import pairwise_distances
from .models import CoordinateDecoding, build_vae
from .ordering import OrderMatcher
from .penalty import PhysicsPenalty
from .settings import TrainingError, TrainSettings
from .trained import TrainedModel, dataset_fingerprint
from .vae import BetaWarmup

# Batches per compiled call: amortizes Keras' per-step Python overhead, which dominates small
# models on a CPU (an epoch of the dense reference VAE takes a third of the time with it).
STEPS_PER_EXECUTION = 16
# XLA takes ~8 s to compile a coordinates-decoder VAE on a CPU and then runs its steps ~35 %
# faster (measured on 2 cores): worth it from this many training samples x epochs on. Keras
# leaves XLA off on CPU-only machines by default.
XLA_MIN_SAMPLE_EPOCHS = 200_000
# Written into every model's meta: the layout of what training records.
META_VERSION = 1


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


def _jit_compile(settings, n_train: int, strategy) -> bool | str:
    """Keras' ``jit_compile`` argument: True (XLA) for long runs of the coordinates decoder,
    where it was measured to pay, else "auto" (Keras decides)."""
    long_run = settings.planned_epochs * n_train >= XLA_MIN_SAMPLE_EPOCHS
    # Not for convolutions of voxel grids: XLA's CPU convolutions are slow to compile.
    through = settings.decodes_coordinates and not settings.convolves_grids
    return True if through and long_run and strategy is None else "auto"


def _coordinate_decoding(rep, settings) -> CoordinateDecoding | None:
    if not settings.decodes_coordinates:
        return None
    if settings.representation == "distances":
        return CoordinateDecoding(rep.d, rep.scale)
    return CoordinateDecoding(rep.d, box=rep.L, n_particles=rep.n_particles_)


def _tf_dataset(x, batch_size, shuffle, seed):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(x)
    if shuffle:
        data = data.shuffle(len(tf.nest.flatten(x)[0]), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(2)


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
    rep = _representation(dataset, settings)
    rep.fit(dataset.coords[train_idx])
    conditions = np.stack([dataset.gamma, dataset.temperature], axis=-1)
    std = conditions[train_idx].std(axis=0)
    scale = {"mean": conditions[train_idx].mean(axis=0), "std": np.where(std > 0, std, 1.0)}
    trained = TrainedModel(None, rep, settings, {"condition_scale": scale})
    mds = settings.representation == "distances" and settings.distance_encoder == "mds"
    if mds:
        trained.meta["frame"] = _fitted_frame(rep, dataset.coords[train_idx], settings.seed)
    if settings.representation == "voxels" and settings.decodes_coordinates:
        trained.meta["output_representation"] = _template_targets(rep, dataset.coords[train_idx])
    states = _state_targets(trained, dataset, std > 0)
    trained.meta["state_columns"] = [] if states is None else np.flatnonzero(std > 0).tolist()

    def inputs(idx):
        data = trained.model_data(dataset.coords[idx], dataset.gamma[idx],
                                  dataset.temperature[idx])
        if states is not None:
            data["state"] = states[idx]
        if data["target"] is data["x"]:
            del data["target"]  # the VAE's default target: not held twice in the pipeline
        return data

    x_train, x_val = inputs(train_idx), inputs(val_idx)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _compiled_vae(dataset, rep, settings, train_idx, states, strategy,
                              x_train["x"].shape[1:])
    timer, early = EpochTimer(), _EarlyStopping(settings.patience)
    callbacks = [timer, early, *_schedules(settings),
                 _Progress(settings.planned_epochs, progress, stop)]
    matcher = None
    if settings.match_every > 0 and settings.applies("match_every"):
        matcher = OrderMatcher(trained.output_representation,
                               {"train": x_train, "validation": x_val},
                               {"train": dataset.coords[train_idx],
                                "validation": dataset.coords[val_idx]},
                               coordinates=model.coordinate_weight > 0)
        if model.coordinate_weight > 0:  # coordinate targets from the first epoch on
            matcher.match(model)
    history = _fit(model, x_train, x_val, settings, callbacks, matcher)
    early.restore_best()
    trained.model = model
    if matcher is None:  # the inputs as model_data makes them (a matcher re-orders targets)
        trained.keep_inputs(dataset, [(train_idx, x_train), (val_idx, x_val)])
    trained.meta.update(_training_record(model, dataset, history, timer, settings.planned_epochs,
                                         train_idx, val_idx))
    return trained


def _training_record(model, dataset, history, timer, planned_epochs, train_idx,
                     val_idx) -> dict:
    """What a trained model's meta keeps of its training."""
    return {
        "version": META_VERSION,
        "history": history,
        "seconds_per_epoch": timer.median(),
        "epochs_run": len(history.get("loss", [])), "epochs_planned": planned_epochs,
        "train_indices": train_idx, "validation_indices": val_idx,
        "dataset_fingerprint": dataset_fingerprint(dataset),
        "dataset_params": dict(dataset.params),
        "decoder_log_var": float(model.decoder_log_var.numpy()),
        "height_log_var": (float(model.height_log_var.numpy()) if model.height_channels
                           else None),
        "metrics": {},
    }


def _compiled_vae(dataset, rep, settings, train_idx, states, strategy, input_shape):
    """The VAE the settings describe for this dataset's representation, compiled. A free
    cluster's decoded particles have no floor (no log-heights, no clipped heights), and its
    contact distance is in its own sigma."""
    system = dataset.system
    model = build_vae(settings.representation, input_shape, settings.latent_dim,
                      beta=settings.beta, conditional=settings.conditional,
                      physics=PhysicsPenalty.for_dataset(dataset, rep, settings, train_idx,
                                                         settings.physics_weight),
                      seed=settings.seed,
                      decode_coordinates=_coordinate_decoding(rep, settings),
                      height_scale=rep.height_scale if _with_heights(rep) else None,
                      distance_encoder=settings.distance_encoder,
                      coordinate_weight=settings.coordinate_weight,
                      repel={"distance": settings.repel_distance * system.sigma,
                             "steps": settings.repel_steps, "height": system.box,
                             "trigger": settings.repel_trigger * system.sigma},
                      log_heights=settings.log_heights and not system.free,
                      n_states=0 if states is None else states.shape[1],
                      state_weight=settings.state_weight)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  steps_per_execution=STEPS_PER_EXECUTION,
                  jit_compile=_jit_compile(settings, len(train_idx), strategy))
    return model


def _schedules(settings) -> list:
    """The learning-rate halving and the KL warm-up the settings ask for (Keras callbacks)."""
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

    if not (_with_heights(rep) or getattr(rep, "free", False)):
        raise TrainingError("the mds encoder needs the height channels (heights=True)")
    return ShapeFrame(rep).fit(rep.transform(coords), seed=seed).to_dict()


def _template_targets(rep, coords) -> dict:
    """A voxel grid decoded through coordinates is trained against the configurations in
    the template order of sorted coordinates (fitted on ``coords``): the same particle
    order from one configuration to the next, which the decoder can learn."""
    from .features import SortedCoordinates, representation_to_dict

    return representation_to_dict(SortedCoordinates(rep.L, rep.d, "template").fit(coords))


def _with_heights(rep) -> bool:
    return bool(getattr(rep, "with_heights", False))


def _representation(dataset, settings):
    """The representation of the settings for this dataset, fitted on nothing yet. A free
    cluster has no box: the distances' length scale is the largest diameter among its
    configurations, rounded up, and its matrices have no height channels."""
    system = dataset.system
    params = dict(settings.representation_params)
    if not system.free:
        return make_representation(settings.representation, L=dataset.box, d=dataset.dim,
                                   **params)
    if settings.representation != "distances":
        raise TrainingError("free clusters (no box) train on the distances representation, "
                            "which sees neither where a cluster is nor how it is turned")
    # In chunks: all the matrices at once would hold M N^2 distances.
    diameter = max(float(pairwise_distances(chunk).max())
                   for chunk in np.array_split(dataset.coords, max(1, len(dataset) // 2000)))
    return make_representation("distances", L=math.ceil(diameter), d=dataset.dim,
                               free=True, **params)


def _fit(model, x_train, x_val, settings, callbacks, matcher=None) -> dict:
    """``model.fit`` over the epochs; with a matcher, in stretches of ``match_every`` epochs
    between which the targets' particle orders are matched to the decoder's. The history as
    plain lists, with the fraction of re-ordered particles after each stretch."""
    history: dict = {}
    done, epochs = 0, settings.planned_epochs
    stretch = settings.match_every if matcher is not None else epochs
    while done < epochs:
        end = min(done + stretch, epochs)
        train_data = matcher.data("train") if matcher else x_train
        val_data = matcher.data("validation") if matcher else x_val
        fitted = model.fit(
            _tf_dataset(train_data, settings.batch_size, True, settings.seed + done),
            validation_data=_tf_dataset(val_data, settings.batch_size, False, settings.seed),
            initial_epoch=done, epochs=end, callbacks=callbacks, verbose=0, shuffle=False)
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        done += len(fitted.history.get("loss", []))
        if model.stop_training or done < end or done >= epochs:
            break
        history.setdefault("reordered", []).append(matcher.match(model))
    return history


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on the validation loss that lasts across several ``fit`` calls (Keras'
    own starts afresh at each); :meth:`restore_best` puts the best weights back."""

    def __init__(self, patience: int):
        super().__init__(monitor="val_loss", patience=patience, restore_best_weights=True)
        self.started = False

    def on_train_begin(self, logs=None):
        if not self.started:
            super().on_train_begin(logs)
            self.started = True

    def on_train_end(self, logs=None):
        pass

    def restore_best(self):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def median(self):
        return float(np.median(self.seconds)) if self.seconds else float("nan")


class _Progress(keras.callbacks.Callback):
    """Relays epoch logs to a plain callable, and a stop event to Keras."""

    def __init__(self, epochs, progress, stop):
        super().__init__()
        self.epochs, self.progress, self.stop = epochs, progress, stop

    def on_train_batch_end(self, batch, logs=None):
        if self.stop is not None and self.stop.is_set():
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.progress is not None:
            self.progress({"epoch": epoch + 1, "epochs": self.epochs,
                           **{k: float(v) for k, v in (logs or {}).items()}})
        if self.stop is not None and self.stop.is_set():
            self.model.stop_training = True
