"""Variational autoencoders for LJ configurations (Keras 3 on TensorFlow).

- :class:`Sampling`: the reparameterization z = mean + exp(log_var / 2) * eps.
- :class:`VAE`: encoder + decoder with its own ``train_step`` / ``test_step``, tracking the
  reconstruction, KL, physics, coordinate, state and total losses; optionally a linear state
  head reading the state point (gamma, T) off the latent.

The reconstruction term is the negative log-likelihood of a Gaussian decoder whose variance is
*calibrated*: set at every step to the batch's mean squared error (the "optimal sigma-VAE" of
Rybkin et al., 2021). A bare MSE has an arbitrary scale against the KL term and lets the
posterior collapse (every particle decoded to the middle of the box); the calibrated
likelihood weighs them as the ELBO says. The variance reached at the end of training is kept
(``decoder_log_var``) so that the ELBO of a new configuration can be scored later.

Architectures (built by :func:`build_vae`):
- ``dense`` on sorted coordinates: a mirrored encoder/decoder
  (N*d -> 0.75 N*d -> 0.37 N*d -> latent; 60 -> 45 -> 22 -> 2 for 30 particles in 2D).
- distances: an encoder of the matrix itself (Conv2D, or kernels spanning whole rows) or, by
  default, a dense encoder of the shape classical MDS recovers from it, put in one frame
  (``encoder="mds"``, input made by :class:`ljvae_core.features.ShapeFrame`); a dense decoder
  emitting coordinates whose distance matrix is the output (:class:`DistancesFromCoordinates`,
  Euclidean by construction, with a coordinate term in the loss, see :class:`VAE`), or the
  matrix itself made symmetric with a zero diagonal (:class:`SymmetricDistances`). By default
  the decoded coordinates end with a few steps pushing overlapping pairs apart
  (:class:`Repel`): a hard core the decoder learns through.
- ``conv3d`` on voxel grids (``conv2d_grid`` for 2D grids): three blocks of convolution and
  2x pooling, flattened to mean and log-variance; transposed convolutions back.
- ``conditional=True`` feeds (gamma, T) to the encoder and the decoder.

The joint physics loss adds ``physics_weight * [s softplus((U/N - energy_cap) / s) + W]`` for
the reconstruction of each training configuration and for one configuration decoded from a
Gaussian of the batch's posterior means (where generation's fitted prior samples), U being
the LJ energy of the decoded configuration computed in TensorFlow from its distances
(distance and coordinate representations) and W the squared overflow of decoded coordinates
out of the box's walls (:func:`wall_overflow`), so decoded samples stop overlapping and fit
the box. The same penalty (:func:`decoded_penalty`, through :meth:`VAE.latent_penalty`)
refines the generation prior after training (:meth:`ljvae_core.priors.LatentPrior.refine`),
where it raises the validity of generated samples without moving the decoder.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

PACKAGE = "ljvae"
# Distances are floored here before entering r^-12, so one overlapping pair gives a large but
# finite energy and a usable gradient.
PHYSICS_MIN_DISTANCE = 0.6
# Energy per particle over which the physics penalty's softplus bends: a sharp bend keeps the
# pressure on the excess over the cap; a soft one (1) pushes every decoded energy down, at a
# large cost in reconstruction error (docs/what-we-tried.md).
PHYSICS_SOFTNESS = 0.1


# --------------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampling(layers.Layer):
    """Draw z ~ N(mean, exp(log_var)) by reparameterization (seeded)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_var = inputs
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SymmetricDistances(layers.Layer):
    """(N, N, 1) output made symmetric with a zero diagonal: (A + A^T) / 2 off the diagonal."""

    def call(self, inputs):
        a = inputs[..., 0]
        sym = 0.5 * (a + ops.transpose(a, (0, 2, 1)))
        n = ops.shape(a)[-1]
        off_diagonal = 1.0 - ops.eye(n, dtype=sym.dtype)
        return ops.expand_dims(sym * off_diagonal, -1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DistancesFromCoordinates(layers.Layer):
    """(N * d) decoded coordinates -> their (N, N, 1) distance matrix divided by `scale`: the
    output is a Euclidean distance matrix by construction, so MDS recovers it exactly. With
    `height_scale` set, two channels of heights over it follow (z_i along rows, z_j along
    columns), as :class:`ljvae_core.features.DistanceMatrix` lays them out."""

    def __init__(self, n_particles, dim, scale, height_scale=None, **kwargs):
        super().__init__(**kwargs)
        self.n_particles, self.dim, self.scale = int(n_particles), int(dim), float(scale)
        self.height_scale = None if height_scale is None else float(height_scale)

    def call(self, inputs):
        coords = ops.reshape(inputs, (-1, self.n_particles, self.dim))
        distances = ops.expand_dims(pairwise_distances_tf(coords) / self.scale, -1)
        if self.height_scale is None:
            return distances
        return height_channels(distances, coords[..., -1] / self.height_scale)

    def get_config(self):
        return {**super().get_config(), "n_particles": self.n_particles, "dim": self.dim,
                "scale": self.scale, "height_scale": self.height_scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Repel(layers.Layer):
    """(N * d) coordinates in sigma -> the same with overlaps pushed apart: `steps` gradient
    steps on the soft-sphere energy sum_{i<j} (r0 - r_ij)_+^2 / 2, each of size 1/2, which
    sets an isolated overlapping pair exactly to r0; with a `height`, each step ends with the
    heights (last axis) clipped to the box's [0, height]. Differentiable, with no weights: the
    decoder learns through it. A dense decoder is close to linear in the latent, and a
    linear map cannot hold a hard core (one of 435 pairs under 0.8 sigma spoils a
    configuration); this gives it one."""

    def __init__(self, n_particles, dim, distance=0.9, steps=4, height=None, **kwargs):
        super().__init__(**kwargs)
        self.n_particles, self.dim = int(n_particles), int(dim)
        self.distance, self.steps = float(distance), int(steps)
        self.height = None if height is None else float(height)

    def call(self, inputs):
        x = ops.reshape(inputs, (-1, self.n_particles, self.dim))
        off_diagonal = 1.0 - ops.eye(self.n_particles, dtype=x.dtype)
        for _ in range(self.steps):
            diff, r = pair_differences_and_distances(x)
            push = ops.relu(self.distance - r) * off_diagonal / r
            x = x + 0.5 * ops.sum(ops.expand_dims(push, -1) * diff, axis=2)
            if self.height is not None:
                x = self._between_floor_and_ceiling(x)
        return ops.reshape(x, (-1, self.n_particles * self.dim))

    def _between_floor_and_ceiling(self, x):
        # A push must not leave the box through the floor: the configuration would then be
        # lifted as a whole and squashed under the ceiling when put back into the box.
        heights = ops.clip(x[..., -1:], 0.0, self.height)
        return ops.concatenate([x[..., :-1], heights], axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_particles": self.n_particles, "dim": self.dim,
                "distance": self.distance, "steps": self.steps, "height": self.height}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExpHeights(layers.Layer):
    """(N * d) values -> coordinates whose heights (the last axis) are the exponentials of
    theirs: decoded heights stay above the floor, and the decoder works in log-heights, the
    natural variable of a barometric profile (equal steps in gamma are equal factors in
    height)."""

    def __init__(self, n_particles, dim, **kwargs):
        super().__init__(**kwargs)
        self.n_particles, self.dim = int(n_particles), int(dim)

    def call(self, inputs):
        x = ops.reshape(inputs, (-1, self.n_particles, self.dim))
        x = ops.concatenate([x[..., :-1], ops.exp(x[..., -1:])], axis=-1)
        return ops.reshape(x, (-1, self.n_particles * self.dim))

    def get_config(self):
        return {**super().get_config(), "n_particles": self.n_particles, "dim": self.dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WithHeights(layers.Layer):
    """[(B, N, N, 1) matrix, (B, N) heights] -> (B, N, N, 3) with the height channels."""

    def call(self, inputs):
        matrix, heights = inputs
        return height_channels(matrix, heights)


def height_channels(matrix, heights):
    """Append z_i (along rows) and z_j (along columns) to a (B, N, N, 1) matrix."""
    rows = ops.repeat(ops.expand_dims(heights, 2), ops.shape(heights)[-1], axis=2)
    columns = ops.transpose(rows, (0, 2, 1))
    return ops.concatenate([matrix, ops.expand_dims(rows, -1), ops.expand_dims(columns, -1)],
                           axis=-1)


# --------------------------------------------------------------------------- physics in TF
def lj_energy_from_distances(distances, n_particles: int):
    """LJ energy per particle of (B, N, N) distance matrices in sigma (upper triangle)."""
    r = ops.maximum(distances, PHYSICS_MIN_DISTANCE)
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


def decoded_penalty(physics: dict, x_hat, coordinates=None):
    """Physical penalty of decoded configurations, one per configuration:
    s softplus((U_LJ/N - cap) / s) from the decoded distances (or coordinates), plus the wall
    overflow of the decoded coordinates when there are some and the settings have a "box".

    ``physics``: {"energy_cap", "kind" ('distances' or 'coords'), "n_particles", "dim",
    "scale"[, "box", "side_walls", "wall_tolerance"]}."""
    p = physics
    if p["kind"] == "distances":
        distances = x_hat[..., 0] * p["scale"]
    else:
        coords = ops.reshape(x_hat, (-1, p["n_particles"], p["dim"])) * p["scale"]
        distances = pairwise_distances_tf(coords)
    energy = lj_energy_from_distances(distances, p["n_particles"])
    # A sharp softplus: next to nothing under the cap (ordinary configurations are left to
    # the likelihood), the energy's excess above it.
    penalty = PHYSICS_SOFTNESS * ops.softplus((energy - p["energy_cap"]) / PHYSICS_SOFTNESS)
    if coordinates is not None and p.get("box") is not None:
        shaped = ops.reshape(coordinates, (-1, p["n_particles"], p["dim"]))
        penalty = penalty + wall_overflow(shaped, p["box"], p.get("side_walls", True),
                                          tolerance=p.get("wall_tolerance", 0.0))
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


# --------------------------------------------------------------------------- the model
@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """Encoder (x[, c]) -> (mean, log_var); decoder (z[, c]) -> x_hat.

    Parameters
    ----------
    encoder, decoder : Keras models.
    beta : weight of the KL term (1 = the ELBO).
    physics : None or {"weight", "energy_cap", "kind" ('distances' or 'coords'),
        "n_particles", "dim", "scale"[, "box", "side_walls"]} for the joint physics loss
        (``scale`` turns model outputs into sigma: the box diagonal for distances, L/2 for
        coordinates in [-1, 1]; ``box`` adds the walls' term for decoded coordinates).
    conditional : inputs are (x, c) pairs with c = (gamma, T) features.
    height_channels : inputs are distance matrices with two height channels; the heights get
        a calibrated variance of their own and count once per particle (see
        :func:`reconstruction_parts`).
    coordinate_weight : weight of a coordinate term for decoders that go through coordinates
        (a layer named ``decoder_coordinates``), used when a batch carries ``"coordinates"``
        targets: the Gaussian negative log-likelihood (calibrated variance) of the decoded
        coordinates against the configuration moved into the decoder's frame. Scored through
        its distances alone, a decoded shape settles into folded and mirrored local minima
        that fit the distance statistics but not the configuration; coordinates have none.
    n_states, state_weight : a linear state head z -> the batch's ``"state"`` (the
        standardized (gamma, T) that vary in the training set), scored by a calibrated
        Gaussian likelihood times state_weight: the latent then has to carry the state point
        where a linear map reads it. Unconditional models only; 0 turns it off.
    """

    def __init__(self, encoder, decoder, beta=1.0, physics=None, conditional=False, seed=None,
                 height_channels=False, coordinate_weight=0.0, n_states=0, state_weight=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.beta = float(beta)
        self.physics = dict(physics) if physics else None
        self.conditional = bool(conditional)
        self.seed = seed
        self.sampling = Sampling(seed=seed)
        # Scales beta during a warm-up (set by BetaWarmup); 1 once warm.
        self.beta_scale = keras.Variable(1.0, trainable=False, name="beta_scale",
                                         aggregation="only_first_replica")
        # Log-variance of the calibrated Gaussian decoder, tracked as training goes; assigned
        # in every replica under a tf.distribute strategy, hence averaged.
        self.decoder_log_var = keras.Variable(0.0, trainable=False, name="decoder_log_var",
                                              aggregation="mean")
        self.height_channels = bool(height_channels)
        if self.height_channels:  # only then, so that older saved models keep their variables
            self.height_log_var = keras.Variable(0.0, trainable=False, name="height_log_var",
                                                 aggregation="mean")
        self.coordinate_weight = float(coordinate_weight)
        self._coordinate_view = _Untracked(_coordinate_view(decoder))
        self.n_states, self.state_weight = int(n_states), float(state_weight)
        self.state_head = None
        if self.n_states > 0 and self.state_weight > 0.0:
            self.state_head = layers.Dense(self.n_states, name="state_head")
            self.state_head.build((None, encoder.outputs[0].shape[-1]))
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKED}

    # -- plumbing
    def _split(self, data):
        """(x, c, target, coordinates, state) from a batch: x alone, the pair (x, c) for
        conditional models, or a dict {"x", "condition", "target", "coordinates", "state"}
        when the decoder's targets are not its inputs (particle orders matched to the
        decoder's, shapes in the mds encoder's frame: see ljvae_core.training) or the state
        head has targets; absent parts are None."""
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict):
            return (data["x"], data.get("condition"), data.get("target", data["x"]),
                    data.get("coordinates"), data.get("state"))
        if self.conditional:
            x, c = data
            return x, c, x, None, None
        return data, None, data, None, None

    @property
    def has_coordinates(self) -> bool:
        """Whether the decoder goes through coordinates (see :meth:`decoded_coordinates`)."""
        return self._coordinate_view.model is not None

    def decoded_coordinates(self, x, c=None, batch_size: int = 1024):
        """(M, N, d) coordinates (sigma) that the decoder makes of the latent means of inputs
        x, in the decoder's own frame (numpy)."""
        import numpy as np

        if not self.has_coordinates:
            raise ValueError("this decoder does not go through coordinates")
        parts = []
        for start in range(0, len(x), batch_size):
            cb = None if c is None else c[start:start + batch_size]
            mean, _ = self.encode(x[start:start + batch_size], cb)
            inputs = [mean, cb] if self.conditional else mean
            parts.append(ops.convert_to_numpy(self._coordinate_view.model(inputs)[0]))
        flat = np.concatenate(parts).astype(np.float64)
        dim = self.decoder.get_layer("distances").dim
        return flat.reshape(len(flat), -1, dim)

    def encode(self, x, c=None):
        return self.encoder([x, c] if self.conditional else x)

    def decode(self, z, c=None):
        return self.decoder([z, c] if self.conditional else z)

    def call(self, inputs, training=False):
        x, c = (inputs if self.conditional else (inputs, None))
        mean, _ = self.encode(x, c)
        return self.decode(mean, c)

    def build(self, input_shape=None):
        # Encoder and decoder are functional models, built when they were made.
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    # -- losses
    def _loss_terms(self, x, c, target, training, coordinates=None, state=None):
        mean, log_var = self.encode(x, c)
        z = self.sampling([mean, log_var])
        coordinate_term = ops.zeros((ops.shape(mean)[0],))
        decoded, x_hat = self._decode_with_coordinates(z, c)
        if coordinates is not None and self.coordinate_weight > 0.0 and decoded is not None:
            truth = ops.reshape(coordinates, ops.shape(decoded))
            coordinate_term = self.coordinate_weight * calibrated_nll(truth, decoded)[0]
        reconstruction = 0.0
        variables = [self.decoder_log_var]
        if self.height_channels:
            variables.append(self.height_log_var)
        parts = reconstruction_parts(target, x_hat, self.height_channels)
        for (truth, guess), variable in zip(parts, variables, strict=True):
            nll, log_mse = calibrated_nll(truth, guess)
            reconstruction = reconstruction + nll
            if training:
                variable.assign(log_mse)
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        physics = self._physics_penalty(x_hat, decoded)
        if self.physics and self.physics.get("weight", 0.0) > 0.0:
            # Configurations decoded where generation samples too. The fitted prior
            # (ljvae_core.priors.LatentPrior) models the posterior means after training; a
            # Gaussian of this batch's means stands in for it. N(0, I) lies off the region
            # the encoder uses: shaping the decoder there changed nothing generation sees.
            centre = ops.stop_gradient(ops.mean(mean, axis=0))
            spread = ops.stop_gradient(ops.std(mean, axis=0))
            prior = centre + spread * keras.random.normal(ops.shape(mean),
                                                          seed=self.sampling.seed_generator)
            prior_coordinates, prior_output = self._decode_with_coordinates(prior, c)
            physics = physics + self._physics_penalty(prior_output, prior_coordinates)
        state_term = ops.zeros_like(kl)
        if state is not None and self.state_head is not None:
            state_term = self.state_weight * calibrated_nll(state, self.state_head(z))[0]
        total = ops.mean(reconstruction + self.beta * self.beta_scale * kl + physics
                         + coordinate_term + state_term)
        return (total, ops.mean(reconstruction), ops.mean(kl), ops.mean(physics),
                ops.mean(coordinate_term), ops.mean(state_term))

    def _decode_with_coordinates(self, z, c):
        """(decoded coordinates or None, decoder output) of latent points."""
        if not self.has_coordinates:
            return None, self.decode(z, c)
        return self._coordinate_view.model([z, c] if self.conditional else z)

    def _physics_penalty(self, x_hat, coordinates=None):
        """weight * :func:`decoded_penalty` per decoded configuration."""
        if not self.physics or self.physics.get("weight", 0.0) <= 0.0:
            return ops.zeros((ops.shape(x_hat)[0],))
        return self.physics["weight"] * decoded_penalty(self.physics, x_hat, coordinates)

    def latent_penalty(self, physics: dict):
        """A function (z[, c]) -> :func:`decoded_penalty` of the configurations decoded from
        latent points z (under conditions c for conditional models), differentiable in z."""
        def penalty(z, c=None):
            coordinates, x_hat = self._decode_with_coordinates(z, c)
            return decoded_penalty(physics, x_hat, coordinates)
        return penalty

    def _record(self, values):
        for name, value in zip(TRACKED, values, strict=True):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        import tensorflow as tf

        x, c, target, coordinates, state = self._split(data)
        with tf.GradientTape() as tape:
            values = self._loss_terms(x, c, target, True, coordinates, state)
        grads = tape.gradient(values[0], self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        return self._record(values)

    def test_step(self, data):
        x, c, target, coordinates, state = self._split(data)
        return self._record(self._loss_terms(x, c, target, False, coordinates, state))

    # -- persistence
    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta, "physics": self.physics, "conditional": self.conditional,
            "seed": self.seed, "height_channels": self.height_channels,
            "coordinate_weight": self.coordinate_weight,
            "n_states": self.n_states, "state_weight": self.state_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


TRACKED = ("loss", "reconstruction", "kl", "physics", "coordinates", "state")


class _Untracked:
    """Holds a model out of Keras' sight: a view that shares the decoder's layers must not be
    tracked (saved, or its weights counted) a second time."""

    def __init__(self, model):
        self.model = model


def _coordinate_view(decoder):
    """A model (z[, c]) -> (coordinates, output) sharing the decoder's layers, for decoders
    with a ``decoder_coordinates`` layer; None for the others."""
    try:
        layer = decoder.get_layer("decoder_coordinates")
    except ValueError:
        return None
    # The decoder's own input structure (one tensor, or [z, c]): a list of one would make
    # Keras warn at every call with a tensor.
    inputs = decoder.inputs if len(decoder.inputs) > 1 else decoder.inputs[0]
    return keras.Model(inputs, [layer.output, decoder.output], name="coordinate_view")


def calibrated_nll(truth, guess):
    """(per-sample Gaussian negative log-likelihood, log variance) with the variance
    calibrated to the batch's mean squared error per value (up to a constant)."""
    axes = tuple(range(1, len(truth.shape)))
    sq = ops.sum(ops.square(truth - guess), axis=axes)
    dims = float(math.prod(truth.shape[1:]))
    mse = ops.mean(sq) / dims + 1e-12
    return 0.5 * sq / mse + 0.5 * dims * ops.log(mse), ops.log(mse)


def reconstruction_parts(target, output, height_channels: bool) -> list:
    """The (truth, guess) pairs a reconstruction is scored on, each with a calibrated variance
    of its own: the whole output, or, for distance matrices with height channels, the distance
    channel and the heights (each particle's once, from column 0 of channel 1) -- repeated 2N
    times, they would otherwise count as 2N independent values."""
    if not height_channels:
        return [(target, output)]
    return [(target[..., 0], output[..., 0]), (target[:, :, 0, 1], output[:, :, 0, 1])]


def exportable(model: VAE) -> VAE:
    """An uncompiled copy with the same weights (saved files then carry no optimizer state)."""
    copy = VAE.from_config(model.get_config())
    copy.build()
    copy.set_weights(model.get_weights())
    return copy


class BetaWarmup(keras.callbacks.Callback):
    """Raise the KL weight linearly from 0 to beta over the first `epochs` epochs."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs > 0:
            self.model.beta_scale.assign(min(1.0, epoch / self.epochs))


# --------------------------------------------------------------------------- architectures
def _inputs(shape, conditional, n_conditions):
    x = keras.Input(shape=shape, name="x")
    c = keras.Input(shape=(n_conditions,), name="condition") if conditional else None
    return x, c


def _with_condition(h, c, name):
    # Explicit layer names throughout: Keras' automatic ones can collide when models are
    # built in several threads (the app trains in a worker thread).
    return layers.Concatenate(name=name)([h, c]) if c is not None else h


def _heads(h, latent_dim):
    mean = layers.Dense(latent_dim, name="z_mean")(h)
    log_var = layers.Dense(latent_dim, name="z_log_var",
                           kernel_initializer="zeros", bias_initializer="zeros")(h)
    return mean, log_var


def _functional(inputs, outputs, name):
    x, c = inputs
    return keras.Model([x, c] if c is not None else x, outputs, name=name)


def default_dense_widths(n_values: int) -> list[int]:
    """The dense VAE's hidden widths, 3/4 and 3/8 of the input size (60 -> 45 -> 22)."""
    return [max(4, round(0.75 * n_values)), max(2, round(0.367 * n_values))]


def dense_vae_parts(n_values, latent_dim, widths, conditional, n_conditions):
    x, c = _inputs((n_values,), conditional, n_conditions)
    h = _with_condition(x, c, "encoder_with_condition")
    for k, w in enumerate(widths):
        h = layers.Dense(w, activation="relu", name=f"encoder_dense_{k}")(h)
    encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
    z, cd = _inputs((latent_dim,), conditional, n_conditions)
    h = _with_condition(z, cd, "decoder_with_condition")
    for k, w in enumerate(reversed(widths)):
        h = layers.Dense(w, activation="relu", name=f"decoder_dense_{k}")(h)
    out = layers.Dense(n_values, activation="tanh", name="coords")(h)
    decoder = _functional((z, cd), out, "decoder")
    return encoder, decoder


def distance_vae_parts(n_particles, latent_dim, filters, hidden, conditional, n_conditions,
                       through_coordinates=None, height_scale=None, encoder="conv", repel=None,
                       log_heights=False):
    """Conv2D encoder; the decoder outputs the matrix directly (symmetric, zero diagonal), or,
    with through_coordinates=(dim, scale), coordinates whose distances form the output. With
    a height_scale the matrices carry two channels of heights over it (input and output).

    encoder="conv": 3x3 convolutions with stride 2 (``filters``); "rows": convolutions whose
    kernels span whole rows, so that each particle is first described by all its distances
    (and heights) -- neighbouring rows of a matrix are not neighbouring particles; "mds": a
    dense encoder of the shape that classical MDS recovers from the matrix, in one frame
    (its input is (N, d), made by :class:`ljvae_core.features.ShapeFrame` from the matrix)."""
    channels = 1 if height_scale is None else 3
    if encoder == "mds":
        if through_coordinates is None or height_scale is None:
            raise ValueError("the mds encoder needs height channels and a decoder through "
                             "coordinates")
        x, c = _inputs((n_particles, through_coordinates[0]), conditional, n_conditions)
        h = layers.Flatten(name="encoder_flatten")(x)
        h = _with_condition(h, c, "encoder_with_condition")
        h = layers.Dense(2 * hidden, activation="relu", name="encoder_dense_wide")(h)
        h = layers.Dense(hidden, activation="relu", name="encoder_dense")(h)
        encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
        return encoder, _coordinate_decoder(n_particles, latent_dim, hidden, conditional,
                                            n_conditions, through_coordinates, height_scale, repel,
                                            log_heights)
    x, c = _inputs((n_particles, n_particles, channels), conditional, n_conditions)
    h = x
    if encoder == "rows":
        h = layers.Conv2D(filters[-1], (1, n_particles), activation="relu",
                          name="encoder_rows_0")(h)
        h = layers.Conv2D(filters[-1], 1, activation="relu", name="encoder_rows_1")(h)
    elif encoder == "conv":
        for k, f in enumerate(filters):
            h = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu",
                              name=f"encoder_conv_{k}")(h)
    else:
        raise ValueError(f"unknown distance encoder {encoder!r}; choose 'conv', 'rows' or "
                         f"'mds'")
    h = layers.Flatten(name="encoder_flatten")(h)
    h = _with_condition(h, c, "encoder_with_condition")
    h = layers.Dense(hidden, activation="relu", name="encoder_dense")(h)
    encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
    if through_coordinates is not None:
        return encoder, _coordinate_decoder(n_particles, latent_dim, hidden, conditional,
                                            n_conditions, through_coordinates, height_scale, repel,
                                            log_heights)
    z, cd = _inputs((latent_dim,), conditional, n_conditions)
    h = _with_condition(z, cd, "decoder_with_condition")
    h = layers.Dense(hidden, activation="relu", name="decoder_dense_0")(h)
    h = layers.Dense(2 * hidden, activation="relu", name="decoder_dense_1")(h)
    m = layers.Dense(n_particles * n_particles, activation="sigmoid", name="decoder_dense_2")(h)
    m = layers.Reshape((n_particles, n_particles, 1), name="decoder_reshape")(m)
    out = SymmetricDistances(name="distances")(m)
    if height_scale is not None:
        heights = layers.Dense(n_particles, activation="sigmoid", name="decoder_heights")(h)
        out = WithHeights(name="with_heights")([out, heights])
    return encoder, _functional((z, cd), out, "decoder")


def _coordinate_decoder(n_particles, latent_dim, hidden, conditional, n_conditions,
                        through_coordinates, height_scale, repel=None, log_heights=False):
    """Decoder (z[, c]) -> coordinates (layer ``decoder_coordinates``) -> their distance
    matrix (with height channels when height_scale is set). repel={"distance", "steps",
    "height"} ends the coordinates with a :class:`Repel` layer; log_heights puts an
    :class:`ExpHeights` layer before it."""
    dim, scale = through_coordinates
    z, cd = _inputs((latent_dim,), conditional, n_conditions)
    h = _with_condition(z, cd, "decoder_with_condition")
    h = layers.Dense(hidden, activation="relu", name="decoder_dense_0")(h)
    h = layers.Dense(2 * hidden, activation="relu", name="decoder_dense_1")(h)
    # The last stage is called decoder_coordinates: the coordinate view reads it.
    stages = [lambda h, name: layers.Dense(n_particles * dim, name=name)(h)]
    if log_heights:
        stages.append(lambda h, name: ExpHeights(n_particles, dim, name=name)(h))
    if repel and repel.get("steps", 0) > 0:
        stages.append(lambda h, name: Repel(n_particles, dim, **repel, name=name)(h))
    for k, stage in enumerate(stages):
        last = k == len(stages) - 1
        h = stage(h, "decoder_coordinates" if last else f"decoder_raw_coordinates_{k}")
    out = DistancesFromCoordinates(n_particles, dim, scale, height_scale, name="distances")(h)
    return _functional((z, cd), out, "decoder")


def voxel_vae_parts(grid_shape, latent_dim, filters, hidden, conditional, n_conditions):
    """grid_shape (n,)*dim + (1,); n must be divisible by 2^len(filters)."""
    dim = len(grid_shape) - 1
    n = grid_shape[0]
    blocks = len(filters)
    if n % (2**blocks):
        raise ValueError(f"a grid of {n} cells per axis cannot be halved {blocks} times; use a "
                         f"multiple of {2**blocks}")
    conv = layers.Conv3D if dim == 3 else layers.Conv2D
    pool = layers.MaxPooling3D if dim == 3 else layers.MaxPooling2D
    deconv = layers.Conv3DTranspose if dim == 3 else layers.Conv2DTranspose
    x, c = _inputs(grid_shape, conditional, n_conditions)
    h = x
    for k, f in enumerate(filters):
        h = conv(f, 3, padding="same", activation="relu", name=f"encoder_conv_{k}")(h)
        h = pool(2, name=f"encoder_pool_{k}")(h)
    h = layers.Flatten(name="encoder_flatten")(h)
    h = _with_condition(h, c, "encoder_with_condition")
    h = layers.Dense(hidden, activation="relu", name="encoder_dense")(h)
    encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
    z, cd = _inputs((latent_dim,), conditional, n_conditions)
    small = n // 2**blocks
    h = _with_condition(z, cd, "decoder_with_condition")
    h = layers.Dense(hidden, activation="relu", name="decoder_dense_0")(h)
    h = layers.Dense(small**dim * filters[-1], activation="relu", name="decoder_dense_1")(h)
    h = layers.Reshape((small,) * dim + (filters[-1],), name="decoder_reshape")(h)
    for k, f in enumerate(reversed(filters)):
        h = deconv(f, 3, strides=2, padding="same", activation="relu",
                   name=f"decoder_deconv_{k}")(h)
    out = conv(1, 3, padding="same", activation="sigmoid", name="density")(h)
    decoder = _functional((z, cd), out, "decoder")
    return encoder, decoder


def build_vae(representation: str, input_shape, latent_dim: int, beta: float = 1.0,
              conditional: bool = False, n_conditions: int = 2, physics=None, seed=None,
              widths=None, filters=(32, 64, 64), hidden: int = 256,
              through_coordinates=None, height_scale=None, distance_encoder="conv",
              coordinate_weight=0.0, repel=None, log_heights=False, n_states=0,
              state_weight=0.0) -> VAE:
    """The default VAE for a representation ('coords', 'distances' or 'voxels');
    through_coordinates=(d, scale) makes a distances decoder emit coordinates (trained also on
    them with coordinate_weight > 0, see :class:`VAE`), a height_scale adds the height
    channels to distance matrices, and n_states > 0 with state_weight > 0 a state head."""
    keras.utils.set_random_seed(0 if seed is None else int(seed))
    if representation == "coords":
        n_values = int(input_shape[0])
        widths = list(widths) if widths else default_dense_widths(n_values)
        parts = dense_vae_parts(n_values, latent_dim, widths, conditional, n_conditions)
    elif representation == "distances":
        parts = distance_vae_parts(int(input_shape[0]), latent_dim, list(filters), hidden,
                                   conditional, n_conditions, through_coordinates, height_scale,
                                   distance_encoder, repel, log_heights)
    elif representation == "voxels":
        parts = voxel_vae_parts(tuple(input_shape), latent_dim, list(filters), hidden,
                                conditional, n_conditions)
    else:
        raise ValueError(f"unknown representation {representation!r}")
    if physics and representation == "voxels":
        raise ValueError("the physics loss needs decoded distances or coordinates, not voxels")
    return VAE(*parts, beta=beta, physics=physics, conditional=conditional, seed=seed,
               height_channels=representation == "distances" and height_scale is not None,
               coordinate_weight=coordinate_weight if through_coordinates else 0.0,
               n_states=0 if conditional else n_states, state_weight=state_weight)
