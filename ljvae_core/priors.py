"""Generation priors: what a trained VAE's latent is sampled from to generate configurations.

- :class:`LatentPrior`: a Gaussian mixture fitted to the posterior means of training
  configurations (optionally refined by the joint physics loss of its decoded samples).
- :class:`KernelPrior`: a kernel density over the same posterior means.
- :class:`ConditionalPrior`: one such mixture per trained state point (gamma, T), and between
  state points the mixtures of the two nearest carried along the Gaussian optimal-transport
  path between their moments -- so generating "at gamma" draws latents of that gamma only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

# Least variance of a prior component in any latent direction (sklearn's reg_covar in the fit).
COVARIANCE_FLOOR = 1e-5


@dataclass
class LatentPrior:
    """A Gaussian mixture fitted to the posterior means of training configurations, sampled
    for generation instead of the N(0, I) the KL term pulls toward.

    A latent that holds a few hundred nats (the MDS model's) fills only part of N(0, I):
    decoded, its samples lie off the configurations the decoder learned (their heights far
    from the data's). Fitting the aggregate posterior after training and sampling that
    (ex-post density estimation, as in two-stage VAEs) keeps generation where the decoder is
    trained. :meth:`refine` then adds the joint physics loss to the mixture's likelihood
    (``physics_weight``: its weight, 0 for the plain maximum-likelihood fit)."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D)
    physics_weight: float = 0.0

    def __post_init__(self):
        # Latent directions the encoder leaves unused carry (almost) no variance, and a
        # covariance there sits at the fit's floor; rounding, or a refinement that shrinks
        # it further, can leave it indefinite. Every prior is a valid density.
        self.covariances = positive_definite(self.covariances, COVARIANCE_FLOOR)

    @classmethod
    def fit(cls, latent, components: int = 10, seed: int = 0) -> LatentPrior:
        from sklearn.mixture import GaussianMixture

        latent = np.asarray(latent, dtype=np.float64)
        mixture = GaussianMixture(min(components, len(latent)), covariance_type="full",
                                  reg_covar=COVARIANCE_FLOOR, random_state=seed).fit(latent)
        return cls(mixture.weights_, mixture.means_, mixture.covariances_)

    @property
    def dim(self) -> int:
        """The latent dimension."""
        return self.means.shape[1]

    @property
    def factors(self) -> np.ndarray:
        """(K, D, D) lower Cholesky factors of the covariances."""
        return np.linalg.cholesky(self.covariances)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, D) latent vectors."""
        which = rng.choice(len(self.weights), n, p=self.weights / self.weights.sum())
        eps = rng.normal(size=(n, self.means.shape[1]))
        return self.means[which] + np.einsum("nij,nj->ni", self.factors[which], eps)

    def scaled(self, scale: float) -> LatentPrior:
        """The mixture with every component's spread times ``scale`` (covariances times its
        square): the mixture sampled at a lower temperature, as flows and VAEs often are. The
        same generator state draws the same components and directions at any scale."""
        return replace(self, covariances=self.covariances * float(scale) ** 2)

    def log_likelihood(self, latent) -> np.ndarray:
        """Log density of each latent vector (M, D) under the mixture (the density
        :meth:`refine` fits, in double precision)."""
        import tensorflow as tf

        log_weights = np.log(self.weights / self.weights.sum())
        return _mixture_log_density(tf.constant(self.means), tf.constant(self.factors),
                                    tf.constant(log_weights),
                                    tf.constant(np.asarray(latent, dtype=np.float64))).numpy()

    def refine(self, penalty, latent, weight: float, steps: int = 300, batch: int = 512,
               samples: int = 256, learning_rate: float = 1e-3, seed: int = 0,
               progress=None) -> LatentPrior:
        """The mixture moved to minimize -log-likelihood(latent) + weight * mean penalty of its
        own samples (reparameterized, so the penalty's gradient reaches the means and the
        Cholesky factors; the component weights stay). ``penalty`` maps a batch of latent
        vectors (a TF tensor) to one value per vector: the joint physics loss of what the
        decoder makes of them (:meth:`ljvae_core.vae.VAE.latent_penalty`). The decoder is
        left alone, so reconstructions do not change; generation stops drawing from where
        the decoder's output is unphysical (shapes too wide for the box)."""
        import tensorflow as tf

        rng = np.random.default_rng(seed)
        data = tf.constant(np.asarray(latent, dtype=np.float32))
        means = tf.Variable(self.means.astype(np.float32))
        factors = tf.Variable(self.factors.astype(np.float32))
        # The fit's floor on the variances, kept on the factors' diagonal (a direction the
        # data does not vary in would otherwise shrink toward a singular covariance).
        least = np.float32(np.sqrt(COVARIANCE_FLOOR))
        probabilities = self.weights / self.weights.sum()
        log_weights = tf.constant(np.log(probabilities).astype(np.float32))
        optimizer = tf.keras.optimizers.Adam(learning_rate)

        # XLA: about half the time of a plain graph on a CPU (7 s instead of 16 s for the
        # quick demo's model).
        @tf.function(jit_compile=True)
        def step(rows, which, eps):
            with tf.GradientTape() as tape:
                lower = _floored_lower(factors, least)
                nll = -tf.reduce_mean(_mixture_log_density(means, lower, log_weights,
                                                           tf.gather(data, rows)))
                # Every component's factor times every draw, then each draw's own: gathering a
                # (D, D) factor per draw moves n D^2 floats, 4x slower at D = 381.
                spread = tf.einsum("kij,nj->nki", lower, eps)
                z = tf.gather(means, which) + tf.gather(spread, which, batch_dims=1)
                loss = nll + weight * tf.reduce_mean(penalty(z))
            grads = tape.gradient(loss, [means, factors])
            optimizer.apply_gradients(zip(grads, [means, factors], strict=True))

        for k in range(steps):
            step(rng.choice(len(latent), min(batch, len(latent))),
                 rng.choice(len(probabilities), samples, p=probabilities),
                 rng.normal(size=(samples, self.means.shape[1])).astype(np.float32))
            if progress is not None:
                progress((k + 1) / steps)
        lower = _floored_lower(factors, least).numpy().astype(np.float64)
        moved = means.numpy().astype(np.float64)
        if not (np.isfinite(moved).all() and np.isfinite(lower).all()):
            # Diverged: a handful of configurations per component, or a decoder trained
            # for a few epochs, whose penalty's gradients overflow. The fit stands.
            return self
        return LatentPrior(self.weights, moved, lower @ np.swapaxes(lower, -1, -2),
                           float(weight))

    def to_dict(self) -> dict:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances,
                "physics_weight": self.physics_weight}

    @classmethod
    def from_dict(cls, data: dict) -> LatentPrior:
        return cls(*(np.asarray(data[k], dtype=np.float64)
                     for k in ("weights", "means", "covariances")),
                   float(data.get("physics_weight", 0.0)))


