"""Long work in a background thread, with progress and cancellation, for interactive front ends.

The worker never touches the user interface: it reports through :meth:`BackgroundJob.report`,
and the interface polls :attr:`fraction`, :attr:`message` and :attr:`status`. A job whose page
is left keeps running, so nothing is lost when the user clicks elsewhere.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback


class BackgroundJob:
    """Run ``target(*args, progress=..., cancel=..., **kwargs)`` in a daemon thread.

    ``status`` goes from "running" to "done", "failed" or "cancelled"; ``result`` holds the
    return value and ``error`` a one-line description of a failure.
    """

    def __init__(self, target, *args, label: str = "", **kwargs):
        self.label = label
        self.fraction = 0.0
        self.message = "starting"
        self.status = "running"
        self.result = None
        self.error: str | None = None
        self.details: str | None = None
        self.started = time.time()
        self.finished: float | None = None
        self.cancel_event = threading.Event()
        # The worker sees the starter's context (e.g. a hosted visitor's own cache folder).
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._work, target, args, kwargs), daemon=True,
            name=f"ljvae-{label}",
        )
        self._thread.start()

    def report(self, fraction: float, message: str = "") -> None:
        self.fraction = max(self.fraction, min(1.0, float(fraction)))
        if message:
            self.message = message

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (True) or the timeout passes (False)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self, target, args, kwargs):
        from .sampling import Cancelled

        try:
            self.result = target(*args, progress=self.report, cancel=self.cancel_event, **kwargs)
            self.status = "done"
            self.fraction = 1.0
        except Cancelled:
            self.status = "cancelled"
        except Exception as err:  # noqa: BLE001 - shown to the user as one sentence
            self.error = str(err) or type(err).__name__
            self.details = traceback.format_exc()
            self.status = "failed"
        finally:
            self.finished = time.time()
