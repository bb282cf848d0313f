"""What to train: :class:`TrainSettings`, and each setting's form metadata.

Each setting's field metadata (label, range or choices, help text, and whether it applies
given the others) is the one source that the command line's ``train`` options and the Train
page's form are generated from. Plain Python, so the command line reads it before
TensorFlow is imported.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace


class TrainingError(ValueError):
    """Settings or data that training cannot work with (one clear sentence)."""


def _option(default, label: str, help: str = "", low=None, high=None, step=None,
            choices=None, applies=None):
    """A training setting with what a form needs to offer it: its label, range or choices,
    help text, and ``applies(settings, free)``, whether it matters for the rest of the
    settings and for a free cluster (``free``) or a box (forms disable it where it does
    not)."""
    return field(default=default, metadata={
        "label": label, "help": help, "low": low, "high": high, "step": step,
        "choices": choices, "applies": applies})


# Epochs trained when the setting is 0 (automatic). A conditional model's validation loss
# keeps falling past 40 epochs and levels off by 120, as its learning rate is halved on
# plateaus; the per-state-point figures follow it (docs/results.md, "How long to train").
AUTO_EPOCHS = 40
AUTO_EPOCHS_CONDITIONAL = 120

# What generation can sample the latent from (TrainSettings.generation_prior).
GENERATION_PRIORS = ("auto", "mixture", "kernel")


def _decodes_coordinates(s, free=False) -> bool:
    return s.decoder == "coordinates"


def _has_hard_core(s, free=False) -> bool:
    return _decodes_coordinates(s) and s.repel_steps > 0


def _not_grids(s, free=False) -> bool:
    return not s.decodes_grid


def _refines_a_mixture(s, free=False) -> bool:
    # A kernel density is never refined; a conditional model still refines its pooled
    # mixture.
    return _not_grids(s) and (s.conditional or not s.kernel_prior(free))


def _heights_in_a_box(s, free=False) -> bool:
    # A free cluster has no up, hence no heights to decode as logarithms or to blur.
    return _decodes_coordinates(s) and not free


def _matches_orders(s, free=False) -> bool:
    # The mds frame and the template order (of sorted coordinates, and of the targets of
    # voxel grids) put the particles in a steady order themselves.
    if s.representation == "distances":
        return s.distance_encoder != "mds"
    default = REPRESENTATION_PARAMS["coords"]["sort_axis"]["default"]
    sort = s.representation_params.get("sort_axis", default)
    return s.decoder == "coordinates" and s.representation == "coords" and sort != "template"


@dataclass(frozen=True)
class TrainSettings:
    """What to train; defaults are the ones the documented results use. Each field's
    metadata (label, range, help; :func:`setting_options`) is what the Train page offers."""

    representation: str = _option(
        "distances", "Representation", choices=("distances", "coords", "voxels"))
    latent_dim: int = _option(64, "Latent size", low=1, high=512)
    beta: float = _option(1.0, "β (KL weight)", low=0.0, high=100.0, step=0.1,
                          help="Weight of the KL term of the loss.")
    warmup_epochs: int = _option(0, "KL warm-up epochs", low=0, high=500,
                                 help="The KL weight rises linearly from 0 to β over these "
                                      "epochs.")
    physics_weight: float = _option(
        0.0, "Physics loss weight λ (training)", low=0.0, high=1000.0, step=1.0,
        applies=_not_grids,
        help="Penalizes, during training, the LJ energy of decoded configurations above the "
             "highest energy seen in training and their overflow out of the box.")
    conditional: bool = _option(False, "Conditional on (γ, T)",
                                help="Feeds γ and T to encoder and decoder, so the decoder "
                                     "can generate at a chosen γ.")
    epochs: int = _option(
        0, "Epochs (0: automatic)", low=0, high=2000,
        help=f"0: up to {AUTO_EPOCHS} epochs, or {AUTO_EPOCHS_CONDITIONAL} for a conditional "
             "model, whose samples at each state point keep improving until then (docs: "
             "Results). Early stopping may end training sooner.")
    batch_size: int = _option(64, "Batch size", low=1, high=4096)
    learning_rate: float = 1e-3
    validation_fraction: float = 0.25
    patience: int = _option(10, "Early-stopping patience (epochs)", low=1, high=1000,
                            help="Stop after this many epochs without a better validation "
                                 "loss (the best weights are kept).")
    lr_patience: int = _option(3, "Learning-rate patience (epochs, 0: never)", low=0,
                               high=1000,
                               help="Halve the learning rate after this many epochs without "
                                    "a better validation loss.")
    seed: int = _option(0, "Seed", low=0, high=2**31 - 1)
    # Per representation: "heights" (distances), "n_cells" and "smearing" (voxels).
    representation_params: dict = field(default_factory=dict)
    # "coordinates" (the decoder outputs coordinates, and the representation is made of
    # them; measured far better for every representation) or "direct" (the
    # representation's values themselves, as the original study decoded them).
    decoder: str = _option(
        "coordinates", "Decoder", choices=("coordinates", "direct"),
        help="coordinates: the decoder outputs particle coordinates -- for distance matrices "
             "their distances, always a valid Euclidean matrix; for sorted coordinates and "
             "voxel grids the coordinates themselves, in the decoder's own particle order. "
             "direct: it outputs the representation itself (the matrix made symmetric, the "
             "sorted coordinates, the grid).")
    # Between stretches of this many epochs, each target's particles are put in the order
    # that best matches the decoder's output, so that the decoder need not learn the input
    # order's jumps. The mds frame orders them itself.
    match_every: int = _option(
        2, "Match particle orders every K epochs (0: never)", low=0, high=100,
        applies=_matches_orders,
        help="Between stretches of K epochs, each target's particles are put in the order that "
             "best matches the decoder's output, so the decoder need not learn the input "
             "order's jumps (two particles swapping places in a sort). The mds encoder's "
             "frame and the template order of sorted coordinates order them themselves.")
    distance_encoder: str = _option(
        "mds", "Distance encoder", choices=("mds", "rows", "conv"),
        applies=lambda s, free=False: s.representation == "distances",
        help="mds: classical MDS turns each matrix back into its shape, put in one frame "
             "(turned, shifted and ordered onto the training set's mean shape), then a dense "
             "network (needs the height channels and the coordinates decoder); rows: kernels "
             "spanning whole rows, so that each particle is first described by all its "
             "distances; conv: 3x3 convolutions.")
    voxel_encoder: str = _option(
        "peaks", "Voxel encoder", choices=("peaks", "conv"),
        applies=lambda s, free=False: (s.representation == "voxels"
                                       and s.decoder == "coordinates"),
        help="peaks: the encoder's first stage is fixed -- greedy peak picking turns each grid "
             "back into particles, put in the template order of sorted coordinates -- then a "
             "dense network; conv: strided 3D convolutions learn from the grid itself.")
    # Targets: the shapes in the mds frame, or, with the other encoders, each configuration
    # matched and moved into the decoder's frame (needs match_every > 0).
    coordinate_weight: float = _option(
        30.0, "Coordinate loss weight", low=0.0, high=1000.0, applies=_decodes_coordinates,
        help="Weight of a loss on the decoded coordinates themselves (against the KL term's "
             "1): for distance matrices next to their distances -- scored through distances "
             "alone, decoded shapes settle into folded or mirrored ones; for sorted "
             "coordinates and voxel grids it is the reconstruction's weight.")
    # A hard core the decoder learns through (ljvae_core.models.Repel).
    repel_steps: int = _option(
        4, "Hard-core steps (0: off)", low=0, high=20, applies=_decodes_coordinates,
        help="The decoded coordinates end with this many steps pushing pairs closer than the "
             "contact distance apart; the decoder learns through them. Without them, decoded "
             "samples almost always hold an overlapping pair.")
    # 1.06 sigma, the median nearest-neighbour distance of the study system's Monte Carlo
    # samples: at 1 sigma, where u(r) = 0, decoded contacts carry no binding energy.
    repel_distance: float = _option(
        1.06, "Contact distance (σ)", low=0.5, high=1.5, step=0.01,
        applies=_has_hard_core,
        help="Pairs of decoded particles closer than this are pushed apart.")
    # Off by default: on LJ13 0.95 sigma brings reconstructions' energy W2 to the Monte Carlo
    # floor, but its samples' W2 moved by less than the spread between model seeds
    # (docs/what-we-tried.md), so the benchmark's figures keep the hard core on every decode.
    repel_trigger: float = _option(
        0.0, "Hard core only below (σ, 0: always)", low=0.0, high=1.5, step=0.01,
        applies=_has_hard_core,
        help="The hard core pushes apart only decoded configurations holding a pair closer "
             "than this; the others pass unchanged and keep their thermal contacts. 0: "
             "every configuration.")
    log_heights: bool = _option(
        True, "Decode log-heights", applies=_heights_in_a_box,
        help="The decoder emits the logarithm of each height: decoded particles stay above the "
             "floor, and a barometric profile's scale is one shift.")
    # A mean decoder puts floor particles on the floor itself (at gamma = 2, 9.5 % of the
    # study model's generated heights lay below 1e-4 sigma, Monte Carlo's 0.06 %): no
    # reconstruction loss tells it where within a hundredth of a sigma of it they rest.
    height_noise: float = _option(
        0.015, "Height noise of generated samples (σ)", low=0.0, high=0.5, step=0.005,
        applies=_heights_in_a_box,
        help="Generated configurations get Gaussian noise of this width on every height, "
             "reflected at the floor and the ceiling, so that the bottom layer is not one "
             "flat sheet on the floor. Reconstructions are left as decoded. 0: generated "
             "heights as decoded.")
    # Without the head a linear probe read gamma off the study model's latent with R^2 0.82
    # instead of 0.98. Conditional models, and datasets of one state point, have none.
    state_weight: float = _option(
        100.0, "State head weight", low=0.0, high=1000.0, step=1.0,
        applies=lambda s, free=False: not s.conditional,
        help="Weight of a linear head reading (γ, T) off the latent, so that the latent "
             "carries the state point where a straight line reads it (the Latent page's γ "
             "probe). Unconditional models only; 0: the latent organizes itself.")
    prior_physics_weight: float = _option(
        300.0, "Physics weight of the generation prior", low=0.0, high=10000.0, step=10.0,
        applies=_refines_a_mixture,
        help="After training, the generation prior (a Gaussian mixture over the latent means) "
             "is fitted with the same physics penalty on its decoded samples, so generation "
             "avoids latent regions that decode to overlapping or too wide configurations. "
             "The decoder, hence every reconstruction, is left as trained. 0: the plain "
             "mixture (ljvae_core.priors.LatentPrior.refine). A kernel density is never "
             "refined (a conditional model's pooled mixture still is).")
    # auto: kernel densities for a free cluster and per state point of a conditional model,
    # where they measured closer to Monte Carlo than mixtures; the mixture for an
    # unconditional model in a box, whose decoded energies it keeps closer
    # (docs/what-we-tried.md).
    generation_prior: str = _option(
        "auto", "Generation prior", choices=GENERATION_PRIORS,
        applies=_not_grids,
        help="What generation samples the latent from: a Gaussian mixture over the training "
             "configurations' latent means (narrowed to decode their energies), or a kernel "
             "density over those means (a Gaussian of the means' covariance times a "
             "bandwidth around each, the bandwidth chosen to decode their energies); a "
             "conditional model has one per state point. auto: kernel densities for a free "
             "cluster or a conditional model, the mixture for an unconditional model in a "
             "box.")

    def errors(self):
        if self.representation not in ("coords", "distances", "voxels"):
            yield f"unknown representation {self.representation!r}"
        if self.latent_dim < 1:
            yield "the latent size must be at least 1"
        if self.epochs < 0:
            yield "the epochs cannot be negative (0: automatic)"
        if self.batch_size < 1:
            yield "the batch size must be at least 1"
        if self.beta < 0 or self.physics_weight < 0 or self.prior_physics_weight < 0:
            yield "beta and the physics weights cannot be negative"
        if self.height_noise < 0:
            yield "the height noise cannot be negative"
        if not 0 < self.validation_fraction < 1:
            yield "the validation fraction must lie strictly between 0 and 1"
        if self.physics_weight > 0 and self.decodes_grid:
            yield "the physics loss needs decoded coordinates or distances, not voxel grids"
        if self.decoder not in ("direct", "coordinates"):
            yield f"unknown decoder {self.decoder!r}"
        if self.voxel_encoder not in ("peaks", "conv"):
            yield f"unknown voxel encoder {self.voxel_encoder!r}"
        if self.distance_encoder not in ("conv", "rows", "mds"):
            yield f"unknown distance encoder {self.distance_encoder!r}"
        if self.generation_prior not in GENERATION_PRIORS:
            yield f"unknown generation prior {self.generation_prior!r}"
        if self.generation_prior == "kernel" and self.decodes_grid:
            yield ("a kernel generation prior is for models that decode coordinates or "
                   "distances, not voxel grids")
        if self.match_every < 0:
            yield "match_every cannot be negative"
        if self.coordinate_weight < 0 or self.state_weight < 0:
            yield "the coordinate and state weights cannot be negative"
        if (self.coordinate_weight == 0 and self.decoder == "coordinates"
                and self.representation != "distances"):
            yield ("the coordinate loss weight must be positive: it weighs the reconstruction "
                   "of sorted coordinates and voxel grids decoded through coordinates")
        if self.repel_steps < 0 or self.repel_distance <= 0 or self.repel_trigger < 0:
            yield ("repel steps and the hard core's trigger cannot be negative, and the repel "
                   "distance must be positive")
        if self.representation == "distances" and self.distance_encoder == "mds":
            if not self.representation_params.get("heights", True):
                yield ("the mds encoder needs the height channels; without them choose the "
                       "rows or conv encoder")
            if self.decoder != "coordinates":
                yield "the mds encoder needs the decoder through coordinates"

    @property
    def planned_epochs(self) -> int:
        """The epochs training runs at most (early stopping may end it sooner): the setting,
        or if it is 0 (automatic) :data:`AUTO_EPOCHS`, or :data:`AUTO_EPOCHS_CONDITIONAL`
        for a conditional model."""
        if self.epochs > 0:
            return self.epochs
        return AUTO_EPOCHS_CONDITIONAL if self.conditional else AUTO_EPOCHS

    @property
    def automatic_epochs_note(self) -> str | None:
        """What the automatic epochs come to for these settings, in words (None when the
        epochs are given)."""
        if self.epochs > 0:
            return None
        kind = "conditional" if self.conditional else "unconditional"
        return f"Automatic: up to {self.planned_epochs} epochs, as for every {kind} model."

    @property
    def decodes_coordinates(self) -> bool:
        """Whether the decoder emits coordinates (and the representation is made of them):
        the ones the hard core and log-heights apply to."""
        return _decodes_coordinates(self)

    @property
    def decodes_grid(self) -> bool:
        """Whether the decoder emits voxel grids, which only peak picking turns back into
        configurations."""
        return self.representation == "voxels" and self.decoder == "direct"

    @property
    def reads_peaks(self) -> bool:
        """Whether the encoder reads a voxel grid through peak picking (a fixed first stage),
        not by convolutions."""
        return self.applies("voxel_encoder") and self.voxel_encoder == "peaks"

    @property
    def convolves_grids(self) -> bool:
        """Whether the model convolves voxel grids (in its encoder or its decoder)."""
        return self.representation == "voxels" and not self.reads_peaks

    def validate(self):
        problems = list(self.errors())
        if problems:
            raise TrainingError("; ".join(problems))

    def applies(self, name: str, free: bool = False) -> bool:
        """Whether setting ``name`` matters given the others, for a free cluster (``free``)
        or a box (forms disable it otherwise)."""
        rule = setting_options(name).get("applies")
        return rule is None or bool(rule(self, free))

    def kernel_prior(self, free: bool = False) -> bool:
        """Whether generation samples kernel densities (per state point for a conditional
        model): asked for, or auto for a free cluster (``free``) or a conditional model;
        never for voxel grids decoded as grids, which cannot calibrate one."""
        auto = free or self.conditional
        choice = self.generation_prior
        return not self.decodes_grid and (choice == "kernel" or (choice == "auto" and auto))

    def with_value(self, name: str, value, free: bool = False) -> TrainSettings:
        """These settings with ``name`` set to ``value`` as a form gives it, or to its default
        where it does not apply given the others and the system (``free``: a free
        cluster; its widget is disabled then)."""
        default = setting_options(name)["default"]
        if not self.applies(name, free):
            value = default
        elif not isinstance(default, dict):
            value = type(default)(value)
        return replace(self, **{name: value})


# The Train page's layout: the settings a newcomer needs first, in three columns, then the
# rest under "Advanced" in three (architecture, hard core, loss). Each setting comes after
# those that decide whether it applies, as :func:`settings_from_form` reads them (the epochs
# after the conditional box, whose value the automatic epochs' note under them follows).
FORM_LAYOUT = {
    "basic": (("representation",), ("latent_dim", "seed"), ("conditional", "epochs")),
    "advanced": (("decoder", "distance_encoder", "voxel_encoder", "representation_params",
                  "match_every"),
                 ("coordinate_weight", "repel_steps", "repel_distance", "repel_trigger",
                  "log_heights", "height_noise"),
                 ("beta", "warmup_epochs", "physics_weight", "generation_prior",
                  "prior_physics_weight", "state_weight", "batch_size")),
}
FORM_FIELDS = tuple(name for section in FORM_LAYOUT.values() for column in section
                    for name in column)


# Each representation's own parameters (TrainSettings.representation_params), with what the
# command line and the Train page offer; the defaults are the representations' own (tested).
# "box_only": moot for a free cluster, which has no up.
REPRESENTATION_PARAMS = {
    "coords": {"sort_axis": {
        "default": "template", "label": "Particle order", "flag": "--particle-order",
        "choices": ("template", "x", "up"),
        "help": "template: each particle is put on the nearest free site of the training "
                "set's mean configuration (optimal assignment); x, up: particles sorted along "
                "x (as the original study did) or by height."}},
    "distances": {"heights": {
        "default": True, "label": "Height channels", "flag": "--no-heights", "box_only": True,
        "help": "Adds each particle's height to the matrix (two more channels): a distance "
                "matrix alone has no up, so it cannot tell gravity's layers apart or be stood "
                "upright again."}},
    "voxels": {
        "n_cells": {"default": 16, "label": "Voxels per axis", "flag": "--voxel-cells",
                    "choices": (8, 16, 24, 32), "help": "Cells along each side of the box."},
        "smearing": {"default": 0.0, "label": "Gaussian smearing w (σ)", "flag": "--smearing",
                     "low": 0.0, "high": 2.0, "step": 0.05,
                     "help": "Each particle spread over the cells as a Gaussian of this width "
                             "(0: counted in its cell)."}},
}


def representation_params(representation: str, values: dict) -> dict:
    """The parameters of ``representation`` among ``values`` ({name: value}) that differ from
    their defaults: what :attr:`TrainSettings.representation_params` keeps."""
    specs = REPRESENTATION_PARAMS.get(representation, {})
    return {name: type(spec["default"])(values[name]) for name, spec in specs.items()
            if name in values and values[name] != spec["default"]}


def settings_from_form(values: dict, free: bool = False) -> TrainSettings:
    """Training settings from a form's values ({field name: value}, in :data:`FORM_FIELDS`
    order) for a free cluster (``free``) or a box; fields left out keep their defaults."""
    settings = TrainSettings()
    for name in FORM_FIELDS:
        if name in values:
            settings = settings.with_value(name, values[name], free)
    return settings


def setting_options(name: str) -> dict:
    """Label, range (low, high, step) or choices, help and ``applies`` of a training setting,
    with its default."""
    (spec,) = [f for f in fields(TrainSettings) if f.name == name]
    default = spec.default if spec.default_factory is MISSING else spec.default_factory()
    return {**spec.metadata, "default": default}
