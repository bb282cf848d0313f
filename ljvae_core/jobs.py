"""Long work in a background thread, with progress and cancellation, for interactive front ends.

The worker never touches the user interface: it reports through :meth:`BackgroundJob.report`,
and the interface polls :attr:`fraction`, :attr:`message` and :attr:`status`. A job whose page
is left keeps running, so nothing is lost when the user clicks elsewhere.

A server shared by many visitors passes every heavy job through one :class:`JobQueue`: at
most ``slots`` run at once, the others wait their turn in arrival order, each told its place
and an estimate of the wait.
"""

from __future__ import annotations

import contextvars
import heapq
import statistics
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable

# How often a queued job checks whether it may start, was cancelled or was abandoned (s).
POLL_SECONDS = 0.5


class BackgroundJob:
    """Run ``target(*args, progress=..., cancel=..., **kwargs)`` in a daemon thread.

    ``status`` goes from "running" to "done", "failed" or "cancelled"; ``result`` holds the
    return value and ``error`` a one-line description of a failure. With a ``queue``
    (:class:`JobQueue`) the job is "queued" first and runs when the queue admits it; it
    leaves the queue, "cancelled", when cancelled or when ``alive()`` turns false (its
    visitor closed the page).
    """

    def __init__(self, target, *args, label: str = "", queue: JobQueue | None = None,
                 alive: Callable[[], bool] | None = None, **kwargs):
        self.label = label
        self.fraction = 0.0
        self.message = "starting"
        self.status = "queued" if queue is not None else "running"
        self.result = None
        self.error: str | None = None
        self.details: str | None = None
        self.queue = queue
        self.alive = alive
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
    def active(self) -> bool:
        """Whether the job has not ended yet (queued or running)."""
        return self.status in ("queued", "running")

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def elapsed(self) -> float:
        """Seconds it has run (0 while queued)."""
        if self.queued:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def place(self) -> int | None:
        """Its place in the queue (1: next to start), None unless queued."""
        return self.queue.place(self) if self.queued else None

    @property
    def expected_wait(self) -> float | None:
        """Seconds until it should start (None unless queued, or while nothing is known of
        how long such jobs take)."""
        return self.queue.expected_wait(self) if self.queued else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (True) or the timeout passes (False)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self, target, args, kwargs):
        from .sampling import Cancelled

        if self.queue is not None and not self.queue.wait_turn(self):
            self.status = "cancelled"
            self.finished = time.time()
            return
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
            if self.queue is not None:
                self.queue.release(self)


class JobQueue:
    """At most ``slots`` jobs run at once; the others wait, first come first served.

    Jobs enter from their own threads (:meth:`wait_turn`), so a queue holds no thread of its
    own. Waits are estimated from how long the last finished jobs of the same label took."""

    def __init__(self, slots: int, history: int = 20):
        if slots < 1:
            raise ValueError("a job queue needs at least one slot")
        self.slots = int(slots)
        self._lock = threading.Condition()
        self._waiting: list[BackgroundJob] = []
        self._running: list[BackgroundJob] = []
        self._took: dict[str, deque] = {}
        self._history = int(history)

    def wait_turn(self, job: BackgroundJob) -> bool:
        """Block until ``job`` may run (True: it now holds a slot) or it is cancelled or
        abandoned while waiting (False: it has left the queue)."""
        with self._lock:
            self._waiting.append(job)
            while True:
                if job.cancel_event.is_set() or (job.alive is not None and not job.alive()):
                    self._waiting.remove(job)
                    self._lock.notify_all()
                    return False
                if self._waiting[0] is job and len(self._running) < self.slots:
                    self._waiting.pop(0)
                    self._running.append(job)
                    job.status, job.started = "running", time.time()
                    self._lock.notify_all()
                    return True
                self._lock.wait(POLL_SECONDS)

    def release(self, job: BackgroundJob) -> None:
        """``job`` ended: free its slot and remember how long it took."""
        with self._lock:
            if job in self._running:
                self._running.remove(job)
                if job.status == "done":
                    self._took.setdefault(job.label, deque(maxlen=self._history)).append(
                        job.finished - job.started)
            self._lock.notify_all()

    def place(self, job: BackgroundJob) -> int | None:
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else None

    @property
    def counts(self) -> tuple[int, int]:
        """(running, waiting) jobs."""
        with self._lock:
            return len(self._running), len(self._waiting)

    def typical_seconds(self, label: str) -> float | None:
        """The median duration of the last finished jobs of ``label``, None before any has."""
        with self._lock:
            took = self._took.get(label)
            return statistics.median(took) if took else None

    def expected_wait(self, job: BackgroundJob) -> float | None:
        """Seconds until ``job`` should start: the running jobs' remaining times, then the
        typical time of each job ahead of it, filled into the slots as they free; None while
        one of them has no estimate."""
        with self._lock:
            running, waiting = list(self._running), list(self._waiting)
        if job not in waiting:
            return None
        ahead = waiting[: waiting.index(job)]
        free = [self._remaining(j) for j in running]
        typical = [self.typical_seconds(j.label) for j in ahead]
        if any(t is None for t in free + typical):
            return None
        free += [0.0] * (self.slots - len(free))
        heapq.heapify(free)
        for seconds in typical:
            heapq.heappush(free, heapq.heappop(free) + seconds)
        return free[0]

    def _remaining(self, job: BackgroundJob) -> float | None:
        """A running job's seconds left: its label's typical time less its time so far, or,
        before any such job has finished, its time so far carried on at its progress rate."""
        elapsed = time.time() - job.started
        typical = self.typical_seconds(job.label)
        if typical is not None:
            return max(typical - elapsed, 0.0)
        if job.fraction >= 0.02:
            return elapsed * (1.0 - job.fraction) / job.fraction
        return None
