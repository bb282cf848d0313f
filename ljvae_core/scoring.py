"""Configurations from outside -- uploaded or given files -- checked against a model and scored
as anomalous or normal (:func:`score_files`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anomaly import AnomalyScorer, physical_statistics
from .io import ConfigurationFormatError, plural
from .latent import read_state


class UnsuitableConfigurations(ValueError):
    """Configurations that a model cannot score, or a model that cannot score (one clear
    clause, to follow the name of the file they came from)."""


def validate_for_model(trained, coords) -> np.ndarray:
    """Configurations checked against a model: finite, right particle count and dimension,
    inside the box (free clusters are centred instead). Raises
    :class:`UnsuitableConfigurations` with one clear clause."""
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
    system = trained.system  # a free cluster is wherever it is: only its shape is scored
    coords = system.placed(coords)
    if system.outside_walls(coords) is not None:
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
    pair, height = physical_statistics(coords, trained.system)
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