@dataclass
class KernelPrior:
    """A kernel density over the posterior means of training configurations: a draw picks one
    of the ``points`` at random and adds a Gaussian of the points' covariance (lower Cholesky
    factor ``factor``) times ``bandwidth``. At a small bandwidth it replays the training
    configurations; at the one the calibration picks its samples stand as far from their
    nearest training configuration as held-out Monte Carlo does (docs/data.md)."""

    points: np.ndarray  # (M, D)
    factor: np.ndarray  # (D, D)
    bandwidth: float = 1.0
    # Never refined by the physics loss (the figure evaluate reports beside a mixture's).
    physics_weight: float = 0.0

    @classmethod
    def fit(cls, latent, bandwidth: float = 1.0) -> KernelPrior:
        latent = np.asarray(latent, dtype=np.float64)
        covariance = positive_definite(np.cov(latent, rowvar=False), COVARIANCE_FLOOR)
        return cls(latent, np.linalg.cholesky(covariance), float(bandwidth))

    @property
    def dim(self) -> int:
        """The latent dimension."""
        return self.points.shape[1]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, D) latent vectors."""
        which = rng.integers(len(self.points), size=n)
        eps = rng.normal(size=(n, self.dim))
        return self.points[which] + self.bandwidth * eps @ self.factor.T

    def scaled(self, scale: float) -> KernelPrior:
        """The kernel density at ``scale`` times its bandwidth."""
        return replace(self, bandwidth=self.bandwidth * float(scale))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and covariance (D, D) of the density."""
        mean = self.points.mean(axis=0)
        centred = self.points - mean
        cov = (centred.T @ centred / len(self.points)
               + self.bandwidth**2 * self.factor @ self.factor.T)
        return mean, 0.5 * (cov + cov.T)

    def to_dict(self) -> dict:
        return {"kind": "kernel", "points": self.points, "factor": self.factor,
                "bandwidth": self.bandwidth}

    @classmethod
    def from_dict(cls, data: dict) -> KernelPrior:
        return cls(np.asarray(data["points"], dtype=np.float64),
                   np.asarray(data["factor"], dtype=np.float64), float(data["bandwidth"]))


