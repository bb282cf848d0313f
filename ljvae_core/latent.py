"""The latent space of a trained VAE: projections, gamma clustering, energy maps and anomaly
scores (imports TensorFlow through the model it is given).

- :func:`encode`: posterior means of configurations.
- :func:`project`: a 2D view (PCA when the latent has more than two dimensions).
- :func:`gamma_clustering`: silhouette score of the gamma labels, and a linear probe (ridge
  regression from latent mean to gamma) scored by R^2 on held-out chains.
- :func:`energy_map`: a grid over the 2D view decoded to configurations and their energies.
- :func:`negative_elbo` and :func:`physical_statistics`: what the anomaly scores of a
  configuration are made of (see :class:`AnomalyScorer`).
- :func:`score_files`: uploaded or given files read, checked against a model and scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score, silhouette_score

from .analysis import energies_per_particle
from .io import ConfigurationFormatError, plural


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
    coords = trained.decode(latent, gamma, temperature)
    energy = energies_per_particle(coords, box, gamma, periodic)
    return EnergyMap(xs, ys, energy.reshape(len(ys), len(xs)), coords)


# --------------------------------------------------------------------------- anomaly scores
# --------------------------------------------------------------------------- anomaly harness
ANOMALY_KINDS = ("uniform", "overlap", "gamma_out_of_range", "temperature", "perturbed")


def _push_pair_together(coords, rng, distance: float = 0.5):
    """Copies with one random particle moved to within `distance` of another."""
    out = coords.copy()
    m, n, d = out.shape
    for k in range(m):
        i, j = rng.choice(n, 2, replace=False)
        direction = rng.normal(size=d)
        direction /= np.linalg.norm(direction)
        out[k, i] = out[k, j] + rng.uniform(0.3, distance) * direction
    return out


def anomaly_sets(dataset, normal, n: int, seed: int = 0) -> dict:
    """Configurations that do not belong, built from `normal` ones (M, N, d) and fresh
    simulations of the same system: uniform random particles, one pair pushed within 0.5
    sigma, gamma well above the training range, another temperature, small perturbations."""
    from .sampling import SimulationParams, simulate

    rng = np.random.default_rng(seed)
    box, dim, n_particles = dataset.box, dataset.dim, dataset.n_particles
    base = normal[rng.choice(len(normal), n, replace=len(normal) < n)]
    gammas = np.unique(dataset.gamma)
    temps = np.unique(dataset.temperature)
    params = dict(n_particles=n_particles, dim=dim, box=box, n_chains=2, seed=seed + 1,
                  cutoff=dataset.system.cutoff, periodic=dataset.system.periodic)
    out_gamma = float(2.0 * gammas.max() if gammas.max() > 0 else 2.0)
    hot = float(2.0 * temps.max())
    far_gamma = simulate(SimulationParams(temperatures=(float(temps[0]),), gammas=(out_gamma,),
                                          n_samples=n, **params))
    other_t = simulate(SimulationParams(temperatures=(hot,), gammas=(float(gammas[0]),),
                                        n_samples=n, **params))
    return {
        "uniform": (rng.uniform(0, box, (n, n_particles, dim)), gammas[0], temps[0]),
        "overlap": (np.clip(_push_pair_together(base, rng), 0, box), gammas[0], temps[0]),
        "gamma_out_of_range": (far_gamma.coords, out_gamma, temps[0]),
        "temperature": (other_t.coords, gammas[0], hot),
        "perturbed": (np.clip(base + rng.normal(0, 0.1, base.shape), 0, box), gammas[0],
                      temps[0]),
    }


def _robust(values) -> tuple[float, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(med), float(max(q3 - q1, 1e-12))


def physical_statistics(coords, box: float, periodic: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The two sufficient statistics of the canonical ensemble U = U_LJ + 4 gamma sum z: the
    pair (LJ) energy per particle and the mean height (along the last, up, axis)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    return energies_per_particle(coords, box, 0.0, periodic), coords[..., -1].mean(axis=-1)


@dataclass
class AnomalyScorer:
    """Combines two scores of a configuration, each standardized robustly (median,
    interquartile range) on held-out normal data:

    - the negative ELBO (one-sided: worse reconstructions are suspicious);
    - the *energy* score: how far the configuration's pair energy and mean height -- the two
      terms of its energy U = U_LJ + 4 gamma sum z -- lie from those of the training ensemble
      it is closest to (two-sided robust z of each, the larger one, minimized over the
      training (gamma, T) conditions). A configuration simulated at a gamma or T outside the
      training range, or with overlapping particles, is atypical of every one of them.

    The score is the larger of the two; `threshold` is a percentile of normal data's scores.
    """

    elbo_centre: float
    elbo_scale: float
    conditions: list  # per training (gamma, T): robust centre and scale of pair and height
    threshold: float
    percentile: float
    normal_scores: np.ndarray

    @classmethod
    def fit(cls, elbo, pair, height, gamma, temperature, percentile: float = 99.0
            ) -> AnomalyScorer:
        conditions = []
        for g, t in sorted(set(zip(np.asarray(gamma).tolist(), np.asarray(temperature).tolist(),
                                   strict=True))):
            mask = (np.asarray(gamma) == g) & (np.asarray(temperature) == t)
            (pc, ps), (hc, hs) = _robust(np.asarray(pair)[mask]), _robust(
                np.asarray(height)[mask])
            conditions.append({"gamma": g, "temperature": t, "pair_centre": pc,
                               "pair_scale": ps, "height_centre": hc, "height_scale": hs})
        ec, es = _robust(elbo)
        scorer = cls(ec, es, conditions, 0.0, percentile, np.zeros(0))
        combined = scorer.score(elbo, pair, height)
        scorer.threshold = float(np.percentile(combined, percentile))
        scorer.normal_scores = np.sort(combined)
        return scorer

    def elbo_z(self, elbo) -> np.ndarray:
        return (np.asarray(elbo, dtype=np.float64) - self.elbo_centre) / self.elbo_scale

    def energy_z(self, pair, height) -> np.ndarray:
        pair, height = np.asarray(pair, np.float64), np.asarray(height, np.float64)
        per_condition = [np.maximum(np.abs(pair - c["pair_centre"]) / c["pair_scale"],
                                    np.abs(height - c["height_centre"]) / c["height_scale"])
                         for c in self.conditions]
        return np.min(per_condition, axis=0)

    def score(self, elbo, pair, height) -> np.ndarray:
        return np.maximum(self.elbo_z(elbo), self.energy_z(pair, height))

    def percentile_among_normal(self, scores) -> np.ndarray:
        """Percentage of held-out normal configurations scoring below each score."""
        return 100.0 * np.searchsorted(self.normal_scores, scores) / len(self.normal_scores)

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> AnomalyScorer:
        return cls(**{**data, "normal_scores": np.asarray(data["normal_scores"])})


def fit_anomaly_scorer(trained, dataset, normal_idx, percentile: float = 99.0,
                       seed: int = 0) -> AnomalyScorer:
    coords = dataset.coords[normal_idx]
    gamma, temperature = dataset.gamma[normal_idx], dataset.temperature[normal_idx]
    elbo = trained.negative_elbo(coords, gamma, temperature, seed=seed)
    pair, height = physical_statistics(coords, dataset.box, dataset.system.periodic)
    return AnomalyScorer.fit(elbo, pair, height, gamma, temperature, percentile)


def anomaly_report(trained, dataset, normal_idx, n: int = 300, seed: int = 0) -> dict:
    """ROC AUC of the ELBO, the energy and their combination, for each anomaly set against
    held-out normal configurations (half fit the scorer, half are the negatives)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    idx = rng.permutation(normal_idx)
    fit_idx, test_idx = idx[: len(idx) // 2], idx[len(idx) // 2:][:n]
    scorer = fit_anomaly_scorer(trained, dataset, fit_idx, seed=seed)
    periodic = dataset.system.periodic

    def scores(coords, gamma, temperature):
        elbo = trained.negative_elbo(coords, gamma, temperature, seed=seed)
        pair, height = physical_statistics(coords, dataset.box, periodic)
        return {"elbo": elbo, "energy": scorer.energy_z(pair, height),
                "combined": scorer.score(elbo, pair, height)}

    normal = scores(dataset.coords[test_idx], dataset.gamma[test_idx],
                    dataset.temperature[test_idx])
    sets = anomaly_sets(dataset, dataset.coords[fit_idx], n, seed)
    detail = {}
    for kind, (coords, gamma, temperature) in sets.items():
        m = len(coords)
        bad = scores(coords, np.full(m, gamma), np.full(m, temperature))
        labels = np.r_[np.zeros(len(test_idx)), np.ones(m)]
        detail[kind] = {key: float(roc_auc_score(labels, np.r_[normal[key], bad[key]]))
                        for key in ("elbo", "energy", "combined")}
    return {"auc": {k: v["combined"] for k, v in detail.items()}, "auc_detail": detail,
            "threshold": scorer.threshold, "percentile": scorer.percentile}


class UnsuitableConfigurations(ValueError):
    """Configurations that a model cannot score, or a model that cannot score (one clear
    clause, to follow the name of the file they came from)."""


def validate_for_model(trained, coords) -> np.ndarray:
    """Configurations checked against a model: finite, right particle count and dimension,
    inside the box. Raises :class:`UnsuitableConfigurations` with one clear clause."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    rep = trained.representation
    if coords.ndim != 3 or coords.shape[0] == 0:
        raise UnsuitableConfigurations("no configuration found")
    if coords.shape[2] != rep.d:
        raise UnsuitableConfigurations(f"the configurations are {coords.shape[2]}D, the model "
                                       f"is {rep.d}D")
    if coords.shape[1] != rep.n_particles_:
        raise UnsuitableConfigurations(f"the configurations hold "
                                       f"{plural(coords.shape[1], 'particle')}, the model "
                                       f"expects {rep.n_particles_}")
    if not np.isfinite(coords).all():
        raise UnsuitableConfigurations("the configurations hold NaN or infinite coordinates")
    periodic = trained.system.periodic
    for axis in (a for a, letter in enumerate("xyz"[:rep.d]) if letter in periodic):
        # The project's convention: coordinates on periodic axes lie in [0, L).
        coords[..., axis] = np.mod(coords[..., axis], rep.L)
    if coords.min() < 0 or coords.max() > rep.L:
        raise UnsuitableConfigurations(f"particles lie outside the model's box "
                                       f"[0, {rep.L:g}]")
    return coords


def score_configurations(trained, coords, gamma=None, temperature=None) -> list[dict]:
    """Per configuration: anomaly score, the model's threshold, verdict, percentile among
    held-out normal data, and the latent mean (JSON-ready)."""
    if "anomaly" not in trained.meta:
        raise UnsuitableConfigurations("this model has no anomaly threshold; train it again")
    coords = validate_for_model(trained, coords)
    params = trained.meta.get("dataset_params", {})
    gamma = min(params.get("gammas", [0.0])) if gamma is None else gamma
    temperature = min(params.get("temperatures", [1.0])) if temperature is None else temperature
    m = len(coords)
    g, t = np.full(m, float(gamma)), np.full(m, float(temperature))
    scorer = AnomalyScorer.from_dict(trained.meta["anomaly"])
    elbo = trained.negative_elbo(coords, g, t)
    pair, height = physical_statistics(coords, trained.system.box, trained.system.periodic)
    scores = scorer.score(elbo, pair, height)
    latent = trained.encode(coords, g, t)
    percentile = scorer.percentile_among_normal(scores)
    rows = [{"score": float(s), "threshold": scorer.threshold,
             "anomalous": bool(s > scorer.threshold), "percentile": float(p),
             "negative_elbo": float(e), "energy_per_particle": float(u),
             "mean_height": float(h), "latent": z.tolist()}
            for s, p, e, u, h, z in zip(scores, percentile, elbo, pair, height, latent,
                                         strict=True)]
    states = read_state(trained, latent)
    if states:
        for i, row in enumerate(rows):
            row["state"] = {name: float(values[i]) for name, values in states.items()}
    return rows


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


@dataclass
class ScoredFile:
    """The configurations of one file and their scores, or why the file could not be scored."""

    name: str
    coords: np.ndarray | None = None
    results: list[dict] = field(default_factory=list)
    error: str | None = None


def score_files(trained, files, gamma=None, temperature=None, max_bytes: int | None = None
                ) -> list[ScoredFile]:
    """Read, check and score files given as (name, source) pairs, source being a path or the
    file's bytes (an upload, refused over ``max_bytes``). A bad file gets one sentence that
    names it once and says what is wrong, and never stops the others."""
    scored = []
    for name, source in files:
        try:
            coords = _read_scored_file(trained, name, source, max_bytes)
            results = score_configurations(trained, coords, gamma, temperature)
        except ConfigurationFormatError as err:
            scored.append(ScoredFile(name, error=str(err)))
        except UnsuitableConfigurations as err:
            scored.append(ScoredFile(name, error=f"{name}: {err}."))
        else:
            scored.append(ScoredFile(name, coords, results))
    return scored


def _read_scored_file(trained, name, source, max_bytes) -> np.ndarray:
    from .io import MAX_UPLOAD_BYTES, read_configurations, read_upload

    if isinstance(source, (bytes, bytearray)):
        coords = read_upload(name, bytes(source), max_bytes or MAX_UPLOAD_BYTES).coords
    else:
        coords = read_configurations(source, name).coords
    return validate_for_model(trained, coords)
