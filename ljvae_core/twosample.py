"""Can a classifier tell two ensembles of configurations apart? A classifier two-sample test
that judges generated (or reconstructed) configurations against Monte Carlo ones.

Each configuration becomes permutation-invariant features: its sorted particle heights
(distances from the centre of mass in a free cluster), its
sorted nearest-neighbour distances and its sorted per-particle pair energies. Gradient-boosted
trees (scikit-learn's ``HistGradientBoostingClassifier``) are scored by 5-fold cross-validated
ROC AUC: 0.5 when the ensembles are indistinguishable, 1 when every configuration gives its
origin away. Two halves of one Monte Carlo set are the floor to read any figure against.
"""

from __future__ import annotations

import numpy as np

from .analysis import heights, nearest_neighbour_distances, particle_energies
from .system import System

# Per-particle pair energies of overlapping pairs are astronomically large; beyond this (in
# epsilon) the ordering is all a tree needs.
ENERGY_CLIP = 50.0


def configuration_features(coords, system: System) -> np.ndarray:
    """(M, 3N) features of configurations (M, N, d): sorted heights, sorted nearest-neighbour
    distances, sorted per-particle pair energies (clipped at :data:`ENERGY_CLIP`)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    nearest = np.sort(nearest_neighbour_distances(coords, system), axis=1)
    energies = np.sort(np.clip(particle_energies(coords, system), None, ENERGY_CLIP), axis=1)
    return np.hstack([np.sort(heights(coords, system), axis=1), nearest, energies])


def classifier_auc(sample, reference, system: System, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a classifier telling ``sample`` from ``reference`` (each
    (M, N, d)); the two are balanced to the smaller size first (seeded)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    n = min(len(sample), len(reference))
    if n < folds:
        raise ValueError(f"a {folds}-fold test needs at least {folds} configurations per set")
    parts = [np.asarray(x)[rng.choice(len(x), n, replace=False)] for x in (sample, reference)]
    features = np.vstack([configuration_features(x, system) for x in parts])
    labels = np.repeat([1, 0], n)
    model = HistGradientBoostingClassifier(random_state=seed)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, features, labels, cv=splits, scoring="roc_auc").mean())
