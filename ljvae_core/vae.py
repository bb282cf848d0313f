"""The variational autoencoder (Keras 3 on TensorFlow): :class:`VAE` and its loss terms.

The loss is a list of :class:`LossTerm` (name, weight, function of the batch and the forward
pass, one value per configuration): the reconstruction's negative log-likelihood and the KL
divergence make the ELBO; a joint physics penalty, a coordinate term and a state head join it
where the model has them. Each term is one metric of the training history (its value before
its weight); the loss is their weighted sum.

The reconstruction term is the negative log-likelihood of a Gaussian decoder whose variance is
*calibrated*: set at every step to the batch's mean squared error (the "optimal sigma-VAE" of
Rybkin et al., 2021). A bare MSE has an arbitrary scale against the KL term and lets the
posterior collapse (every particle decoded to the middle of the box); the calibrated
likelihood weighs them as the ELBO says. The variance reached at the end of training is kept
(``decoder_log_var``) so that the ELBO of a new configuration can be scored later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops

from .penalty import PhysicsPenalty
from .physics_tf import decoded_penalty

PACKAGE = "ljvae"


def standard_normal(shape, seed_generator, dtype="float32"):
    """N(0, 1) draws seeded by a Keras ``SeedGenerator``, from TensorFlow's stateless Philox
    kernel: under XLA on a CPU, ``keras.random.normal`` took 1.9 ms for 64 x 64 draws where
    this takes 0.3 ms, and a training step draws twice (about half of its time before)."""
    import tensorflow as tf

    return tf.random.stateless_normal(shape, seed=seed_generator.next(), dtype=dtype,
                                      alg="philox")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampling(layers.Layer):
    """Draw z ~ N(mean, exp(log_var)) by reparameterization (seeded)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        mean, log_var = inputs
        eps = standard_normal(ops.shape(mean), self.seed_generator, mean.dtype)
        return mean + ops.exp(0.5 * log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class Batch(NamedTuple):
    """One training batch: inputs ``x`` (and ``condition`` for conditional models), the
    reconstruction's ``target``, and the optional ``coordinates`` and ``state`` targets."""

    x: object
    condition: object = None
    target: object = None
    coordinates: object = None
    state: object = None


class Forward(NamedTuple):
    """What one pass of a batch through the model made: the posterior, a latent sample, the
    decoded coordinates (None for decoders without them) and the decoder's output."""

    mean: object
    log_var: object
    z: object
    coordinates: object
    output: object
    training: bool


@dataclass(frozen=True)
class LossTerm:
    """One term of the loss: its metric ``name``, its ``weight`` (a number, or a function of no
    arguments for a weight that changes during training) and ``fn(batch, forward)``, one value
    per configuration. (A dataclass, not a tuple: Keras would track a tuple's items.)"""

    name: str
    weight: float | Callable
    fn: Callable

    def weighted(self, values):
        return (self.weight() if callable(self.weight) else self.weight) * values


def kl_divergence(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per configuration."""
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)


def gaussian_nll(squared_error, dims: float, log_var):
    """Negative log-likelihood of ``dims`` values under a Gaussian of variance exp(log_var)
    each, from their summed squared error, up to the constant dims / 2 log(2 pi)."""
    return 0.5 * squared_error * ops.exp(-log_var) + 0.5 * dims * log_var


def calibrated_nll(truth, guess):
    """(per-sample Gaussian negative log-likelihood, log variance) with the variance
    calibrated to the batch's mean squared error per value (up to a constant)."""
    axes = tuple(range(1, len(truth.shape)))
    sq = ops.sum(ops.square(truth - guess), axis=axes)
    dims = float(math.prod(truth.shape[1:]))
    log_mse = ops.log(ops.mean(sq) / dims + 1e-12)
    return gaussian_nll(sq, dims, log_mse), log_mse


def reconstruction_parts(target, output, height_channels: bool) -> list:
    """The (truth, guess) pairs a reconstruction is scored on, each with a calibrated variance
    of its own: the whole output, or, for distance matrices with height channels, the distance
    channel and the heights (each particle's once, from column 0 of channel 1) -- repeated 2N
    times, they would otherwise count as 2N independent values."""
    if not height_channels:
        return [(target, output)]
    return [(target[..., 0], output[..., 0]), (target[:, :, 0, 1], output[:, :, 0, 1])]


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """Encoder (x[, c]) -> (mean, log_var); decoder (z[, c]) -> x_hat.

    beta: weight of the KL term (1 = the ELBO). physics: a
    :class:`ljvae_core.penalty.PhysicsPenalty` (or its dict), the joint physics loss on the
    reconstructions and on configurations decoded from a Gaussian of the batch's posterior
    means. conditional: inputs are (x, c) pairs, c = scaled (gamma, T). height_channels:
    inputs are distance matrices with two height channels, which get a calibrated variance of
    their own (:func:`reconstruction_parts`). coordinate_weight: a calibrated likelihood of
    the decoded coordinates (a decoder layer named ``decoder_coordinates``) against a batch's
    ``coordinates`` targets: scored through its distances alone, a decoded shape settles
    into folded and mirrored minima. n_states, state_weight: a linear head z -> the batch's
    ``state`` (the standardized (gamma, T) that vary), so that the latent carries the state
    point where a linear map reads it. reconstruction_weight: the reconstruction term's weight
    (a decoder whose output is coordinates weighs them as another's coordinate term)."""

    def __init__(self, encoder, decoder, beta=1.0, physics=None, conditional=False, seed=None,
                 height_channels=False, coordinate_weight=0.0, n_states=0, state_weight=0.0,
                 reconstruction_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.beta = float(beta)
        self.physics = (physics if isinstance(physics, PhysicsPenalty)
                        else PhysicsPenalty.from_dict(physics))
        self.conditional, self.seed = bool(conditional), seed
        self.sampling = Sampling(seed=seed)
        # Scales beta during a warm-up (set by BetaWarmup); 1 once warm.
        self.beta_scale = keras.Variable(1.0, trainable=False, name="beta_scale",
                                         aggregation="only_first_replica")
        # The calibrated decoder's log-variance as training leaves it; assigned in every
        # replica under a tf.distribute strategy, hence averaged.
        self.decoder_log_var = keras.Variable(0.0, trainable=False, name="decoder_log_var",
                                              aggregation="mean")
        self.height_channels = bool(height_channels)
        if self.height_channels:  # only then, so that saved models without it keep loading
            self.height_log_var = keras.Variable(0.0, trainable=False, name="height_log_var",
                                                 aggregation="mean")
        self.coordinate_weight = float(coordinate_weight)
        self.reconstruction_weight = float(reconstruction_weight)
        self._coordinate_view = _Untracked(_coordinate_view(decoder))
        self.n_states, self.state_weight = int(n_states), float(state_weight)
        self.state_head = None
        if self.n_states > 0 and self.state_weight > 0.0:
            self.state_head = layers.Dense(self.n_states, name="state_head")
            self.state_head.build((None, encoder.outputs[0].shape[-1]))
        self.terms = self._loss_terms()
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ["loss", *(t.name for t in self.terms)]}

    def _loss_terms(self) -> list[LossTerm]:
        terms = [LossTerm("reconstruction", self.reconstruction_weight, self._reconstruction),
                 LossTerm("kl", lambda: self.beta * self.beta_scale,
                          lambda batch, f: kl_divergence(f.mean, f.log_var))]
        if self.physics is not None and self.physics.weight > 0.0:
            terms.append(LossTerm("physics", self.physics.weight, self._physics))
        if self.coordinate_weight > 0.0 and self.has_coordinates:
            terms.append(LossTerm("coordinates", self.coordinate_weight, self._coordinates))
        if self.state_head is not None:
            terms.append(LossTerm("state", self.state_weight, self._state))
        return terms

    # -- the model
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
    def has_coordinates(self) -> bool:
        """Whether the decoder goes through coordinates (see :meth:`decoded_coordinates`)."""
        return self._coordinate_view.model is not None

    def decode_with_coordinates(self, z, c=None):
        """(decoded coordinates, or None for decoders without them; decoder output)."""
        if not self.has_coordinates:
            return None, self.decode(z, c)
        return self._coordinate_view.model([z, c] if self.conditional else z)

    def decoded_coordinates(self, x, c=None, batch_size: int = 1024):
        """(M, N, d) coordinates (sigma) that the decoder makes of the latent means of inputs
        x, in the decoder's own frame (numpy)."""
        if not self.has_coordinates:
            raise ValueError("this decoder does not go through coordinates")
        parts = []
        for start in range(0, len(x), batch_size):
            # Tensors both: Keras refuses a tensor beside an array in one nested argument.
            cb = None if c is None else ops.convert_to_tensor(c[start:start + batch_size])
            mean, _ = self.encode(ops.convert_to_tensor(x[start:start + batch_size]), cb)
            parts.append(ops.convert_to_numpy(self.decode_with_coordinates(mean, cb)[0]))
        flat = np.concatenate(parts).astype(np.float64)
        dim = self.decoder.layers[-1].dim  # the layer that renders the coordinates
        return flat.reshape(len(flat), -1, dim)

    def latent_penalty(self, physics: PhysicsPenalty):
        """A function (z[, c]) -> :func:`ljvae_core.physics_tf.decoded_penalty` of the
        configurations decoded from latent points z (under conditions c for conditional
        models), differentiable in z."""
        def penalty(z, c=None):
            coordinates, x_hat = self.decode_with_coordinates(z, c)
            return decoded_penalty(physics, x_hat, coordinates)
        return penalty

    # -- the loss
    def _batch(self, data) -> Batch:
        """A batch as the data pipeline gives it: x alone, (x, c) for conditional models, or a
        dict with "x", "target" and any of "condition", "coordinates", "state"."""
        if isinstance(data, (tuple, list)) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict):
            return Batch(data["x"], data.get("condition"), data.get("target", data["x"]),
                         data.get("coordinates"), data.get("state"))
        x, c = data if self.conditional else (data, None)
        return Batch(x, c, x)

    def _forward(self, batch: Batch, training: bool) -> Forward:
        mean, log_var = self.encode(batch.x, batch.condition)
        z = self.sampling([mean, log_var])
        coordinates, output = self.decode_with_coordinates(z, batch.condition)
        return Forward(mean, log_var, z, coordinates, output, training)

    def _reconstruction(self, batch: Batch, f: Forward):
        variables = [self.decoder_log_var] + ([self.height_log_var] if self.height_channels
                                              else [])
        total = 0.0
        parts = reconstruction_parts(batch.target, f.output, self.height_channels)
        for (truth, guess), variable in zip(parts, variables, strict=True):
            nll, log_mse = calibrated_nll(truth, guess)
            total = total + nll
            if f.training:
                variable.assign(log_mse)
        return total

    def _physics(self, batch: Batch, f: Forward):
        # Also on configurations decoded where generation samples: a Gaussian of this batch's
        # means stands in for the prior fitted after training. N(0, I) lies off the region
        # the encoder uses: shaping the decoder there changed nothing generation sees.
        centre = ops.stop_gradient(ops.mean(f.mean, axis=0))
        spread = ops.stop_gradient(ops.std(f.mean, axis=0))
        prior = centre + spread * standard_normal(ops.shape(f.mean), self.sampling.seed_generator,
                                                  f.mean.dtype)
        prior_coordinates, prior_output = self.decode_with_coordinates(prior, batch.condition)
        return (decoded_penalty(self.physics, f.output, f.coordinates)
                + decoded_penalty(self.physics, prior_output, prior_coordinates))

    def _coordinates(self, batch: Batch, f: Forward):
        if batch.coordinates is None:
            return ops.zeros((ops.shape(f.mean)[0],))
        truth = ops.reshape(batch.coordinates, ops.shape(f.coordinates))
        return calibrated_nll(truth, f.coordinates)[0]

    def _state(self, batch: Batch, f: Forward):
        if batch.state is None:
            return ops.zeros((ops.shape(f.mean)[0],))
        return calibrated_nll(batch.state, self.state_head(f.z))[0]

    def _scored(self, data, training: bool):
        """(the loss, {term name: its mean value}) of a batch."""
        batch = self._batch(data)
        forward = self._forward(batch, training)
        values = {term.name: term.fn(batch, forward) for term in self.terms}
        loss = ops.mean(sum(term.weighted(values[term.name]) for term in self.terms))
        return loss, {name: ops.mean(v) for name, v in values.items()}

    def train_step(self, data):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, parts = self._scored(data, training=True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        return self._record(loss, parts)

    def test_step(self, data):
        return self._record(*self._scored(data, training=False))

    def _record(self, loss, parts):
        for name, value in {"loss": loss, **parts}.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    # -- persistence
    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta, "conditional": self.conditional,
            "physics": None if self.physics is None else self.physics.to_dict(),
            "seed": self.seed, "height_channels": self.height_channels,
            "coordinate_weight": self.coordinate_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "n_states": self.n_states, "state_weight": self.state_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


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
