"""Limits for a public, hosted demo (``LJVAE_DEMO=1``, or ``demo = true`` in Streamlit's
secrets, which the app passes in).

The checks here are what the server enforces whatever the widgets allow: a simulation,
a training run or an upload over the limits is refused with one clear sentence. Each visitor
(a session token in the page's URL) also gets their own cache folder (:func:`session_root`),
so that no visitor can see or delete another's artifacts; :func:`use_cache_root` makes it
the default for the code running in the current context (a script run, and the background
jobs it starts).
"""

from __future__ import annotations

import contextvars
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_CACHE_ROOT: contextvars.ContextVar[str | None] = contextvars.ContextVar("ljvae_cache_root",
                                                                         default=None)
SESSION_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class LimitError(ValueError):
    """Work that the hosted demo does not allow (one clear sentence)."""


def default_job_slots() -> int:
    """$LJVAE_JOB_SLOTS, else the cores this process may use: more jobs than cores at once
    only makes every visitor wait longer."""
    value = os.environ.get("LJVAE_JOB_SLOTS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"LJVAE_JOB_SLOTS must be a whole number of at least 1, not "
                             f"{value!r}")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Limits:
    max_particles: int = 100
    max_samples: int = 20_000  # in all conditions and chains together
    max_conditions: int = 6
    max_chains: int = 8
    max_epochs: int = 120  # at least a conditional model's automatic epochs (tested)
    max_training_samples: int = 20_000
    max_upload_bytes: int = 2 * 2**20
    # Heavy jobs of all visitors together that run at once; the others queue.
    job_slots: int = field(default_factory=default_job_slots)


HOSTED = Limits()


def demo_mode(secrets_flag: bool = False) -> bool:
    """True when the hosted limits are on: $LJVAE_DEMO is 1/true/yes, or the app's secrets
    say so (``secrets_flag``)."""
    return secrets_flag or os.environ.get("LJVAE_DEMO", "").strip().lower() in ("1", "true",
                                                                                "yes", "on")


def check_simulation(params, limits: Limits = HOSTED) -> None:
    n_conditions = len(params.conditions)
    total = params.n_samples * n_conditions
    problems = [
        (params.n_particles > limits.max_particles,
         f"at most {limits.max_particles} particles (asked {params.n_particles})"),
        (n_conditions > limits.max_conditions,
         f"at most {limits.max_conditions} (T, γ) conditions (asked {n_conditions})"),
        (params.n_chains > limits.max_chains,
         f"at most {limits.max_chains} chains per condition (asked {params.n_chains})"),
        (total > limits.max_samples,
         f"at most {limits.max_samples} samples in all (asked {total})"),
    ]
    _raise_first(problems)


def check_training(settings, n_samples: int, limits: Limits = HOSTED) -> None:
    problems = [
        (settings.planned_epochs > limits.max_epochs,
         f"at most {limits.max_epochs} epochs (asked {settings.planned_epochs})"),
        (n_samples > limits.max_training_samples,
         f"datasets of at most {limits.max_training_samples} samples (this one has "
         f"{n_samples})"),
    ]
    _raise_first(problems)


def check_import(n_bytes: int, dataset=None, limits: Limits = HOSTED) -> None:
    """Uploaded trajectories: their size before they are read (``dataset`` None), then the
    dataset they make."""
    problems = [(n_bytes > limits.max_upload_bytes,
                 f"uploads of at most {limits.max_upload_bytes / 2**20:g} MB in all (these are "
                 f"{n_bytes / 2**20:.1f} MB)")]
    if dataset is not None:
        problems += [
            (dataset.n_particles > limits.max_particles,
             f"at most {limits.max_particles} particles (these hold {dataset.n_particles})"),
            (len(dataset) > limits.max_samples,
             f"at most {limits.max_samples} configurations (these hold {len(dataset)})"),
        ]
    _raise_first(problems)


def _raise_first(problems) -> None:
    for failed, message in problems:
        if failed:
            raise LimitError(f"the hosted demo allows {message}")


def session_root(base: str | os.PathLike, token: str) -> Path:
    """The cache folder of one session: base/sessions/<token>. The token is checked, so that
    a crafted one cannot point outside base."""
    if not SESSION_TOKEN.match(token or ""):
        raise LimitError("invalid session token")
    return Path(base) / "sessions" / token


def use_cache_root(root: str | os.PathLike | None) -> None:
    """Make ``root`` the default cache folder in the current context (see the module doc)."""
    _CACHE_ROOT.set(None if root is None else str(root))


def current_cache_root() -> str | None:
    return _CACHE_ROOT.get()
