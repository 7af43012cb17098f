"""Slow clients against ``zhengai web``: N connections that send their request head a byte at a
time, and a normal page request meanwhile.

    python bench/bench_web_slowclients.py [--slow 300] [--header-timeout 5]

Prints, from the same run: the latency of a normal request with no slow clients (baseline) and
with N slow clients connected, how many slow connections the server had closed after the header
timeout, and the threads the server process used. (Issue 12: on the old wsgiref server 300 such
connections held a thread each for 50 s+.) No assertions: it prints figures.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx

from zhengai.ingest.records import Band
from zhengai.warnings.links import action_url
from zhengai.warnings.notify.testing import NotifyWorld
from zhengai.web import ServerThread, WebSettings, create_app

SECRET = b"bench-secret-0123456789abcdef"


def _latency(client: httpx.Client, url: str, n: int = 20) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=int, default=300)
    ap.add_argument("--header-timeout", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = NotifyWorld(f"sqlite:///{Path(tmp) / 'w.sqlite'}", courses=2)
        (opened,) = world.warn("course.attendance_rate", "C001", Band.red)
        settings = WebSettings(header_timeout=args.header_timeout)
        app = create_app(world.service, lambda: world.college.rules, SECRET, clock=world.clock, settings=settings)
        url = action_url(
            f"/warnings/{opened.warning_id}/ack",
            opened.warning_id,
            "T001",
            "ack",
            world.clock() + timedelta(days=30),
            SECRET,
        )
        with (
            ServerThread(app, settings=settings) as server,
            httpx.Client(base_url=server.base_url, timeout=30) as client,
        ):
            host, port = httpx.URL(server.base_url).host, httpx.URL(server.base_url).port
            _latency(client, url, 5)  # warm up (templates, connection, database)
            baseline = _latency(client, url)
            threads_before = threading.active_count()
            socks = []
            for _ in range(args.slow):
                s = socket.create_connection((host, port))
                s.sendall(b"GET /my/warnings HTTP/1.1\r\nHo")  # the head never completes
                socks.append(s)
            loaded = _latency(client, url)
            threads_during = threading.active_count()
            t0 = time.monotonic()
            closed = 0
            for s in socks:
                s.settimeout(max(0.1, args.header_timeout * 3 - (time.monotonic() - t0)))
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except OSError:
                    pass
                s.close()
            waited = time.monotonic() - t0
    print(
        f"normal request, median of 20: {baseline:.1f} ms alone, {loaded:.1f} ms"
        f" with {args.slow} slow clients connected"
    )
    print(
        f"slow connections closed by the server: {closed}/{args.slow} within {waited:.1f} s"
        f" (header timeout {args.header_timeout:g} s)"
    )
    print(
        f"threads in this process: {threads_before} before, {threads_during}"
        f" with the slow clients (one event loop serves all)"
    )


if __name__ == "__main__":
    main()
