"""Round-trip errors of the representations on Monte Carlo configurations (docs/representations.md).

    python -m experiments.representations [--samples 200]

Simulates the study system (30 particles, 3D, L = 5, T = 1, gamma in {0, 1}),
sends every configuration through transform and inverse_transform, and prints a Markdown
table of the permutation-invariant aligned RMSD (sigma) to the original.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ljvae_core.features import DistanceMatrix, SortedCoordinates, VoxelGrid
from ljvae_core.geometry import matched_rmsd
from ljvae_core.sampling import SimulationParams, simulate

CASES = [
    ("coords", "sorted by x", lambda L: SortedCoordinates(L, 3, "x")),
    ("distances", "classical MDS", lambda L: DistanceMatrix(L, 3, heights=False)),
    ("distances", "MDS + height channels", lambda L: DistanceMatrix(L, 3)),
    *[("voxels", f"n = {n}, h = {5 / n:.3g}, w = {w:g}",
       lambda L, n=n, w=w: VoxelGrid(L, 3, n_cells=n, smearing=w))
      for n, w in ((16, 0.0), (32, 0.0), (64, 0.0), (16, 0.3), (32, 0.15), (32, 0.3))],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="configurations per gamma")
    parser.add_argument("--only", nargs="*", help="representations to run (default: all)")
    args = parser.parse_args()
    params = SimulationParams(n_particles=30, dim=3, box=5.0, gammas=(0.0, 1.0),
                              n_samples=args.samples, n_chains=2, seed=7)
    coords = simulate(params).coords
    print(f"{len(coords)} configurations of 30 particles, 3D, L = 5, gamma in {{0, 1}}\n")
    print("| representation | settings | input shape | median RMSD (σ) | 90th pct (σ) | s |")
    print("|---|---|---|---|---|---|")
    only = set(args.only or [])
    for kind, settings, make in CASES:
        if only and kind not in only:
            continue
        rep = make(params.box).fit(coords)
        start = time.perf_counter()
        back = rep.inverse_transform(rep.transform(coords))
        seconds = time.perf_counter() - start
        err = matched_rmsd(back, coords)
        print(f"| {kind} | {settings} | {rep.input_shape()} | {np.median(err):.3g} | "
              f"{np.percentile(err, 90):.3g} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
