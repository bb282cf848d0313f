"""Latent & Anomaly: not built yet (see the issue tracker)."""

import streamlit as st

st.title("Latent & Anomaly")
st.info(
    "Coming next: maps of the latent space, γ clustering, energy maps and anomaly scores of "
    "uploaded configurations. This page fills in when its issue lands; simulate and inspect "
    "datasets meanwhile."
)
