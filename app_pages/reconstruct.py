"""Reconstruct: a held-out configuration next to its reconstruction; new configurations
generated at a chosen γ, raw or after thermal sweeps, against Monte Carlo of that γ; and every
state point judged against its Monte Carlo, beside the Monte Carlo floor."""

import numpy as np
import streamlit as st

from ljvae_core.analysis import (
    ENERGY_PER_PARTICLE_CAP,
    energies_per_particle,
)
from ljvae_core.evaluation import can_relax, generate_relaxed, held_out_indices
from ljvae_core.geometry import match_and_align, pairwise_distances
from ljvae_core.io import extxyz_text
from ljvae_core.sampling import parse_values
from ljvae_core.statepoints import (
    evaluate_state_points,
    figures,
    monte_carlo_pair,
    pooled_monte_carlo_pair,
    state_text,
)
from ljvae_ui.charts import distance_heatmap, sample_comparison_charts
from ljvae_ui.judging import (
    cost_caption,
    disorder_caption,
    figures_table,
    floor_label,
    reconstruction_by_state_table,
    state_point_rows,
    state_point_title,
    steering_caption,
)
from ljvae_ui.state import (
    cached_model,
    job_blocked,
    job_progress,
    pick_compatible_dataset,
    pick_model,
    redraw_when_finished,
    start_job,
)
from ljvae_ui.views import configuration_html

GENERATED = "generated_samples"


def energy_text(value: float) -> str:
    """An energy per particle; the cap that keeps overlaps finite is shown as such."""
    if value >= ENERGY_PER_PARTICLE_CAP:
        return f"≥ {ENERGY_PER_PARTICLE_CAP:g} (overlap)"
    return f"{value:.3f}"


PRIOR_NAMES = {"default": "the fitted prior", "pooled": "one mixture over every state point",
               "unrefined": "the plain mixture, as fitted", "normal": "N(0, I)"}
JUDGED = "state_point_job"


# An unconditional model's samples compared with Monte Carlo of every state point.
EVERY_GAMMA = "every trained γ"
# What the page says of sweeps and of the per-state-point judgement, by the kernel that
# relaxes this system: a box's, a free cluster's, or none.
SWEEPS_HELP = {
    "box": "Metropolis sweeps at (T, γ) each generated configuration gets after decoding, with "
           "a tuned step. The energy of this system decorrelates in about 40–70 sweeps.",
    "cluster": "Metropolis sweeps at the data's temperature each generated cluster gets after "
               "decoding, with a tuned step. The energy of the LJ13 cluster decorrelates in "
               "about 150 sweeps.",
    None: "This system has no Monte Carlo kernel here: samples stay raw.",
}
JUDGED_CAPTION = {
    "box": "Generated samples and reconstructions at every state point, raw and after 5 and "
           "20 thermal sweeps, against Monte Carlo of that state point (held out, or a fresh "
           "seeded run at a γ the dataset lacks), beside what an independent Monte Carlo run "
           "scores: the floor.",
    "cluster": "Generated samples and reconstructions, raw and after 5 and 20 sweeps of the "
               "cluster's Metropolis chain, against half of the held-out configurations, "
               "beside what the other half scores against them: the floor.",
    None: "Generated samples and reconstructions, raw, against half of the held-out "
          "configurations, beside what the other half scores against them: the floor. This "
          "system has no Monte Carlo kernel here to relax it.",
}


def relaxing_kernel(system) -> str | None:
    """Which Monte Carlo kernel relaxes this system's samples: "box", "cluster" or None."""
    if not can_relax(system):
        return None
    return "cluster" if system.free else "box"


def generated_and_judged(n, gamma, temperature, sweeps, seed, prior) -> dict:
    """Samples at (gamma, T), raw and relaxed, with Monte Carlo of that state point and the
    figures of each against it; gamma None: an unconditional model's samples, raw, against
    every state point's (energies of the LJ part alone)."""
    raw, relaxed = generate_relaxed(trained, n, gamma, temperature, sweeps, seed, prior)
    pair = (pooled_monte_carlo_pair(trained, ds, n, seed) if gamma is None
            else monte_carlo_pair(trained, ds, gamma, temperature, n, seed))
    sets = {"generated, raw": raw}
    if relaxed is not None:
        sets[f"generated + {sweeps} sweeps"] = relaxed
    rows = {floor_label(pair.fresh is not None): pair.second} | sets
    reference = pair.reference
    drawn = (trained.generation_state(gamma, temperature, seed)
             if gamma is not None and prior == "default" else None)
    return {"model": summary["name"], "dataset": chosen["name"], "gamma": gamma,
            "temperature": temperature, "sets": sets, "reference": reference,
            "source": pair.source,
            "generated_at": None if drawn is None else dict(zip(("gamma", "temperature"),
                                                                 drawn, strict=True)),
            "disorder": "" if drawn is None else disorder_caption(
                trained.conditional_prior, gamma, temperature, ds.system.free,
                trained.settings.repel_distance,
                trained.disorder_at(gamma, temperature)),
            "figures": {label: figures(x, reference, ds.system, gamma or 0.0, seed)
                        for label, x in rows.items()}}


