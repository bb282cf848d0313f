"""Dataset: parameters, sampling diagnostics, energies, density profiles and 3D views."""

import io

import numpy as np
import pandas as pd
import streamlit as st

from ljvae_core.analysis import MIN_VALID_DISTANCE, STRUCTURE_PAIRS, structure_by_condition
from ljvae_core.artifacts import safe_name, save_dataset
from ljvae_core.hosted import LimitError, check_import
from ljvae_core.io import MAX_UPLOAD_BYTES, extxyz_text, npz_bytes
from ljvae_core.sampling import ParameterError, parse_values
from ljvae_core.statepoints import state_text
from ljvae_core.system import POTENTIALS
from ljvae_core.trajectory import ImportFailure, ImportOptions, describe, import_dataset
from ljvae_ui.charts import (
    autocorrelation_chart,
    centre_distance_chart,
    density_profile_chart,
    energy_histogram_chart,
    energy_trace_chart,
    radial_distribution_chart,
)
from ljvae_ui.hosting import hosted_limits
from ljvae_ui.state import SELECTED_DATASET, cached_dataset, pick_dataset
from ljvae_ui.views import configuration_html

# g(r) and the statistics use at most this many configurations per condition, and fewer for
# large systems (analysis.structure_subset): a few million pair distances give smooth curves.
STRUCTURE_SAMPLES = 1500

# Headers of the structure table: (column name, label shown with its unit, help). The names
# stay short for code that reads the table; the labels are what people see.
STRUCTURE_COLUMNS = {
    "configurations": ("configurations", "configurations",
                       "Configurations analysed, evenly spread over the chains of the "
                       "condition."),
    "energy_per_particle": ("U/N", "U/N (ε)", "Mean energy per particle, pair and gravity."),
    "energy_per_particle_std": ("σ(U/N)", "σ(U/N) (ε)",
                                "Standard deviation of U/N over the configurations."),
    "nearest_neighbour": ("nearest neighbour (σ)", "neighbour (σ)",
                          "Mean distance from a particle to its closest other particle."),
    "height": ("mean height (σ)", "height z (σ)", "Mean height of the particles."),
    "centre_distance": ("distance from the centre (σ)", "distance from the centre (σ)",
                        "Mean distance of a particle from the cluster's centre of mass."),
    "valid_fraction": (f"valid (no pair < {MIN_VALID_DISTANCE:g}σ)", "valid",
                       "Fraction of configurations with no two particles closer than "
                       f"{MIN_VALID_DISTANCE:g}σ."),
    "barometric_rate_fit": ("decay rate fitted", "fitted decay (σ⁻¹)",
                            "Rate λ of ρ(z) ∝ exp(−λz) fitted to the heights (maximum "
                            "likelihood)."),
    "barometric_rate_dilute": ("4γ/T", "4γ/T (σ⁻¹)",
                               "The decay rate of ρ(z) for an ideal gas under the same gravity."),
}


READING_BOX = ("**Reading g(r)** — pairs at distance r relative to an ideal gas in the same box "
               "(walls included), so 1 means no correlation. The first peak near r ≈ 1.12σ is "
               "the nearest-neighbour shell; γ compresses the fluid and sharpens it.")
READING_FREE = ("**Reading the pair distances** — a free cluster has no box to compare with "
                "an ideal gas, so this is the plain density of its pair distances. The first "
                "peak is the nearest-neighbour shell at the potential's minimum, the later ones "
                "the cluster's outer shells.")


