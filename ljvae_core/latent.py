"""The latent space of a trained VAE: projections, gamma clustering, energy maps and anomaly
scores (imports TensorFlow through the model it is given).

- :func:`encode`: posterior means of configurations.
- :func:`project`: a 2D view (PCA when the latent has more than two dimensions).
- :func:`gamma_clustering`: silhouette score of the gamma labels, and a linear probe (ridge
  regression from latent mean to gamma) scored by R^2 on held-out chains.
- :func:`energy_map`: a grid over the 2D view decoded to configurations and their energies.
- :func:`negative_elbo` and :func:`energy_score`: the two anomaly scores of a configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score, silhouette_score

from .analysis import energies_per_particle


def encode(trained, coords, gamma=None, temperature=None) -> np.ndarray:
    """Posterior means (M, latent) of configurations (M, N, d)."""
    x = trained.model_inputs(coords, gamma, temperature)
    inputs = list(x) if isinstance(x, tuple) else x
    mean, _ = trained.model.encoder.predict(inputs, verbose=0, batch_size=256)
    return np.asarray(mean, dtype=np.float64)


@dataclass
class Projection:
    """A 2D view of latent vectors: PCA when the latent is larger than 2, else identity."""

    pca: PCA | None

    @classmethod
    def fit(cls, latent) -> Projection:
        latent = np.asarray(latent)
        if latent.shape[1] <= 2:
            return cls(None)
        return cls(PCA(n_components=2, random_state=0).fit(latent))

    def transform(self, latent) -> np.ndarray:
        latent = np.asarray(latent, dtype=np.float64)
        if self.pca is None:
            return latent if latent.shape[1] == 2 else np.column_stack([latent[:, 0],
                                                                         np.zeros(len(latent))])
        return self.pca.transform(latent)

    def inverse(self, points) -> np.ndarray:
        """Latent vectors for points of the 2D view (the mean along the other directions)."""
        points = np.asarray(points, dtype=np.float64)
        if self.pca is None:
            return points[:, : 2]
        return self.pca.inverse_transform(points)

    @property
    def explained(self) -> float | None:
        return None if self.pca is None else float(self.pca.explained_variance_ratio_.sum())


def project(latent) -> tuple[np.ndarray, Projection]:
    projection = Projection.fit(latent)
    return projection.transform(latent), projection


def gamma_clustering(latent, gamma, chain, seed: int = 0, max_silhouette: int = 3000) -> dict:
    """How well the latent means separate gamma: silhouette of the gamma labels, and the R^2
    of a ridge probe latent -> gamma fitted on some chains and scored on the others."""
    latent = np.asarray(latent, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    chain = np.asarray(chain)
    rng = np.random.default_rng(seed)
    result = {"gamma_silhouette": None, "gamma_r2": None}
    labels = np.unique(gamma)
    if len(labels) >= 2:
        pick = rng.choice(len(latent), min(len(latent), max_silhouette), replace=False)
        result["gamma_silhouette"] = float(silhouette_score(latent[pick], gamma[pick]))
        chains = np.unique(chain)
        held = rng.choice(chains, max(1, len(chains) // 4), replace=False)
        test = np.isin(chain, held)
        if test.any() and (~test).any():
            probe = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(latent[~test], gamma[~test])
            result["gamma_r2"] = float(r2_score(gamma[test], probe.predict(latent[test])))
    return result


def decode_latent(trained, latent, gamma=None, temperature=None) -> np.ndarray:
    """Configurations (M, N, d) decoded from latent vectors (at gamma, T if conditional)."""
    z = np.asarray(latent, dtype="float32")
    if trained.settings.conditional:
        n = len(z)
        c = trained.condition_features(np.broadcast_to(gamma, n), np.broadcast_to(temperature, n))
        out = trained.model.decoder.predict([z, c], verbose=0, batch_size=256)
    else:
        out = trained.model.decoder.predict(z, verbose=0, batch_size=256)
    return trained.representation.inverse_transform(np.asarray(out))


@dataclass
class EnergyMap:
    """Energy per particle of configurations decoded on a regular grid of the 2D view."""

    xs: np.ndarray
    ys: np.ndarray
    energy: np.ndarray  # (len(ys), len(xs))
    configurations: np.ndarray  # (len(ys) * len(xs), N, d), row-major over (y, x)


def energy_map(trained, projection: Projection, points, box: float, gamma: float = 0.0,
               temperature: float = 1.0, periodic: str = "", resolution: int = 25,
               margin: float = 0.1) -> EnergyMap:
    """Decode a resolution x resolution grid spanning the projected points (plus a margin)
    and evaluate the LJ + gravity energy per particle of each decoded configuration."""
    points = np.asarray(points, dtype=np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    latent = projection.inverse(np.column_stack([gx.ravel(), gy.ravel()]))
    coords = decode_latent(trained, latent, gamma, temperature)
    energy = energies_per_particle(coords, box, gamma, periodic)
    return EnergyMap(xs, ys, energy.reshape(len(ys), len(xs)), coords)


# --------------------------------------------------------------------------- anomaly scores
def negative_elbo(trained, coords, gamma=None, temperature=None, draws: int = 8,
                  seed: int = 0) -> np.ndarray:
    """Negative ELBO per configuration: Gaussian reconstruction NLL with the model's
    calibrated decoder variance, averaged over `draws` latent samples, plus the KL term."""
    x = trained.model_inputs(coords, gamma, temperature)
    x_in, c = (x if isinstance(x, tuple) else (x, None))
    mean, log_var = trained.model.encoder.predict(list(x) if c is not None else x_in,
                                                  verbose=0, batch_size=256)
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    dec_log_var = float(trained.meta.get("decoder_log_var", 0.0))
    dims = float(np.prod(x_in.shape[1:]))
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, x_in.ndim))
    nll = np.zeros(len(mean))
    for _ in range(draws):
        z = (mean + np.exp(0.5 * log_var) * rng.normal(size=mean.shape)).astype("float32")
        out = trained.model.decoder.predict([z, c] if c is not None else z, verbose=0,
                                            batch_size=256)
        sq = np.sum((np.asarray(out, np.float64) - x_in) ** 2, axis=axes)
        nll += 0.5 * sq / np.exp(dec_log_var) + 0.5 * dims * (dec_log_var + np.log(2 * np.pi))
    kl = -0.5 * np.sum(1.0 + log_var - mean**2 - np.exp(log_var), axis=1)
    return nll / draws + kl


def energy_score(coords, box: float, gamma=0.0, periodic: str = "") -> np.ndarray:
    """Energy per particle (LJ + gravity), the physical anomaly score."""
    return energies_per_particle(coords, box, gamma, periodic)
