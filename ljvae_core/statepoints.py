"""Generated ensembles judged one state point at a time, against Monte Carlo of that state point.

For each (gamma, T) -- those the model was trained on and any unseen ones asked for -- the
model's samples at that state point, after K in ``SWEEPS`` thermal Metropolis sweeps there,
are compared with held-out Monte Carlo configurations of it (the validation chains of the
training dataset, or a fresh seeded Monte Carlo run where the dataset has none):

- ``auc``: the classifier two-sample test (:func:`ljvae_core.twosample.classifier_auc`; 0.5
  when indistinguishable);
- ``energy_w1``: W1 of the total energy per particle (pair + gravity at that gamma);
  ``height_w1``, ``nearest_neighbour_w1``: W1 of particle heights and of nearest-neighbour
  distances (sigma); ``rdf_l1``: L1 distance of g(r); ``valid_fraction``.

Beside them, the ``floor``: the same figures for a second, independent Monte Carlo sample of
the state point (what Monte Carlo scores against itself), and the model's reconstructions of
that second sample. ``cost`` sets generated-and-relaxed samples per second against the
decorrelated samples per second of the project's Monte Carlo (one per tau sweeps), with the
one-off seconds spent choosing where and how to generate there (``setup_seconds``: steering,
the noise walk between trained state points) beside them;
``generated_at``: the state point a conditional model's samples were drawn and decoded at
(steered to the mean height expected there where heights are not mapped), the factor on its
latent prior's spread and the noise their
coordinates got (:mod:`ljvae_core.disorder`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

# Only NumPy at import time: the command line reads SWEEPS for its defaults.
SWEEPS = (0, 5, 20)
# Configurations per state point: at 1000 a side, Monte Carlo against itself scored AUC
# 0.50-0.55 over the study system's state points (at 2000, 0.49-0.52).
STATE_SAMPLES = 1000
# Fresh Monte Carlo runs two chains per state point (as many as the quick demo's dataset).
FRESH_CHAINS = 2
# Sweeps of one chain timed for Monte Carlo's rate in the cost figures.
COST_SWEEPS = 2000


def state_text(gamma: float, temperature: float, free: bool = False) -> str:
    """A state point in words: γ and T, or T alone for a free cluster (it has no field)."""
    where = f"T = {temperature:g}"
    return where if free else f"γ = {gamma:g}, {where}"


def figures(sample, reference, system, gamma: float, seed: int = 0) -> dict:
    """The classifier AUC and the distribution distances of ``sample`` to ``reference``."""
    from .analysis import compare_distributions
    from .twosample import classifier_auc

    stats = compare_distributions(sample, reference, system, gamma)
    return {"auc": classifier_auc(sample, reference, system, seed=seed),
            "energy_w1": stats["w1_energy_per_particle"], "height_w1": stats["w1_height"],
            "nearest_neighbour_w1": stats["w1_nearest_neighbour"],
            "rdf_l1": stats["rdf_l1"], "valid_fraction": stats["valid_fraction"]}


def fresh_monte_carlo(params: dict, gamma: float, temperature: float, n: int, seed: int):
    """n decorrelated Monte Carlo configurations of one state point of the system described
    by a dataset's ``params`` (seeded); returns the dataset."""
    from .sampling import SimulationParams, simulate

    run = replace(SimulationParams.from_dict(params), gammas=(float(gamma),),
                  temperatures=(float(temperature),), n_samples=int(n),
                  n_chains=FRESH_CHAINS, seed=int(seed))
    return simulate(run)


def state_point_list(trained, dataset, unseen_gammas=()) -> list[tuple[float, float, bool]]:
    """(gamma, T, trained) of every state point of the dataset and, at each of its
    temperatures, of each gamma of ``unseen_gammas``, in order of T, then gamma; ``trained``
    says whether the model was trained at that state point."""
    present = {(float(g), float(t)) for g, t in zip(dataset.gamma, dataset.temperature,
                                                     strict=True)}
    params = trained.meta.get("dataset_params", {})
    known = {(float(g), float(t)) for g in params.get("gammas", ())
             for t in params.get("temperatures", ())}
    points = present | {(float(g), t) for g in unseen_gammas for _, t in present}
    return [(g, t, (g, t) in known) for g, t in sorted(points, key=lambda p: (p[1], p[0]))]