@st.cache_data(max_entries=8, show_spinner="Computing g(r) and structure statistics…")
def structure_summary(path: str, modified: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """g(r) curves and the statistics table, per (T, γ) condition."""
    ds = cached_dataset(path, modified)
    several_t = len(set(ds.temperature)) > 1
    curves, rows = [], []
    for part in structure_by_condition(ds, STRUCTURE_SAMPLES):
        label = f"{part['gamma']:g}" + (f" (T={part['temperature']:g})" if several_t else "")
        curves.append(pd.DataFrame({"r": part["rdf"].r, "g": part["rdf"].g, "condition": label}))
        statistics = dict(part["statistics"])
        if ds.system.free:  # a free cluster has no up: its "heights" are distances from the centre
            statistics["centre_distance"] = statistics.pop("height")
        rows.append({"T": part["temperature"], "γ": part["gamma"], **statistics})
    table = pd.DataFrame(rows).dropna(axis="columns", how="all").rename(
        columns={key: name for key, (name, _, _) in STRUCTURE_COLUMNS.items()})
    return pd.concat(curves), table


def structure_column_config() -> dict:
    """Labels with units, help and number formats of the structure table's columns."""
    config = {name: st.column_config.NumberColumn(label, help=text, format="%.4g")
              for name, label, text in STRUCTURE_COLUMNS.values()}
    _, label, text = STRUCTURE_COLUMNS["configurations"]
    config["configurations"] = st.column_config.NumberColumn(label, help=text)
    return config


def decorrelation_words(params: dict) -> tuple[str, str]:
    """(what a chain's stride is k times, symbol of it) for the dataset's decorrelation rule."""
    if params["decorrelation"] == "threshold":
        return (f"the first lag at which its energy autocorrelation falls below "
                f"{params['threshold']:g}", "lag")
    return "its own integrated autocorrelation time of the energy", "τ"


def condition_frame(ds) -> pd.DataFrame:
    """The per-condition sampling table with human headers and units. The threshold rule's
    lag shows only when that rule set the strides."""
    table = pd.DataFrame(ds.condition_table())
    if ds.params.get("decorrelation") != "threshold":
        table = table.drop(columns="threshold_lag", errors="ignore")
    return table.rename(columns={
        "gamma": "γ", "blocks": "blocks of frames (as chains)", "tau": "τ mean (sweeps)",
        "tau_max": "τ max (sweeps)",
        "threshold_lag": "lag, max (sweeps)", "stride": "stride, max (sweeps)",
        "acceptance": "acceptance, mean", "step_size": "step δ, mean (σ)"})


def condition_column_config(params: dict) -> dict:
    """Number formats and help of the sampling table's columns. τ gets two decimals: one
    would show a τ max of 56.04 as 56.0 next to its stride of 57."""
    number = st.column_config.NumberColumn
    return {
        # Pinned: in a narrow window the diagnostics scroll sideways under the state point.
        "T": number(pinned=True),
        "γ": number(pinned=True),
        "samples": number(help="Configurations kept for this condition, from all its chains."),
        "τ mean (sweeps)": number(format="%.2f", help="Integrated autocorrelation time of the "
                                  "energy, mean over the chains."),
        "τ max (sweeps)": number(format="%.2f", help="The same for the slowest chain."),
        "lag, max (sweeps)": number(help=(
            "First lag at which the energy autocorrelation falls below "
            f"{params['threshold']:g}, largest over the chains.")),
        "stride, max (sweeps)": number(help="Sweeps between kept configurations, largest "
                                       "over the chains."),
        "acceptance, mean": number(format="%.2f", help="Fraction of accepted moves."),
        "step δ, mean (σ)": number(format="%.3g", help="Largest displacement of a trial move "
                                   "along each axis, tuned toward the target acceptance."),
    }


def show_parameters(ds) -> None:
    params = ds.params
    cols = st.columns(5)
    cols[0].metric("Particles N", ds.n_particles)
    cols[1].metric("Dimension", f"{ds.dim}D")
    cols[2].metric("Box L", "none" if ds.box is None else f"{ds.box:g} σ")
    cols[3].metric("Samples", len(ds))
    cols[4].metric("Blocks" if ds.imported else "Chains", params["n_chains"],
                   help=("Blocks of successive imported frames" if ds.imported else
                         "Independent Monte Carlo chains") + " per state point.")
    if ds.imported:
        show_import(ds)
        return
    boundaries = params["periodic"] or "none (reflecting walls)"
    cutoff = f"{params['cutoff']:g} σ" if params["cutoff"] is not None else "none (all pairs)"
    st.caption(f"Potential: {potential_name(ds)} · periodic axes: {boundaries} · cut-off: "
               f"{cutoff} · step size tuned to an acceptance rate of "
               f"{params['target_acceptance']:g} · seed {ds.seed}")
    st.dataframe(condition_frame(ds), hide_index=True, width="stretch",
                 column_config=condition_column_config(params))
    what, symbol = decorrelation_words(params)
    k = params["stride_factor"]
    st.caption(f"Each chain keeps one configuration every ⌈k·{symbol}⌉ sweeps (k = {k:g}), "
               f"{symbol} being {what}: the stride in the table is that of the slowest chain, "
               f"⌈{k:g} × {symbol} max⌉. τ mean, the acceptance rate and the step δ are means "
               "over the chains; the sampling diagnostics below show each chain's own.")


def potential_name(ds) -> str:
    return POTENTIAL_NAMES.get(ds.system.potential, ds.system.potential)


def show_import(ds) -> None:
    """Where an imported dataset came from, and how its frames stand in for chains."""
    files = ", ".join(ds.params["imported_from"])
    boundaries = ("none: a free cluster, centre of mass removed" if ds.box is None
                  else ds.params["periodic"] or "none (reflecting walls)")
    st.caption(f"Imported from {files} · potential: {potential_name(ds)} · periodic axes: "
               f"{boundaries} · energies recomputed from the coordinates. Each file's "
               "frames of a state point are cut into contiguous blocks that stand for chains, "
               "so that training holds out whole stretches of the trajectory.")
    st.dataframe(condition_frame(ds), hide_index=True, width="stretch")


def chain_caption(chain: dict, number: int, params: dict) -> str:
    """What one chain's diagnostics say, in words: equilibration, τ, stride, acceptance."""
    k = params["stride_factor"]
    if params["decorrelation"] == "threshold":
        lag = chain["threshold_lag"]
        basis = (f"first lag with autocorrelation < {params['threshold']:g}: {lag} sweeps, "
                 f"stride ⌈{k:g} × {lag}⌉")
    else:
        # Two decimals: a τ of 190.04 must not read as a whole 190 next to its stride of 191.
        basis = f"stride ⌈{k:g} × {chain['tau']:.2f}⌉"
    return (f"Chain {number}: equilibrated from sweep {chain['equilibration_sweep']}; "
            f"τ = {chain['tau']:.2f} sweeps, {basis} = {chain['stride']} sweeps; acceptance "
            f"rate {chain['acceptance']:.2f} at step δ = {chain['step_size']:.3g} σ.")


def show_diagnostics(ds) -> None:
    params = ds.params
    if ds.imported:
        st.info("Imported frames carry no sampling diagnostics: the energy traces, τ and "
                "acceptance rates are those of runs made by this project's simulator.")
        return
    labels = [state_text(c["gamma"], c["temperature"], ds.system.free) for c in ds.conditions]
    left, right = st.columns(2)
    cond_index = left.selectbox("Condition", range(len(labels)),
                                format_func=labels.__getitem__, key="diag_condition")
    chains = ds.conditions[cond_index]["chains"]
    chain_index = right.selectbox("Chain", range(len(chains)),
                                  format_func=lambda k: f"chain {k + 1} of {len(chains)}",
                                  key="diag_chain")
    chain = chains[chain_index]
    st.caption(chain_caption(chain, chain_index + 1, params))
    trace = np.asarray(chain["energy_trace"])
    left, right = st.columns(2)
    left.altair_chart(energy_trace_chart(trace, chain["equilibration_sweep"], ds.n_particles),
                      width="stretch")
    right.altair_chart(autocorrelation_chart(trace[chain["equilibration_sweep"]:], chain["tau"],
                                             chain["threshold_lag"], params["threshold"]),
                       width="stretch")


def show_structure(ds, summary: dict) -> None:
    left, right = st.columns(2)
    left.altair_chart(energy_histogram_chart(ds.energy, ds.gamma, ds.n_particles),
                      width="stretch")
    system = ds.system
    if system.free:
        right.altair_chart(centre_distance_chart(ds.coords, system), width="stretch")
    elif system.walls_up:
        right.altair_chart(density_profile_chart(ds.coords, ds.gamma, ds.temperature, ds.box),
                           width="stretch")
    curves, table = structure_summary(summary["path"], summary["modified"])
    left, right = st.columns([3, 2])
    left.altair_chart(radial_distribution_chart(curves, system.free), width="stretch")
    right.markdown(READING_FREE if system.free else READING_BOX)
    st.dataframe(table, hide_index=True, width="stretch", column_config=structure_column_config())
    counts = ", ".join(f"{n:,}" for n in table["configurations"].unique())
    st.caption(f"g(r) and the statistics use {counts} configurations per condition, evenly "
               f"spread over its chains (at most {STRUCTURE_SAMPLES:,}, fewer for large systems: "
               f"about {STRUCTURE_PAIRS / 1e6:g} million pair distances are plenty)."
               + ("" if system.free else " The fitted decay of ρ(z) matches 4γ/T only in the "
                  "dilute limit; attraction makes dense layers decay differently."))


def chain_number(ds, index: int) -> int:
    """1-based number of sample index's chain among its condition's chains, as the chain
    selector counts them."""
    chains = np.unique(ds.chain[ds.condition == ds.condition[index]])
    return int(np.searchsorted(chains, ds.chain[index])) + 1


def show_configuration(ds) -> None:
    left, right = st.columns([1, 2])
    index = left.number_input(f"Sample (0–{len(ds) - 1})", 0, len(ds) - 1, 0,
                              key="sample_index")
    n_chains = ds.conditions[ds.condition[index]].get("n_chains") or len(
        ds.conditions[ds.condition[index]]["chains"])
    left.markdown(f"{state_text(ds.gamma[index], ds.temperature[index], ds.system.free)}, "
                  f"{'block' if ds.imported else 'chain'} {chain_number(ds, index)} of "
                  f"{n_chains}  \nU/N = {ds.energy[index] / ds.n_particles:.4f} ε")
    left.caption("Particles are coloured by height (red at the top, blue at the "
                 f"{'bottom' if ds.system.free else 'floor'}).")
    with right:
        st.iframe(configuration_html(ds.coords[index], ds.box), height=440)


IMPORT_TYPES = ["xyz", "extxyz", "lammpstrj", "dump", "data", "lmp", "traj", "npy", "npz"]
POTENTIAL_NAMES = {"lj-gravity": "LJ + gravity, in a box", "lj13": "LJ13 cluster (free)"}
BOXES = {"file": "the file's cell", "given": "a box of side L", "free": "none: a free cluster"}


def import_form() -> None:
    """Trajectories made elsewhere, uploaded and made into a dataset (the import command)."""
    with st.expander("Import a trajectory made elsewhere (LAMMPS, HOOMD, ASE, NumPy, ...)"):
        files = st.file_uploader(
            "Trajectory files (each one run of successive frames)", type=IMPORT_TYPES,
            accept_multiple_files=True, key="import_files",
            help="Extended XYZ or XYZ, LAMMPS dumps or data files, ASE .traj, or .npy/.npz "
                 "arrays of shape (M, N, d) or (M, N·d).")
        left, mid, right = st.columns(3)
        potential = left.radio("Potential", POTENTIALS, format_func=POTENTIAL_NAMES.get,
                               key="import_potential")
        box = mid.radio("Box", list(BOXES), format_func=BOXES.get, key="import_box",
                        index=2 if potential == "lj13" else 0)
        length = mid.number_input("Box length L (σ)", 0.1, 1e4, 5.0, key="import_box_length",
                                  disabled=box != "given")
        gamma = right.text_input("γ (blank: each frame's own, else 0)", key="import_gamma",
                                 help="One value, or one per file, separated by commas.")
        temperature = right.text_input("T (blank: each frame's own, else 1)",
                                       key="import_temperature")
        name = st.text_input("Dataset name", key="import_name", placeholder="imported")
        if st.button("Import", key="import_button", disabled=not files):
            options = {"box": length if box == "given" else None, "free": box == "free",
                       "potential": potential}
            import_uploads(files, options, gamma, temperature, name.strip() or "imported")


def import_uploads(files, options: dict, gamma: str, temperature: str, name: str) -> None:
    """Import the uploaded files and store the dataset; one sentence if anything is wrong."""
    limits = hosted_limits()
    n_bytes = sum(f.size for f in files)
    try:
        options["gamma"] = parse_values(gamma, "γ") if gamma.strip() else None
        options["temperature"] = (parse_values(temperature, "T") if temperature.strip()
                                  else None)
        if limits is not None:
            check_import(n_bytes, limits=limits)
        elif n_bytes > MAX_UPLOAD_BYTES:
            raise LimitError(f"uploads of at most {MAX_UPLOAD_BYTES / 2**20:g} MB can be "
                             "imported here; use the import command for larger files")
        with st.spinner("Reading the frames and computing their energies…"):
            ds = import_dataset([(f.name, io.BytesIO(f.getvalue())) for f in files],
                                ImportOptions(**options))
        if limits is not None:
            check_import(n_bytes, ds, limits)
        path = save_dataset(ds, safe_name(name))
    except ImportFailure as err:  # a sentence already, naming its file
        st.error(str(err))
        return
    except (ParameterError, LimitError, ValueError) as err:
        st.error(f"{str(err)[0].upper()}{str(err)[1:].rstrip('.')}.")
        return
    st.session_state[SELECTED_DATASET] = path.stem
    st.success(f"Saved dataset '{path.stem}': {describe(ds)}.")


def show_downloads(ds, summary: dict) -> None:
    params = ds.params
    info = {"energy": ds.energy, "gamma": ds.gamma, "temperature": ds.temperature,
            "chain": ds.chain}
    left, right = st.columns(2)
    left.download_button(
        "Extended XYZ (all frames)",
        lambda: extxyz_text(ds.coords, ds.box, params["periodic"], info),
        file_name=f"{summary['name']}.xyz", mime="chemical/x-xyz", key="download_xyz")
    right.download_button(
        "NumPy .npz", lambda: npz_bytes(coords=ds.coords, **info, box=ds.box),
        file_name=f"{summary['name']}.npz", mime="application/octet-stream",
        key="download_npz")


st.title("Dataset")
import_form()
summary = pick_dataset()
if summary is None:
    st.info("No dataset yet: make one on the Simulate page, or import one above.")
    st.page_link("app_pages/simulate.py", label="Simulate", icon=":material/casino:")
    st.stop()

try:
    dataset = cached_dataset(summary["path"], summary["modified"])
except (OSError, ValueError, EOFError) as err:
    st.error(f"This dataset could not be read ({err}); it may be damaged. Simulate it again.")
    st.stop()

st.subheader("Parameters")
show_parameters(dataset)
st.subheader("Sampling diagnostics")
show_diagnostics(dataset)
st.subheader("Energies and structure")
show_structure(dataset, summary)
st.subheader("Configurations")
show_configuration(dataset)
st.subheader("Download")
show_downloads(dataset, summary)
