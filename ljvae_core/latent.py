"""The latent space of a trained VAE: projections, gamma clustering, energy maps and the
state head's reading (imports TensorFlow through the model it is given).

- :func:`project`: a 2D view (PCA when the latent has more than two dimensions).
- :func:`gamma_clustering`: silhouette score of the gamma labels, and a linear probe (ridge
  regression from latent mean to gamma) scored by R^2 on held-out chains.
- :func:`energy_map`: a grid over the 2D view decoded to configurations and their energies.
- :func:`read_state`: the state point the state head reads off latent means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score, silhouette_score

from .analysis import energies_per_particle


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


def gamma_clustering(latent, gamma, chain, seed: int = 0, max_silhouette: int = 3000,
                     test=None) -> dict:
    """How well the latent means separate gamma: silhouette of the gamma labels, and the R^2
    of a ridge probe latent -> gamma fitted on some chains and scored on the others: those of
    the boolean mask ``test`` when given (see :func:`unseen_chains`), else a quarter of each
    gamma's chains."""
    latent = np.asarray(latent, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    chain = np.asarray(chain)
    rng = np.random.default_rng(seed)
    result = {"gamma_silhouette": None, "gamma_r2": None}
    labels = np.unique(gamma)
    if len(labels) >= 2:
        pick = rng.choice(len(latent), min(len(latent), max_silhouette), replace=False)
        result["gamma_silhouette"] = float(silhouette_score(latent[pick], gamma[pick]))
        test = _held_out_chains(gamma, chain, rng) if test is None else np.asarray(test, bool)
        if test.any() and (~test).any() and len(np.unique(gamma[test])) >= 2:
            probe = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(latent[~test], gamma[~test])
            result["gamma_r2"] = float(r2_score(gamma[test], probe.predict(latent[test])))
    return result


def _held_out_chains(gamma, chain, rng) -> np.ndarray:
    # Held-out chains from every gamma, so that R^2 measures the spread across gammas.
    held = []
    for g in np.unique(gamma):
        chains = np.unique(chain[gamma == g])
        if len(chains) >= 2:
            held.extend(rng.choice(chains, max(1, len(chains) // 4), replace=False))
    return np.isin(chain, held)


def unseen_chains(trained, dataset) -> np.ndarray | None:
    """Mask of the samples of ``dataset`` in the chains the model was validated on, when the
    dataset is the one it was trained on (a state head saw the gamma of every training
    chain, so a probe must be scored on the others); None for other datasets."""
    if not trained.trained_on(dataset):
        return None
    mask = np.zeros(len(dataset), dtype=bool)
    mask[np.asarray(trained.meta["validation_indices"])] = True
    return mask


@dataclass
class EnergyMap:
    """Energy per particle of configurations decoded on a regular grid of the 2D view."""

    xs: np.ndarray
    ys: np.ndarray
    energy: np.ndarray  # (len(ys), len(xs))
    configurations: np.ndarray  # (len(ys) * len(xs), N, d), row-major over (y, x)


def energy_map(trained, projection: Projection, points, gamma: float = 0.0,
               temperature: float = 1.0, resolution: int = 25,
               margin: float = 0.1) -> EnergyMap:
    """Decode a resolution x resolution grid spanning the projected points (plus a margin)
    and evaluate the energy per particle of each decoded configuration in the model's
    system."""
    points = np.asarray(points, dtype=np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    latent = projection.inverse(np.column_stack([gx.ravel(), gy.ravel()]))
    coords = trained.decode(latent, gamma, temperature)
    energy = energies_per_particle(coords, trained.system, gamma)
    return EnergyMap(xs, ys, energy.reshape(len(ys), len(xs)), coords)


STATE_NAMES = ("gamma", "temperature")


def read_state(trained, latent) -> dict:
    """The state point a model's state head reads off latent means: {"gamma": (M,), ...}
    for the conditions that varied in its training set; {} for models without a head."""
    head = getattr(trained.model, "state_head", None)
    columns = trained.meta.get("state_columns") or []
    if head is None or not columns:
        return {}
    scaled = np.asarray(head(np.asarray(latent, dtype="float32")), dtype=np.float64)
    scale = trained.meta["condition_scale"]
    return {STATE_NAMES[c]: scaled[:, j] * scale["std"][c] + scale["mean"][c]
            for j, c in enumerate(columns)}