def _held_out_reference(trained, dataset, gamma, temperature, n, rng):
    from .evaluation import held_out_indices

    idx = held_out_indices(trained, dataset)
    idx = idx[(dataset.gamma[idx] == gamma) & (dataset.temperature[idx] == temperature)]
    if len(idx) < 2:
        return None
    return dataset.coords[np.sort(rng.choice(idx, min(n, len(idx)), replace=False))]


@dataclass
class MonteCarloPair:
    """What a state point's samples are judged against: ``reference`` configurations (from
    ``source``) and ``second``, independent ones of the same state point (the floor's, and
    what reconstructions are made of); ``fresh``: the fresh Monte Carlo run ``second`` comes
    from (its tau prices Monte Carlo in the cost figures), None for imported data."""

    reference: np.ndarray
    source: str
    second: np.ndarray
    fresh: object = None


def monte_carlo_pair(trained, dataset, gamma, temperature, n: int,
                     seed: int = 0) -> MonteCarloPair:
    """Up to n held-out Monte Carlo configurations of the state point (n fresh seeded ones
    where the dataset has none) and n more of an independent fresh run. Imported data cannot
    be simulated afresh: its held-out configurations of the state point are split in two."""
    rng = np.random.default_rng(seed)
    if dataset.imported:
        held = _held_out_reference(trained, dataset, gamma, temperature, 2 * n, rng)
        if held is None:
            raise ValueError(f"the imported dataset holds no held-out configurations at "
                             f"γ = {gamma:g}, T = {temperature:g} to judge against")
        half = len(held) // 2
        return MonteCarloPair(held[:half], "held-out imported data", held[half:])
    reference = _held_out_reference(trained, dataset, gamma, temperature, n, rng)
    source = "held-out Monte Carlo"
    if reference is None:
        reference = fresh_monte_carlo(dataset.params, gamma, temperature, n, seed).coords
        source = "fresh Monte Carlo"
    fresh = fresh_monte_carlo(dataset.params, gamma, temperature, n, seed + 1)
    return MonteCarloPair(reference, source, fresh.coords, fresh)


