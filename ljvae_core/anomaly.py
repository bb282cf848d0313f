"""Anomaly scores of configurations under a trained model: :class:`AnomalyScorer` (the negative
ELBO and the two sufficient statistics of the energy, each standardized on held-out normal
data), the anomaly sets it is judged on, and their ROC report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import energies_per_particle, heights

# The anomaly sets of anomaly_sets, in the order reports list them.
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
    sigma, gamma well above the training range, another temperature, small perturbations.
    A free cluster gets the sets that need no simulation, its uniform particles spread over
    the ball its normal configurations fill."""
    rng = np.random.default_rng(seed)
    base = normal[rng.choice(len(normal), n, replace=len(normal) < n)]
    if dataset.system.free:
        return _free_cluster_sets(dataset, normal, base, n, rng)
    return _box_sets(dataset, base, n, rng, seed)


def _free_cluster_sets(dataset, normal, base, n, rng) -> dict:
    gamma, temperature = dataset.gamma[0], dataset.temperature[0]
    radius = float(heights(normal, dataset.system).max())
    direction = rng.normal(size=(n, dataset.n_particles, dataset.dim))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    radii = radius * rng.uniform(size=(n, dataset.n_particles, 1)) ** (1.0 / dataset.dim)
    return {
        "uniform": (direction * radii, gamma, temperature),
        "overlap": (_push_pair_together(base, rng), gamma, temperature),
        "perturbed": (base + rng.normal(0, 0.1, base.shape), gamma, temperature),
    }


def _box_sets(dataset, base, n, rng, seed) -> dict:
    from .sampling import SimulationParams, simulate

    box, dim, n_particles = dataset.box, dataset.dim, dataset.n_particles
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


def physical_statistics(coords, system) -> tuple[np.ndarray, np.ndarray]:
    """The two sufficient statistics of the canonical ensemble U = U_LJ + 4 gamma sum z: the
    pair (LJ) energy per particle and the mean height (along the last, up, axis)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    return energies_per_particle(coords, system, 0.0), heights(coords, system).mean(axis=-1)


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
    elbo = trained.elbo_of(trained.rows_data(dataset, normal_idx), seed=seed)
    pair, height = physical_statistics(coords, dataset.system)
    return AnomalyScorer.fit(elbo, pair, height, gamma, temperature, percentile)


def anomaly_report(trained, dataset, normal_idx, n: int = 300, seed: int = 0) -> dict:
    """ROC AUC of the ELBO, the energy and their combination, for each anomaly set against
    held-out normal configurations (half fit the scorer, half are the negatives)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    idx = rng.permutation(normal_idx)
    fit_idx, test_idx = idx[: len(idx) // 2], idx[len(idx) // 2:][:n]
    scorer = fit_anomaly_scorer(trained, dataset, fit_idx, seed=seed)

    def scores(coords, gamma, temperature):
        elbo = trained.negative_elbo(coords, gamma, temperature, seed=seed)
        pair, height = physical_statistics(coords, dataset.system)
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
