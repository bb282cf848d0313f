"""From simulation parameters to a dataset of decorrelated configurations.

Each (T, gamma) condition runs ``n_chains`` independent Markov chains. A chain

1. starts from a jittered lattice (random sites, so every chain starts differently),
2. tunes its step size toward the target acceptance, then freezes it (detailed balance),
3. runs a preliminary trajectory, finds where it is equilibrated (the start that maximizes the
   effective sample count, Chodera 2016) and measures the energy's integrated
   autocorrelation time tau there (Sokal's windowed estimator, via emcee),
4. keeps one configuration every ceil(k * tau) sweeps.

Seeds come from ``numpy.random.SeedSequence(seed).spawn``, one per chain in a fixed order, so
the dataset is the same bit for bit whatever the number of workers.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from emcee.autocorr import function_1d, integrated_time

from .mc import MetropolisSampler
from .potential import periodic_mask, tail_correction
from .system import System

DATASET_VERSION = 1
# Closest lattice spacing of a starting configuration, in sigma; denser boxes are refused.
MIN_START_SPACING = 0.8


class ParameterError(ValueError):
    """Simulation parameters that cannot describe a valid run (one clear sentence)."""


class Cancelled(RuntimeError):
    """The run was cancelled by the caller."""


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SimulationParams:
    """Everything that defines a simulation run; defaults are the study system
    (30 particles, 3D, L = 5, T = 1, gamma 0, 0.5, 1, 2).

    ``n_samples`` is the number of configurations kept per (T, gamma) condition, split
    evenly across the chains. ``periodic`` lists the periodic axes ('', 'x', 'xy', ...).
    """

    n_particles: int = 30
    dim: int = 3
    box: float = 5.0
    temperatures: tuple = (1.0,)
    gammas: tuple = (0.0, 0.5, 1.0, 2.0)
    n_samples: int = 1000
    n_chains: int = 4
    seed: int = 0
    cutoff: float | None = None
    periodic: str = ""
    target_acceptance: float = 0.4
    tune_sweeps: int = 400
    prelim_sweeps: int = 2000
    max_prelim_sweeps: int = 32000
    stride_factor: float = 1.0
    decorrelation: str = "integrated"
    threshold: float = 0.1
    initial_step: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "temperatures", _as_float_tuple(self.temperatures))
        object.__setattr__(self, "gammas", _as_float_tuple(self.gammas))
        object.__setattr__(self, "periodic", (self.periodic or "").lower())
        for problem in _problems(self):
            raise ParameterError(problem)

    @property
    def density(self) -> float:
        return self.n_particles / self.box**self.dim

    @property
    def conditions(self) -> list[tuple[float, float]]:
        """(T, gamma) pairs in the order they are simulated and stored."""
        return [(t, g) for t in self.temperatures for g in self.gammas]

    @property
    def samples_per_chain(self) -> int:
        return math.ceil(self.n_samples / self.n_chains)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SimulationParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# The Simulate page's ranges: (lowest, highest) of each input.
FORM_RANGES = {"n_particles": (2, 5000), "box": (0.1, 1000.0), "n_samples": (1, 100_000),
               "n_chains": (1, 64), "seed": (0, 2**31 - 1), "cutoff": (1.0, 50.0)}


def params_from_form(values: dict) -> SimulationParams:
    """Simulation parameters from the Simulate page's inputs: numbers for the keys of
    :data:`FORM_RANGES` and ``dim``, the typed ``temperatures`` and ``gammas`` texts,
    ``periodic`` axes and ``cutoff`` (None: no cut-off). ParameterError says what is wrong."""
    return SimulationParams(
        n_particles=int(values["n_particles"]), dim=int(values["dim"]),
        box=float(values["box"]), temperatures=parse_values(values["temperatures"],
                                                            "temperatures"),
        gammas=parse_values(values["gammas"], "gravity couplings"),
        n_samples=int(values["n_samples"]), n_chains=int(values["n_chains"]),
        seed=int(values["seed"]), periodic="".join(values.get("periodic", "")),
        cutoff=None if values.get("cutoff") is None else float(values["cutoff"]))


def parse_values(text: str, what: str) -> tuple[float, ...]:
    """Numbers typed in one field, separated by commas or semicolons (a form's list of
    temperatures or gravity couplings); ParameterError names the field otherwise."""
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ParameterError(f"{what} must be numbers separated by commas, got '{text}'") from None
    if not values:
        raise ParameterError(f"give at least one value for {what}")
    return values


def _as_float_tuple(values) -> tuple:
    if np.isscalar(values):
        values = [values]
    return tuple(float(v) for v in values)


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(float(v)) for v in values)


def _problems(p: SimulationParams):
    """Yield a sentence for each thing wrong with p (the first one is raised)."""
    if p.dim not in (2, 3):
        yield f"the dimension must be 2 or 3, got {p.dim}"
    if int(p.n_particles) != p.n_particles or p.n_particles <= 1:
        yield f"the number of particles must be an integer above 1, got {p.n_particles}"
    if not _finite(p.box) or p.box <= 0:
        yield f"the box length L must be a positive number, got {p.box}"
    if not p.temperatures or not _finite(*p.temperatures) or min(p.temperatures) <= 0:
        yield f"temperatures must be positive numbers, got {list(p.temperatures)}"
    if not p.gammas or not _finite(*p.gammas):
        yield f"gravity couplings gamma must be finite numbers, got {list(p.gammas)}"
    if p.n_samples < 1 or p.n_chains < 1:
        yield "at least one sample and one chain are needed"
    if p.cutoff is not None and (not _finite(p.cutoff) or p.cutoff <= 0):
        yield f"the cut-off must be a positive number, got {p.cutoff}"
    try:
        mask = periodic_mask(p.periodic, p.dim)
    except ValueError as err:
        yield str(err)
        return
    if mask[-1] and any(g != 0 for g in p.gammas):
        up = "xyz"[p.dim - 1]
        yield f"gravity needs a reflecting up axis: remove '{up}' from the periodic axes"
    if p.cutoff is not None and mask.any() and p.cutoff > p.box / 2:
        yield f"the cut-off {p.cutoff} exceeds half the periodic box ({p.box / 2})"
    if not 0 < p.target_acceptance < 1:
        yield "the target acceptance must lie between 0 and 1"
    if p.decorrelation not in ("integrated", "threshold"):
        yield "decorrelation must be 'integrated' (tau) or 'threshold' (first lag under it)"
    if p.stride_factor <= 0:
        yield "the stride factor k must be positive"
    spacing = lattice_spacing(int(p.n_particles), p.dim, p.box)
    if spacing < MIN_START_SPACING:
        yield (
            f"the density N/L^{p.dim} = {p.density:.3g} is too high: no start without overlaps "
            f"exists (its lattice spacing {spacing:.2f}σ is under {MIN_START_SPACING}σ); "
            "use a larger box or fewer particles"
        )


def lattice_spacing(n_particles: int, dim: int, box: float) -> float:
    return box / math.ceil(n_particles ** (1.0 / dim) - 1e-9)


def initial_configuration(n_particles, dim, box, rng: np.random.Generator) -> np.ndarray:
    """N particles on randomly chosen sites of a simple lattice, jittered by 10 % of a spacing."""
    side = math.ceil(n_particles ** (1.0 / dim) - 1e-9)
    spacing = box / side
    sites = rng.choice(side**dim, size=n_particles, replace=False)
    grid = np.stack(np.unravel_index(sites, (side,) * dim), axis=1).astype(np.float64)
    jitter = 0.1 * spacing * (rng.random((n_particles, dim)) - 0.5)
    return (grid + 0.5) * spacing + jitter


# --------------------------------------------------------------------------- autocorrelation
def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Normalized autocorrelation function of a 1D series (FFT)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        return np.ones(max(x.size, 1))
    return function_1d(x)


def integrated_autocorrelation_time(x: np.ndarray, window_factor: float = 5.0) -> float:
    """tau = 1 + 2 sum_k rho(k) with Sokal's automatic window (the statistical inefficiency)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 4 or np.ptp(x) == 0:
        return 1.0
    return max(1.0, float(integrated_time(x, c=window_factor, tol=0, quiet=True)[0]))


