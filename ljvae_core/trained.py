"""A trained VAE and everything needed to use it on new configurations: :class:`TrainedModel`.

It turns configurations into the model's inputs (:meth:`TrainedModel.model_data`) and runs
the encoder, the decoder and the whole model on them; the generation priors and the frame of
the ``mds`` encoder it keeps in its meta. Imports TensorFlow only through the Keras model it
holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .settings import TrainSettings

# Inference runs the encoder and the decoder as compiled functions over chunks of one size
# (the last one padded), so that each traces once. Calls of many rows use XLA, which takes
# about 1.5 s to compile and then decodes 4000 latents of the study model in 0.07 s on a
# 2-core CPU, where Keras' predict, dominated by its per-batch overhead, takes 0.7-1.4 s.
# Models that convolve voxel grids never do: XLA's CPU convolutions were far slower to compile.
CHUNK_VALUES = 2**22  # values of the largest input or output per chunk (16 MB as float32)
MAX_CHUNK = 1024
XLA_MIN_ROWS = 1000
# The generation priors :meth:`TrainedModel.generate` knows.
PRIORS = ("default", "pooled", "unrefined", "normal")
# Latent draws decoded per probed state point when steering generation between state points
# (the mean height of 512 has a standard error of 0.002-0.004 sigma on the study system).
STEERING_PROBES = 512
# Samples whose heights define the height map of a state point (the quantiles of their
# 60 000 heights on the study system; the calibration judges batches of as many).
MAP_PROBES = 2000


def dataset_fingerprint(dataset) -> str:
    """A short hash of a dataset's coordinates and energies (which dataset a model saw)."""
    digest = hashlib.sha256(np.ascontiguousarray(dataset.coords).tobytes())
    digest.update(np.ascontiguousarray(dataset.energy).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class TrainedModel:
    """A trained VAE with everything needed to use it on new configurations."""

    model: object
    representation: object
    settings: TrainSettings
    meta: dict

    @property
    def history(self) -> dict:
        return self.meta["history"]

    def condition_features(self, gamma, temperature) -> np.ndarray:
        """(M, 2) scaled (gamma, T) inputs of conditional models."""
        raw = np.stack([np.asarray(gamma, float), np.asarray(temperature, float)], axis=-1)
        scale = self.meta["condition_scale"]
        return ((raw - scale["mean"]) / scale["std"]).astype("float32")

    @property
    def frame(self):
        """The :class:`ljvae_core.features.ShapeFrame` of models with the ``mds`` encoder
        (None for the others)."""
        if self.meta.get("frame") is None:
            return None
        if getattr(self, "_frame", None) is None:
            from .features import ShapeFrame

            self._frame = ShapeFrame.from_dict(self.representation, self.meta["frame"])
        return self._frame

    @property
    def system(self):
        """The :class:`ljvae_core.system.System` of the dataset it was trained on."""
        from .system import System

        params = self.meta.get("dataset_params") or {}
        return System.from_params({"box": self.representation.L, **params,
                                   "dim": self.representation.d})

    def trained_on(self, dataset) -> bool:
        """Whether ``dataset`` is the one this model was trained on (its validation chains
        are then held out, the others seen)."""
        return self.meta.get("dataset_fingerprint") == dataset_fingerprint(dataset)

    @property
    def latent_prior(self):
        """The generation prior fitted after training (:class:`ljvae_core.priors.LatentPrior`
        or :class:`ljvae_core.priors.KernelPrior`), or None for models that have none
        (generation then samples N(0, I))."""
        if self.meta.get("latent_prior") is None:
            return None
        from .priors import prior_from_dict

        return prior_from_dict(self.meta["latent_prior"])

    @property
    def conditional_prior(self):
        """The per-state-point generation prior of a conditional model
        (:class:`ljvae_core.priors.ConditionalPrior`), or None (unconditional models, and
        conditional ones saved without it)."""
        if self.meta.get("conditional_prior") is None:
            return None
        from .priors import ConditionalPrior

        return ConditionalPrior.from_dict(self.meta["conditional_prior"])

    @property
    def unrefined_latent_prior(self):
        """The generation prior's plain maximum-likelihood fit, before the joint physics loss
        refined it (the prior itself when it was not refined; None without one)."""
        if self.meta.get("latent_prior_plain") is None:
            return self.latent_prior
        from .priors import LatentPrior

        return LatentPrior.from_dict(self.meta["latent_prior_plain"])

    @property
    def output_representation(self):
        """The representation whose values the decoder outputs: the model's own, or, for a
        voxel grid decoded through coordinates, sorted coordinates in the same box (in the
        template order fitted in training)."""
        if self.meta.get("output_representation") is None:
            return self.representation
        if "_output_representation" not in self.__dict__:
            from .features import representation_from_dict

            self._output_representation = representation_from_dict(
                self.meta["output_representation"])
        return self._output_representation

    def in_output_order(self, target, output) -> np.ndarray:
        """Targets (M, ...) with their particles put in the order of the decoder's outputs,
        for decoders of sorted coordinates or voxel grids through coordinates, whose
        particles come in their own order; other targets as they are."""
        if self.settings.representation == "distances" or not self.settings.decodes_coordinates:
            return target
        from .geometry import assignment_orders

        rep = self.output_representation
        shape = (len(target), rep.n_particles_, rep.d)
        truth = np.reshape(target, shape)
        orders = assignment_orders(truth, np.reshape(output, shape))
        return np.take_along_axis(truth, orders[..., None], axis=1).reshape(np.shape(target))

    def model_data(self, coords, gamma=None, temperature=None, targets: bool = True) -> dict:
        """What the model makes of configurations: its input ``x`` (with ``condition`` for
        conditional models) and its reconstruction ``target``. With the ``mds`` encoder the
        input is the shape in the :attr:`frame` (in units of the box) and the target is its
        matrix, in the same particle order, plus its ``coordinates`` (sigma)."""
        matrices = self.representation.transform(coords)
        if self.frame is None:
            data = {"x": matrices.astype("float32")}
            data["target"] = data["x"]
            if self.output_representation is not self.representation:
                data["target"] = self.output_representation.transform(coords).astype("float32")
            if self.settings.reads_peaks:
                data["x"] = self._peaks(matrices)
        else:
            _, shapes = self.frame.transform(matrices)
            data = {"x": (shapes / self.representation.L).astype("float32"),
                    "coordinates": shapes.astype("float32")}
            if targets:  # the shapes' own matrices: seconds for thousands, unused as input
                data["target"] = self.representation.values(shapes).astype("float32")
        if self.settings.conditional:
            data["condition"] = self.condition_features(gamma, temperature)
        return data

    def _peaks(self, grids) -> np.ndarray:
        """The ``peaks`` voxel encoder's fixed first stage: the particles that greedy peak
        picking finds in each grid, in the template order of the decoder's targets."""
        found = self.representation.inverse_transform(grids)
        return self.output_representation.transform(found).astype("float32")

    def keep_inputs(self, dataset, parts) -> None:
        """Keep what training computed of :meth:`model_data` for rows of ``dataset``:
        ``parts``, (sorted row indices, their data dict) pairs, for :meth:`rows_data` to slice
        until :meth:`forget_inputs` (held in memory only, never saved)."""
        self.__dict__["_kept_inputs"] = (dataset, [(np.asarray(i), d) for i, d in parts])

    def forget_inputs(self) -> None:
        """Drop what :meth:`keep_inputs` kept."""
        self.__dict__.pop("_kept_inputs", None)

    def rows_data(self, dataset, idx, targets: bool = True) -> dict:
        """:meth:`model_data` of the rows ``idx`` of ``dataset``: sliced from the kept inputs
        where one part holds all of them (seconds saved per ten thousand configurations
        after training), else computed."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        kept_dataset, parts = self.__dict__.get("_kept_inputs", (None, []))
        for rows, data in parts if kept_dataset is dataset else []:
            where = np.minimum(np.searchsorted(rows, idx), len(rows) - 1)
            if len(rows) and np.array_equal(rows[where], idx):
                whole = np.array_equal(idx, rows)  # no copy of a whole part
                out = {k: v if whole else v[where] for k, v in data.items() if k != "state"}
                if self.frame is None:  # training keeps the VAE's default target only once
                    out.setdefault("target", out["x"])
                elif not targets:
                    out.pop("target", None)
                return out
        return self.model_data(dataset.coords[idx], dataset.gamma[idx],
                               dataset.temperature[idx], targets=targets)

    def encode_rows(self, dataset, idx) -> np.ndarray:
        """Posterior means (M, latent) of the rows ``idx`` of ``dataset``."""
        return self.posterior(self.rows_data(dataset, idx, targets=False))[0]

    def model_inputs(self, coords, gamma=None, temperature=None):
        """The model's input: x, or (x, condition) for conditional models."""
        return self.inputs_of(self.model_data(coords, gamma, temperature, targets=False))

    def inputs_of(self, data: dict):
        """The model's input in a :meth:`model_data` dict: x, or (x, condition)."""
        return (data["x"], data["condition"]) if self.settings.conditional else data["x"]

    def posterior(self, data: dict) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances (M, latent) of a :meth:`model_data` dict."""
        x = self.inputs_of(data)
        mean, log_var = self._compiled("encoder")(*(x if isinstance(x, tuple) else (x,)))
        return mean.astype(np.float64), log_var.astype(np.float64)

    def decoder_output(self, latent, condition=None) -> np.ndarray:
        """What the decoder makes of latent vectors (M, latent), under condition features
        (M, 2) for conditional models: the representation's values."""
        z = np.asarray(latent, dtype="float32")
        return self._compiled("decoder")(*((z, condition) if self.settings.conditional
                                           else (z,)))

    def output(self, data: dict) -> np.ndarray:
        """The whole model's output (posterior mean decoded) for a :meth:`model_data` dict."""
        mean = self.posterior(data)[0]
        return self.decoder_output(mean, data.get("condition"))

    def _compiled(self, part: str):
        """The model's ``part`` ("encoder" or "decoder") as a :class:`CompiledPart`, made on
        first use and kept."""
        parts = self.__dict__.setdefault("_compiled_parts", {})
        if part not in parts:
            model = getattr(self.model, part)
            values = max(int(np.prod(t.shape[1:])) for t in [*model.inputs, *model.outputs])
            parts[part] = CompiledPart(model, chunk_size(values),
                                       xla=not self.settings.convolves_grids)
        return parts[part]

    # -- what users call
    def encode(self, coords, gamma=None, temperature=None) -> np.ndarray:
        """Posterior means (M, latent) of configurations (M, N, d)."""
        return self.posterior(self.model_data(coords, gamma, temperature, targets=False))[0]

    def decode(self, latent, gamma=None, temperature=None) -> np.ndarray:
        """Configurations (M, N, d) decoded from latent vectors (at gamma, T if conditional)."""
        c = None
        if self.settings.conditional:
            n = len(latent)
            c = self.condition_features(np.broadcast_to(gamma, n), np.broadcast_to(temperature, n))
        return self.output_representation.inverse_transform(self.decoder_output(latent, c))

    def reconstruct(self, coords, gamma=None, temperature=None) -> np.ndarray:
        """Encode (posterior mean) and decode configurations; coordinates (M, N, d)."""
        out = self.output(self.model_data(coords, gamma, temperature, targets=False))
        return self.output_representation.inverse_transform(out)

    def available_priors(self) -> list[str]:
        """The priors :meth:`generate` can sample, its default first: the fitted one (per state
        point for conditional models that have one, with the mixture pooled over every state
        point beside it); when the physics loss refined the pooled mixture, the plain fit;
        N(0, I) always."""
        if self.latent_prior is None:
            return ["normal"]
        names = ["default"]
        if self.conditional_prior is not None:
            names.append("pooled")
        if self.meta.get("latent_prior_plain") is not None:
            names.append("unrefined")
        return names + ["normal"]

    def generate(self, n: int, gamma=None, temperature=None, seed: int = 0,
                 prior: str = "default") -> np.ndarray:
        """n configurations decoded from latent samples (at the given gamma, T if conditional).

        prior="default": the model's generation prior -- for a conditional model that has one,
        the mixture of the state point (gamma, T), carried between trained state points
        (:class:`ljvae_core.priors.ConditionalPrior`); otherwise the mixture fitted over every
        training configuration (:class:`ljvae_core.priors.LatentPrior`, refined by the joint
        physics loss where the model's was, and for an unconditional model narrowed by its
        calibrated scale), which prior="pooled" also names.
        prior="unrefined": that mixture's maximum-likelihood fit, before either.
        prior="normal": N(0, I)."""
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose from {PRIORS}")
        rng = np.random.default_rng(seed)
        by_state = self.conditional_prior if prior == "default" else None
        if by_state is not None:
            return self._generate_by_state(by_state, n, gamma, temperature, seed, rng)
        pooled = {"default": self.latent_prior, "pooled": self.latent_prior,
                  "unrefined": self.unrefined_latent_prior, "normal": None}[prior]
        if pooled is not None:
            z = pooled.sample(n, rng)
        else:
            z = rng.normal(size=(n, self.settings.latent_dim))
        return self.decode_sample(z, rng, gamma, temperature)

    def _generate_by_state(self, by_state, n, gamma, temperature, seed, rng) -> np.ndarray:
        """n samples of a conditional model's per-state-point prior, a state point at a
        time (one value of gamma and T for all, or one per sample)."""
        states = np.stack(np.broadcast_arrays(np.asarray(gamma, float),
                                              np.asarray(temperature, float),
                                              np.empty(n))[:2], axis=-1).reshape(n, 2)
        if not np.isfinite(states).all():
            raise ValueError("a conditional model generates at a finite γ and T")
        if n == 0:  # the decoder's empty batch, shaped as any other
            return self.decode(np.zeros((0, by_state.priors[0].dim)), 0.0, 1.0)
        targets, which = np.unique(states, axis=0, return_inverse=True)
        parts = []
        for k, (g, t) in enumerate(targets):
            rows = np.flatnonzero(which.ravel() == k)
            coords, ends = self._unmapped(by_state, len(rows), float(g), float(t), seed, rng)
            parts.append((rows, self.mapped_heights(coords, float(g), float(t), seed, ends)))
        out = np.empty((n, *parts[0][1].shape[1:]))
        for rows, coords in parts:
            out[rows] = coords
        return out

    def _unmapped(self, by_state, n, gamma, temperature, seed, rng) -> tuple:
        """n samples at (gamma, T) before their heights are mapped: drawn and decoded at the
        steered state point (:meth:`generation_state`), with the state point's spread and
        noise (:meth:`disorder_at`); and for each, the trained state point whose prior it
        was drawn from."""
        state = self.generation_state(gamma, temperature, seed)
        spread, width = self.disorder_at(gamma, temperature)
        drawn = by_state if spread == 1.0 else by_state.scaled(spread)
        latent, ends = drawn.sample_labelled(n, *state, rng)
        return self.decode_sample(latent, rng, *state, jitter=width,
                                  contact=by_state.contact_distance(gamma, temperature)), ends

    def disorder_at(self, gamma: float, temperature: float) -> tuple:
        """(the factor scaling the latent prior's spread, the width (sigma) of the noise on
        every coordinate) of a conditional model's samples at (gamma, T): at a trained state
        point (1, its calibrated width); between two, the walk of
        :func:`ljvae_core.noise_walk.disorder_between` on their training configurations
        reweighted to (gamma, T), where the model keeps what it needs; elsewhere (1, the
        width :meth:`ljvae_core.priors.ConditionalPrior.noise_width` interpolates).
        Computed once per state point and model; (1, 0) for a model without a
        per-state-point prior."""
        from .noise_walk import disorder_between

        by_state = self.conditional_prior
        if by_state is None:
            return 1.0, 0.0
        known = self.__dict__.setdefault("_disorder", {})
        key = (float(gamma), float(temperature))
        if key not in known:
            walked = disorder_between(self, *key)
            known[key] = (walked if walked is not None
                          else (1.0, by_state.noise_width(gamma, temperature)))
        return known[key]

    def mapped_heights(self, coords, gamma: float, temperature: float, seed: int = 0,
                       ends=None) -> np.ndarray:
        """A conditional model's samples at (gamma, T) with their heights mapped onto the
        height distribution of that state point
        (:meth:`ljvae_core.priors.ConditionalPrior.height_target`). The map's source is the
        height distribution of :data:`MAP_PROBES` samples generated alike (seeded by
        ``seed``), computed once per state point and model; between trained state points,
        one for the samples drawn from each end's prior (``ends``, as
        :meth:`ljvae_core.priors.ConditionalPrior.sample_labelled` gives them;
        :func:`ljvae_core.disorder.map_grouped`)."""
        from .disorder import grouped_quantiles, map_grouped, map_heights

        by_state = self.conditional_prior
        target = None if by_state is None else by_state.height_target(gamma, temperature)
        if target is None:
            return coords
        anchor, quantiles = target
        known = self.__dict__.setdefault("_height_sources", {})
        key = (*anchor, int(seed))
        if key not in known:
            # A stream of their own: probes drawn as the samples are would map them onto
            # themselves.
            probes, probe_ends = self._unmapped(by_state, MAP_PROBES, *anchor, seed,
                                                np.random.default_rng([int(seed), 1]))
            known[key] = grouped_quantiles(probes, probe_ends, self.system.box)
        sources, box = known[key], self.system.box
        # A map defined at another state point (the nearest trained one) is applied whole.
        if ends is None or anchor != (float(gamma), float(temperature)):
            return map_heights(coords, sources[None], quantiles, box)
        return map_grouped(coords, ends, sources, quantiles, box)

    def decode_sample(self, latent, rng, gamma=None, temperature=None, jitter: float = 0.0,
                      contact: float | None = None) -> np.ndarray:
        """Configurations (M, N, d) decoded from latent vectors as :meth:`generate` decodes
        them: at gamma, T if conditional; their contacts pushed out to ``contact`` (sigma,
        :meth:`pushed_apart`) where it exceeds the hard core's own distance; their heights
        given the ``height_noise`` setting's noise; then every coordinate noise of width
        ``jitter`` (sigma, :func:`ljvae_core.disorder.jitter`), drawn from ``rng``."""
        return self.noised(self.decode_pushed(latent, gamma, temperature, contact), rng, jitter)

    def decode_pushed(self, latent, gamma=None, temperature=None,
                      contact: float | None = None) -> np.ndarray:
        """Configurations decoded from latent vectors, their contacts pushed out to
        ``contact`` (sigma, :meth:`pushed_apart`) where it exceeds the hard core's own
        distance: what :meth:`decode_sample` draws its noise on."""
        coords = self.decode(latent, gamma, temperature)
        if contact is not None and contact > self.settings.repel_distance + 1e-9:
            coords = self.pushed_apart(coords, contact)
        return coords

    def noised(self, coords, rng, jitter: float = 0.0) -> np.ndarray:
        """Decoded configurations with the ``height_noise`` setting's noise on their heights,
        then noise of width ``jitter`` (sigma) on every coordinate, drawn from ``rng``."""
        from .disorder import jitter as disorder

        return disorder(self._with_height_noise(coords, rng), jitter, self.system, rng)

    def pushed_apart(self, coords, distance: float) -> np.ndarray:
        """Configurations (M, N, d) with every pair closer than ``distance`` (sigma) pushed
        apart by the decoder's own hard core (its last layer, a
        :class:`ljvae_core.models.Repel`, made again at that distance and for every
        configuration), heights kept in the box."""
        hard_core = self.model.decoder.get_layer("decoder_coordinates")
        config = hard_core.get_config()
        if "distance" not in config:
            raise ValueError("this model's decoder has no hard core to push contacts apart")
        m, n, d = np.shape(coords)
        push = type(hard_core).from_config({**config, "name": "pushed_apart", "trigger": None,
                                            "distance": distance * self.system.sigma})
        flat = np.asarray(coords, dtype=np.float32).reshape(m, n * d)
        step = max(1, CHUNK_VALUES // (n * n * d))  # bounded pair arrays
        parts = [np.asarray(push(flat[k:k + step])) for k in range(0, m, step)]
        # The push knows no periodic images: put coordinates back into the box's convention.
        return self.system.placed(np.concatenate(parts).reshape(m, n, d))

    def _with_height_noise(self, coords, rng) -> np.ndarray:
        """Decoded configurations with Gaussian noise of the ``height_noise`` setting's width
        on every height inside the box, reflected at the floor and the ceiling (a height
        decoded outside stays there, to be counted invalid); as they are where
        :meth:`has_height_noise` is False."""
        from .disorder import reflected

        if not self.has_height_noise:
            return coords
        out = np.array(coords, dtype=np.float64)
        h = out[..., -1]
        noisy = h + self.settings.height_noise * self.system.sigma * rng.normal(size=h.shape)
        out[..., -1] = reflected(h, noisy, self.system.box)
        return out

    @property
    def has_height_noise(self) -> bool:
        """Whether generated heights get noise: a width above 0, a decoder of coordinates,
        and a box with a floor and a ceiling."""
        system = self.system
        return (self.settings.height_noise > 0 and self.settings.decodes_coordinates
                and not system.free and system.walls_up)

    def generation_state(self, gamma, temperature, seed: int = 0) -> tuple:
        """The state point :meth:`generate` samples and decodes at when asked for (gamma, T)
        with the default prior: between trained state points whose heights are not mapped
        onto reweighted training heights there (models saved before, imported data), the
        one steered to the mean height the trained ones' fluctuations predict there
        (:meth:`ljvae_core.priors.ConditionalPrior.steered_state`); (gamma, T) itself
        elsewhere. :meth:`generate` asks for each state point of an array on its own; an
        array given here is returned as it is."""
        by_state = self.conditional_prior
        if by_state is None or np.ndim(gamma) or np.ndim(temperature):
            return gamma, temperature
        # Mapped heights take the distribution expected there whatever the decoder gave;
        # decoding at a steered state point then stretches the shapes the map moves.
        if by_state.reweighted(gamma, temperature) is not None:
            return float(gamma), float(temperature)
        from .analysis import heights

        def decoded_height(g, t):
            rng = np.random.default_rng(seed)
            probe = by_state.sample(STEERING_PROBES, g, t, rng)
            return float(heights(self.decode_sample(probe, rng, g, t), self.system).mean())

        # Kept per model: steering decodes thousands of probes (about 2 s on the study system).
        known = self.__dict__.setdefault("_steered", {})
        key = (float(gamma), float(temperature), int(seed))
        if key not in known:
            known[key] = by_state.steered_state(*key[:2], decoded_height)
        return known[key]

    def negative_elbo(self, coords, gamma=None, temperature=None, draws: int = 8,
                      seed: int = 0) -> np.ndarray:
        """Negative ELBO per configuration: Gaussian reconstruction NLL with the model's
        calibrated decoder variances (one per part, see
        :func:`ljvae_core.vae.reconstruction_parts`), averaged over ``draws`` latent samples,
        plus the KL term."""
        return self.elbo_of(self.model_data(coords, gamma, temperature), draws, seed)

    def elbo_of(self, data: dict, draws: int = 8, seed: int = 0) -> np.ndarray:
        """:meth:`negative_elbo` of a :meth:`model_data` dict."""
        from .vae import gaussian_nll, kl_divergence, reconstruction_parts

        c = data.get("condition")
        mean, log_var = self.posterior(data)
        heights = bool(getattr(self.model, "height_channels", False))
        log_vars = [float(self.meta.get("decoder_log_var", 0.0))]
        if heights:
            log_vars.append(float(self.meta.get("height_log_var") or 0.0))
        truth = data["target"].astype(np.float64)
        rng = np.random.default_rng(seed)
        nll = np.zeros(len(mean))
        for _ in range(draws):
            z = mean + np.exp(0.5 * log_var) * rng.normal(size=mean.shape)
            out = self.decoder_output(z, c).astype(np.float64)
            parts = reconstruction_parts(self.in_output_order(truth, out), out, heights)
            for (target, guess), v in zip(parts, log_vars, strict=True):
                sq = np.sum((target - guess) ** 2, axis=tuple(range(1, target.ndim)))
                dims = float(np.prod(target.shape[1:]))
                nll += (np.asarray(gaussian_nll(sq, dims, np.float64(v)))
                        + 0.5 * dims * np.log(2 * np.pi))
        return nll / draws + np.asarray(kl_divergence(mean, log_var), np.float64)


def chunk_size(values: int) -> int:
    """Configurations per compiled chunk for a model whose largest input or output holds
    ``values`` values each: a power of two, at most :data:`MAX_CHUNK`, within
    :data:`CHUNK_VALUES`."""
    size = MAX_CHUNK
    while size > 16 and size * values > CHUNK_VALUES:
        size //= 2
    return size


class CompiledPart:
    """A Keras model (an encoder or a decoder) called as one compiled function over chunks
    of ``size`` rows, the last one padded with zeros; with ``xla``, calls of at least
    :data:`XLA_MIN_ROWS` rows run XLA-compiled. Returns numpy arrays (a tuple of them for
    several outputs). Safe to call from several threads."""

    def __init__(self, model, size: int, xla: bool = True):
        import tensorflow as tf

        self.size = int(size)

        def run(*inputs):
            return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        self._graph = tf.function(run)
        self._compiled = tf.function(run, jit_compile=True) if xla else self._graph

    def __call__(self, *arrays):
        arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
        n, parts = len(arrays[0]), []
        fn = self._compiled if n >= XLA_MIN_ROWS else self._graph
        for start in range(0, max(n, 1), self.size):
            chunk = [a[start:start + self.size] for a in arrays]
            rows = len(chunk[0])
            chunk = [np.concatenate([c, np.zeros((self.size - rows, *c.shape[1:]), c.dtype)])
                     if rows < self.size else c for c in chunk]
            out = fn(*chunk)
            outs = out if isinstance(out, (list, tuple)) else (out,)
            parts.append([np.asarray(o)[:rows] for o in outs])
        joined = [np.concatenate(column) for column in zip(*parts, strict=True)]
        return tuple(joined) if len(joined) > 1 else joined[0]
