"""Reconstruct: a held-out configuration next to its reconstruction, and new configurations
generated from the latent prior, compared with the Monte Carlo data."""

import numpy as np
import pandas as pd
import streamlit as st

from ljvae_core.analysis import (
    ENERGY_PER_PARTICLE_CAP,
    compare_distributions,
    energies_per_particle,
)
from ljvae_core.evaluation import (
    available_priors,
    generate,
    held_out_indices,
    quench,
    reconstruct,
)
from ljvae_core.geometry import match_and_align, pairwise_distances
from ljvae_ui.charts import distance_heatmap, sample_comparison_charts
from ljvae_ui.state import cached_model, pick_compatible_dataset, pick_model
from ljvae_ui.views import configuration_html

GENERATED = "generated_samples"
# How generated sets differ from Monte Carlo: (header, what it measures).
DISTANCE_COLUMNS = {
    "w1_energy_per_particle": ("LJ energy W1 (ε)", "Wasserstein distance between the LJ "
                               "energy-per-particle distributions."),
    "w1_nearest_neighbour": ("nearest-neighbour W1 (σ)", "Wasserstein distance between the "
                             "distributions of each particle's nearest-neighbour distance."),
    "w1_height": ("height W1 (σ)", "Wasserstein distance between the distributions of "
                  "particle heights."),
    "rdf_l1": ("g(r) L1 distance", "Integrated absolute difference of the two g(r) curves."),
    "valid_fraction": ("valid (no pair < 0.8 σ)", "Share of configurations with no pair of "
                       "particles closer than 0.8 σ."),
}


def energy_text(value: float) -> str:
    """An energy per particle; the cap that keeps overlaps finite is shown as such."""
    if value >= ENERGY_PER_PARTICLE_CAP:
        return f"≥ {ENERGY_PER_PARTICLE_CAP:g} (overlap)"
    return f"{value:.3f}"


st.title("Reconstruct")
summary = pick_model()
if summary is None:
    st.info("No model yet: train one on the Train page first.")
    st.page_link("app_pages/train.py", label="Train", icon=":material/model_training:")
    st.stop()

try:
    trained = cached_model(summary["path"], summary["modified"])
except (OSError, ValueError) as err:
    st.error(f"This model could not be loaded ({err}); train it again.")
    st.stop()

chosen, ds = pick_compatible_dataset(summary, "Monte Carlo data to compare with",
                                     "reconstruct_dataset")
periodic = ds.params.get("periodic", "")
held_out = held_out_indices(trained, ds)

metrics = summary.get("metrics") or {}
if metrics:
    rec, gen = metrics["reconstruction"], metrics["generation"]
    st.caption(f"This model's evaluation on {metrics.get('held_out_samples', 'its')} held-out "
               "configurations (chains it was not trained on):")
    cols = st.columns(5)
    baseline = rec.get("baseline_rmsd_median")
    cols[0].metric("Median RMSD (held out)", f"{rec['rmsd_median']:.3f} σ",
                   help="Root-mean-square displacement between a configuration and its "
                        "reconstruction, particles matched and aligned." + (
                            "" if baseline is None else
                            f" A random other configuration of the same (γ, T) scores "
                            f"{baseline:.3f} σ: what a model knowing only the state point "
                            "would reach."))
    cols[1].metric("90th percentile RMSD", f"{rec['rmsd_p90']:.3f} σ")
    cols[2].metric("Valid generated", f"{gen['valid_fraction']:.0%}",
                   help="Generated configurations with no pair closer than 0.8 σ, before "
                        "any relaxation.")
    cols[3].metric("Valid after quench", f"{gen['valid_fraction_relaxed']:.0%}",
                   help="The same after a short zero-temperature quench (Metropolis moves "
                        "that only go downhill).")
    fair = gen.get("energy_w1_relaxed_vs_quenched_mc")
    cols[4].metric("Energy W1 after quench", "—" if fair is None else f"{fair:.3f} ε",
                   help="Wasserstein distance between the LJ energy per particle of quenched "
                        "generated samples and of Monte Carlo configurations put through the "
                        f"same quench (0: identical). Against unquenched Monte Carlo it is "
                        f"{gen['energy_w1_relaxed']:.2f} ε, since a quench lowers every "
                        "energy.")

st.subheader("Reconstruction of a held-out configuration")
pick = st.number_input(f"Held-out configuration (0–{len(held_out) - 1})", 0,
                       len(held_out) - 1, 0, key="heldout_index")
