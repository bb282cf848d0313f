"""The VAE architectures for each representation, and the layers they are made of (Keras 3).

Architectures (built by :func:`build_vae`, a :class:`ljvae_core.vae.VAE` of the parts):
- sorted coordinates and voxel grids decoded through coordinates
  (:func:`coordinates_vae_parts`): a dense encoder (after strided convolutions for a grid
  itself) and :func:`coordinate_decoder`, whose output is the decoded coordinates as
  sorted-coordinate values (:class:`ScaledCoordinates`).
- ``dense`` on sorted coordinates decoded directly: a mirrored encoder/decoder
  (N*d -> 0.75 N*d -> 0.37 N*d -> latent; 60 -> 45 -> 22 -> 2 for 30 particles in 2D).
- distances: an encoder of the matrix itself (Conv2D, or kernels spanning whole rows) or, by
  default, a dense encoder of the shape classical MDS recovers from it, put in one frame
  (``encoder="mds"``, input made by :class:`ljvae_core.features.ShapeFrame`); a dense decoder
  emitting coordinates whose distance matrix is the output (:class:`DistancesFromCoordinates`,
  Euclidean by construction, with a coordinate term in the loss), or the matrix itself made
  symmetric with a zero diagonal (:class:`SymmetricDistances`). By default the decoded
  coordinates end with a few steps pushing overlapping pairs apart (:class:`Repel`): a hard
  core the decoder learns through.
- ``conv3d`` on voxel grids decoded directly (``conv2d_grid`` for 2D grids): three blocks of
  convolution and 2x pooling, flattened to mean and log-variance; transposed convolutions
  back.
- ``conditional=True`` feeds (gamma, T) to the encoder and the decoder.

The joint physics loss (:class:`ljvae_core.penalty.PhysicsPenalty`) adds, for the
reconstruction of each training configuration and for one configuration decoded from a
Gaussian of the batch's posterior means (where generation's fitted prior samples),
``weight * [s softplus((U/N - energy_cap) / s) + W]``: U the LJ energy of the decoded
configuration computed in TensorFlow from its distances, W the squared overflow of decoded
coordinates out of the box's walls (:mod:`ljvae_core.physics_tf`). The same penalty, through
:meth:`ljvae_core.vae.VAE.latent_penalty`, refines the generation prior after training
(:meth:`ljvae_core.priors.LatentPrior.refine`) without moving the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from .physics_tf import pair_differences_and_distances, pairwise_distances_tf
from .vae import PACKAGE, VAE


# --------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class CoordinateDecoding:
    """A decoder that emits coordinates first, ``dim`` per particle: a distances decoder
    outputs their distance matrix divided by ``scale`` (sigma per unit of the matrices);
    one of sorted coordinates or voxel grids outputs them as sorted-coordinate values of a
    box of side ``box`` (``n_particles`` of them)."""

    dim: int
    scale: float = 1.0
    box: float | None = None
    n_particles: int | None = None


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
    configuration); this gives it one.

    With a `trigger`, only configurations holding a pair closer than it are pushed; the
    others pass unchanged (heights still clipped into the box), so a decoded configuration
    that is already whole keeps its thermal contacts instead of having them lifted to r0."""

    def __init__(self, n_particles, dim, distance=0.9, steps=4, height=None, trigger=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_particles, self.dim = int(n_particles), int(dim)
        self.distance, self.steps = float(distance), int(steps)
        self.height = None if height is None else float(height)
        self.trigger = float(trigger) if trigger else None

    def call(self, inputs):
        x = ops.reshape(inputs, (-1, self.n_particles, self.dim))
        off_diagonal = 1.0 - ops.eye(self.n_particles, dtype=x.dtype)
        pushed, overlapping = x, None
        for step in range(self.steps):
            diff, r = pair_differences_and_distances(pushed)
            if step == 0 and self.trigger is not None:
                closest = ops.min(r + 2.0 * self.trigger * (1.0 - off_diagonal), axis=(1, 2))
                overlapping = ops.cast(closest < self.trigger, x.dtype)[:, None, None]
            push = ops.relu(self.distance - r) * off_diagonal / r
            pushed = pushed + 0.5 * ops.sum(ops.expand_dims(push, -1) * diff, axis=2)
            if self.height is not None:
                pushed = self._between_floor_and_ceiling(pushed)
        if overlapping is not None:
            whole = x if self.height is None else self._between_floor_and_ceiling(x)
            pushed = whole + overlapping * (pushed - whole)
        return ops.reshape(pushed, (-1, self.n_particles * self.dim))

    def _between_floor_and_ceiling(self, x):
        # A push must not leave the box through the floor: the configuration would then be
        # lifted as a whole and squashed under the ceiling when put back into the box.
        heights = ops.clip(x[..., -1:], 0.0, self.height)
        return ops.concatenate([x[..., :-1], heights], axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_particles": self.n_particles, "dim": self.dim,
                "distance": self.distance, "steps": self.steps, "height": self.height,
                "trigger": self.trigger}


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
class ScaledCoordinates(layers.Layer):
    """(N * d) coordinates in sigma -> the same mapped from [0, box] to [-1, 1], as
    :class:`ljvae_core.features.SortedCoordinates` lays out its values (in the decoder's own
    particle order)."""

    def __init__(self, dim, box, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.box = int(dim), float(box)  # dim: what VAE.decoded_coordinates reads

    def call(self, inputs):
        return 2.0 * inputs / self.box - 1.0

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "box": self.box}


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
                       decode_coordinates=None, height_scale=None, encoder="conv", repel=None,
                       log_heights=False):
    """Conv2D encoder; the decoder outputs the matrix directly (symmetric, zero diagonal), or,
    with decode_coordinates (a :class:`CoordinateDecoding`), coordinates whose distances form
    the output. With
    a height_scale the matrices carry two channels of heights over it (input and output).

    encoder="conv": 3x3 convolutions with stride 2 (``filters``); "rows": convolutions whose
    kernels span whole rows, so that each particle is first described by all its distances
    (and heights) -- neighbouring rows of a matrix are not neighbouring particles; "mds": a
    dense encoder of the shape that classical MDS recovers from the matrix, in one frame
    (its input is (N, d), made by :class:`ljvae_core.features.ShapeFrame` from the matrix)."""
    channels = 1 if height_scale is None else 3
    if encoder == "mds":
        if decode_coordinates is None:
            raise ValueError("the mds encoder needs a decoder through coordinates")
        x, c = _inputs((n_particles, decode_coordinates.dim), conditional, n_conditions)
        h = layers.Flatten(name="encoder_flatten")(x)
        h = _with_condition(h, c, "encoder_with_condition")
        h = layers.Dense(2 * hidden, activation="relu", name="encoder_dense_wide")(h)
        h = layers.Dense(hidden, activation="relu", name="encoder_dense")(h)
        encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
        return encoder, _distances_decoder(n_particles, latent_dim, hidden, conditional,
                                            n_conditions, decode_coordinates, height_scale, repel,
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
    if decode_coordinates is not None:
        return encoder, _distances_decoder(n_particles, latent_dim, hidden, conditional,
                                            n_conditions, decode_coordinates, height_scale, repel,
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


def _distances_decoder(n_particles, latent_dim, hidden, conditional, n_conditions,
                        decode_coordinates, height_scale, repel=None, log_heights=False):
    """Decoder (z[, c]) -> coordinates (layer ``decoder_coordinates``) -> their distance
    matrix (with height channels when height_scale is set). repel={"distance", "steps",
    "height"} ends the coordinates with a :class:`Repel` layer; log_heights puts an
    :class:`ExpHeights` layer before it."""
    dim, scale = decode_coordinates.dim, decode_coordinates.scale
    return coordinate_decoder(
        n_particles, dim, latent_dim, hidden, conditional, n_conditions,
        DistancesFromCoordinates(n_particles, dim, scale, height_scale, name="distances"),
        repel, log_heights)


def coordinate_decoder(n_particles, dim, latent_dim, hidden, conditional, n_conditions,
                       render, repel=None, log_heights=False):
    """Decoder (z[, c]) -> coordinates in sigma (layer ``decoder_coordinates``) -> what the
    layer ``render`` makes of them (the decoder's output). repel={"distance", "steps",
    "height"} ends the coordinates with a :class:`Repel` layer; log_heights puts an
    :class:`ExpHeights` layer before it."""
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
    return _functional((z, cd), render(h), "decoder")


def coordinates_vae_parts(input_shape, n_particles, dim, box, latent_dim, hidden, conditional,
                          n_conditions, repel=None, log_heights=False, filters=()):
    """An encoder of the representation's values -- dense for sorted coordinates (input
    (N d,)), strided convolutions (``filters``) then dense for a voxel grid -- and a decoder
    through coordinates whose output is those coordinates as :class:`SortedCoordinates`
    values (:class:`ScaledCoordinates`), in the decoder's own particle order."""
    x, c = _inputs(tuple(input_shape), conditional, n_conditions)
    h = x
    if len(input_shape) > 1:
        conv = layers.Conv3D if len(input_shape) == 4 else layers.Conv2D
        for k, f in enumerate(filters):
            h = conv(f, 3, strides=2, padding="same", activation="relu",
                     name=f"encoder_conv_{k}")(h)
        h = layers.Flatten(name="encoder_flatten")(h)
    h = _with_condition(h, c, "encoder_with_condition")
    h = layers.Dense(2 * hidden, activation="relu", name="encoder_dense_wide")(h)
    h = layers.Dense(hidden, activation="relu", name="encoder_dense")(h)
    encoder = _functional((x, c), _heads(h, latent_dim), "encoder")
    render = ScaledCoordinates(dim, box, name="coords")
    return encoder, coordinate_decoder(n_particles, dim, latent_dim, hidden, conditional,
                                       n_conditions, render, repel, log_heights)


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
              decode_coordinates=None, height_scale=None, distance_encoder="conv",
              coordinate_weight=0.0, repel=None, log_heights=False, n_states=0,
              state_weight=0.0, voxel_filters=(16, 32)) -> VAE:
    """The default VAE for a representation ('coords', 'distances' or 'voxels');
    decode_coordinates=CoordinateDecoding(d, scale) makes a distances decoder emit coordinates
    (trained also on them with coordinate_weight > 0, see :class:`ljvae_core.vae.VAE`), and
    one of sorted coordinates or voxel grids emit coordinates as their output (weighed by
    coordinate_weight, a reconstruction of coordinates like the distances model's term); a
    height_scale adds the height channels to distance matrices, and n_states > 0 with
    state_weight > 0 a state head."""
    keras.utils.set_random_seed(0 if seed is None else int(seed))
    through, distances = decode_coordinates, representation == "distances"
    if representation not in ("coords", "distances", "voxels"):
        raise ValueError(f"unknown representation {representation!r}")
    if representation == "distances":
        parts = distance_vae_parts(int(input_shape[0]), latent_dim, list(filters), hidden,
                                   conditional, n_conditions, decode_coordinates, height_scale,
                                   distance_encoder, repel, log_heights)
    elif through is not None:
        parts = coordinates_vae_parts(tuple(input_shape), through.n_particles, through.dim,
                                      through.box, latent_dim, hidden, conditional,
                                      n_conditions, repel, log_heights,
                                      filters=voxel_filters)
    elif representation == "coords":
        n_values = int(input_shape[0])
        widths = list(widths) if widths else default_dense_widths(n_values)
        parts = dense_vae_parts(n_values, latent_dim, widths, conditional, n_conditions)
    else:
        parts = voxel_vae_parts(tuple(input_shape), latent_dim, list(filters), hidden,
                                conditional, n_conditions)
    if physics and representation == "voxels" and through is None:
        raise ValueError("the physics loss needs decoded distances or coordinates, not voxels")
    return VAE(*parts, beta=beta, physics=physics, conditional=conditional, seed=seed,
               height_channels=representation == "distances" and height_scale is not None,
               # Decoding sorted coordinates or a grid through coordinates, the output is
               # the coordinates: the weight goes to the reconstruction, not to a second term.
               coordinate_weight=coordinate_weight if through and distances else 0.0,
               reconstruction_weight=coordinate_weight if through and not distances else 1.0,
               n_states=0 if conditional else n_states, state_weight=state_weight)