def threshold_lag(x: np.ndarray, threshold: float = 0.1) -> int:
    """First lag at which the normalized autocorrelation falls below threshold."""
    acf = autocorrelation(x)
    below = np.nonzero(acf < threshold)[0]
    return int(below[0]) if below.size else int(acf.size)


def equilibration_point(x: np.ndarray, n_candidates: int = 40) -> tuple[int, float]:
    """Start t0 that maximizes the effective sample count (N - t0) / tau(x[t0:]).

    Returns (t0, tau of x[t0:]). Candidates span the first half of the series.
    """
    x = np.asarray(x, dtype=np.float64)
    best = (0, integrated_autocorrelation_time(x), -1.0)
    for t0 in np.unique(np.linspace(0, x.size // 2, n_candidates).astype(int)):
        tau = integrated_autocorrelation_time(x[t0:])
        n_eff = (x.size - t0) / tau
        if n_eff > best[2]:
            best = (int(t0), tau, n_eff)
    return best[0], best[1]


# --------------------------------------------------------------------------- one chain
@dataclass
class ChainResult:
    """Samples and diagnostics of one chain of one condition."""

    coords: np.ndarray
    energy: np.ndarray
    step_size: float
    acceptance: float
    tau: float
    threshold_lag: int
    stride: int
    equilibration_sweep: int
    trace: np.ndarray = field(repr=False)


def run_chain(params: SimulationParams, temperature, gamma, seed, cancel=None, on_chunk=None):
    """Equilibrate, measure tau and sample one chain; see the module docstring."""
    init_seed, mc_seed = seed.spawn(2)
    start = initial_configuration(
        params.n_particles, params.dim, params.box, np.random.default_rng(init_seed)
    )
    sampler = MetropolisSampler(
        start, params.box, temperature, gamma, params.periodic, params.cutoff,
        params.initial_step, mc_seed,
    )
    tune_trace = tune_step_size(sampler, params.target_acceptance, params.tune_sweeps)
    _check(cancel)
    t0, tau, prelim = _preliminary_run(sampler, params, cancel)
    lag = threshold_lag(prelim[t0:], params.threshold)
    measure = tau if params.decorrelation == "integrated" else lag
    stride = max(1, math.ceil(params.stride_factor * measure))
    sampler.reset_counters()
    coords, energy = _sample(sampler, params.samples_per_chain, stride, cancel, on_chunk)
    return ChainResult(
        coords=coords, energy=energy, step_size=sampler.step_size,
        acceptance=sampler.acceptance, tau=tau, threshold_lag=lag, stride=stride,
        equilibration_sweep=tune_trace.size + t0, trace=np.concatenate([tune_trace, prelim]),
    )


def _check(cancel):
    if cancel is not None and cancel.is_set():
        raise Cancelled("the simulation was cancelled")


def tune_step_size(sampler: MetropolisSampler, target: float, n_sweeps: int, block: int = 20):
    """Scale the step size toward the target acceptance every block of sweeps; returns energies."""
    traces = []
    for _ in range(max(1, n_sweeps // block)):
        sampler.reset_counters()
        traces.append(sampler.run(block)[0])
        ratio = min(2.0, max(0.5, sampler.acceptance / target))
        sampler.step_size = min(0.5 * sampler.box, max(1e-4, sampler.step_size * ratio))
    return np.concatenate(traces)


def _preliminary_run(sampler, params, cancel):
    """Run until the trajectory after equilibration holds enough autocorrelation times."""
    prelim = sampler.run(params.prelim_sweeps)[0]
    while True:
        t0, tau = equilibration_point(prelim)
        if prelim.size - t0 >= 50 * tau or prelim.size >= params.max_prelim_sweeps:
            return t0, tau, prelim
        _check(cancel)
        prelim = np.concatenate([prelim, sampler.run(prelim.size)[0]])


def _sample(sampler, n_samples, stride, cancel, on_chunk, n_chunks=10):
    """n_samples configurations every `stride` sweeps, in chunks so a cancel is noticed."""
    coords, energies = [], []
    for size in np.diff(np.linspace(0, n_samples, n_chunks + 1).astype(int)):
        if size == 0:
            continue
        _check(cancel)
        _, snaps = sampler.run(size * stride, record_every=stride, trace=False)
        coords.append(snaps)
        energies.append(sampler.energies_of(snaps))
        if on_chunk is not None:
            on_chunk(size / n_samples)
    return np.concatenate(coords), np.concatenate(energies)


# --------------------------------------------------------------------------- dataset
@dataclass
class Dataset:
    """Decorrelated configurations with their energies and how they were made.

    Per sample: ``coords`` (M, N, d), ``energy`` (total U), ``gamma``, ``temperature``,
    ``chain`` (a chain id unique across conditions) and ``condition`` (index into
    ``conditions``). ``conditions`` holds per (T, gamma) the diagnostics of its chains
    (tau, threshold lag, stride, acceptance, step size, equilibration point, energy traces).
    """

    coords: np.ndarray
    energy: np.ndarray
    gamma: np.ndarray
    temperature: np.ndarray
    chain: np.ndarray
    condition: np.ndarray
    params: dict
    conditions: list
    seed: int
    version: int = DATASET_VERSION

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def first_of_each_chain(self, k: int) -> Dataset:
        """The dataset cut to the first k samples of every chain (all conditions kept)."""
        keep = np.concatenate([np.flatnonzero(self.chain == c)[:k] for c in np.unique(self.chain)])
        return replace(self, coords=self.coords[keep], energy=self.energy[keep],
                       gamma=self.gamma[keep], temperature=self.temperature[keep],
                       chain=self.chain[keep], condition=self.condition[keep])

    @property
    def n_particles(self) -> int:
        return int(self.coords.shape[1])

    @property
    def dim(self) -> int:
        return int(self.coords.shape[2])

    @property
    def box(self) -> float | None:
        """The box length, None for a free cluster."""
        return self.system.box

    @property
    def imported(self) -> bool:
        """Whether the configurations came from files (``ljvae_core.trajectory``), not from
        this project's simulator: no sampling diagnostics then."""
        return "imported_from" in self.params

    @property
    def system(self) -> System:
        """The box, periodic axes and cut-off its configurations were simulated in."""
        return System.from_params({**self.params, "dim": self.dim})

    def to_dict(self) -> dict:
        """Plain dict of arrays and builtins: what is stored, loadable without this class."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> Dataset:
        missing = {f.name for f in fields(cls)} - set(data) - {"version", "condition"}
        if missing:
            raise ValueError(f"not a dataset: missing {sorted(missing)}")
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data.setdefault("condition", np.zeros(len(data["energy"]), np.int64))
        return cls(**data)

    def condition_table(self) -> list[dict]:
        """One row of scalar diagnostics per condition (for tables): tau, acceptance and step
        size are means over the chains; tau_max, threshold_lag and stride are maxima, every
        chain keeping one configuration every ceil(k * its own tau or lag) sweeps. Imported
        datasets have no chain diagnostics: their rows give the state point, its samples and
        the blocks of frames that stand for chains."""
        if self.imported:
            return [{"T": c["temperature"], "gamma": c["gamma"], "samples": c["samples"],
                     "blocks": c["n_chains"]} for c in self.conditions]
        return [
            {
                "T": c["temperature"], "gamma": c["gamma"], "samples": c["samples"],
                "tau": c["tau"], "tau_max": max(ch["tau"] for ch in c["chains"]),
                "threshold_lag": c["threshold_lag"], "stride": c["stride"],
                "acceptance": c["acceptance"], "step_size": c["step_size"],
            }
            for c in self.conditions
        ]


def simulate(params: SimulationParams, progress=None, cancel=None, n_jobs=None,
             scheduler: str | None = None) -> Dataset:
    """Run every chain of every condition in parallel and assemble the dataset.

    Locally the chains run in threads (the kernels release the GIL). With ``scheduler`` (a
    Dask scheduler address such as ``tcp://host:8786``) they run on that cluster through
    joblib's Dask backend; every chain has its own seed, so the dataset is the same either way.

    progress(fraction, message) is called as work finishes (from worker threads locally, per
    finished chain on a cluster); setting the threading.Event ``cancel`` stops the run (raises
    :class:`Cancelled`).
    """
    tasks = _chain_tasks(params)
    if scheduler:
        results = _run_on_cluster(params, tasks, scheduler, progress, cancel)
    else:
        results = _run_locally(params, tasks, progress, cancel, n_jobs)
    _check(cancel)
    return _assemble(params, tasks, results)


def _chain_label(params, task) -> str:
    _, temperature, gamma, chain, _ = task
    return f"T = {temperature:g}, γ = {gamma:g}, chain {chain + 1}/{params.n_chains}"


def _run_locally(params, tasks, progress, cancel, n_jobs):
    from joblib import Parallel, delayed

    reporter = _ProgressReporter(len(tasks), progress)
    n_jobs = n_jobs or min(len(tasks), _available_cores())

    def one(task):
        _, temperature, gamma, _, seed = task
        label = _chain_label(params, task)
        return run_chain(
            params, temperature, gamma, seed, cancel, lambda f: reporter.advance(f, label)
        )

    return Parallel(n_jobs=n_jobs, prefer="threads")(delayed(one)(t) for t in tasks)


# How long to wait for a Dask scheduler to answer before giving up.
SCHEDULER_TIMEOUT_S = 10.0


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached or used (one clear sentence)."""


def _run_on_cluster(params, tasks, address, progress, cancel):
    """Chains as joblib tasks on a Dask cluster; results arrive in task order, so progress
    advances by whole chains and cancelling stops waiting for the rest."""
    try:
        from distributed import Client
        from joblib import Parallel, delayed, parallel_config
    except ImportError as err:
        raise SchedulerError(f"running on a Dask cluster needs dask.distributed: {err}") from None
    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    results = []
    with client, parallel_config(backend="dask", client=client):
        stream = Parallel(n_jobs=-1, return_as="generator")(
            delayed(run_chain)(params, t[1], t[2], t[4]) for t in tasks)
        for k, result in enumerate(stream):
            results.append(result)
            if progress is not None:
                progress((k + 1) / len(tasks), _chain_label(params, tasks[k]) + " (cluster)")
            _check(cancel)
    return results


def _available_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _chain_tasks(params):
    seeds = np.random.SeedSequence(params.seed).spawn(len(params.conditions) * params.n_chains)
    tasks = []
    for c, (temperature, gamma) in enumerate(params.conditions):
        for chain in range(params.n_chains):
            tasks.append((c, temperature, gamma, chain, seeds[c * params.n_chains + chain]))
    return tasks


class _ProgressReporter:
    """Thread-safe accumulation of finished fractions of tasks."""

    def __init__(self, n_tasks, callback):
        self.n_tasks = n_tasks
        self.callback = callback
        self.done = 0.0
        self.lock = threading.Lock()

    def advance(self, fraction_of_task, message):
        with self.lock:
            self.done += fraction_of_task / self.n_tasks
            done = min(1.0, self.done)
        if self.callback is not None:
            self.callback(done, message)


def _assemble(params, tasks, results) -> Dataset:
    per_sample = {k: [] for k in ("coords", "energy", "gamma", "temperature", "chain", "cond")}
    for (cond, temperature, gamma, chain, _), res in zip(tasks, results, strict=True):
        m = res.energy.size
        per_sample["coords"].append(res.coords[: params.samples_per_chain])
        per_sample["energy"].append(res.energy)
        per_sample["gamma"].append(np.full(m, gamma))
        per_sample["temperature"].append(np.full(m, temperature))
        per_sample["chain"].append(np.full(m, cond * params.n_chains + chain, np.int64))
        per_sample["cond"].append(np.full(m, cond, np.int64))
    keep = _first_n_per_condition(np.concatenate(per_sample["cond"]), params.n_samples)
    cat = {k: np.concatenate(v)[keep] for k, v in per_sample.items()}
    return Dataset(
        coords=cat["coords"], energy=cat["energy"], gamma=cat["gamma"],
        temperature=cat["temperature"], chain=cat["chain"], condition=cat["cond"],
        params=params.to_dict(), conditions=_condition_summaries(params, tasks, results),
        seed=params.seed,
    )


def _first_n_per_condition(cond, n):
    """Mask keeping the first n samples of each condition (chains may overshoot n by rounding)."""
    keep = np.zeros(cond.size, bool)
    for c in np.unique(cond):
        keep[np.nonzero(cond == c)[0][:n]] = True
    return keep


def _condition_summaries(params, tasks, results):
    summaries = []
    for c, (temperature, gamma) in enumerate(params.conditions):
        chains = [r for t, r in zip(tasks, results, strict=True) if t[0] == c]
        summaries.append({
            "temperature": temperature,
            "gamma": gamma,
            "samples": min(params.n_samples, sum(r.energy.size for r in chains)),
            "tau": float(np.mean([r.tau for r in chains])),
            "threshold_lag": int(np.max([r.threshold_lag for r in chains])),
            "stride": int(np.max([r.stride for r in chains])),
            "acceptance": float(np.mean([r.acceptance for r in chains])),
            "step_size": float(np.mean([r.step_size for r in chains])),
            "tail": _tail_or_zero(params),
            "chains": [
                {
                    "tau": r.tau, "threshold_lag": r.threshold_lag, "stride": r.stride,
                    "acceptance": r.acceptance, "step_size": r.step_size,
                    "equilibration_sweep": r.equilibration_sweep, "energy_trace": r.trace,
                }
                for r in chains
            ],
        })
    return summaries


def _tail_or_zero(params) -> float:
    """Tail correction of the pair energy when it applies (cut-off, periodic on every axis)."""
    if params.cutoff is None or not periodic_mask(params.periodic, params.dim).all():
        return 0.0
    return tail_correction(params.n_particles, params.box**params.dim, params.dim, params.cutoff)


# The study system: the shipped model is trained on this dataset (docs/what-we-tried.md), and
# the training benchmark times the defaults on it (16 000 configurations).
STUDY_PARAMS = SimulationParams(n_particles=30, dim=3, box=5.0, gammas=(0.0, 0.5, 1.0, 2.0),
                                n_samples=4000, n_chains=4, seed=0)
