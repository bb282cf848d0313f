"""Reconstruct: not built yet (see the issue tracker)."""

import streamlit as st

st.title("Reconstruct")
st.info(
    "Coming next: coordinates reconstructed from decoded distance matrices, and how physical "
    "generated samples are. This page fills in when its issue lands; simulate and inspect "
    "datasets meanwhile."
)