def prior_from_dict(data: dict) -> LatentPrior | KernelPrior:
    """The generation prior stored as ``data`` (a mixture unless it says otherwise)."""
    return (KernelPrior if data.get("kind") == "kernel" else LatentPrior).from_dict(data)


def positive_definite(covariances, floor: float) -> np.ndarray:
    """Symmetric matrices (..., D, D) with every eigenvalue at least ``floor`` (the nearest
    such ones in the Frobenius norm: eigenvalues below it raised to it)."""
    sym = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
    values, vectors = np.linalg.eigh(sym)
    if values.min() >= floor:
        return sym
    return (vectors * np.maximum(values, floor)[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def _floored_lower(factors, least):
    """The lower triangle of ``factors`` with its diagonal at least ``least`` in magnitude."""
    import tensorflow as tf

    lower = tf.linalg.band_part(factors, -1, 0)
    diagonal = tf.linalg.diag_part(lower)
    floored = tf.sign(diagonal) * tf.maximum(tf.abs(diagonal), least)
    return tf.linalg.set_diag(lower, tf.where(diagonal == 0, least, floored))


def _mixture_log_density(means, lower, log_weights, x):
    """log sum_k w_k N(x; m_k, L_k L_k^T) of (B, D) points, in TF (K components)."""
    import tensorflow as tf

    diff = tf.transpose(x[None] - means[:, None], (0, 2, 1))               # (K, D, B)
    y = tf.linalg.triangular_solve(lower, diff, lower=True)
    log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(lower))), axis=-1)
    dim = tf.cast(tf.shape(x)[-1], x.dtype)
    log_n = (-0.5 * tf.reduce_sum(y * y, axis=1) - log_det[:, None]
             - 0.5 * dim * tf.math.log(2.0 * tf.constant(np.pi, x.dtype)))
    return tf.reduce_logsumexp(log_weights[:, None] + log_n, axis=0)


# Two state points closer than this (in units of the trained range of each axis) are one.
SAME_CONDITION = 1e-6
# How far the transport path is followed past the last trained state point, in lengths of
# the last segment; beyond it moments extrapolate too far from anything trained.
MAX_EXTRAPOLATION = 1.0
# Points along a path at which the decoded mean height is probed when steering.
STEERING_GRID = 11
# Least eigenvalue of the extrapolated transport map (it stays an invertible stretch).
LEAST_STRETCH = 0.05