def show_generated(result: dict) -> None:
    sets = {"Monte Carlo": result["reference"]} | result["sets"]
    for column, chart in zip(st.columns(3), sample_comparison_charts(sets, ds.system),
                             strict=True):
        column.altair_chart(chart, width="stretch")
    table, config = figures_table(result["figures"], ds.system.free)
    st.dataframe(table, hide_index=True, width="stretch", column_config=config)
    where = ("; U/N is the LJ part alone, gravity differing from one state point to the next"
             if result["gamma"] is None else "" if ds.system.free
             else f" at γ = {result['gamma']:g}")
    st.caption(f"Each figure compares a set with {len(result['reference'])} configurations of "
               f"{result['source']}{where}; the floor row is what Monte Carlo scores against "
               "itself.")
    for caption in (steering_caption(result), result.get("disorder")):
        if caption:
            st.caption(caption)
    last = list(result["sets"].values())[-1]
    cols = st.columns([3, 1])
    show = cols[0].number_input("Show generated sample", 0, len(last) - 1, 0,
                                key="show_generated")
    info = {"temperature": np.full(len(last), result["temperature"])}
    if result["gamma"] is not None:
        info["gamma"] = np.full(len(last), result["gamma"])
    xyz = extxyz_text(last, ds.box, ds.system.periodic, info)
    cols[1].download_button("Download (extended XYZ)", xyz,
                            file_name=f"{summary['name']}-generated.xyz", key="download_generated")
    st.iframe(configuration_html(last[show], ds.box), height=440)


def judge_form() -> None:
    job = st.session_state.get(JUDGED)
    running = job is not None and job.active
    cols = st.columns(3)
    n = cols[0].number_input("Configurations per state point", 50, 2000, 300, key="judge_n",
                             help="Each set is this many configurations; the classifier's "
                                  "AUC is noisier with fewer: Monte Carlo against itself "
                                  "scored 0.44–0.53 in runs of 300, 0.49–0.52 of 2000.")
    unseen = cols[1].text_input("Also at unseen γ", "", key="judge_unseen",
                                placeholder="e.g. 0.75, 1.5", disabled=ds.imported,
                                help="γ values the model was not trained at, judged against "
                                     "a fresh seeded Monte Carlo run there.")
    try:
        extra = parse_values(unseen, "the unseen γ values") if unseen.strip() else ()
    except ValueError as err:
        st.error(f"Please fix them: {err}.")
        return
    blocked = job_blocked(JUDGED)
    if cols[2].button("Judge every state point", key="judge", disabled=running or bool(blocked)):
        if start_job(JUDGED, evaluate_state_points, trained, ds, extra, int(n),
                     label="judge", seed=0):
            st.session_state["judged_for"] = (summary["name"], chosen["name"])
            st.rerun()


@st.fragment(run_every=1.0)
def judge_panel() -> None:
    job = st.session_state.get(JUDGED)
    if job is None or st.session_state.get("judged_for") != (summary["name"], chosen["name"]):
        return
    if job_progress(job, "cancel_judge"):
        return
    redraw_when_finished(JUDGED)
    if job.status == "cancelled":
        st.warning("Judging was cancelled.")
        return
    if job.status != "done":
        st.error(f"Judging failed: {job.error}")
        return
    points = job.result["state_points"]
    st.success(f"Judged {len(points)} state point{'s' if len(points) > 1 else ''} in "
               f"{job.elapsed:.0f} s.")
    titles = [state_point_title(p, ds.system.free) for p in points]
    for tab, point in zip(st.tabs(titles), points, strict=True):
        with tab:
            table, config = figures_table(state_point_rows(point), ds.system.free)
            st.dataframe(table, hide_index=True, width="stretch", column_config=config)
            st.caption(f"Against {point['reference_samples']} configurations of "
                       f"{point['reference']}. {steering_caption(point)} "
                       f"{cost_caption(point)}".strip())


