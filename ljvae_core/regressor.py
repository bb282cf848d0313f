"""The distances -> coordinates regressor: a network from a normalized distance matrix to
coordinates, trained on the distance stress, compared with classical MDS on what a distances
VAE decodes (``evaluate --regressor-epochs``). Imports TensorFlow."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .physics_tf import pairwise_distances_tf
from .vae import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class DistanceStress(keras.losses.Loss):
    """Mean squared difference between the target distances (B, N, N) and those of the
    predicted coordinates (B, N, d): blind to rigid motions, as the target is."""

    def call(self, y_true, y_pred):
        diff = pairwise_distances_tf(y_pred) - y_true
        return ops.mean(ops.square(diff), axis=(1, 2))


def build_distance_regressor(n_particles: int, dim: int, hidden: int = 512, seed=None):
    """A network from a normalized distance matrix (N, N, 1) to coordinates (N, d) in
    sigma, trained on the distance stress."""
    keras.utils.set_random_seed(0 if seed is None else int(seed))
    x = keras.Input(shape=(n_particles, n_particles, 1), name="distances")
    h = layers.Flatten(name="flatten")(x)
    h = layers.Dense(hidden, activation="relu", name="dense_0")(h)
    h = layers.Dense(hidden, activation="relu", name="dense_1")(h)
    out = layers.Reshape((n_particles, dim), name="coords")(
        layers.Dense(n_particles * dim, name="dense_2")(h))
    return keras.Model(x, out, name="distance_regressor")


def train_distance_regressor(dataset, train_idx, epochs: int = 30, batch_size: int = 64,
                             seed: int = 0):
    """Fit the regressor on the exact distance matrices of a dataset's configurations
    ``train_idx``; returns (model, fitted DistanceMatrix representation)."""
    from .features import DistanceMatrix

    rep = DistanceMatrix(L=dataset.box, d=dataset.dim, heights=False)
    rep.fit(dataset.coords[train_idx])
    x = rep.transform(dataset.coords[train_idx]).astype("float32")
    target = rep.distances(x).astype("float32")
    model = build_distance_regressor(dataset.n_particles, dataset.dim, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=DistanceStress())
    model.fit(x, target, epochs=epochs, batch_size=batch_size, verbose=0)
    return model, rep


def regressor_coordinates(model, representation, X) -> np.ndarray:
    """Coordinates (M, N, d) from model outputs X through the regressor, placed in the box."""
    from .features import place_in_box

    distances = representation.distances(X)
    normalized = (distances / representation.scale)[..., None].astype("float32")
    coords = np.asarray(model.predict(normalized, verbose=0, batch_size=256), dtype=np.float64)
    return place_in_box(coords - coords.mean(axis=1, keepdims=True), representation.L)
