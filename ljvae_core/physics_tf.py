"""The physics of decoded configurations in TensorFlow (Keras ops), differentiable: the LJ
energy from distances, the walls' overflow, and the joint physics penalty they make
(:class:`ljvae_core.penalty.PhysicsPenalty` holds its settings). The NumPy originals of these
formulas are :mod:`ljvae_core.potential`; these are the softened forms a loss can follow.
"""

from __future__ import annotations

import math

from keras import ops

from .penalty import PhysicsPenalty

# Distances are floored here before entering r^-12, so one overlapping pair gives a large but
# finite energy and a usable gradient.
PHYSICS_MIN_DISTANCE = 0.6
# Energy per particle over which the physics penalty's softplus bends: a sharp bend keeps the
# pressure on the excess over the cap; a soft one (1) pushes every decoded energy down, at a
# large cost in reconstruction error (docs/what-we-tried.md).
PHYSICS_SOFTNESS = 0.1


def lj_energy_from_distances(distances, n_particles: int, sigma: float = 1.0):
    """LJ energy per particle of (B, N, N) distance matrices (upper triangle), u(r) crossing
    zero at ``sigma``."""
    r = ops.maximum(distances / sigma, PHYSICS_MIN_DISTANCE)
    inv6 = ops.power(r, -6.0)
    pair = 4.0 * (inv6 * inv6 - inv6)
    upper = ops.triu(ops.ones((n_particles, n_particles)), k=1)
    return ops.sum(pair * upper, axis=(1, 2)) / n_particles


def wall_overflow(coords, box: float, side_walls: bool = True, turns: int = 12,
                  tolerance: float = 0.0):
    """Squared overflow (sigma^2) of (B, N, d) coordinates in a frame of their own (heights
    absolute, turned and shifted across) out of a box of side ``box``: heights below the floor
    or above the ceiling, plus, with side walls, how far the sideways extent exceeds the box
    in the best of ``turns`` turns about the vertical (in 2D a mirror changes no extent).
    The configuration's wall energy, softened: hard walls make it infinite. Overflow up to
    ``tolerance`` (sigma) past the ceiling and the side walls is free."""
    limit = box + tolerance
    heights = coords[..., -1]
    vertical = ops.sum(ops.square(ops.relu(-heights)) + ops.square(ops.relu(heights - limit)),
                       axis=-1)
    if not side_walls:
        return vertical
    dim = coords.shape[-1]
    if dim == 2:
        return vertical + ops.square(ops.relu(_extent(coords[..., 0]) - limit))
    angles = ops.arange(turns, dtype=coords.dtype) * (0.5 * math.pi / turns)
    cos, sin = ops.cos(angles), ops.sin(angles)
    x, y = coords[..., 0:1], coords[..., 1:2]           # (B, N, 1) against (turns,)
    across = [_extent(x * cos - y * sin), _extent(x * sin + y * cos)]   # (B, turns) each
    side = sum(ops.square(ops.relu(e - limit)) for e in across)
    return vertical + ops.min(side, axis=-1)


def decoded_penalty(physics: PhysicsPenalty, x_hat, coordinates=None):
    """The physical penalty of decoded configurations, one per configuration (before its
    weight): s softplus((U_LJ/N - cap) / s) from the decoded distances (or coordinates), plus
    the wall overflow of the decoded coordinates when there are some and the box has walls."""
    p = physics
    if p.kind == "distances":
        distances = x_hat[..., 0] * p.scale
    else:
        coords = ops.reshape(x_hat, (-1, p.n_particles, p.dim)) * p.scale
        distances = pairwise_distances_tf(coords)
    energy = lj_energy_from_distances(distances, p.n_particles, p.sigma)
    # A sharp softplus: next to nothing under the cap (ordinary configurations are left to
    # the likelihood), the energy's excess above it.
    penalty = PHYSICS_SOFTNESS * ops.softplus((energy - p.energy_cap) / PHYSICS_SOFTNESS)
    if coordinates is not None and p.box is not None:
        shaped = ops.reshape(coordinates, (-1, p.n_particles, p.dim))
        penalty = penalty + wall_overflow(shaped, p.box, p.side_walls,
                                          tolerance=p.wall_tolerance)
    return penalty


def _extent(values):
    """max - min over the particle axis (1)."""
    return ops.max(values, axis=1) - ops.min(values, axis=1)


def pairwise_distances_tf(coords):
    """(B, N, N) distances of (B, N, d) coordinates, differentiable at r = 0."""
    return pair_differences_and_distances(coords)[1]


def pair_differences_and_distances(coords):
    """((B, N, N, d) differences x_i - x_j, (B, N, N) distances, differentiable at r = 0)."""
    diff = ops.expand_dims(coords, 2) - ops.expand_dims(coords, 1)
    return diff, ops.sqrt(ops.sum(diff * diff, axis=-1) + 1e-12)
