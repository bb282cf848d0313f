"""Streamlit runtime settings that keep Keras usable in a long-lived app.

After every script run (a fragment refreshing a progress bar is one, every second) Streamlit
calls ``keras.backend.clear_session()``, which empties TensorFlow's kernel cache and forces a
full garbage collection: a training run in a background thread runs five times slower and
the quick demo takes 80 s instead of 23 s. ljvae caches its models (``st.cache_resource``) and never
relies on that reset, so the app turns it off; matplotlib, the other module Streamlit cleans,
is not used.
"""

from __future__ import annotations

from streamlit.runtime.scriptrunner import script_runner


def _keep_module_state() -> None:
    """Replacement for Streamlit's per-run cleanup: keep Keras' session."""


def keep_keras_session() -> bool:
    """Stop Streamlit from clearing the Keras session after every run. Returns whether the
    hook was found (a test fails loudly if a Streamlit upgrade moves it)."""
    if not hasattr(script_runner, "_clean_problem_modules"):
        return False
    script_runner._clean_problem_modules = _keep_module_state
    return True
