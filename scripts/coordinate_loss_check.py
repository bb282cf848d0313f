"""Can a coordinate loss do what the distance (stress) loss cannot? A feasibility check.

An autoencoder with the distances VAE's row encoder (distance + height matrix in) and a dense
decoder emitting coordinates is trained on a few hundred configurations with an MSE on
coordinates. Every 2 epochs each target is re-ordered to match the decoder's output and
aligned (Kabsch) into the decoder's own frame, since a distance matrix fixes neither. The
training RMSD is printed as it goes; compare with ``scripts/overfit_check.py``, where the
stress-loss VAE stays at the same-condition baseline (0.65-0.7 sigma on the study's system).

    python scripts/coordinate_loss_check.py cache/datasets/study.joblib --epochs 300
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ljvae_core.artifacts import load_dataset  # noqa: E402
from ljvae_core.features import DistanceMatrix  # noqa: E402
from ljvae_core.geometry import kabsch, matched_rmsd, matching_orders  # noqa: E402


def autoencoder(n_particles: int, latent: int = 64):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input((n_particles, n_particles, 3))
    h = layers.Conv2D(64, (1, n_particles), activation="relu")(x)
    h = layers.Conv2D(64, 1, activation="relu")(h)
    h = layers.Dense(256, activation="relu")(layers.Flatten()(h))
    h = layers.Dense(256, activation="relu")(layers.Dense(latent)(h))
    h = layers.Dense(512, activation="relu")(h)
    out = layers.Reshape((n_particles, 3))(layers.Dense(n_particles * 3)(h))
    model = keras.Model(x, out)
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--per-chain", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    ds = load_dataset(args.dataset).first_of_each_chain(args.per_chain)
    coords = ds.coords
    rep = DistanceMatrix(ds.box, ds.dim).fit(coords)
    x = rep.transform(coords).astype("float32")
    ordered = rep.sort(coords)
    target = (ordered - ordered.mean(axis=1, keepdims=True)).astype("float32")
    model = autoencoder(coords.shape[1])
    for stretch in range(args.epochs // 2):
        model.fit(x, target, epochs=2, batch_size=32, verbose=0)
        decoded = model.predict(x, verbose=0).astype(np.float64)
        matched = np.take_along_axis(ordered, matching_orders(ordered, decoded)[..., None], 1)
        target = kabsch(matched, decoded)
        target = (target - target.mean(axis=1, keepdims=True)).astype("float32")
        if (stretch + 1) % 25 == 0:
            rmsd = matched_rmsd(decoded, coords)
            print(f"{2 * (stretch + 1)} epochs: training RMSD median {np.median(rmsd):.3f} "
                  f"sigma", flush=True)


if __name__ == "__main__":
    main()
