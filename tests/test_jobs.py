"""Background jobs and the server-wide queue they pass through on a hosted server."""

import threading
import time

import pytest

from ljvae_core.hosted import Limits, default_job_slots
from ljvae_core.jobs import BackgroundJob, JobQueue


class Gate:
    """A job target that records when it ran and blocks until released."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.order, self.active, self.most = [], 0, 0

    def __call__(self, name, progress=None, cancel=None):
        with self.lock:
            self.order.append(name)
            self.active += 1
            self.most = max(self.most, self.active)
        self.release.wait(20)
        with self.lock:
            self.active -= 1
        return name


def _until(condition, seconds=10.0):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def _submit(queue, gate, names, **kwargs):
    jobs = []
    for name in names:
        jobs.append(BackgroundJob(gate, name, label="work", queue=queue, **kwargs))
        # Arrival order is the order the threads enter the queue.
        _until(lambda: not jobs[-1].queued or jobs[-1].place is not None)
    return jobs


def test_a_queue_runs_at_most_its_slots_first_come_first_served():
    queue, gate = JobQueue(2), Gate()
    jobs = _submit(queue, gate, "abcde")
    assert [j.status for j in jobs] == ["running"] * 2 + ["queued"] * 3
    assert [j.place for j in jobs] == [None, None, 1, 2, 3]
    assert all(j.elapsed == 0.0 for j in jobs[2:])
    gate.release.set()
    for job in jobs:
        assert job.wait(20) and job.status == "done"
    assert gate.most == 2
    assert gate.order[:2] in (["a", "b"], ["b", "a"]) and gate.order[2:] == ["c", "d", "e"]
    assert queue.counts == (0, 0)


def test_a_cancelled_or_abandoned_job_leaves_the_queue_without_running():
    queue, gate = JobQueue(1), Gate()
    present = threading.Event()
    present.set()
    first, second = _submit(queue, gate, "ab")
    [third] = _submit(queue, gate, "c", alive=present.is_set)
    [fourth] = _submit(queue, gate, "d")
    second.cancel()
    _until(lambda: not second.active)
    assert second.status == "cancelled" and third.place == 1 and fourth.place == 2
    present.clear()  # the third visitor closed the page
    _until(lambda: not third.active)
    assert third.status == "cancelled" and fourth.place == 1
    gate.release.set()
    assert fourth.wait(20) and fourth.status == "done"
    assert gate.order == ["a", "d"]


def test_waits_are_estimated_from_finished_jobs_of_the_same_label():
    queue, gate = JobQueue(1), Gate()
    gate.release.set()
    [done] = _submit(queue, gate, "a")
    assert done.wait(20)
    took = done.finished - done.started
    assert queue.typical_seconds("work") == pytest.approx(took)

    gate.release.clear()
    running, next_up, after = _submit(queue, gate, "bcd")
    assert running.expected_wait is None  # not queued
    wait_next, wait_after = next_up.expected_wait, after.expected_wait
    # The running job's remaining time, then one typical job more for the one behind.
    assert 0.0 <= wait_next <= took
    assert wait_after == pytest.approx(wait_next + took, abs=0.05)
    gate.release.set()
    for job in (running, next_up, after):
        assert job.wait(20)


def test_a_queue_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        JobQueue(0)


def test_job_slots_come_from_the_environment_or_the_cores(monkeypatch):
    monkeypatch.setenv("LJVAE_JOB_SLOTS", "3")
    assert Limits().job_slots == 3
    monkeypatch.setenv("LJVAE_JOB_SLOTS", "none")
    with pytest.raises(ValueError, match="LJVAE_JOB_SLOTS must be a whole number"):
        default_job_slots()
    monkeypatch.delenv("LJVAE_JOB_SLOTS")
    assert default_job_slots() >= 1


def test_a_running_job_without_history_is_extrapolated_from_its_progress():
    queue, gate = JobQueue(1), Gate()
    running, waiting, behind = _submit(queue, gate, "abc")
    assert waiting.expected_wait is None  # nothing known yet
    running.report(0.25)
    # Three times what it has run so far, and nothing known of the job ahead of the last.
    assert waiting.expected_wait == pytest.approx(3 * (time.time() - running.started), abs=0.1)
    assert behind.expected_wait is None
    gate.release.set()
    for job in (running, waiting, behind):
        assert job.wait(20)
