"""LJ13: the cluster's own Metropolis chain against the published split, and generated clusters
relaxed by K sweeps of it, judged by the benchmark's figures and the classifier test.

    python -m experiments.lj13_relaxation [--models M ...] [--dataset D] [--samples 10000]

Without --models it makes everything itself: the split imported as in docs/data.md and
``train D --seed S`` for S = 0, 1, 2 (the project's defaults). Each model generates
--samples clusters from its default (narrowed) prior and from its fitted mixture at full
spread (``generate --prior unrefined``), raw and after K sweeps; every figure is against the
model's held-out clusters, the floor being the others. Prints Markdown tables.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SWEEPS = (0, 20, 50, 100, 200)
CHAIN_SWEEPS = 200_000


def _build(folder: Path) -> tuple[Path, list[Path]]:
    from ljvae_core.lj13 import REFERENCE

    data = folder / "D.joblib"
    run = [sys.executable, "-m", "ljvae_core"]
    subprocess.run([*run, "import", REFERENCE, "--potential", "lj13", "--no-box", "--out",
                    data], check=True, capture_output=True)
    models = [folder / f"M{seed}" for seed in range(3)]
    for seed, model in enumerate(models):
        subprocess.run([*run, "train", data, "--seed", str(seed), "--out", model], check=True,
                       capture_output=True)
    return data, models


def chain_figures() -> str:
    """One chain from a split cluster: sweeps per second, energy tau, mean energy."""
    from ljvae_core.cluster_mc import ClusterSampler
    from ljvae_core.lj13 import reference_clusters
    from ljvae_core.potential import cluster_energies
    from ljvae_core.sampling import integrated_autocorrelation_time, tune_step_size

    reference = reference_clusters()
    split = cluster_energies(reference, ordered_pairs=True)
    chain = ClusterSampler(reference[0], 1.0, 0.2, seed=0)
    tune_step_size(chain, 0.4, 200)
    chain.run(1000, trace=False)
    start = time.perf_counter()
    energies = chain.run(CHAIN_SWEEPS)[0]
    rate = CHAIN_SWEEPS / (time.perf_counter() - start)
    tau = integrated_autocorrelation_time(energies)
    error = energies.std() * np.sqrt(2 * tau / len(energies))
    return (f"chain: {rate:,.0f} sweeps/s at N = 13, energy tau {tau:.0f} sweeps, mean energy "
            f"{energies.mean():.2f} ± {error:.2f} (split {split.mean():.2f} ± "
            f"{split.std() / np.sqrt(len(split)):.2f})")


def model_rows(model_path: Path, dataset, samples: int) -> list[str]:
    """One Markdown row per (prior, K) of one model."""
    from ljvae_core.evaluation import held_out_indices
    from ljvae_core.lj13 import CLUSTER, figures
    from ljvae_core.model_store import load_model
    from ljvae_core.statepoints import relaxed_series
    from ljvae_core.twosample import classifier_auc

    trained = load_model(model_path)
    held = held_out_indices(trained, dataset)
    reference, rest = dataset.coords[held], np.delete(dataset.coords, held, axis=0)
    floor = figures(rest, reference)
    floor_auc = classifier_auc(rest, reference, CLUSTER)
    rows = []
    for prior in ("default", "unrefined"):
        start = time.perf_counter()
        raw = trained.generate(samples, seed=0, prior=prior)
        decoding = time.perf_counter() - start
        series, seconds = relaxed_series(raw, CLUSTER, 1.0, 0.0, SWEEPS, seed=0)
        for k, coords in series.items():
            f = figures(coords, reference)
            rows.append(f"| {model_path.name} | {prior} | {k} | {f['energy_w2']:.2f} "
                        f"({floor['energy_w2']:.2f}) | {f['distance_w1']:.4f} "
                        f"({floor['distance_w1']:.4f}) | {f['mean_energy']:.2f} | "
                        f"{classifier_auc(coords, reference, CLUSTER):.2f} ({floor_auc:.2f}) | "
                        f"{samples / (decoding + seconds[k]):,.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="trained LJ13 models (with --dataset)")
    parser.add_argument("--dataset", help="the imported split they were trained on")
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args()
    from ljvae_core.artifacts import load_dataset

    print(chain_figures())
    with tempfile.TemporaryDirectory() as tmp:
        data, models = ((Path(args.dataset), [Path(m) for m in args.models]) if args.models
                        else _build(Path(tmp)))
        dataset = load_dataset(data)
        print("\n| model | prior | sweeps | energy W2 (floor) | distance W1 (floor) | "
              "mean energy | classifier AUC (floor) | clusters/s |")
        print("|---|---|---|---|---|---|---|---|")
        for model in models:
            print("\n".join(model_rows(model, dataset, args.samples)), flush=True)


if __name__ == "__main__":
    main()