def pooled_monte_carlo_pair(trained, dataset, n: int, seed: int = 0) -> MonteCarloPair:
    """What an unconditional model's samples, which span every state point it was trained
    on, are judged against: up to n held-out configurations of every state point as the
    reference and as many others as the floor's second sample."""
    from .evaluation import held_out_indices

    idx = np.random.default_rng(seed).permutation(held_out_indices(trained, dataset))
    m = min(n, len(idx) // 2)
    if m < 2:
        raise ValueError("the dataset holds too few held-out configurations to judge "
                         "samples against")
    return MonteCarloPair(dataset.coords[np.sort(idx[:m])], "held-out Monte Carlo of every "
                          "state point", dataset.coords[np.sort(idx[m:2 * m])])


def relaxed_series(coords, system, temperature, gamma, sweeps, seed):
    """{K: the configurations after K sweeps} for each K of ``sweeps`` (increasing), each
    continuing the last with the step size tuned once, and {K: seconds since the start}."""
    from .evaluation import thermalize

    out, seconds, done, current, start = {}, {}, 0, coords, time.perf_counter()
    step = None
    for k in sorted(sweeps):
        if k > done:
            current, step = thermalize(current, system, temperature, gamma, k - done,
                                       seed + done, step=step)
            done = k
        out[k] = current
        seconds[k] = time.perf_counter() - start
    return out, seconds


def judge_state_point(trained, dataset, gamma, temperature, n: int = STATE_SAMPLES,
                      sweeps=SWEEPS, seed: int = 0) -> dict:
    """Every figure of one state point (see the module's description)."""
    system = dataset.system
    pair = monte_carlo_pair(trained, dataset, gamma, temperature, n, seed)
    # Steering and the noise walk are one-offs per state point and model, priced apart from
    # the samples, as Monte Carlo's equilibration is left out of its rate.
    start = time.perf_counter()
    generated_at = _generated_at(trained, gamma, temperature, seed)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    raw = trained.generate(n, gamma, temperature, seed)
    generating = time.perf_counter() - start
    generated, seconds = relaxed_series(raw, system, temperature, gamma, sweeps, seed)
    m = len(pair.second)
    rebuilt = trained.reconstruct(pair.second, np.full(m, gamma), np.full(m, temperature))
    rebuilt = relaxed_series(rebuilt, system, temperature, gamma, sweeps, seed)[0]

    def judged(series):
        return {str(k): figures(x, pair.reference, system, gamma, seed)
                for k, x in series.items()}

    return {
        "gamma": float(gamma), "temperature": float(temperature), "reference": pair.source,
        "reference_samples": int(len(pair.reference)), "samples": int(n),
        "generated_at": generated_at,
        "floor": figures(pair.second, pair.reference, system, gamma, seed),
        "generated": judged(generated), "reconstructed": judged(rebuilt),
        "cost": (None if pair.fresh is None
                 else _cost(pair.fresh, n, generating, seconds) | {"setup_seconds": setup}),
    }


def _generated_at(trained, gamma, temperature, seed) -> dict | None:
    """The (gamma, T) a conditional model's samples of this state point are drawn and
    decoded at (:meth:`ljvae_core.trained.TrainedModel.generation_state`), the factor on
    its latent prior's spread and the width (sigma) of the noise their coordinates get
    (``spread``, ``noise``: :meth:`ljvae_core.trained.TrainedModel.disorder_at`; ``noise``
    None for models that add none); None for the others."""
    by_state = trained.conditional_prior
    if by_state is None:
        return None
    g, t = trained.generation_state(gamma, temperature, seed)
    spread, width = trained.disorder_at(gamma, temperature)
    return {"gamma": float(g), "temperature": float(t), "spread": float(spread),
            "noise": None if by_state.noise is None else float(width)}


def _cost(fresh, n, generating, seconds) -> dict:
    """Samples per second: generated (and relaxed by K sweeps) against Monte Carlo's
    decorrelated ones, from the fresh run's tau and the kernel's measured sweep rate."""
    from .bench import mc_moves_per_second

    condition, p = fresh.conditions[0], fresh.params
    system = {"n": p["n_particles"], "dim": p["dim"], "box": p["box"],
              "temperature": condition["temperature"], "gamma": condition["gamma"],
              "delta": condition["step_size"]}
    moves = mc_moves_per_second(system, COST_SWEEPS, fresh.system.cutoff, fresh.system.periodic)
    sampler_rate = moves["moves_per_s"] / system["n"]
    return {
        "generated_per_second": {str(k): n / (generating + s) for k, s in seconds.items()},
        "monte_carlo_tau_sweeps": float(condition["tau"]),
        "monte_carlo_sweeps_per_second": sampler_rate,
        "monte_carlo_decorrelated_per_second": sampler_rate / max(float(condition["tau"]), 1.0),
    }


def evaluate_state_points(trained, dataset, unseen_gammas=(), n: int = STATE_SAMPLES,
                          sweeps=SWEEPS, seed: int = 0, progress=None, cancel=None) -> dict:
    """:func:`judge_state_point` of every state point of :func:`state_point_list`, as one
    JSON-ready dict; ``progress(fraction, message)`` before each; setting the
    threading.Event ``cancel`` stops between state points (raises Cancelled)."""
    from .evaluation import can_relax
    from .sampling import Cancelled

    if dataset.imported and len(unseen_gammas):
        raise ValueError("imported data cannot be simulated at unseen gamma; leave out "
                         "--unseen-gamma")
    if not can_relax(dataset.system):
        sweeps = [0]  # samples of such systems are judged raw
    points = state_point_list(trained, dataset, unseen_gammas)
    results = []
    for k, (gamma, temperature, seen) in enumerate(points):
        if cancel is not None and cancel.is_set():
            raise Cancelled("judging per state point was cancelled")
        if progress is not None:
            progress(k / len(points),
                     f"judging {state_text(gamma, temperature, dataset.system.free)}")
        result = judge_state_point(trained, dataset, gamma, temperature, n, sweeps, seed + k)
        results.append({"trained": seen, **result})
    if progress is not None:
        progress(1.0, "done")
    return {"sweeps": [int(k) for k in sorted(sweeps)], "state_points": results}