def reconstruction_figures(metrics: dict) -> None:
    rec = metrics["reconstruction"]
    st.caption(f"This model's reconstructions of {metrics.get('held_out_samples', 'its')} "
               "held-out configurations (chains it was not trained on):")
    cols = st.columns(3)
    baseline = rec.get("baseline_rmsd_median")
    cols[0].metric("Median RMSD (held out)", f"{rec['rmsd_median']:.3f} σ",
                   help="Root-mean-square displacement between a configuration and its "
                        "reconstruction, particles matched and aligned." + (
                            "" if baseline is None else
                            f" A random other configuration of the same (γ, T) scores "
                            f"{baseline:.3f} σ: what a model knowing only the state point "
                            "would reach."))
    cols[1].metric("90th percentile RMSD", f"{rec['rmsd_p90']:.3f} σ")
    cols[2].metric("Valid reconstructions", f"{rec['valid_fraction']:.0%}",
                   help="Reconstructions with no pair of particles closer than 0.8 σ.")
    by_state = rec.get("by_state") or []
    if len(by_state) > 1:
        table, config = reconstruction_by_state_table(by_state)
        st.dataframe(table, hide_index=True, column_config=config)


def quench_figures(gen: dict) -> None:
    """The training-time generation figures: pooled over state points, after a quench (free
    clusters have no quench: their samples are judged raw)."""
    if "valid_fraction_relaxed" not in gen:
        return
    with st.expander("Generation figures from training (zero-temperature quench)"):
        st.caption("Samples pooled over every state point, before and after a short "
                   "zero-temperature quench (Metropolis moves that only go downhill). The "
                   "per-state-point judgement above is the stricter test.")
        cols = st.columns(3)
        cols[0].metric("Valid generated", f"{gen['valid_fraction']:.0%}",
                       help="Generated configurations with no pair closer than 0.8 σ, "
                            "before any relaxation.")
        cols[1].metric("Valid after quench", f"{gen['valid_fraction_relaxed']:.0%}")
        fair = gen.get("energy_w1_relaxed_vs_quenched_mc")
        cols[2].metric("Energy W1 after quench", "—" if fair is None else f"{fair:.3f} ε",
                       help="Wasserstein distance between the LJ energy per particle of "
                            "quenched generated samples and of Monte Carlo configurations put "
                            "through the same quench (0: identical). Against unquenched Monte "
                            f"Carlo it is {gen['energy_w1_relaxed']:.2f} ε, since a quench "
                            "lowers every energy.")


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

chosen, ds = pick_compatible_dataset(summary, "Data to compare with",
                                     "reconstruct_dataset")
held_out = held_out_indices(trained, ds)

metrics = summary.get("metrics") or {}
if metrics:
    reconstruction_figures(metrics)

st.subheader("Reconstruction of a held-out configuration")
pick = st.number_input(f"Held-out configuration (0–{len(held_out) - 1})", 0,
                       len(held_out) - 1, 0, key="heldout_index")
k = int(held_out[pick])
original = ds.coords[k]
decoded = trained.reconstruct(original[None], ds.gamma[k:k + 1], ds.temperature[k:k + 1])[0]
matched = match_and_align(decoded, original)
# Alignment may leave the box slightly; the view only needs the shape.
shown = matched if ds.box is None else np.clip(matched, 0.0, ds.box)
displacement = np.linalg.norm(matched - original, axis=1)
energy = energies_per_particle(np.stack([original, decoded]), ds.system, ds.gamma[k])
cols = st.columns(4)
cols[0].metric("RMSD", f"{np.sqrt(np.mean(displacement**2)):.3f} σ",
               help="Root-mean-square displacement of the particles, after matching them to "
                    "the original's and aligning the two configurations.")
cols[1].metric("Largest displacement", f"{displacement.max():.3f} σ")
cols[2].metric("U/N original", energy_text(energy[0]))
cols[3].metric("U/N reconstructed", energy_text(energy[1]))
left, right = st.columns(2)
with left:
    st.markdown(f"**Original** ({state_text(ds.gamma[k], ds.temperature[k], ds.system.free)}"
                "), by height")
    st.iframe(configuration_html(original, ds.box, height=360), height=380)
with right:
    st.markdown("**Reconstruction**, matched and aligned, by displacement (blue 0 → red max)")
    st.iframe(configuration_html(shown, ds.box, height=360, values=displacement,
                                 value_range=(0.0, max(displacement.max(), 1e-9))), height=380)
