"""How physical a trained VAE is: reconstruction of held-out chains, and generation.

``evaluate(trained, dataset)`` returns the JSON-ready dict that ``python -m ljvae_core
evaluate`` prints:

- ``reconstruction`` on held-out chains (the validation chains of training when the dataset is
  the one trained on, else every sample): normalized input MSE, permutation-invariant aligned
  RMSD (sigma) of the decoded coordinates, relative error of the energy, fraction valid, and
  the RMSD a model knowing only (gamma, T) would reach (another configuration of the same
  condition).
- ``generation`` from the prior (at the held-out samples' (gamma, T) for conditional models):
  fraction valid (no pair under 0.8 sigma), 1D Wasserstein distances to the held-out Monte
  Carlo samples of the LJ energy per particle, of nearest-neighbour distances and of heights,
  and the L1 distance of g(r) -- before and after a short zero-temperature quench with the
  project's own Monte Carlo kernel; the quenched samples' energies are also compared with
  those of equally quenched Monte Carlo samples (a quench lowers those too). Unrelaxed
  samples of N(0, I) (``normal_prior``) and, for a prior refined by the joint physics loss,
  of the mixture before that refinement (and before an unconditional prior's narrowing,
  ``prior_scale``) (``unrefined_prior``) are scored beside them.
- ``training``: seconds per epoch, epochs run.
"""

from __future__ import annotations

import numpy as np

from .analysis import compare_distributions, energies_per_particle, valid_fraction
from .cluster_mc import ClusterSampler
from .geometry import matched_rmsd
from .mc import MetropolisSampler
from .system import System

# A quench is Metropolis at this (practically zero) temperature: only downhill moves pass.
QUENCH_TEMPERATURE = 1e-6
# 100 sweeps of 0.1 sigma steps clear the overlaps of decoded samples (30 sweeps of 0.05 left
# a fifth of them overlapping) in about a millisecond per configuration.
QUENCH_STEP = 0.1
QUENCH_SWEEPS = 100


def held_out_indices(trained, dataset) -> np.ndarray:
    """The validation chains of training if this is the training dataset, else everything."""
    if trained.trained_on(dataset):
        return np.asarray(trained.meta["validation_indices"])
    return np.arange(len(dataset))


def generate_relaxed(trained, n: int, gamma=None, temperature=None, sweeps: int = 0,
                     seed: int = 0, prior: str = "default") -> tuple[np.ndarray, np.ndarray | None]:
    """n samples of :func:`generate` (at (gamma, T) for a conditional model) and, with
    sweeps > 0, the same after that many Metropolis sweeps each at (T, gamma) with a tuned
    step (:func:`thermalize`; None without). An unconditional model's samples are relaxed at
    the gamma given."""
    raw = trained.generate(n, gamma, temperature, seed, prior)
    if sweeps <= 0:
        return raw, None
    system = trained.system
    relaxed, _ = thermalize(raw, system, temperature, gamma, sweeps, seed)
    return raw, relaxed


def quench(coords, system: System, gamma=0.0, sweeps: int = QUENCH_SWEEPS,
           seed: int = 0) -> np.ndarray:
    """Relax configurations by zero-temperature Metropolis sweeps (overlaps pushed apart)."""
    return _sweep_each(coords, system, QUENCH_TEMPERATURE, gamma, QUENCH_STEP, sweeps, seed)


def can_relax(system: System) -> bool:
    """Whether a Monte Carlo kernel here can sweep this system's configurations: LJ and
    gravity in a box (:mod:`ljvae_core.mc`) or a free cluster in the LJ13 convention
    (:mod:`ljvae_core.cluster_mc`)."""
    if system.free:
        return system.potential == "lj13"
    return system.potential == "lj-gravity"


def _sampler(x, system: System, temperature, gamma, step, seed):
    """A chain of one configuration: :class:`MetropolisSampler` in a box (gamma its field),
    :class:`ljvae_core.cluster_mc.ClusterSampler` for a free cluster (no field)."""
    if not can_relax(system):
        raise ValueError("Metropolis sweeps run only in a box with the LJ + gravity "
                         "potential or on a free LJ13 cluster; judge this system's samples raw")
    if system.free:
        return ClusterSampler(x, temperature, step, seed=seed)
    return MetropolisSampler(np.clip(x, 0.0, system.box), system.box, temperature, float(gamma),
                             system.periodic, system.cutoff, step, seed=seed)


