"""Tables of how far generated ensembles are from Monte Carlo
(:mod:`ljvae_core.statepoints` figures), with human headers and their explanations."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ljvae_core.statepoints import state_text

# Figure key: (header, format, what it measures).
FIGURE_COLUMNS = {
    "auc": ("classifier AUC", "%.2f",
            "Cross-validated ROC AUC of gradient-boosted trees telling this set from the Monte "
            "Carlo one, on sorted heights, nearest-neighbour distances and pair energies: 0.5 "
            "means indistinguishable, 1 that every configuration gives its origin away."),
    "energy_w1": ("U/N W1 (ε)", "%.3f",
                  "Wasserstein distance between the distributions of the total energy per "
                  "particle (LJ pairs and gravity at this γ)."),
    "height_w1": ("height W1 (σ)", "%.3f",
                  "Wasserstein distance between the distributions of particle heights."),
    "nearest_neighbour_w1": ("neighbour W1 (σ)", "%.4f",
                             "Wasserstein distance between the distributions of each "
                             "particle's nearest-neighbour distance."),
    "rdf_l1": ("g(r) L1", "%.3f", "Integrated absolute difference of the two g(r) curves."),
    "valid_fraction": ("valid", "percent",
                       "Share of configurations with no pair of particles closer than 0.8 σ."),
}


# A free cluster has no up: its "heights" are the particles' distances from the centre of
# mass, and its energy has no field.
CLUSTER_COLUMNS = FIGURE_COLUMNS | {
    "energy_w1": ("U/N W1 (ε)", "%.3f",
                  "Wasserstein distance between the distributions of the total energy per "
                  "particle (pairs and tether)."),
    "height_w1": ("distance-from-centre W1 (σ)", "%.3f",
                  "Wasserstein distance between the distributions of the particles' distances "
                  "from the centre of mass."),
    "rdf_l1": ("pair-distance L1", "%.3f",
               "Integrated absolute difference of the two pair-distance densities."),
}


def figures_table(rows: dict[str, dict], free: bool = False):
    """{set label: figures} as a table (a row per set) and its column configuration (a free
    cluster's columns named for what its figures measure)."""
    columns = CLUSTER_COLUMNS if free else FIGURE_COLUMNS
    table = pd.DataFrame([{"set": label, **{columns[k][0]: v for k, v in figs.items()
                                            if k in columns}}
                          for label, figs in rows.items()])
    # Pinned: in a narrow window the figures scroll sideways and the row names stay in view.
    config = {"set": st.column_config.Column("set", help="What is compared with the Monte "
                                             "Carlo configurations of this state point.",
                                             pinned=True)}
    config |= {header: st.column_config.NumberColumn(header, help=text, format=fmt)
               for header, fmt, text in columns.values()}
    return table, config


def reconstruction_by_state_table(rows: list[dict]):
    """An evaluation's reconstruction figures per state point as a table and its column
    configuration."""
    table = pd.DataFrame([{"γ": r["gamma"], "T": r["temperature"],
                           "configurations": r["samples"], "median RMSD (σ)": r["rmsd_median"],
                           "90th percentile (σ)": r["rmsd_p90"]} for r in rows])
    config = {"configurations": st.column_config.NumberColumn(
        "configurations", help="Held-out configurations of this state point.")}
    config |= {c: st.column_config.NumberColumn(c, format="%.3f")
               for c in ("median RMSD (σ)", "90th percentile (σ)")}
    return table, config


def floor_label(fresh: bool) -> str:
    """The floor row's name: an independent Monte Carlo run, or, for imported data, which no
    run here can extend, the other half of its held-out configurations."""
    return ("Monte Carlo, independent run (floor)" if fresh
            else "the other half of the held-out data (floor)")


def state_point_rows(point: dict) -> dict[str, dict]:
    """The rows of one judged state point: the Monte Carlo floor, then generated and
    reconstructed sets after each number of sweeps."""
    rows = {floor_label(point["cost"] is not None): point["floor"]}
    for kind, label in (("generated", "generated"), ("reconstructed", "reconstructed")):
        for sweeps, figs in point[kind].items():
            rows[f"{label}, raw" if sweeps == "0" else f"{label} + {sweeps} sweeps"] = figs
    return rows


def state_point_title(point: dict, free: bool = False) -> str:
    """The tab title of a judged state point (a free cluster has no field: T alone)."""
    return (state_text(point["gamma"], point["temperature"], free)
            + ("" if point["trained"] else " (unseen)"))


def steering_caption(point: dict) -> str:
    """Where a conditional model's samples of this state point were drawn and decoded, when
    that is not the state point itself (empty otherwise)."""
    at = point.get("generated_at")
    if at is None or (at["gamma"], at["temperature"]) == (point["gamma"], point["temperature"]):
        return ""
    return (f"Generated at γ = {at['gamma']:.3g}, T = {at['temperature']:.3g}, where the "
            "model's mean height is the one the trained state points predict here.")


def disorder_caption(prior, gamma: float, temperature: float, free: bool = False,
                     hard_core: float | None = None, disorder: tuple | None = None) -> str:
    """What a conditional model's generation at (gamma, T) puts back into its decoded mean
    shapes (:mod:`ljvae_core.disorder`): latents drawn at a fraction of the trained spread,
    contacts pushed out past the hard core's distance ``hard_core`` (sigma), the noise on
    every coordinate and where the heights' distribution comes from; empty where it puts
    back none of them (older models, free clusters). ``disorder``: the (spread factor,
    noise width) chosen there (:meth:`ljvae_core.trained.TrainedModel.disorder_at`); None:
    the trained spread and the width the prior interpolates."""
    if prior is None:
        return ""
    spread, width = disorder or (1.0, prior.noise_width(gamma, temperature))
    parts = []
    contact = prior.contact_distance(gamma, temperature)
    if contact is not None and hard_core is not None and contact > hard_core + 1e-9:
        parts.append(f"contacts pushed out to {contact:.3g}σ")
    if width > 0:
        parts.append(f"{width:.2g}σ of noise on every coordinate")
    target = prior.height_target(gamma, temperature)
    if target is not None:
        source = _height_source(prior, gamma, temperature, target, free)
        parts.append(f"heights mapped onto {source}")
    if not parts:
        return ""
    start = ("Decoded" if spread == 1.0
             else f"Decoded from latents drawn at {spread:.2g} of the trained spread")
    return f"{start}, the samples got " + ", ".join(parts[:-1]) + (
        " and " if len(parts) > 1 else "") + parts[-1] + "."


def _height_source(prior, gamma, temperature, target, free) -> str:
    """Whose heights generation maps onto at (gamma, T), in words."""
    a, b, t = prior.path(gamma, temperature)
    if a == b or t == 0.0:
        return "this state point's training heights"
    if target[0] == (float(gamma), float(temperature)):
        ends = " and ".join(state_text(*prior.conditions[k], free) for k in (a, b))
        return f"the training heights of {ends}, Boltzmann-reweighted to here"
    return f"the training heights of {state_text(*target[0], free)}, the nearest"


def cost_caption(point: dict) -> str:
    """Generated-and-relaxed samples per second against Monte Carlo's decorrelated ones
    (empty for imported data, which no Monte Carlo run here prices)."""
    cost = point["cost"]
    if cost is None:
        return ""
    rates = ", ".join(f"{rate:,.0f}/s raw" if k == "0" else f"{rate:,.0f}/s with {k} sweeps"
                      for k, rate in cost["generated_per_second"].items())
    setup = cost.get("setup_seconds", 0.0)
    if setup >= 0.05:
        rates += f" (after {setup:.1f} s choosing how to generate here, once per state point)"
    return (f"Cost: the model makes {rates}; Monte Carlo makes "
            f"{cost['monte_carlo_decorrelated_per_second']:,.0f} decorrelated configurations "
            f"per second (one per τ = {cost['monte_carlo_tau_sweeps']:.0f} sweeps, at "
            f"{cost['monte_carlo_sweeps_per_second']:,.0f} sweeps/s).")