d_orig, d_rec = pairwise_distances(original), pairwise_distances(matched)
vmax = float(max(d_orig.max(), d_rec.max()))
for column, matrix, title in zip(st.columns(3), (d_orig, d_rec, np.abs(d_rec - d_orig)),
                                ("Distances: original", "reconstruction", "|difference|"),
                                strict=True):
    column.altair_chart(distance_heatmap(matrix, title, vmax), width="stretch")

st.subheader("Generate")
cols = st.columns(4)
n = cols[0].number_input("Samples", 10, 2000, 300, key="n_generate")
gammas = sorted(set(ds.gamma[held_out].tolist()))
temperature = float(ds.temperature[held_out][0])
by_state = trained.conditional_prior
if trained.settings.conditional:
    low, high = by_state.gamma_range if by_state is not None else (min(gammas), max(gammas))
    gamma = cols[1].number_input(
        "at γ", -10.0, 10.0, float(gammas[0]), key="generate_gamma",
        help=f"Trained on γ from {low:g} to {high:g}. Between trained values the model "
             "interpolates; past them it extrapolates a little way, and says so when a γ "
             "is too far.")
elif ds.system.free:
    gamma = float(gammas[0])  # a free cluster: one state point, and no field to choose
    cols[1].text_input("State point", f"T = {temperature:g}, no field", disabled=True,
                       key="generate_state",
                       help="A free cluster has one state point: its samples are judged "
                            "against the held-out clusters, and relaxed at their temperature.")
else:
    compared = cols[1].selectbox(
        "Compare at γ", [EVERY_GAMMA, *gammas], key="generate_gamma_relax",
        format_func=lambda g: g if g == EVERY_GAMMA else f"{g:g}",
        disabled=not can_relax(ds.system),
        help="Unconditional model: its samples span the training γ values, and are compared "
             "with Monte Carlo of all of them; pick one γ to relax them there by thermal "
             "sweeps and compare with Monte Carlo of that γ.")
    gamma = None if compared == EVERY_GAMMA else compared
sweeps = cols[2].number_input(
    "Thermal sweeps", 0, 200, 0, key="generate_sweeps",
    disabled=not can_relax(ds.system) or gamma is None,  # None: every trained γ at once
    help=SWEEPS_HELP[relaxing_kernel(ds.system)])
seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="generate_seed")
priors = trained.available_priors()
prior = priors[0]
if len(priors) > 1:
    # A conditional model's plain mixture is its pooled one before the physics refinement.
    names = dict(PRIOR_NAMES, unrefined="the same mixture, as fitted") if (
        "pooled" in priors) else PRIOR_NAMES
    prior = st.radio("Sample the latent from", priors, horizontal=True, key="generate_prior",
                     format_func=names.get,
                     help="The fitted prior is a Gaussian mixture or a kernel density over "
                          "the latent means of the training configurations (for a conditional "
                          "model, one per trained state point, carried between them, whose "
                          "decoded samples get that state point's thermal jitter and height "
                          "profile back, beside one mixture pooled over every state point); "
                          "the plain mixture (for "
                          "a conditional model, the same pooled mixture) is the mixture as "
                          "fitted, before the physics refinement, at its full spread. A "
                          "latent that holds much information fills only part of N(0, I), and "
                          "samples elsewhere decode to configurations unlike the training "
                          "data.")
try:
    if by_state is not None and by_state.extrapolates(float(gamma), temperature):
        st.caption(f"γ = {gamma:g} lies past the trained range: the samples are "
                   "extrapolated, less faithfully the further out.")
except ValueError:
    pass  # too far: the Generate button says so in one sentence
if st.button("Generate", type="primary", key="generate"):
    try:
        with st.spinner("Decoding, relaxing, and comparing with Monte Carlo…"):
            st.session_state[GENERATED] = generated_and_judged(
                int(n), None if gamma is None else float(gamma), temperature,
                0 if gamma is None else int(sweeps), int(seed), prior)
    except ValueError as err:
        st.error(f"Could not generate: {err}.")
        # The samples below would otherwise read as the answer to the refused request.
        st.session_state.pop(GENERATED, None)

result = st.session_state.get(GENERATED)
if result and result["model"] == summary["name"] and result["dataset"] == chosen["name"]:
    show_generated(result)

st.subheader("Judged per state point")
st.caption(JUDGED_CAPTION[relaxing_kernel(ds.system)])
judge_form()
judge_panel()
if metrics:
    quench_figures(metrics["generation"])
