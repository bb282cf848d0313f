"""Hosted-demo mode in the app: a private cache folder per visitor and server-side limits
(see :mod:`ljvae_core.hosted`). app.py calls :func:`apply_hosting` at the top of every run."""

from __future__ import annotations

import secrets
import threading

import streamlit as st

from ljvae_core.artifacts import base_cache_dir
from ljvae_core.demo import warm_up
from ljvae_core.hosted import HOSTED, SESSION_TOKEN, Limits, demo_mode, session_root, use_cache_root

SESSION_PARAM = "session"
# Where apply_hosting leaves this run's limits for the pages (None when not hosted).
LIMITS_KEY = "hosted_limits"
# The visitor's token, kept in Streamlit's per-tab state beside the one in the URL.
TOKEN_KEY = "hosted_visitor_token"


def _secrets_flag() -> bool:
    try:
        return bool(st.secrets.get("demo", False))
    except Exception:  # noqa: BLE001 - no secrets file is the usual case
        return False


def apply_hosting() -> Limits | None:
    """Set this run's cache folder and keep the hosted limits for :func:`hosted_limits`;
    return them, or None when not hosted."""
    st.session_state[LIMITS_KEY] = limits = _hosting()
    return limits


def _hosting() -> Limits | None:
    if not demo_mode(_secrets_flag()):
        use_cache_root(None)
        return None
    token = st.query_params.get(SESSION_PARAM, "")
    if not SESSION_TOKEN.match(token):
        # Streamlit drops the query when the visitor switches pages: the visitor's token,
        # kept beside it, finds the folder again.
        token = st.session_state.get(TOKEN_KEY, "")
    if not SESSION_TOKEN.match(token):
        # A new visitor (or a crafted token): a fresh private folder, kept in the URL so
        # that a reload finds it again.
        token = secrets.token_urlsafe(18)
    if st.query_params.get(SESSION_PARAM) != token:
        st.query_params[SESSION_PARAM] = token
    st.session_state[TOKEN_KEY] = token
    use_cache_root(session_root(base_cache_dir(), token))
    _warm_server()
    return HOSTED


@st.cache_resource
def _warm_server() -> threading.Thread:
    """Once per server: :func:`ljvae_core.demo.warm_up` in the background."""
    thread = threading.Thread(target=warm_up, daemon=True, name="ljvae-warm-up")
    thread.start()
    return thread


def hosted_limits() -> Limits | None:
    """The hosted demo's limits for this visitor (None when not hosted)."""
    return st.session_state.get(LIMITS_KEY)