def _sweep_each(coords, system, temperature, gamma, step, sweeps, seed) -> np.ndarray:
    """Each configuration, put into the box, after ``sweeps`` Metropolis sweeps of a sampler
    of its own (seed ``seed + m`` for the m-th) at ``temperature`` and its ``gamma`` (one
    value, or one per configuration)."""
    out = np.empty_like(coords)
    gammas = np.broadcast_to(np.asarray(gamma, dtype=float), len(coords))
    for m, (x, g) in enumerate(zip(coords, gammas, strict=True)):
        sampler = _sampler(x, system, temperature, g, step, seed + m)
        sampler.run(sweeps, trace=False)
        out[m] = sampler.positions
    return out


def thermalize(coords, system: System, temperature: float, gamma: float, sweeps: int,
               seed: int = 0, target_acceptance: float = 0.4, tune_sweeps: int = 100,
               step: float | None = None) -> tuple[np.ndarray, float]:
    """Configurations after ``sweeps`` Metropolis sweeps each at (temperature, gamma), with a
    step size tuned toward the target acceptance as the sampler tunes its chains (on the
    first configuration, then kept), or the ``step`` given; returns (coordinates, step size)."""
    from .sampling import tune_step_size

    coords = np.asarray(coords, dtype=np.float64)
    if step is None:
        probe = _sampler(coords[0], system, temperature, gamma, 0.2, seed)
        tune_step_size(probe, target_acceptance, tune_sweeps)
        step = float(probe.step_size)
    return _sweep_each(coords, system, temperature, gamma, step, sweeps, seed + 1), step


def evaluate(trained, dataset, n_reconstruct: int = 1000, n_generate: int = 500,
             quench_sweeps: int = QUENCH_SWEEPS, seed: int = 0, regressor_epochs: int = 0) -> dict:
    """All evaluation figures as one JSON-ready dict. For distance models, regressor_epochs
    > 0 also trains the learned distances -> coordinates regressor on the training chains
    and compares it with classical MDS on the decoded held-out matrices."""
    idx = held_out_indices(trained, dataset)
    rng = np.random.default_rng(seed)
    if len(idx) > n_reconstruct:
        idx = np.sort(rng.choice(idx, n_reconstruct, replace=False))
    coords = dataset.coords[idx]
    result = {
        "reconstruction": _reconstruction(trained, dataset, idx),
        "generation": _generation(trained, dataset, coords, idx, n_generate, quench_sweeps,
                                  seed),
        "training": {"seconds_per_epoch": trained.meta.get("seconds_per_epoch"),
                     "epochs_run": trained.meta.get("epochs_run")},
        "held_out_samples": int(len(idx)),
    }
    if regressor_epochs > 0 and trained.settings.representation == "distances":
        result["regressor"] = compare_regressor(trained, dataset, idx, regressor_epochs, seed)
    return result


def compare_regressor(trained, dataset, idx, epochs: int, seed: int = 0) -> dict:
    """Median matched RMSD of held-out reconstructions through MDS vs the learned regressor."""
    from .regressor import regressor_coordinates, train_distance_regressor

    train_idx = np.setdiff1d(np.arange(len(dataset)), held_out_indices(trained, dataset))
    model, rep = train_distance_regressor(dataset, train_idx, epochs, seed=seed)
    coords = dataset.coords[idx]
    decoded = trained.output(trained.model_data(coords, dataset.gamma[idx],
                                                dataset.temperature[idx], targets=False))
    paths = {"mds": trained.representation.inverse_transform(decoded),
             "regressor": regressor_coordinates(model, rep, decoded)}
    exact = rep.transform(coords)
    return {
        **{f"{k}_rmsd_median": float(np.median(matched_rmsd(v, coords)))
           for k, v in paths.items()},
        "regressor_rmsd_median_exact_input": float(np.median(matched_rmsd(
            regressor_coordinates(model, rep, exact), coords))),
        "epochs": int(epochs),
    }


def _reconstruction(trained, dataset, idx) -> dict:
    coords = dataset.coords[idx]
    gamma, temperature = dataset.gamma[idx], dataset.temperature[idx]
    data = trained.model_data(coords, gamma, temperature)
    out = trained.output(data)
    back = trained.output_representation.inverse_transform(out)
    rmsd = matched_rmsd(back, coords)
    energy = [energies_per_particle(c, dataset.system, gamma) for c in (coords, back)]
    rel = np.abs(energy[1] - energy[0]) / np.maximum(np.abs(energy[0]), 1e-12)
    return {
        "input_mse": float(np.mean((out - trained.in_output_order(data["target"], out)) ** 2)),
        "rmsd_median": float(np.median(rmsd)),
        "rmsd_p90": float(np.percentile(rmsd, 90)),
        "energy_rel_error_median": float(np.median(rel)),
        "valid_fraction": valid_fraction(back, dataset.system),
        "baseline_rmsd_median": _baseline_rmsd(dataset, idx),
        "by_state": _rmsd_by_state(rmsd, gamma, temperature),
    }


