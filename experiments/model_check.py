"""The documented larger-sample figures for trained models, one JSON line per model.

``evaluate`` draws 500 generated samples (raw validity ±1 %); the evaluation table's † column
and the seed comparison need more. Per model, on its held-out chains of the dataset:

- ``rmsd_median`` / ``rmsd_p90``: matched, aligned RMSD (sigma) of 1000 reconstructions;
- ``valid_raw``: validity (no pair under 0.8 sigma) of ``--samples`` fitted-prior samples,
  decoded in blocks of 2500, with each block's figure (their spread is the sampling error);
  for a prior refined by the joint physics loss, ``plain`` holds the same figures for the
  plain mixture it was refined from (same decoder, same draws), and ``prior_ll`` the mean
  log-likelihood of held-out posterior means under each prior (what the refinement costs
  the density fit);
- ``gamma_r2``: the ridge probe latent -> gamma, scored on the model's validation chains;
- ``energy_w1_quenched_vs_quenched_mc``: U/N W1 of 2000 quenched samples against as many
  equally quenched Monte Carlo configurations (100 zero-temperature sweeps of 0.1 sigma).

    python -m experiments.model_check cache/datasets/study.joblib cache/models/A cache/models/B
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ljvae_core.analysis import energies_per_particle, valid_fraction  # noqa: E402
from ljvae_core.artifacts import load_dataset  # noqa: E402
from ljvae_core.evaluation import (  # noqa: E402
    held_out_indices,
    quench,
)
from ljvae_core.geometry import matched_rmsd  # noqa: E402
from ljvae_core.latent import gamma_clustering, unseen_chains  # noqa: E402
from ljvae_core.model_store import load_model  # noqa: E402

BLOCK = 2500


def reconstruction(trained, dataset, idx, rng) -> dict:
    pick = np.sort(rng.choice(idx, min(1000, len(idx)), replace=False))
    rmsd = matched_rmsd(trained.reconstruct(dataset.coords[pick]), dataset.coords[pick])
    return {"rmsd_median": float(np.median(rmsd)), "rmsd_p90": float(np.percentile(rmsd, 90))}


def raw_validity(trained, dataset, samples: int, prior: str = "default") -> dict:
    blocks = [valid_fraction(trained.generate(BLOCK, seed=seed, prior=prior), dataset.system)
              for seed in range(max(1, samples // BLOCK))]
    return {"valid_raw": float(np.mean(blocks)), "valid_raw_blocks": blocks}


def unrefined_prior_check(trained, dataset, held_out, samples: int) -> dict:
    """The refined prior against the plain mixture it came from, on the same decoder;
    ``held_out``: the posterior means of the held-out configurations."""
    if "unrefined" not in trained.available_priors():
        return {}
    return {"unrefined": raw_validity(trained, dataset, samples, prior="unrefined"),
            "prior_ll": {name: float(prior.log_likelihood(held_out).mean()) for name, prior in
                         (("default", trained.latent_prior),
                          ("unrefined", trained.unrefined_latent_prior))}}


def quenched_energy_w1(trained, dataset, idx, rng, n: int = 2000) -> float:
    pick = rng.choice(idx, min(n, len(idx)), replace=False)
    gamma, system = dataset.gamma[pick], dataset.system
    generated = quench(trained.generate(len(pick), gamma, dataset.temperature[pick], seed=7),
                       system, gamma)
    reference = quench(dataset.coords[pick], system, gamma, seed=1)
    # LJ energy only, as evaluate compares it: gravity shows in the heights.
    energy = [energies_per_particle(c, system, 0.0) for c in (generated, reference)]
    return float(wasserstein_distance(*energy))


def check(path: str, dataset, samples: int) -> dict:
    trained = load_model(path)
    idx = held_out_indices(trained, dataset)
    rng = np.random.default_rng(0)
    latent = trained.encode(dataset.coords, dataset.gamma, dataset.temperature)
    probe = gamma_clustering(latent, dataset.gamma, dataset.chain,
                             test=unseen_chains(trained, dataset))
    return {"model": path, **reconstruction(trained, dataset, idx, rng),
            **raw_validity(trained, dataset, samples), "gamma_r2": probe["gamma_r2"],
            "energy_w1_quenched_vs_quenched_mc": quenched_energy_w1(trained, dataset, idx, rng),
            **unrefined_prior_check(trained, dataset, latent[idx], samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--samples", type=int, default=10_000,
                        help="fitted-prior samples for the raw validity")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    for path in args.models:
        print(json.dumps(check(path, dataset, args.samples)), flush=True)


if __name__ == "__main__":
    main()
