"""The space configurations live in: :class:`System` (box, dimension, periodic axes, cut-off).

One object instead of loose ``(box, periodic_mask, rc2)`` triplets and ``params["periodic"]``
lookups: a dataset's (:attr:`ljvae_core.sampling.Dataset.system`) and a trained model's
(:attr:`ljvae_core.trained.TrainedModel.system`) come from the same simulation parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .potential import configuration_energies, cutoff_squared, periodic_mask


@dataclass(frozen=True)
class System:
    """A box of side ``box`` in ``dim`` dimensions (the last axis is up), periodic along the
    axes named in ``periodic`` ('', 'x', 'xy', ...; reflecting walls elsewhere), with the pair
    term truncated at ``cutoff`` (None: no cut-off)."""

    box: float
    dim: int
    periodic: str = ""
    cutoff: float | None = None

    @classmethod
    def from_params(cls, params: dict) -> System:
        """From simulation parameters (a dataset's ``params``, a model's ``dataset_params``)."""
        cutoff = params.get("cutoff")
        return cls(box=float(params["box"]), dim=int(params["dim"]),
                   periodic="".join(params.get("periodic", "") or "").lower(),
                   cutoff=None if cutoff is None else float(cutoff))

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

    def energies(self, coords, gamma: float = 0.0) -> np.ndarray:
        """Total energy (LJ + gravity at ``gamma``) of each configuration (M, N, d)."""
        return configuration_energies(coords, self.box, gamma, self.periodic, self.cutoff)
