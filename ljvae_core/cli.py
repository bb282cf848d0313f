"""Command line: ``python -m ljvae_core {simulate,import,energy,train,evaluate,score,generate,
benchmark,bench,demo} ...``.

Results go to stdout (JSON where the contract says so), progress to stderr; an error prints
one sentence to stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .sampling import SimulationParams
from .statepoints import STATE_SAMPLES, SWEEPS
from .trained import PRIORS

EXIT_ERROR = 2


# The train command's options: (TrainSettings field, flag). Each option's default, range,
# choices and help are the field's own (ljvae_core.settings.setting_options), as on the
# Train page; a setting on by default gets a flag that turns it off.
TRAIN_FLAGS = (
    ("representation", "--representation"), ("latent_dim", "--latent-dim"),
    ("epochs", "--epochs"), ("batch_size", "--batch-size"), ("beta", "--beta"),
    ("warmup_epochs", "--warmup"), ("physics_weight", "--physics-weight"),
    ("conditional", "--conditional"), ("decoder", "--decoder"),
    ("match_every", "--match-every"), ("distance_encoder", "--distance-encoder"),
    ("voxel_encoder", "--voxel-encoder"),
    ("coordinate_weight", "--coordinate-weight"), ("repel_steps", "--repel-steps"),
    ("repel_distance", "--repel-distance"), ("repel_trigger", "--repel-trigger"),
    ("log_heights", "--linear-heights"), ("height_noise", "--height-noise"),
    ("state_weight", "--state-weight"), ("prior_physics_weight", "--prior-physics-weight"),
    ("generation_prior", "--generation-prior"),
    ("lr_patience", "--lr-patience"), ("patience", "--patience"), ("seed", "--seed"),
)


def _add_setting(parser, name: str, flag: str) -> None:
    from .settings import setting_options

    option = setting_options(name)
    default = option["default"]
    text = f"{option['label']}. {option['help']}".strip()
    if isinstance(default, bool):
        if default:
            text = f"turns off: {text[0].lower()}{text[1:]}"
        parser.add_argument(flag, dest=name, action="store_false" if default else "store_true",
                            help=text)
        return
    limits = "" if option["low"] is None else f"; {option['low']} to {option['high']}"
    parser.add_argument(flag, dest=name, type=type(default), default=default,
                        choices=option["choices"],
                        help=f"{text} (default {default}{limits})".replace("%", "%%"))


def _add_representation_params(parser) -> None:
    """One option per representation parameter, from its metadata (as on the Train page)."""
    from .settings import REPRESENTATION_PARAMS

    for representation, specs in REPRESENTATION_PARAMS.items():
        for name, spec in specs.items():
            text = f"{representation}: {spec['label']}. {spec['help']}"
            if isinstance(spec["default"], bool):
                parser.add_argument(spec["flag"], dest=name, action="store_false",
                                    help=f"turns off: {text}")
                continue
            parser.add_argument(spec["flag"], dest=name, type=type(spec["default"]),
                                default=spec["default"], choices=spec.get("choices"),
                                help=f"{text} (default {spec['default']})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ljvae_core",
        description="Lennard-Jones particles under gravity: simulate, inspect, learn.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_options(sub)
    _import_options(sub)
    _energy_options(sub)
    _train_options(sub)
    _evaluate_options(sub)
    _score_options(sub)
    _generate_options(sub)
    _benchmark_options(sub)
    bench = sub.add_parser("bench", help="speed of the Monte Carlo engine, as JSON")
    bench.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    demo = sub.add_parser("demo", help="simulate fresh data, load the pre-trained default "
                                       "model, evaluate it and encode the data (under a "
                                       "minute); stores dataset 'demo' and model "
                                       "'demo-distances' in the cache")
    demo.add_argument("--build", action="store_true",
                      help="instead, rebuild the pre-trained model that ships with ljvae: "
                           "simulate the study dataset, train the default model on it (100 "
                           "epochs) and write it to ljvae_core/data/demo-model (~10 min)")
    return parser


def _simulate_options(sub) -> None:
    sim = sub.add_parser("simulate", help="run Monte Carlo chains and save a dataset",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = SimulationParams()
    sim.add_argument("--particles", type=int, default=defaults.n_particles,
                     help="number of particles N")
    sim.add_argument("--dim", type=int, choices=(2, 3), default=defaults.dim)
    sim.add_argument("--box", type=float, default=defaults.box, help="box length L")
    sim.add_argument("--temperature", type=float, nargs="+",
                     default=list(defaults.temperatures), help="T values")
    sim.add_argument("--gamma", type=float, nargs="+", default=list(defaults.gammas),
                     help="gravity couplings")
    sim.add_argument("--samples", type=int, default=defaults.n_samples,
                     help="samples per (T, gamma)")
    sim.add_argument("--chains", type=int, default=defaults.n_chains,
                     help="independent chains per condition")
    sim.add_argument("--seed", type=int, default=defaults.seed)
    sim.add_argument("--cutoff", type=float, default=None, help="truncate u(r) at this radius")
    sim.add_argument("--periodic", default="", help="periodic axes, e.g. xy (default none)")
    sim.add_argument("--jobs", type=int, default=None, help="worker threads (default: cores)")
    sim.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the chains on this Dask scheduler (e.g. tcp://host:8786) "
                          "instead of local threads; the same seed gives the same dataset")
    sim.add_argument("--out", required=True, help="dataset file to write (.joblib)")


def _import_options(sub) -> None:
    from .system import POTENTIALS

    imp = sub.add_parser("import", help="make a dataset from trajectories made elsewhere "
                                        "(any file ase.io reads, or .npy/.npz arrays)")
    imp.add_argument("files", nargs="+", metavar="FILE",
                     help="extended XYZ, XYZ, LAMMPS dump (.lammpstrj, .dump) or data (.data, "
                          ".lmp), ASE .traj, or .npy/.npz arrays (M, N, d) or (M, N*d); each "
                          "file is one run of successive frames")
    imp.add_argument("--dim", type=int, choices=(2, 3), default=None,
                     help="dimension (default: the file's; 3 for flat (M, N*d) arrays)")
    box = imp.add_mutually_exclusive_group()
    box.add_argument("--box", type=float, default=None,
                     help="cubic box length L (default: the file's cell)")
    box.add_argument("--no-box", dest="free", action="store_true",
                     help="a free cluster: no box or walls, centre of mass removed (the "
                          "default for --potential lj13 without --box)")
    imp.add_argument("--gamma", type=float, nargs="+", default=None, metavar="G",
                     help="gravity coupling: one value, or one per file (default: each "
                          "frame's 'gamma' info, else 0)")
    imp.add_argument("--temperature", type=float, nargs="+", default=None, metavar="T",
                     help="temperature: one value, or one per file (default: each frame's "
                          "'temperature' info, else 1)")
    imp.add_argument("--potential", choices=POTENTIALS, default=POTENTIALS[0],
                     help="energy the configurations are judged in: lj-gravity (4(r^-12 - "
                          "r^-6) plus 4 gamma z, in a box) or lj13 (r^-12 - 2 r^-6 plus a "
                          "tether to the centre of mass, a free cluster)")
    imp.add_argument("--out", required=True, help="dataset file to write (.joblib)")


def _benchmark_options(sub) -> None:
    bm = sub.add_parser("benchmark", help="a standard benchmark's figures, as JSON")
    bm.add_argument("system", choices=("lj13",), help="lj13: the 13-particle LJ cluster")
    bm.add_argument("--data", required=True,
                    help="generated samples: .npz with 'coords' (M, 13, 3), or .npy")
    bm.add_argument("--model", default=None,
                    help="with --dataset: judge against the model's held-out (validation) "
                         "clusters of that dataset, the floor from its training clusters")
    bm.add_argument("--dataset", default=None,
                    help="the imported LJ13 dataset the --model was trained on")


def _energy_options(sub) -> None:
    energy = sub.add_parser("energy", help="energy of the configurations in an XYZ file")
    energy.add_argument("file")
    energy.add_argument("--box", type=float, default=None, help="box length (default: lattice)")
    energy.add_argument("--periodic", default=None, help="periodic axes (default: file's pbc)")
    energy.add_argument("--cutoff", type=float, default=None)
    energy.add_argument("--tail-correction", action="store_true")
    energy.add_argument("--gamma", type=float, default=0.0)
    energy.add_argument("--potential", choices=("lj-gravity", "lj13"), default="lj-gravity",
                        help="lj13: the free cluster's r^-12 - 2 r^-6 plus its tether (no box; "
                             "total counts each pair once, total_ordered_pairs twice)")


def _train_options(sub) -> None:
    tr = sub.add_parser("train", help="train a VAE on a dataset and save it")
    tr.add_argument("dataset", help="dataset file (.joblib) written by simulate")
    for name, flag in TRAIN_FLAGS:
        _add_setting(tr, name, flag)
    _add_representation_params(tr)
    tr.add_argument("--out", required=True, help="model directory to write")


def _evaluate_options(sub) -> None:
    ev = sub.add_parser("evaluate", help="reconstruction and generation quality, as JSON")
    ev.add_argument("model", help="model directory written by train")
    ev.add_argument("dataset", help="dataset file (.joblib)")
    ev.add_argument("--generate", type=int, default=500,
                    help="samples drawn from the prior for the pooled quench figures")
    ev.add_argument("--state-samples", type=int, default=STATE_SAMPLES, metavar="M",
                    help="configurations per state point judged against its Monte Carlo "
                         "(0: leave the per-state-point figures out)")
    ev.add_argument("--unseen-gamma", type=float, nargs="*", default=[], metavar="G",
                    help="also judge generation at these gamma, against fresh Monte Carlo")
    ev.add_argument("--sweeps", type=int, nargs="+", default=list(SWEEPS), metavar="K",
                    help="thermal Metropolis sweeps after which samples are judged")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--anomalies", action="store_true",
                    help="add gamma clustering of the latent and anomaly-detection AUCs")
    ev.add_argument("--regressor-epochs", type=int, default=0,
                    help="also train the learned distances->coordinates regressor this long "
                         "and compare it with MDS (distance models)")


def _score_options(sub) -> None:
    sc = sub.add_parser("score", help="anomaly scores of configurations in files, as JSON")
    sc.add_argument("model", help="model directory written by train")
    sc.add_argument("files", nargs="+", help="extended XYZ, CSV (x,y[,z]) or .npy files")
    sc.add_argument("--gamma", type=float, default=None,
                    help="gamma of the configurations (conditional models; default: the "
                         "lowest gamma trained on)")
    sc.add_argument("--temperature", type=float, default=None)


def _generate_options(sub) -> None:
    gen = sub.add_parser("generate", help="draw configurations from a model, optionally "
                                         "relaxed by Metropolis sweeps; .npz or extended XYZ")
    gen.add_argument("model", help="model directory (written by train, or a portable one)")
    gen.add_argument("--samples", type=int, required=True, help="configurations to draw")
    gen.add_argument("--gamma", type=float, default=None,
                     help="gamma to generate at (conditional models) or to relax at")
    gen.add_argument("--temperature", type=float, default=None,
                     help="temperature (default: the one the model was trained at, if one)")
    gen.add_argument("--sweeps", type=int, default=0,
                     help="Metropolis sweeps at (T, gamma) after decoding (0: raw samples)")
    gen.add_argument("--prior", choices=PRIORS, default="default",
                     help="latent prior: default (the model's, narrowed where calibrated), "
                          "pooled (one mixture over every state point), unrefined (the "
                          "mixture's plain fit, at full spread), normal (N(0, I))")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="file to write: .npz or .xyz")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"simulate": cmd_simulate, "import": cmd_import, "benchmark": cmd_benchmark,
               "energy": cmd_energy, "train": cmd_train,
               "evaluate": cmd_evaluate, "score": cmd_score, "bench": cmd_bench,
               "demo": cmd_demo, "generate": cmd_generate}
    try:
        return handler[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR


def _progress_bar(fraction: float, message: str) -> None:
    width = 30
    filled = int(round(width * fraction))
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\r[{bar}] {100 * fraction:5.1f}%  {message:<48}")
    sys.stderr.flush()


def cmd_simulate(args) -> int:
    from .artifacts import write_dataset_file
    from .sampling import simulate

    params = SimulationParams(
        n_particles=args.particles, dim=args.dim, box=args.box,
        temperatures=tuple(args.temperature), gammas=tuple(args.gamma),
        n_samples=args.samples, n_chains=args.chains, seed=args.seed, cutoff=args.cutoff,
        periodic=args.periodic,
    )
    ds = simulate(params, progress=_progress_bar, n_jobs=args.jobs, scheduler=args.scheduler)
    sys.stderr.write("\n")
    path = write_dataset_file(ds, args.out)
    for row in ds.condition_table():
        print(
            f"T={row['T']:g} gamma={row['gamma']:g}: {row['samples']} samples, "
            f"tau={row['tau']:.1f} sweeps, stride={row['stride']}, "
            f"acceptance={row['acceptance']:.2f}",
            file=sys.stderr,
        )
    print(f"saved {len(ds)} configurations to {path}", file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    from .artifacts import write_dataset_file
    from .trajectory import ImportOptions, describe, import_dataset

    options = ImportOptions(dim=args.dim, box=args.box, free=args.free,
                            gamma=None if args.gamma is None else tuple(args.gamma),
                            temperature=None if args.temperature is None
                            else tuple(args.temperature),
                            potential=args.potential)
    ds = import_dataset(args.files, options)
    path = write_dataset_file(ds, args.out)
    print(f"saved {describe(ds)} to {path}", file=sys.stderr)
    return 0


def cmd_benchmark(args) -> int:
    from .lj13 import benchmark, reference_clusters, split
    from .trajectory import read_frames

    if (args.model is None) != (args.dataset is None):
        raise ValueError("give --model and --dataset together, or neither")
    generated = read_frames(args.data, args.data).coords
    if args.model is None:
        reference, held = reference_clusters(), None
    else:
        from .artifacts import load_dataset
        from .evaluation import held_out_indices
        from .model_store import load_model

        dataset = load_dataset(args.dataset)
        trained = load_model(args.model)
        if not trained.trained_on(dataset):
            raise ValueError("the model was not trained on this dataset")
        reference, held = dataset.coords, held_out_indices(trained, dataset)
    held, other = split(held, len(reference))
    print(json.dumps(benchmark(generated, reference[held], reference[other])))
    return 0


def cmd_energy(args) -> int:
    from .io import read_configurations
    from .potential import periodic_mask, total_energy

    conf = read_configurations(args.file)
    if args.potential == "lj13":
        from .potential import cluster_energy_terms

        frames = [cluster_energy_terms(c) for c in conf.coords]
        print(json.dumps(frames[0] if len(frames) == 1 else {**frames[0], "frames": frames}))
        return 0
    box = args.box if args.box is not None else conf.box
    if box is None or not box > 0:
        raise ValueError("the file gives no box: pass --box L")
    periodic = conf.periodic or "" if args.periodic is None else args.periodic
    periodic = "" if periodic.lower() == "none" else periodic
    dim = conf.coords.shape[-1]
    mask = periodic_mask(periodic, dim).astype(bool)
    coords = conf.coords.copy()
    coords[..., mask] %= box
    if mask[-1] and args.gamma != 0:
        raise ValueError("gravity needs a reflecting up axis: drop it from --periodic")
    _check_inside(coords[..., ~mask], box)
    frames = [
        total_energy(c, box, args.gamma, periodic, args.cutoff, args.tail_correction)
        for c in coords
    ]
    result = dict(frames[0])
    if len(frames) > 1:
        result["frames"] = frames
    print(json.dumps(result))
    return 0


def _check_inside(coords, box) -> None:
    if not np.isfinite(coords).all():
        raise ValueError("the configuration holds NaN or infinite coordinates")
    if coords.size and (coords.min() < 0 or coords.max() > box):
        raise ValueError(
            f"particles lie outside the box [0, {box:g}] on a reflecting axis; "
            "pass --periodic or a larger --box"
        )


def cmd_train(args) -> int:
    from .artifacts import dataset_name, load_dataset
    from .settings import TrainSettings, representation_params

    dataset = load_dataset(args.dataset)
    # TensorFlow only now: a bad dataset path is told in one line, without its start-up log.
    from .calibration import attach_after_training
    from .model_store import save_model
    from .training import train

    values = {name: getattr(args, name) for name, _ in TRAIN_FLAGS}
    values["representation_params"] = representation_params(args.representation, vars(args))
    settings = TrainSettings(**values)

    def progress(p):
        _progress_bar(p["epoch"] / p["epochs"],
                      f"epoch {p['epoch']}/{p['epochs']}: loss {p['loss']:.4g}, "
                      f"val {p['val_loss']:.4g}")

    trained = train(dataset, settings, progress)
    trained.meta["dataset_name"] = dataset_name(args.dataset)
    sys.stderr.write("\n")
    attach_after_training(trained, dataset, lambda f: _progress_bar(f, "refining the prior"))
    sys.stderr.write("\n")
    path = save_model(trained, args.out)
    print(json.dumps({"model": str(path), "epochs_run": trained.meta["epochs_run"],
                      "epochs_planned": trained.meta["epochs_planned"],
                      "seconds_per_epoch": trained.meta["seconds_per_epoch"],
                      "val_loss": trained.history["val_loss"][-1]}))
    return 0


def cmd_evaluate(args) -> int:
    from .artifacts import load_dataset
    from .evaluation import evaluate
    from .model_store import load_model

    trained = load_model(args.model)
    dataset = load_dataset(args.dataset)
    if dataset.coords.shape[1:] != (trained.representation.n_particles_, trained.representation.d):
        raise ValueError(
            f"the dataset holds {dataset.n_particles} particles in {dataset.dim}D, the model "
            f"was trained on {trained.representation.n_particles_} in {trained.representation.d}D")
    if args.state_samples < 0 or min(args.sweeps) < 0:
        raise ValueError("--state-samples and --sweeps cannot be negative")
    result = {}
    if args.state_samples > 0:
        from .statepoints import evaluate_state_points

        result = evaluate_state_points(trained, dataset, args.unseen_gamma, args.state_samples,
                                       args.sweeps, args.seed, _progress_bar)
        sys.stderr.write("\n")
    result |= evaluate(trained, dataset, n_generate=args.generate, seed=args.seed,
                       regressor_epochs=args.regressor_epochs)
    if args.anomalies:
        from .anomaly import anomaly_report
        from .evaluation import held_out_indices
        from .latent import gamma_clustering, unseen_chains

        latent = trained.encode(dataset.coords, dataset.gamma, dataset.temperature)
        result["latent"] = gamma_clustering(latent, dataset.gamma, dataset.chain, args.seed,
                                            test=unseen_chains(trained, dataset))
        result["anomaly"] = anomaly_report(trained, dataset, held_out_indices(trained, dataset),
                                           seed=args.seed)
    print(json.dumps(result))
    return 0


def cmd_score(args) -> int:
    from .model_store import load_model
    from .scoring import score_files

    trained = load_model(args.model)
    scored = score_files(trained, [(path, path) for path in args.files], args.gamma,
                         args.temperature)
    results = [{"file": f.name, "frame": k, **row}
               for f in scored for k, row in enumerate(f.results)]
    print(json.dumps({"results": results}))
    errors = [f.error for f in scored if f.error]
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    return 2 if errors else 0


def cmd_demo(args) -> int:
    from .demo import build_demo_model, run_demo

    result = (build_demo_model if args.build else run_demo)(progress=_progress_bar)
    sys.stderr.write("\n")
    print(json.dumps(result))
    return 0


def _generation_state(trained, args) -> tuple[float | None, float | None]:
    """(gamma, T) to generate or relax at, checked against the model (one sentence if not)."""
    params = trained.meta.get("dataset_params", {})
    temperatures = list(params.get("temperatures", []))
    temperature = args.temperature
    if temperature is None and len(temperatures) == 1:
        temperature = float(temperatures[0])
    if trained.system.free:
        if args.gamma is not None:
            raise ValueError("a free cluster has no field: leave out --gamma")
        # Relaxed at its own temperature; gamma is no coordinate of a free cluster.
        return (0.0 if args.sweeps > 0 else None), temperature
    if trained.settings.conditional:
        if args.gamma is None or temperature is None:
            raise ValueError("this model is conditional: give the --gamma (and, when it was "
                             "trained at several, the --temperature) to generate at")
        return args.gamma, temperature
    if args.gamma is not None and args.sweeps <= 0:
        raise ValueError("this model is unconditional and cannot generate at a chosen gamma; "
                         "leave out --gamma, or relax its samples there with --sweeps")
    if args.sweeps > 0 and (args.gamma is None or temperature is None):
        raise ValueError("relaxing with --sweeps needs the --gamma (and --temperature) to run "
                         "the Metropolis sweeps at")
    return args.gamma, temperature


def cmd_generate(args) -> int:
    from .evaluation import generate_relaxed
    from .model_store import import_model, load_model

    if args.samples < 1 or args.sweeps < 0:
        raise ValueError("--samples must be at least 1 and --sweeps cannot be negative")
    out = Path(args.out)
    if out.suffix not in (".npz", ".xyz"):
        raise ValueError(f"--out must end in .npz or .xyz, got {out.name}")
    folder = Path(args.model)
    trained = (import_model if (folder / "meta.json").is_file() else load_model)(folder)
    gamma, temperature = _generation_state(trained, args)
    if args.prior not in trained.available_priors():
        raise ValueError(f"this model has no {args.prior} prior; it has "
                         f"{', '.join(trained.available_priors())}")
    raw, relaxed = generate_relaxed(trained, args.samples, gamma, temperature, args.sweeps,
                                    args.seed, args.prior)
    prior = trained.conditional_prior
    if prior is not None and prior.extrapolates(gamma, temperature):
        print(f"note: gamma = {gamma:g} lies past the state points the model was trained on; "
              "its samples are extrapolated, less faithfully the further out", file=sys.stderr)
    if prior is not None and args.prior == "default":
        drawn = trained.generation_state(gamma, temperature, args.seed)
        if drawn != (gamma, temperature):
            print(f"note: drawn and decoded at gamma = {drawn[0]:.4g}, T = {drawn[1]:.4g}, "
                  "where the model's mean height is the one its trained state points predict "
                  f"at gamma = {gamma:g}", file=sys.stderr)
    if relaxed is not None:
        field = "" if trained.system.free else f", gamma={gamma:g}"
        print(f"relaxed by {args.sweeps} sweeps at T={temperature:g}{field}", file=sys.stderr)
    coords = raw if relaxed is None else relaxed
    _write_generated(out, coords, float(trained.representation.L), gamma, temperature)
    print(f"wrote {len(coords)} configurations to {out}", file=sys.stderr)
    return 0


def _write_generated(out, coords, box, gamma, temperature) -> None:
    from .artifacts import atomic_write
    from .io import write_extxyz

    labels = {k: np.full(len(coords), np.nan if v is None else v)
              for k, v in (("gamma", gamma), ("temperature", temperature))}
    if out.suffix == ".npz":
        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez(fh, coords=coords, **labels)

        atomic_write(out, write)
    else:
        atomic_write(out, lambda t: write_extxyz(t, coords, box, info=labels))


def cmd_bench(args) -> int:
    from .bench import run_benchmark

    print(json.dumps(run_benchmark(quick=args.quick)))
    return 0
