"""What a trained model keeps besides its weights, fitted after training: the generation priors
(:mod:`ljvae_core.priors`, refined by the joint physics loss) and the anomaly scorer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import MIN_VALID_DISTANCE, energies_per_particle
from .noise_walk import SampleJudge, finest_minimum
from .penalty import PhysicsPenalty
from .trained import TrainedModel


def attach_latent_prior(trained: TrainedModel, dataset, components: int = 10,
                        max_samples: int = 5000, progress=None) -> None:
    """Fit the generation prior (a Gaussian mixture over the posterior means of at most
    ``max_samples`` training configurations, :class:`ljvae_core.priors.LatentPrior`), then,
    with a prior physics weight, refine it with the joint physics loss of its decoded
    samples; an unconditional model's prior is then narrowed to decode energies like the
    training configurations' (:func:`calibrated_scale`; not for voxel grids decoded as
    grids, whose decoding is slow). Kept in the meta: the prior generation uses, and the
    plain fit beside it (``latent_prior_plain``) when the two differ."""
    from .priors import LatentPrior

    idx = np.asarray(trained.meta["train_indices"])
    rng = np.random.default_rng(trained.settings.seed)
    # A conditional model's kernel densities are per state point; its pooled prior is the
    # mixture.
    if uses_kernel_prior(trained) and not trained.settings.conditional:
        _attach_kernel_prior(trained, dataset, idx, components, max_samples, rng)
        return
    if len(idx) > max_samples:
        idx = np.sort(rng.choice(idx, max_samples, replace=False))
    latent = trained.encode_rows(dataset, idx)
    plain = prior = LatentPrior.fit(latent, components, trained.settings.seed)
    trained.meta.pop("latent_prior_plain", None)
    penalty = _prior_penalty(trained, dataset, idx)
    conditional = trained.settings.conditional
    # A conditional model refines its pooled mixture, then one per state point.
    first, rest = _split_progress(progress) if conditional else (progress, None)
    if penalty is not None:
        prior = prior.refine(penalty, latent, trained.settings.prior_physics_weight,
                             seed=trained.settings.seed, progress=first)
    scale = 1.0
    # Voxel grids decode by peak picking, seconds per thousand: they keep the fitted spread.
    if not conditional and not trained.settings.decodes_grid:
        scale = calibrated_scale(trained, prior, dataset.coords[idx], seed=trained.settings.seed)
        prior = prior.scaled(scale)
    trained.meta["latent_prior_scale"] = scale
    if penalty is not None or scale != 1.0:
        trained.meta["latent_prior_plain"] = plain.to_dict()
    trained.meta["latent_prior"] = prior.to_dict()
    if conditional:
        attach_conditional_prior(trained, dataset, components, max_samples, rest)


# The bandwidths tried for a kernel prior, in units of the latent means' own spread.
KERNEL_BANDWIDTHS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
# The most latent means a kernel prior keeps.
KERNEL_POINTS = 20_000


def uses_kernel_prior(trained: TrainedModel) -> bool:
    """Whether this model generates from kernel densities
    (:meth:`ljvae_core.settings.TrainSettings.kernel_prior` for its system)."""
    return trained.settings.kernel_prior(trained.system.free)


def _attach_kernel_prior(trained, dataset, idx, components, max_samples, rng) -> None:
    """The kernel density over the latent means of (at most :data:`KERNEL_POINTS`) training
    configurations (:func:`_calibrated_kernel`); the plain mixture kept beside it."""
    from .priors import LatentPrior

    if len(idx) > KERNEL_POINTS:
        idx = np.sort(rng.choice(idx, KERNEL_POINTS, replace=False))
    kernel, bandwidth = _calibrated_kernel(trained, dataset, idx)
    some = rng.permutation(len(kernel.points))[:max_samples]
    plain = LatentPrior.fit(kernel.points[some], components, trained.settings.seed)
    trained.meta.update(latent_prior=kernel.to_dict(), latent_prior_plain=plain.to_dict(),
                        latent_prior_scale=1.0, latent_prior_bandwidth=bandwidth)


def _calibrated_kernel(trained, dataset, idx):
    """(the kernel density over the latent means of configurations ``idx``, at the bandwidth
    of :data:`KERNEL_BANDWIDTHS` whose decoded samples have their energies; that bandwidth)
    (:func:`calibrated_scale`). A conditional model's, one per state point, also calibrates
    what generation puts back (:func:`_calibrated_state`)."""
    from .priors import KernelPrior

    kernel = KernelPrior.fit(trained.encode_rows(dataset, idx))
    bandwidth = calibrated_scale(trained, kernel, dataset.coords[idx],
                                 seed=trained.settings.seed, scales=KERNEL_BANDWIDTHS)
    return kernel.scaled(bandwidth), bandwidth


# The spreads tried for a generation prior, as factors of the fitted mixture's.
PRIOR_SCALES = tuple(float(s) for s in np.round(np.arange(0.5, 1.0001, 0.05), 2))


def calibrated_scale(trained, prior, reference, n: int = 2000, seed: int = 0,
                     gamma=None, temperature=None, scales=PRIOR_SCALES) -> float:
    """The factor in ``scales`` (:data:`PRIOR_SCALES`), or midway between the best of them
    and a neighbour, by which to scale the spread of ``prior``
    (:meth:`ljvae_core.priors.LatentPrior.scaled`) so that the energy per particle of its
    generated samples (:meth:`TrainedModel.decode_sample`) is closest (1D W1) to that of
    ``reference``, the training configurations the prior was fitted on. A mixture of latent
    means decodes too loose a configuration between and around the data's, too high in
    energy; a narrower one is closer. Held-out data play no part. A prior of one state
    point (a conditional model's, decoded at ``gamma``, ``temperature``) is judged on the
    total energy there; a prior over several, on the LJ part alone: the LJ part would leave
    samples that stand too tall unjudged, and a strong field weighs every sigma of height
    at 4 gamma per particle."""
    from scipy.stats import wasserstein_distance

    system = trained.system
    strength = 0.0 if gamma is None else float(gamma)
    target = energies_per_particle(reference, system, strength)

    def distance(scale):
        rng = np.random.default_rng(seed)
        decoded = trained.decode_sample(prior.scaled(scale).sample(n, rng), rng, gamma,
                                        temperature)
        return wasserstein_distance(energies_per_particle(decoded, system, strength), target)
    return finest_minimum(sorted(scales), distance)


def _split_progress(progress):
    """Two reporters of fractions, for the first and the second half of ``progress``."""
    if progress is None:
        return None, None
    return (lambda f: progress(0.5 * f)), (lambda f: progress(0.5 + 0.5 * f))


def attach_conditional_prior(trained: TrainedModel, dataset, components: int = 10,
                             max_samples: int = 5000, progress=None) -> None:
    """Fit the per-state-point generation prior of a conditional model
    (:class:`ljvae_core.priors.ConditionalPrior`) over the posterior means of the training
    configurations of each state point: a mixture over at most ``max_samples`` of them,
    refined (with a prior physics weight) by the joint physics loss of its samples decoded
    at that state point, then narrowed to decode that state point's energies
    (:func:`calibrated_scale`; not for voxel grids decoded as grids); or, where
    :func:`uses_kernel_prior`, a kernel density over them at the bandwidth that decodes
    those energies. Kept in the meta, with the scales (the bandwidths) and the state points'
    mean heights and their fluctuation slopes (:meth:`ConditionalPrior.steered_state`)."""
    from .priors import ConditionalPrior

    idx = np.asarray(trained.meta["train_indices"])
    rng = np.random.default_rng(trained.settings.seed)
    states = np.unique(dataset.condition[idx])
    kernel = uses_kernel_prior(trained)
    conditions, priors, scales, disorder = [], [], [], []
    for k, state in enumerate(states):
        mine = rng.permutation(idx[dataset.condition[idx] == state])
        mine = np.sort(mine[:KERNEL_POINTS if kernel else max_samples])
        report = None if progress is None else (lambda f, k=k: progress((k + f) / len(states)))
        condition = (dataset.gamma[mine[0]], dataset.temperature[mine[0]])
        if kernel:
            chosen = _calibrated_state(trained, dataset, mine, *condition)
            prior, scale = chosen.kernel, chosen.bandwidth
            disorder.append(chosen)
            if report is not None:
                report(1.0)
        else:
            prior, scale = _state_mixture(trained, dataset, mine, components, report)
        conditions.append(condition)
        priors.append(prior)
        if scale is not None:
            scales.append(scale)
    heights = _height_responses(trained, dataset, idx, states)
    noise, contacts, ensembles = _stacked(disorder)
    trained.meta["conditional_prior"] = ConditionalPrior(
        np.array(conditions), priors, heights, noise, ensembles, contacts).to_dict()
    trained.meta["conditional_prior_scales"] = scales


# Contact distances (sigma) tried besides the hard core's own, to which decoded contacts are
# pushed out before the noise: the hard core piles them at its 1.06, on the steep side of
# the LJ well (minimum at 1.12), where noise costs the most energy.
CONTACT_DISTANCES = (1.09,)
# How far (W1, epsilon per particle) the samples' energies may stay from the training ones
# when pushed contacts pay for wider noise: under the 0.05 the evaluation asks of them
# against held-out Monte Carlo, whose own spread there is about 0.01.
ENERGY_TOLERANCE = 0.04


@dataclass
class StateDisorder:
    """What one state point's calibration chose (:func:`_calibrated_state`)."""

    kernel: object  # the KernelPrior at its bandwidth
    bandwidth: float
    noise: float  # sigma
    contact: float  # sigma; the hard core's own distance: no push
    ensemble: dict | None  # ljvae_core.disorder.ensemble, None where heights are not mapped


def _calibrated_state(trained, dataset, idx, gamma, temperature, n: int = 2000):
    """One state point's kernel density over the latent means of its training
    configurations ``idx``, with what generation puts back there (:mod:`ljvae_core.disorder`,
    :class:`StateDisorder`). Judged on the training configurations
    (:class:`ljvae_core.noise_walk.SampleJudge`): a walk up the noise widths
    (:func:`ljvae_core.noise_walk.noise_walk`) over :data:`KERNEL_BANDWIDTHS`, with the
    decoded contacts where the hard core left them; where the energy stopped it, a walk for each of
    :data:`CONTACT_DISTANCES`, contacts pushed out to it first, energies allowed within
    :data:`ENERGY_TOLERANCE`. The walk that ends with the samples' nearest-neighbour
    distances closest to the training configurations' (W1) is kept."""
    from .analysis import nearest_neighbour_distances
    from .disorder import ensemble, height_quantiles
    from .priors import KernelPrior

    system, settings = trained.system, trained.settings
    reference = dataset.coords[idx]
    kept = None
    if settings.decodes_coordinates and system.walls_up and not system.free:
        # Imported data are not known to be Boltzmann samples: not reweighted, so neither
        # their energies nor their neighbours are kept for it.
        energy = None if dataset.imported else dataset.energy[idx]
        kept = ensemble(reference, energy, gamma, None if energy is None
                        else nearest_neighbour_distances(reference, system), seed=settings.seed)
    # A stream of their own: generate(..., seed) draws from default_rng(seed).
    streams = np.random.default_rng([settings.seed, 2])
    some = np.sort(streams.permutation(len(reference))[:n])
    judge = SampleJudge(
        trained, KernelPrior.fit(trained.encode_rows(dataset, idx)), (gamma, temperature),
        gamma, None if kept is None else height_quantiles(kept["heights"]),
        energies_per_particle(reference, system, gamma),
        nearest_neighbour_distances(reference[some], system).ravel(),
        int(streams.integers(2**31)), n)
    contact = settings.repel_distance
    gap, bandwidth, width, stuck = judge.walk(contact, 0.0, KERNEL_BANDWIDTHS)
    # Where the energy stopped the noise, contacts moved to the well's bottom pay for more,
    # as long as the energies stay within the tolerance.
    if stuck and settings.repel_steps > 0:
        for pushed in (c for c in CONTACT_DISTANCES if c > settings.repel_distance):
            walk = judge.walk(pushed, ENERGY_TOLERANCE, KERNEL_BANDWIDTHS)
            if walk[0] < gap:
                (gap, bandwidth, width, _), contact = walk, pushed
    return StateDisorder(judge.prior.scaled(bandwidth), bandwidth, width, contact, kept)


def _stacked(disorder):
    """(noise widths (C,), contact distances (C,), ensembles (C)) of the state points'
    calibrations (:class:`StateDisorder`), each None where there is none."""
    if not disorder:
        return None, None, None
    ensembles = [d.ensemble for d in disorder]
    return (np.array([d.noise for d in disorder]), np.array([d.contact for d in disorder]),
            None if any(e is None for e in ensembles) else ensembles)


def _height_responses(trained, dataset, idx, states):
    """(C, 3) mean heights and their fluctuation slopes of the training configurations of each
    state point, which steer generation between them; None for a free cluster (no field)
    and for imported data (not known to be Boltzmann samples of a field)."""
    from .analysis import height_response

    if trained.system.free or dataset.imported:
        return None
    rows = []
    for state in states:
        mine = idx[dataset.condition[idx] == state]
        r = height_response(dataset.coords[mine], dataset.energy[mine],
                            dataset.temperature[mine[0]])
        rows.append((r.mean, r.d_gamma, r.d_temperature))
    return np.array(rows)


def _state_mixture(trained, dataset, mine, components, report):
    """(mixture, its calibrated scale or None) of one state point's configurations."""
    from .priors import LatentPrior

    gamma, temperature = dataset.gamma[mine], dataset.temperature[mine]
    latent = trained.encode_rows(dataset, mine)
    prior = LatentPrior.fit(latent, components, trained.settings.seed)
    penalty = _prior_penalty(trained, dataset, mine)
    if penalty is not None:
        prior = prior.refine(penalty, latent, trained.settings.prior_physics_weight,
                             seed=trained.settings.seed, progress=report)
    if trained.settings.decodes_grid:
        return prior, None
    scale = calibrated_scale(trained, prior, dataset.coords[mine], seed=trained.settings.seed,
                             gamma=gamma[0], temperature=temperature[0])
    return prior.scaled(scale), scale


def _prior_penalty(trained: TrainedModel, dataset, idx):
    """The joint physics loss of decoded latent points, for refining the generation prior
    (None without a prior physics weight, or for voxel grids decoded as grids). Conditional
    models decode each point under the (gamma, T) of a random training configuration."""
    settings = trained.settings
    physics = PhysicsPenalty.for_dataset(dataset, trained.representation, settings, idx,
                                         settings.prior_physics_weight)
    if physics is None or settings.decodes_grid:
        return None
    # Shapes with contacts at the hard core's distance can overflow the box by that much less
    # 0.8 sigma and still be put into it without a pair coming closer than 0.8 sigma.
    if settings.decodes_coordinates and settings.repel_steps > 0:
        physics = physics.with_tolerance(max(settings.repel_distance - MIN_VALID_DISTANCE, 0.0))
    penalty = trained.model.latent_penalty(physics)
    if not settings.conditional:
        return penalty
    import tensorflow as tf

    table = tf.constant(trained.condition_features(dataset.gamma[idx],
                                                   dataset.temperature[idx]), tf.float32)
    draws = tf.random.Generator.from_seed(settings.seed)

    def conditioned(z):
        rows = draws.uniform((tf.shape(z)[0],), 0, len(idx), dtype=tf.int32)
        return penalty(z, tf.gather(table, rows))
    return conditioned


def attach_after_training(trained: TrainedModel, dataset, progress=None) -> None:
    """What a trained model keeps besides its weights: the anomaly scorer (fitted on the
    held-out chains) and the generation prior (on the training chains); ``progress(fraction)``
    follows the prior's refinement."""
    try:
        attach_anomaly_scorer(trained, dataset)
        attach_latent_prior(trained, dataset, progress=progress)
    finally:  # the training inputs are hundreds of MB, and nothing after needs them
        trained.forget_inputs()


def attach_anomaly_scorer(trained: TrainedModel, dataset, percentile: float = 99.0) -> None:
    """Fit the anomaly scorer (and its threshold) on the held-out chains; kept in the meta."""
    from .anomaly import fit_anomaly_scorer

    idx = np.asarray(trained.meta["validation_indices"])
    scorer = fit_anomaly_scorer(trained, dataset, idx, percentile, seed=trained.settings.seed)
    trained.meta["anomaly"] = scorer.to_dict()
