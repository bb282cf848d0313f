"""Import speed: a 10 000-frame extended XYZ trajectory of 30 particles (random positions in a
box of side 5, gamma in each frame's info) written once, then imported by the command line's
code path; prints the wall time of the import as JSON.

    python -m experiments.import_check [--frames 10000] [--particles 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ljvae_core.artifacts import write_dataset_file
from ljvae_core.io import write_extxyz
from ljvae_core.trajectory import import_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--particles", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "run.xyz"
        coords = rng.uniform(0.0, 5.0, (args.frames, args.particles, 3))
        write_extxyz(source, coords, 5.0, info={"gamma": np.full(args.frames, 0.5)})
        megabytes = source.stat().st_size / 2**20
        seconds = []
        for k in range(args.repeats):
            start = time.perf_counter()
            write_dataset_file(import_dataset([source]), Path(folder) / f"d{k}.joblib")
            seconds.append(time.perf_counter() - start)
    print(json.dumps({"frames": args.frames, "particles": args.particles,
                      "file_mb": round(megabytes, 1),
                      "import_seconds": seconds}))


if __name__ == "__main__":
    main()
