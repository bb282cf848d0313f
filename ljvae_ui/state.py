"""Dataset choice shared across pages, and cached loading."""

from __future__ import annotations

import streamlit as st

from ljvae_core.artifacts import list_datasets, load_dataset

SELECTED_DATASET = "dataset"


@st.cache_resource(max_entries=4, show_spinner="Loading dataset…")
def cached_dataset(path: str, modified: float):
    """The dataset at path; `modified` makes a rewritten file load afresh."""
    return load_dataset(path)


def dataset_label(summary: dict) -> str:
    gammas = ", ".join(f"{g:g}" for g in summary["gammas"])
    return (f"{summary['name']} — N={summary['particles']}, {summary['dim']}D, "
            f"L={summary['box']:g}, γ∈{{{gammas}}}, {summary['samples']} samples")


def pick_dataset(key: str = "dataset_picker"):
    """Selectbox over stored datasets (the last one made or chosen first); returns its summary."""
    datasets = list_datasets()
    if not datasets:
        return None
    names = [d["name"] for d in datasets]
    chosen = st.session_state.get(SELECTED_DATASET)
    index = names.index(chosen) if chosen in names else 0
    name = st.selectbox("Dataset", names, index=index, key=key,
                        format_func=lambda n: dataset_label(datasets[names.index(n)]))
    st.session_state[SELECTED_DATASET] = name
    return datasets[names.index(name)]
