"""A crowd on one hosted server: V visitors (headless Chromium contexts on loopback) open the
app in demo mode and press the quick demo within a second of each other. Prints, as JSON,
how many demos finished and with how many exceptions, each visitor's finish time, the median
finish over the slowest (a fair queue gives about 0.5), how many visitors were told they were
queued, the health endpoint's latency while the crowd waits (p50, p95, max) and the server's
peak memory (resident, the server and its children).

    python -m experiments.crowd_check [--visitors 8] [--slots N] [--timeout 900]

--slots sets LJVAE_JOB_SLOTS for the server (default: the server's own, the number of cores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
from playwright import sync_api

from experiments.serving import CHROMIUM, CHROMIUM_ARGS, IDLE, streamlit_server

DONE = "fresh Monte Carlo configurations"
QUEUED = "in line"


class Sampler(threading.Thread):
    """Polls the health endpoint and the server's memory until stopped."""

    def __init__(self, url: str, port: int):
        super().__init__(daemon=True)
        self.url, self.port = f"{url}/_stcore/health", port
        self.latencies, self.peak_bytes = [], 0
        self.stop = threading.Event()

    def _server(self) -> psutil.Process | None:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == self.port and conn.status == "LISTEN":
                return psutil.Process(conn.pid)
        return None

    def run(self) -> None:
        server = self._server()
        while not self.stop.wait(0.25):
            started = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=30) as reply:
                reply.read()
            self.latencies.append(time.perf_counter() - started)
            if server is not None:
                family = [server, *server.children(recursive=True)]
                self.peak_bytes = max(self.peak_bytes, sum(p.memory_info().rss for p in family))


def _visit(browser, url: str):
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Run the quick demo").wait_for()
    return page


def crowd(url: str, visitors: int, timeout: float) -> dict:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = [_visit(browser, url) for _ in range(visitors)]
        started = time.perf_counter()
        for page in pages:
            page.get_by_role("button", name="Run the quick demo").click()
        finished = [None] * visitors
        told, errors = [False] * visitors, [0] * visitors
        while None in finished and time.perf_counter() - started < timeout:
            for k, page in enumerate(pages):
                if finished[k] is not None:
                    continue
                told[k] = told[k] or page.get_by_text(QUEUED).count() > 0
                errors[k] = page.locator("[data-testid='stException']").count()
                if page.get_by_text(DONE).count() > 0 or errors[k]:
                    finished[k] = time.perf_counter() - started
            time.sleep(0.2)
        browser.close()
    done = [t for t in finished if t is not None]
    return {"finished": finished, "done": len(done), "exceptions": sum(errors),
            "told_queued": sum(told),
            "median_over_slowest": float(np.median(done) / max(done)) if done else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    env = {"LJVAE_DEMO": "1"}
    if args.slots is not None:
        env["LJVAE_JOB_SLOTS"] = str(args.slots)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        with streamlit_server(Path(folder) / "cache", log=log, **env) as (url, port):
            sampler = Sampler(url, port)
            sampler.start()
            result = crowd(url, args.visitors, args.timeout)
            sampler.stop.set()
            sampler.join()
    ms = 1000 * np.asarray(sampler.latencies)
    result.update({
        "visitors": args.visitors, "slots": args.slots or "cores", "cores": os.cpu_count(),
        "health_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                      "max": float(ms.max()), "polls": len(ms)},
        "peak_server_memory_gib": sampler.peak_bytes / 2**30,
        "date": time.strftime("%Y-%m-%d")})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
