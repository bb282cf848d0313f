"""The space configurations live in: :class:`System` (box, dimension, periodic axes, cut-off,
potential).

One object instead of loose ``(box, periodic_mask, rc2)`` triplets and ``params["periodic"]``
lookups: a dataset's (:attr:`ljvae_core.sampling.Dataset.system`) and a trained model's
(:attr:`ljvae_core.trained.TrainedModel.system`) come from the same simulation parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .potential import (
    LJ13_SIGMA,
    cluster_energies,
    configuration_energies,
    cutoff_squared,
    periodic_mask,
)

# "lj-gravity": u(r) = 4 (r^-12 - r^-6) plus gravity 4 gamma sum z, in a box;
# "lj13": the free cluster's r^-12 - 2 r^-6 plus a tether to the centre of mass, no box.
POTENTIALS = ("lj-gravity", "lj13")


@dataclass(frozen=True)
class System:
    """A box of side ``box`` in ``dim`` dimensions (the last axis is up), periodic along the
    axes named in ``periodic`` ('', 'x', 'xy', ...; reflecting walls elsewhere), with the pair
    term truncated at ``cutoff`` (None: no cut-off); or, with ``box`` None, a free cluster.
    ``potential`` is one of :data:`POTENTIALS`."""

    box: float | None
    dim: int
    periodic: str = ""
    cutoff: float | None = None
    potential: str = "lj-gravity"

    def __post_init__(self):
        if self.potential not in POTENTIALS:
            raise ValueError(f"unknown potential {self.potential!r}; choose one of "
                             f"{', '.join(POTENTIALS)}")
        if self.box is None and self.periodic:
            raise ValueError("a free cluster (no box) has no periodic axis")

    @classmethod
    def from_params(cls, params: dict) -> System:
        """From simulation parameters (a dataset's ``params``, a model's ``dataset_params``)."""
        cutoff, box = params.get("cutoff"), params.get("box")
        return cls(box=None if box is None else float(box), dim=int(params["dim"]),
                   periodic="".join(params.get("periodic", "") or "").lower(),
                   cutoff=None if cutoff is None else float(cutoff),
                   potential=params.get("potential", "lj-gravity"))

    @property
    def free(self) -> bool:
        """Whether this is a free cluster: no box, no walls, no gravity."""
        return self.box is None

    @property
    def sigma(self) -> float:
        """The distance at which the pair energy crosses zero: 1, or 2^(-1/6) for LJ13."""
        return LJ13_SIGMA if self.potential == "lj13" else 1.0

    @property
    def kernel_box(self) -> float:
        """The box length the distance kernels take: a free cluster has no periodic axis, so
        they never read it there."""
        return 1.0 if self.box is None else float(self.box)

    @property
    def mask(self) -> np.ndarray:
        """Per axis, 1.0 where periodic (minimum image) and 0.0 at walls (the kernels' form)."""
        return periodic_mask(self.periodic, self.dim)

    @property
    def cutoff_squared(self) -> float:
        return cutoff_squared(self.cutoff)

    @property
    def walls_up(self) -> bool:
        """Whether the vertical axis has a floor and a ceiling (it is not periodic)."""
        return not self.mask[-1]

    @property
    def walls_across(self) -> bool:
        """Whether every side axis has walls (none of them periodic)."""
        return not self.mask[:-1].any()

    def placed(self, coords) -> np.ndarray:
        """Configurations (M, N, d) as this system keeps them: a free cluster centred on its
        centre of mass, coordinates on periodic axes wrapped into [0, L) (the project's
        convention); axes with walls are left as they are (:meth:`outside_walls`)."""
        coords = np.array(coords, dtype=np.float64)
        if self.free:
            return coords - coords.mean(axis=-2, keepdims=True)
        for axis, letter in enumerate("xyz"[:self.dim]):
            if letter in self.periodic:
                coords[..., axis] %= self.box
        return coords

    def outside_walls(self, coords, tolerance: float = 0.0) -> str | None:
        """The first axis with walls along which a particle of ``coords`` lies outside
        [0, L] by more than ``tolerance``, or None (always None for a free cluster)."""
        if self.free:
            return None
        for axis, letter in enumerate("xyz"[:self.dim]):
            values = coords[..., axis]
            if letter not in self.periodic and (values.min() < -tolerance
                                                or values.max() > self.box + tolerance):
                return letter
        return None

    def energies(self, coords, gamma: float = 0.0) -> np.ndarray:
        """Total energy of each configuration (M, N, d) in this system's potential: LJ +
        gravity at ``gamma``, or the LJ13 cluster's (each pair counted once; gamma unused)."""
        if self.potential == "lj13":
            return cluster_energies(coords)
        return configuration_energies(coords, self.kernel_box, gamma, self.periodic,
                                      self.cutoff)
