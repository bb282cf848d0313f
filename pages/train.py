"""Train: not built yet (see the issue tracker)."""

import streamlit as st

st.title("Train")
st.info(
    "Coming next: training variational autoencoders on three representations (sorted "
    "coordinates, voxel grids, distance matrices) with live loss curves. This page fills in "
    "when its issue lands; simulate and inspect datasets meanwhile."
)
