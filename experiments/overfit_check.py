"""Can the distances VAE memorize a few hundred configurations? Prints its training RMSD.

A diagnostic for the reconstruction target (median RMSD ≤ 0.25σ). It trains a distances model
at beta = 0.01 (nearly an autoencoder, no early stopping) on the first `--per-chain`
samples of every chain of a dataset, then prints the median and 90th-percentile matched
RMSD of the training configurations themselves. A network that cannot get these well below
the same-condition baseline (0.70 sigma on the study's system) is limited by its loss or
architecture, not by data or the KL weight.

    python -m experiments.overfit_check cache/datasets/study.joblib --epochs 300

With ``--encoder rows --coordinate-weight 0`` (the model before the mds encoder: decoded
coordinates scored through their distances alone) it stays at 0.65 sigma.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ljvae_core.artifacts import load_dataset  # noqa: E402
from ljvae_core.geometry import matched_rmsd  # noqa: E402
from ljvae_core.settings import TrainSettings  # noqa: E402
from ljvae_core.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--per-chain", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--match-every", type=int, default=2)
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--encoder", choices=("mds", "rows", "conv"),
                        default=TrainSettings.distance_encoder)
    parser.add_argument("--coordinate-weight", type=float,
                        default=TrainSettings.coordinate_weight)
    args = parser.parse_args()
    small = load_dataset(args.dataset).first_of_each_chain(args.per_chain)
    settings = TrainSettings(latent_dim=64, epochs=args.epochs, beta=args.beta, batch_size=32,
                             patience=10**6, lr_patience=0, match_every=args.match_every,
                             distance_encoder=args.encoder,
                             coordinate_weight=args.coordinate_weight)
    trained = train(small, settings)
    seen = trained.meta["train_indices"]
    rmsd = matched_rmsd(trained.reconstruct(small.coords[seen]), small.coords[seen])
    print(f"{len(seen)} training configurations after {args.epochs} epochs: median RMSD "
          f"{np.median(rmsd):.3f} sigma, 90th percentile {np.percentile(rmsd, 90):.3f} sigma "
          f"(KL {trained.history['kl'][-1]:.0f} nats)")


if __name__ == "__main__":
    main()
