"""The joint physics penalty of decoded configurations: what it charges and on what scale.

A decoded configuration pays for an LJ energy per particle above ``energy_cap`` (the highest
one among the training configurations) and, when its coordinates are decoded and the box has
walls, for overflowing them. Training adds it to the VAE's loss with ``weight``
(:class:`ljvae_core.vae.VAE`); after training it refines the generation priors
(:mod:`ljvae_core.calibration`). Its TensorFlow side is
:func:`ljvae_core.physics_tf.decoded_penalty`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .potential import batch_pair_energies


@dataclass(frozen=True)
class PhysicsPenalty:
    """Settings of the joint physics penalty.

    weight: its weight in a loss. energy_cap: the LJ energy per particle (epsilon) above
    which decoded configurations pay. kind: what the decoder emits, "distances" (matrices
    in units of ``scale``) or "coords" (coordinates in [-1, 1], times ``scale``).
    n_particles, dim: the configurations' shape. scale: model units to sigma.
    box: the side of the box whose walls decoded coordinates must stay within (None: no
    walls). side_walls: whether the side axes have walls too. wall_tolerance: overflow
    (sigma) past the ceiling and the side walls that is free. sigma: the length at which the
    pair energy crosses zero (2^(-1/6) for the LJ13 cluster, whose u(r) is the standard one
    at r / sigma)."""

    weight: float
    energy_cap: float
    kind: str
    n_particles: int
    dim: int
    scale: float
    box: float | None = None
    side_walls: bool = True
    wall_tolerance: float = 0.0
    sigma: float = 1.0

    @classmethod
    def for_dataset(cls, dataset, representation, settings, idx, weight: float):
        """The penalty for a model of ``settings`` on ``dataset`` (its configurations ``idx``
        set the cap); None when ``weight`` is 0."""
        if weight <= 0:
            return None
        system = dataset.system
        coords = np.ascontiguousarray(dataset.coords[idx] / system.sigma)
        pair = batch_pair_energies(coords, system.kernel_box, system.mask,
                                   np.inf) / dataset.n_particles
        distances = settings.representation == "distances"
        return cls(weight=float(weight), energy_cap=float(pair.max()),
                   kind="distances" if distances else "coords",
                   n_particles=dataset.n_particles, dim=dataset.dim,
                   scale=float(representation.scale if distances else 0.5 * dataset.box),
                   # In the mds frame heights are absolute; a periodic vertical axis has no
                   # walls, and a frame turned about the vertical mixes the side axes.
                      box=float(system.box) if system.walls_up and not system.free else None,
                   side_walls=system.walls_across, sigma=system.sigma)

    def with_tolerance(self, tolerance: float) -> PhysicsPenalty:
        return replace(self, wall_tolerance=float(tolerance))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> PhysicsPenalty | None:
        """From :meth:`to_dict` (None stays None); keys it does not know are ignored."""
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