k = int(held_out[pick])
original = ds.coords[k]
decoded = reconstruct(trained, original[None], ds.gamma[k:k + 1], ds.temperature[k:k + 1])[0]
matched = match_and_align(decoded, original)
# Alignment may leave the box slightly; the view only needs the shape.
shown = np.clip(matched, 0.0, ds.box)
displacement = np.linalg.norm(matched - original, axis=1)
energy = energies_per_particle(np.stack([original, decoded]), ds.box, ds.gamma[k], periodic)
cols = st.columns(4)
cols[0].metric("RMSD (matched, aligned)", f"{np.sqrt(np.mean(displacement**2)):.3f} σ")
cols[1].metric("Largest displacement", f"{displacement.max():.3f} σ")
cols[2].metric("U/N original", energy_text(energy[0]))
cols[3].metric("U/N reconstructed", energy_text(energy[1]))
left, right = st.columns(2)
with left:
    st.markdown(f"**Original** (γ = {ds.gamma[k]:g}, T = {ds.temperature[k]:g}), by height")
    st.iframe(configuration_html(original, ds.box, width=460, height=360), height=380)
with right:
    st.markdown("**Reconstruction**, matched and aligned, by displacement (blue 0 → red max)")
    st.iframe(configuration_html(shown, ds.box, width=460, height=360, values=displacement,
                                 value_range=(0.0, max(displacement.max(), 1e-9))), height=380)
d_orig, d_rec = pairwise_distances(original), pairwise_distances(matched)
vmax = float(max(d_orig.max(), d_rec.max()))
st.altair_chart(distance_heatmap(d_orig, "Distances, original", vmax)
                | distance_heatmap(d_rec, "Distances, reconstruction", vmax)
                | distance_heatmap(np.abs(d_rec - d_orig), "|difference|", vmax),
                width="content")

st.subheader("Generate from the latent prior")
cols = st.columns(4)
n = cols[0].number_input("Samples", 10, 2000, 300, key="n_generate")
gammas = sorted(set(ds.gamma[held_out].tolist()))
if trained.settings.conditional:
    gamma = cols[1].number_input("at γ", -10.0, 10.0, float(gammas[0]), key="generate_gamma",
                                 help="Any value: γ outside the training range extrapolates.")
    temperature = float(ds.temperature[held_out][0])
else:
    gamma, temperature = None, None
    cols[1].caption("Unconditional model: samples span the training γ values.")
relax = cols[2].checkbox("Relax (zero-temperature quench)", True, key="relax")
seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="generate_seed")
priors = available_priors(trained)
prior = priors[0]
if len(priors) > 1:
    prior = st.radio("Sample the latent from", priors, horizontal=True, key="generate_prior",
                     format_func={"fitted": "the fitted prior",
                                  "plain": "the fitted prior, without the physics loss",
                                  "normal": "N(0, I)"}.get,
                     help="The fitted prior is a Gaussian mixture over the latent means of the "
                          "training configurations, refined (unless its weight was 0) so that "
                          "its samples decode to configurations that fit the box without "
                          "overlaps. A latent that holds much information fills only part of "
                          "N(0, I), and samples elsewhere decode to configurations unlike the "
                          "training data.")
if st.button("Generate", type="primary", key="generate"):
    with st.spinner("Decoding and relaxing…"):
        raw = generate(trained, int(n), gamma, temperature, int(seed), prior)
        relaxed = quench(raw, ds.box, 0.0 if gamma is None else gamma, periodic,
                         seed=int(seed)) if relax else None
    st.session_state[GENERATED] = {"model": summary["name"], "gamma": gamma, "raw": raw,
                                   "relaxed": relaxed}

result = st.session_state.get(GENERATED)
if result and result["model"] == summary["name"]:
    reference = ds.coords[held_out]
    if result["gamma"] is not None:
        near = np.isclose(ds.gamma[held_out], result["gamma"])
        if near.any():
            reference = reference[near]
        else:
            st.caption("No Monte Carlo data at this γ: compared with all held-out samples.")
    sets = {"Monte Carlo (held out)": reference, "generated": result["raw"]}
    if result["relaxed"] is not None:
        sets["generated, relaxed"] = result["relaxed"]
    for column, chart in zip(st.columns(3), sample_comparison_charts(sets, ds.box, periodic),
                             strict=True):
        column.altair_chart(chart, width="stretch")
    rows = [{"set": label, **compare_distributions(coords, reference, ds.box, 0.0, periodic)}
            for label, coords in sets.items() if label != "Monte Carlo (held out)"]
    table = pd.DataFrame(rows).drop(columns="reference_valid_fraction")
    st.dataframe(table.rename(columns={k: v[0] for k, v in DISTANCE_COLUMNS.items()}),
                 hide_index=True, width="stretch", column_config={
                     label: st.column_config.NumberColumn(
                         label, help=text, format="percent" if "valid" in label else "%.3f")
                     for label, text in DISTANCE_COLUMNS.values()})
    st.caption("Each figure compares the generated set with the Monte Carlo data; 0 means "
               "the same distribution.")
    show = st.number_input("Show generated sample", 0, len(result["raw"]) - 1, 0,
                           key="show_generated")
    chosen = (result["relaxed"] if result["relaxed"] is not None else result["raw"])[show]
    st.iframe(configuration_html(chosen, ds.box), height=440)