@dataclass
class ConditionalPrior:
    """One :class:`LatentPrior` (or :class:`KernelPrior`) per trained state point, so that
    generating at (gamma, T) draws the latents of configurations of that state point only.

    Between trained state points, the latents of the two nearest are carried along the
    displacement interpolation (McCann) of the Gaussian optimal-transport map between their
    moments: at a fraction t of the way from a to b, a share 1 - t of the samples comes from
    a's mixture moved by x -> (1 - t) x + t T_ab(x), the rest from b's moved the other way,
    so that both have the moments of the Wasserstein geodesic at t and t = 0 or 1 gives the
    trained mixture itself. Past the trained range the last segment's path is followed
    (at most :data:`MAX_EXTRAPOLATION` of its length)."""

    conditions: np.ndarray  # (C, 2) trained (gamma, T)
    priors: list  # C LatentPrior or KernelPrior
    # (C, 3) per trained state point: the training data's mean height per particle and its
    # derivatives by gamma and T (ljvae_core.analysis.HeightResponse); None: not steered.
    heights: np.ndarray | None = None
    # (C,) per trained state point: the width (sigma) of the noise generation adds to every
    # decoded coordinate (ljvae_core.disorder.jitter); None: none.
    noise: np.ndarray | None = None
    # Per trained state point, its training configurations' heights and energies without the
    # field (ljvae_core.disorder.ensemble), onto whose height distribution generated heights
    # are mapped; None: not mapped.
    ensembles: list | None = None
    # (C,) per trained state point: the distance (sigma) decoded contacts are pushed out to
    # before the noise (the hard core's own: none); None: none.
    contacts: np.ndarray | None = None

    def __post_init__(self):
        self.conditions = np.asarray(self.conditions, dtype=np.float64).reshape(-1, 2)
        if len(self.conditions) != len(self.priors) or len(self.priors) == 0:
            raise ValueError("a conditional prior needs one mixture per state point")
        if self.heights is not None:
            self.heights = np.asarray(self.heights, dtype=np.float64).reshape(-1, 3)
        if self.noise is not None:
            self.noise = np.asarray(self.noise, dtype=np.float64).reshape(-1)
        if self.contacts is not None:
            self.contacts = np.asarray(self.contacts, dtype=np.float64).reshape(-1)

    def sample(self, n: int, gamma, temperature, rng: np.random.Generator) -> np.ndarray:
        """(n, D) latents at (gamma, T): scalars, or one value per sample."""
        return self.sample_labelled(n, gamma, temperature, rng)[0]

    def sample_labelled(self, n: int, gamma, temperature,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) latents at (gamma, T) as :meth:`sample` draws them, and (n,) for each the
        trained state point (an index into ``conditions``) whose prior it was drawn from."""
        states = np.stack(np.broadcast_arrays(np.asarray(gamma, float),
                                              np.asarray(temperature, float),
                                              np.empty(n))[:2], axis=-1)
        out, ends = np.empty((n, self.priors[0].dim)), np.empty(n, dtype=np.int64)
        targets, which = np.unique(states, axis=0, return_inverse=True)
        for k, target in enumerate(targets):
            rows = np.flatnonzero(which.ravel() == k)
            out[rows], ends[rows] = self._sample_at(target, len(rows), rng)
        return out, ends

    def path(self, gamma: float, temperature: float) -> tuple[int, int, float]:
        """(a, b, t): the state point lies a fraction t of the way from trained state point a
        to b (a == b and t = 0 when it is a trained one). Raises ValueError past the range
        the path is followed."""
        scale = np.ptp(self.conditions, axis=0)
        scale[scale == 0] = 1.0
        points = self.conditions / scale
        target = np.array([gamma, temperature]) / scale
        gaps = np.linalg.norm(points - target, axis=1)
        if gaps.min() <= SAME_CONDITION or len(points) == 1:
            if gaps.min() > SAME_CONDITION:
                raise ValueError(self._outside_message(gamma, temperature))
            return int(gaps.argmin()), int(gaps.argmin()), 0.0
        return self._nearest_segment(points, target, gamma, temperature)

    def _nearest_segment(self, points, target, gamma, temperature):
        """Between trained state points: the shortest segment through the target. Elsewhere:
        from the nearest trained state point's own nearest one, through it and on."""
        on = []
        for a, b in itertools.permutations(range(len(points)), 2):
            edge = points[b] - points[a]
            t = float(np.dot(target - points[a], edge) / np.dot(edge, edge))
            if 0.0 <= t <= 1.0 and np.linalg.norm(points[a] + t * edge - target) <= 1e-9:
                on.append((float(np.linalg.norm(edge)), a, b, t))
        if on:
            _, a, b, t = min(on)
            return a, b, t
        b = int(np.linalg.norm(points - target, axis=1).argmin())
        gaps = np.linalg.norm(points - points[b], axis=1)
        gaps[b] = np.inf
        a = int(gaps.argmin())
        edge = points[b] - points[a]
        t = float(np.dot(target - points[a], edge) / np.dot(edge, edge))
        if t > 1.0 + MAX_EXTRAPOLATION or t < 0.0:
            raise ValueError(self._outside_message(gamma, temperature))
        return a, b, t

    def _outside_message(self, gamma, temperature) -> str:
        def span(values):
            low, high = values.min(), values.max()
            return f"= {low:g}" if low == high else f"from {low:g} to {high:g}"

        return (f"γ = {gamma:g}, T = {temperature:g} is too far from the state points "
                f"this model was trained on (γ {span(self.conditions[:, 0])}, "
                f"T {span(self.conditions[:, 1])}) to generate there")

    def _sample_at(self, target, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        a, b, t = self.path(*target)
        if a == b or t == 0.0:
            return self.priors[a].sample(n, rng), np.full(n, a)
        from_a = rng.binomial(n, 1.0 - t) if t <= 1.0 else 0
        ends = [self.priors[a], self.priors[b]]
        moments = [gaussian_moments(p) for p in ends]
        forward = transport_map(moments[0][1], moments[1][1])
        samples = []
        if from_a:
            x = ends[0].sample(from_a, rng) - moments[0][0]
            samples.append(moments[0][0] + t * (moments[1][0] - moments[0][0])
                           + x @ _stretch(forward, t).T)
        if n - from_a:
            x = ends[1].sample(n - from_a, rng) - moments[1][0]
            backward = np.linalg.inv(forward)
            samples.append(moments[1][0] + (1.0 - t) * (moments[0][0] - moments[1][0])
                           + x @ _stretch(backward, 1.0 - t).T)
        order = rng.permutation(n)
        labels = np.where(np.arange(n) < from_a, a, b)
        return np.vstack(samples)[order], labels[order]

    def expected_height(self, gamma: float, temperature: float) -> float | None:
        """The mean height per particle at (gamma, T) from the trained state points' own:
        between two, the cubic Hermite interpolant of their means and their fluctuation
        slopes along the segment. None without the trained heights, and past the trained
        state points (where neither a Taylor line nor a parabola through the last two held:
        on the study system they missed the Monte Carlo height at gamma = 3 by 0.02-0.03)."""
        if self.heights is None:
            return None
        a, b, t = self.path(gamma, temperature)
        if a == b or t == 0.0:
            return float(self.heights[a, 0])
        if t > 1.0:
            return None
        step = self.conditions[b] - self.conditions[a]
        (ya, *grad_a), (yb, *grad_b) = self.heights[a], self.heights[b]
        basis = np.array([2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2,
                          t**3 - t**2])
        return float(basis @ [ya, np.dot(grad_a, step), yb, np.dot(grad_b, step)])

    def steered_state(self, gamma: float, temperature: float, decoded_height,
                      grid: int = STEERING_GRID) -> tuple[float, float]:
        """The state point to sample and decode at so that what is generated "at (gamma, T)"
        has the mean height :meth:`expected_height` gives there.

        A model's own interpolation between trained state points misplaces the mean height
        (the variable the field couples to), and with it the energy. Along the segment
        through (gamma, T), ``decoded_height(gamma', T')`` (the mean height of what the
        model generates at a state point) is evaluated on a grid, and the crossing of the
        expected height nearest to (gamma, T) is taken. Trained state points, state points
        past them, priors without heights and segments the expected height never crosses
        are left as they are."""
        a, b, t = self.path(gamma, temperature)
        target = self.expected_height(gamma, temperature)
        if target is None or a == b or t == 0.0:
            return float(gamma), float(temperature)
        start, step = self.conditions[a], self.conditions[b] - self.conditions[a]
        fractions = np.linspace(0.0, 1.0, grid)
        miss = np.array([decoded_height(*(start + f * step)) for f in fractions]) - target
        k = np.flatnonzero((miss[:-1] * miss[1:] <= 0) & (miss[:-1] != miss[1:]))
        if len(k) == 0:
            return float(gamma), float(temperature)
        crossings = fractions[k] + np.diff(fractions)[k] * miss[k] / (miss[k] - miss[k + 1])
        state = start + crossings[np.abs(crossings - t).argmin()] * step
        return float(state[0]), float(state[1])

    def noise_width(self, gamma: float, temperature: float) -> float:
        """The width (sigma) of the noise on decoded coordinates at (gamma, T): the trained
        state points' own, linear along the segment between two, the last one's past them;
        0 without calibrated widths."""
        return self._along(self.noise, gamma, temperature, 0.0)

    def contact_distance(self, gamma: float, temperature: float) -> float | None:
        """The distance (sigma) decoded contacts are pushed out to at (gamma, T), as
        :meth:`noise_width` runs; None without calibrated distances."""
        return self._along(self.contacts, gamma, temperature, None)

    def _along(self, values, gamma, temperature, missing):
        if values is None:
            return missing
        a, b, t = self.path(gamma, temperature)
        t = min(t, 1.0)
        return float((1.0 - t) * values[a] + t * values[b])

    def height_target(self, gamma: float, temperature: float):
        """(the state point whose generated heights define the map, the height quantiles
        they are mapped onto) at (gamma, T), or None without trained ensembles. At a
        trained state point, its training heights'. Between or past trained state points,
        those of the nearest two Boltzmann reweighted to (gamma, T) (:meth:`reweighted`);
        where their configurations do not cover it, the nearest trained state point's map,
        defined there and applied as it is."""
        from .disorder import height_quantiles

        if self.ensembles is None:
            return None
        a, b, t = self.path(gamma, temperature)
        if a == b or t == 0.0:
            return (float(gamma), float(temperature)), height_quantiles(
                self.ensembles[a]["heights"])
        there = self.reweighted(gamma, temperature)
        if there is not None:
            return (float(gamma), float(temperature)), there.height_quantiles()
        near = a if t < 0.5 else b
        return (tuple(float(v) for v in self.conditions[near]),
                height_quantiles(self.ensembles[near]["heights"]))

    def reweighted(self, gamma: float, temperature: float):
        """The training ensembles of the two trained state points the path to (gamma, T)
        runs between, Boltzmann reweighted to it
        (:meth:`ljvae_core.disorder.Reweighted.at`); None at a trained state point, without
        ensembles, and where they do not cover it."""
        from .disorder import Reweighted

        if self.ensembles is None:
            return None
        a, b, t = self.path(gamma, temperature)
        if a == b or t == 0.0:
            return None
        return Reweighted.at([self.ensembles[a], self.ensembles[b]], self.conditions[[a, b]],
                             (float(gamma), float(temperature)))

    def scaled(self, factor: float) -> ConditionalPrior:
        """The same prior with every state point's spread scaled by ``factor``."""
        return replace(self, priors=[p.scaled(factor) for p in self.priors])

    def extrapolates(self, gamma: float, temperature: float) -> bool:
        """Whether (gamma, T) lies past the trained state points (on the path's extension)."""
        return self.path(gamma, temperature)[2] > 1.0

    @property
    def gamma_range(self) -> tuple[float, float]:
        return float(self.conditions[:, 0].min()), float(self.conditions[:, 0].max())

    def to_dict(self) -> dict:
        return {"conditions": self.conditions, "priors": [p.to_dict() for p in self.priors],
                "heights": self.heights, "noise": self.noise, "ensembles": self.ensembles,
                "contacts": self.contacts}

    @classmethod
    def from_dict(cls, data: dict) -> ConditionalPrior:
        return cls(data["conditions"], [prior_from_dict(p) for p in data["priors"]],
                   data.get("heights"), data.get("noise"), data.get("ensembles"),
                   data.get("contacts"))


def gaussian_moments(prior: LatentPrior | KernelPrior) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of a Gaussian mixture or a kernel density."""
    if isinstance(prior, KernelPrior):
        return prior.moments()
    w = prior.weights / prior.weights.sum()
    mean = w @ prior.means
    centred = prior.means - mean
    cov = np.einsum("k,kij->ij", w, prior.covariances) + (centred.T * w) @ centred
    return mean, 0.5 * (cov + cov.T)


def _symmetric_power(matrix, power: float, floor: float = COVARIANCE_FLOOR) -> np.ndarray:
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.maximum(values, floor) ** power) @ vectors.T


def transport_map(cov_a, cov_b) -> np.ndarray:
    """The linear part A of the optimal-transport map x -> m_b + A (x - m_a) from
    N(m_a, cov_a) to N(m_b, cov_b): A = S^-1 (S cov_b S)^1/2 S^-1 with S = cov_a^1/2
    (symmetric positive definite)."""
    root = _symmetric_power(cov_a, 0.5)
    inverse_root = _symmetric_power(cov_a, -0.5)
    # A product of two covariances: its least eigenvalues are the floor squared (at the
    # floor itself, a direction both leave at the floor would be stretched 300-fold).
    middle = _symmetric_power(root @ cov_b @ root, 0.5, COVARIANCE_FLOOR**2)
    out = inverse_root @ middle @ inverse_root
    return 0.5 * (out + out.T)


def _stretch(matrix, t: float) -> np.ndarray:
    """(1 - t) I + t A, its eigenvalues kept at least :data:`LEAST_STRETCH` (extrapolation
    past t = 1 must not fold the latent space)."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    values = np.maximum(1.0 - t + t * values, LEAST_STRETCH)
    return (vectors * values) @ vectors.T
