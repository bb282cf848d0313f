"""Speed benchmark of the Monte Carlo engine (``python -m ljvae_core bench``).

Systems:
- ``n30``: the study system, 30 particles, 3D, L = 5, T = 1, gamma = 0.1, no cut-off.
- ``n4000``: 4000 particles at density 0.5, T = 1, gamma = 0, cut-off 3, periodic x and y.
- ``sampling``: wall time for 8000 decorrelated samples of ``n30``, kernel start-up included.
- ``geometry``: 10 000 exact distance matrices of 30 particles back to aligned coordinates
  (classical MDS + Kabsch), with the worst RMSD.
- ``training``: seconds per epoch of the dense reference VAE (8000 samples of 30
  particles in 2D, 60 -> 45 -> 22 -> 2), median over a few epochs after the first; beside it
  (not with ``--quick``) ``default_training``: the wall time of training with every default
  on the study dataset (simulated first, not counted) and then fitting what a model keeps
  besides its weights, with its split.

When a C++ compiler is at hand, the straightforward C++ reference kernel shipped with the
package (``data/ref_mc.cpp``) is compiled with ``-O3 -march=native`` and run on the same
systems (without cut-off for n4000, as its code has none), and the speed-ups are reported
beside our figures. On n30 the two take turns, three rounds each, and the speed-up is the
median of the rounds' ratios with their range beside it: on a shared machine whose speed
drifts by a third within a minute, figures measured minutes apart do not compare.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

N30 = {"n": 30, "dim": 3, "box": 5.0, "temperature": 1.0, "gamma": 0.1, "delta": 0.2}
REFERENCE_SOURCE = Path(__file__).resolve().parent / "data" / "ref_mc.cpp"
N4000 = {"n": 4000, "dim": 3, "box": (4000 / 0.5) ** (1 / 3), "temperature": 1.0, "gamma": 0.0,
         "delta": 0.2}


def _lattice(n, dim, box):
    from .sampling import initial_configuration

    return initial_configuration(n, dim, box, np.random.default_rng(1))


def mc_moves_per_second(system: dict, sweeps: int, cutoff=None, periodic="") -> dict:
    """Moves per second of the production kernel on a system (after a warm-up sweep)."""
    from .mc import MetropolisSampler

    sampler = MetropolisSampler(
        _lattice(system["n"], system["dim"], system["box"]), system["box"],
        system["temperature"], system["gamma"], periodic, cutoff, system["delta"], seed=1,
    )
    sampler.run(2, trace=False)
    sampler.reset_counters()
    start = time.perf_counter()
    sampler.run(sweeps, trace=False)
    seconds = time.perf_counter() - start
    return {
        "moves_per_s": sweeps * system["n"] / seconds,
        "acceptance": sampler.acceptance,
        "cell_list": sampler.uses_cell_list,
    }


def sampling_seconds(n_samples: int = 8000) -> dict:
    """Wall time to produce n_samples decorrelated samples of the n30 system (4 chains)."""
    from .sampling import SimulationParams, simulate

    params = SimulationParams(
        n_particles=N30["n"], dim=N30["dim"], box=N30["box"],
        temperatures=(N30["temperature"],), gammas=(N30["gamma"],), n_samples=n_samples,
        n_chains=4, seed=1,
    )
    start = time.perf_counter()
    ds = simulate(params)
    return {
        "samples": len(ds),
        "seconds": time.perf_counter() - start,
        "tau": ds.conditions[0]["tau"],
        "stride": ds.conditions[0]["stride"],
    }


def geometry_seconds(n_matrices: int = 10_000, n_particles: int = 30) -> dict:
    """Wall time of classical MDS + Kabsch for a batch of exact distance matrices."""
    from .geometry import classical_mds, kabsch, pairwise_distances, rmsd

    coords = np.random.default_rng(0).uniform(0.0, 5.0, (n_matrices, n_particles, 3))
    distances = pairwise_distances(coords)
    start = time.perf_counter()
    aligned = kabsch(classical_mds(distances, 3), coords)
    seconds = time.perf_counter() - start
    return {"matrices": n_matrices, "seconds": seconds,
            "max_rmsd": float(rmsd(aligned, coords).max())}


def dense_epoch_seconds(n_samples: int = 8000, epochs: int = 6, batch_size: int = 256) -> dict:
    """Median epoch time of the dense reference VAE (imports TensorFlow)."""
    import keras

    from .models import build_vae
    from .training import STEPS_PER_EXECUTION, EpochTimer

    x = np.random.default_rng(0).uniform(-1, 1, (n_samples, 60)).astype("float32")
    model = build_vae("coords", (60,), 2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=STEPS_PER_EXECUTION)
    timer = EpochTimer()
    model.fit(x, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
    # The first epoch compiles the step: left out.
    return {"samples": n_samples, "batch_size": batch_size,
            "dense_epoch_seconds": float(np.median(timer.seconds[1:]))}


def default_training_seconds() -> dict:
    """Wall seconds of :func:`ljvae_core.training.train` with its defaults on the study
    dataset, then :func:`ljvae_core.calibration.attach_after_training`, split into what runs
    before the first epoch ends (inputs, compilation, that epoch), the other epochs, and the
    priors and anomaly scorer (imports TensorFlow; the command line adds its start-up)."""
    from .calibration import attach_after_training
    from .sampling import STUDY_PARAMS, simulate
    from .settings import TrainSettings
    from .training import train

    dataset = simulate(STUDY_PARAMS)
    marks = [time.perf_counter()]
    trained = train(dataset, TrainSettings(), lambda _: marks.append(time.perf_counter()))
    trained_at = time.perf_counter()
    attach_after_training(trained, dataset)
    done = time.perf_counter()
    return {"samples": len(dataset.coords), "epochs": trained.meta["epochs_run"],
            "seconds": done - marks[0], "until_first_epoch_ends": marks[1] - marks[0],
            "other_epochs": marks[-1] - marks[1], "priors_and_scorer": done - trained_at,
            "seconds_per_epoch": trained.meta["seconds_per_epoch"]}


def compile_reference(source: Path, directory: Path) -> Path | None:
    """The C++ reference built in ``directory``; None when no compiler is available."""
    compiler = shutil.which("g++")
    if compiler is None:
        return None
    exe = directory / "ref_mc"
    subprocess.run([compiler, "-O3", "-march=native", "-o", exe, source], check=True)
    return exe


def reference_moves_per_second(exe: Path, system: dict, moves: int) -> float:
    """Moves per second of one run of the compiled C++ reference."""
    args = [system["n"], system["dim"], system["box"], system["temperature"],
            system["gamma"], system["delta"], moves, 1]
    out = subprocess.run([exe, *map(str, args)], check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout)["moves_per_s"])


def run_benchmark(quick: bool = False) -> dict:
    """All figures as one dict (quick: fewer moves, for tests)."""
    scale = 0.05 if quick else 1.0
    result = {
        "mc": {
            "n30": mc_moves_per_second(N30, math.ceil(400_000 * scale)),
            "n4000": mc_moves_per_second(N4000, math.ceil(200 * scale), 3.0, "xy"),
        },
        "sampling": sampling_seconds(400 if quick else 8000),
        "geometry": geometry_seconds(500 if quick else 10_000),
        "training": dense_epoch_seconds(800 if quick else 8000, 3 if quick else 6),
    }
    if not quick:
        result["default_training"] = default_training_seconds()
        _add_reference(result)
    return result


def _add_reference(result: dict, rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_reference(REFERENCE_SOURCE, Path(tmp))
        if exe is None:
            return
        ours, ref = [], []
        for _ in range(rounds):  # taking turns, so that both see the machine's same moods
            ours.append(mc_moves_per_second(N30, 200_000)["moves_per_s"])
            ref.append(reference_moves_per_second(exe, N30, 10_000_000))
        ratios = np.divide(ours, ref)
        result["mc"]["n30"].update(rounds_moves_per_s=ours, reference_moves_per_s=ref,
                                   speedup=float(np.median(ratios)),
                                   speedup_range=[float(ratios.min()), float(ratios.max())])
        entry = result["mc"]["n4000"]
        entry["reference_moves_per_s"] = reference_moves_per_second(exe, N4000, 400_000)
        entry["speedup"] = entry["moves_per_s"] / entry["reference_moves_per_s"]
        entry["reference_note"] = "C++ reference without cut-off, same N"