def _rmsd_by_state(rmsd, gamma, temperature) -> list[dict]:
    """The reconstruction RMSD of each state point (gamma, T) among the held-out samples: a
    pooled figure hides that the spread-out gas reconstructs worst."""
    states = np.unique(np.column_stack([gamma, temperature]), axis=0)
    rows = []
    for g, t in states:
        mine = rmsd[(gamma == g) & (temperature == t)]
        rows.append({"gamma": float(g), "temperature": float(t), "samples": int(len(mine)),
                     "rmsd_median": float(np.median(mine)),
                     "rmsd_p90": float(np.percentile(mine, 90))})
    return rows


def _baseline_rmsd(dataset, idx, seed: int = 0) -> float | None:
    """Median matched RMSD of each held-out configuration against a random *other*
    configuration of the same (gamma, T): what a model that knows only the condition scores.
    Matching and alignment make this far below the spread of the coordinates."""
    rng = np.random.default_rng(seed)
    others = np.setdiff1d(np.arange(len(dataset.coords)), idx)
    if len(others) == 0:
        return None
    stand_ins = np.empty(len(idx), dtype=np.int64)
    for k in np.unique(dataset.condition[idx]):
        pool = others[dataset.condition[others] == k]
        if len(pool) == 0:
            return None
        mine = dataset.condition[idx] == k
        stand_ins[mine] = rng.choice(pool, mine.sum())
    return float(np.median(matched_rmsd(dataset.coords[stand_ins], dataset.coords[idx])))


def _generation(trained, dataset, reference, idx, n, sweeps, seed) -> dict:
    rng, system = np.random.default_rng(seed + 1), dataset.system
    pick = rng.choice(idx, n, replace=True)
    gamma, temperature = dataset.gamma[pick], dataset.temperature[pick]
    raw = trained.generate(n, gamma, temperature, seed)
    result = {"prior": "default" if trained.latent_prior is not None else "normal"}
    # A quench compares with quenched Monte Carlo of the box; a cluster is judged raw here.
    quenches = can_relax(system) and not system.free
    relaxed = quench(raw, system, gamma, sweeps, seed) if quenches else None
    for label, sample in (("", raw), ("_relaxed", relaxed)):
        if sample is None:
            continue
        # LJ energy only: the gravity part is judged through the heights.
        stats = compare_distributions(sample, reference, system, 0.0)
        result[f"valid_fraction{label}"] = stats["valid_fraction"]
        result[f"energy_w1{label}"] = stats["w1_energy_per_particle"]
        result[f"nearest_neighbour_w1{label}"] = stats["w1_nearest_neighbour"]
        result[f"height_w1{label}"] = stats["w1_height"]
        result[f"rdf_l1{label}"] = stats["rdf_l1"]
    # A quench lowers the energy of Monte Carlo samples too (they are thermal, not minima):
    # quenched samples are fairly compared with quenched Monte Carlo configurations.
    if relaxed is not None:
        ref_pick = rng.choice(len(reference), min(n, len(reference)), replace=False)
        ref_gamma = dataset.gamma[np.asarray(idx)[ref_pick]]
        quenched_reference = quench(reference[ref_pick], system, ref_gamma, sweeps, seed)
        stats = compare_distributions(relaxed, quenched_reference, system, 0.0)
        result["energy_w1_relaxed_vs_quenched_mc"] = stats["w1_energy_per_particle"]
    if result["prior"] == "default":  # what the same decoder makes of other priors, unrelaxed
        result["normal_prior"] = _raw_generation(trained, "normal", reference, dataset, n,
                                                 gamma, temperature, seed)
        if "unrefined" in trained.available_priors():
            result["prior_physics_weight"] = trained.latent_prior.physics_weight
            result["prior_scale"] = trained.meta.get("latent_prior_scale", 1.0)
            if "latent_prior_bandwidth" in trained.meta:
                result["prior_bandwidth"] = trained.meta["latent_prior_bandwidth"]
            result["unrefined_prior"] = _raw_generation(trained, "unrefined", reference,
                                                        dataset, n, gamma, temperature, seed)
    result["samples"] = int(n)
    result["quench_sweeps"] = int(sweeps)
    return result


def _raw_generation(trained, prior, reference, dataset, n, gamma, temperature, seed) -> dict:
    """Validity and distances to the Monte Carlo data of unrelaxed samples of one prior."""
    sample = trained.generate(n, gamma, temperature, seed, prior=prior)
    stats = compare_distributions(sample, reference, dataset.system, 0.0)
    return {"valid_fraction": stats["valid_fraction"],
            "energy_w1": stats["w1_energy_per_particle"], "height_w1": stats["w1_height"],
            "nearest_neighbour_w1": stats["w1_nearest_neighbour"]}
