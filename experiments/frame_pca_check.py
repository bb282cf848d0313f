"""How linear are configurations in the mds encoder's frame? A PCA bound, no network.

Held-out chains of a dataset are reconstructed by PCA with k components fitted on the training
chains, with the particles in three orders: as the distance matrix lists them (distance from
the box's corner) in the box's own frame, and as :class:`ljvae_core.features.ShapeFrame`
puts them (turned, shifted and re-ordered onto the training set's mean shape), with and
without its re-ordering. Prints the median and 90th-percentile RMSD (unmatched, so an upper
bound on the matched RMSD) per k: what a linear decoder with a k-dimensional latent reaches.

    python -m experiments.frame_pca_check cache/datasets/study.joblib
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ljvae_core.artifacts import load_dataset  # noqa: E402
from ljvae_core.features import DistanceMatrix, ShapeFrame  # noqa: E402
from ljvae_core.training import split_by_chain  # noqa: E402


def pca_rmsd(train, test, k):
    pca = PCA(k).fit(train.reshape(len(train), -1))
    back = pca.inverse_transform(pca.transform(test.reshape(len(test), -1)))
    return np.sqrt(((back.reshape(test.shape) - test) ** 2).sum(-1).mean(-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--every", type=int, default=4, help="use every k-th sample")
    parser.add_argument("--components", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()
    ds = load_dataset(args.dataset)
    train_idx, test_idx = split_by_chain(ds, 0.25, 0)
    train_idx, test_idx = train_idx[::args.every], test_idx[::args.every]
    rep = DistanceMatrix(ds.box, ds.dim).fit(ds.coords[train_idx])
    orders = {"distance from the corner, box frame": (rep.sort(ds.coords[train_idx]),
                                                      rep.sort(ds.coords[test_idx]))}
    for reorder in (False, True):
        frame = ShapeFrame(rep, reorder=reorder).fit(rep.transform(ds.coords[train_idx]))
        orders[f"ShapeFrame(reorder={reorder})"] = tuple(
            frame.transform(rep.transform(ds.coords[idx]))[1] for idx in (train_idx, test_idx))
    for name, (train, test) in orders.items():
        for k in args.components:
            rmsd = pca_rmsd(train, test, k)
            print(f"{name}, {k} components: median {np.median(rmsd):.3f} sigma, "
                  f"90th percentile {np.percentile(rmsd, 90):.3f} sigma", flush=True)


if __name__ == "__main__":
    main()
