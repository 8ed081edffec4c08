"""shop.workers.FairThreadWorker: new connections go to the worker holding the fewest."""

import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager

import pytest
from django.conf import settings
from gunicorn.workers.gthread import ThreadWorker

from shop.workers import SLOTS, STALE_AFTER, FairThreadWorker, fewest_elsewhere, health_check_method
from tests.servers import stop
from tests.workers import HEAVY

pytestmark = HEAVY

WORKERS = 4
CONNECTIONS = 48


def table(entries: dict[int, tuple[float, float]]) -> list[float]:
    """A slot table: {slot: (connections, heartbeat)}; other slots never beat."""
    cells = [0.0] * (2 * SLOTS)
    for slot, (count, beat) in entries.items():
        cells[2 * slot], cells[2 * slot + 1] = count, beat
    return cells


def test_fewest_elsewhere_counts_only_other_live_workers():
    now = 1000.0
    cells = table({1: (9, now), 2: (3, now - 0.5), 3: (0, now - STALE_AFTER - 1), 5: (1, now)})

    # slot 5 is this worker; slot 3 stopped beating (its worker exited)
    assert fewest_elsewhere(cells, slot=5, now=now) == 3
    assert fewest_elsewhere(cells, slot=2, now=now) == 1
    assert fewest_elsewhere(table({5: (4, now)}), slot=5, now=now) is None


def idle_worker(monkeypatch, *, resume_in: float) -> tuple[FairThreadWorker, list]:
    """A worker that stopped listening to defer a connection, its deferral ending `resume_in` s from now; the
    gthread calls it makes are recorded instead of run."""
    calls = []
    monkeypatch.setattr(ThreadWorker, "set_accept_enabled", lambda self, enabled: calls.append(("listen", enabled)))
    monkeypatch.setattr(
        ThreadWorker, "wait_for_and_dispatch_events", lambda self, timeout: calls.append(("wait", timeout))
    )
    worker = FairThreadWorker.__new__(FairThreadWorker)
    worker.slot, worker.nr_conns, worker.worker_connections = 0, 0, 1000
    worker.started = {}
    worker._accepting, worker.alive = False, True
    worker.resume_at = time.monotonic() + resume_in
    worker.table = table({})
    return worker, calls


def test_a_worker_whose_deferral_ended_listens_again_before_it_sleeps(monkeypatch):
    # given: the event loop's "listen again" came a moment before the deferral ended, and was turned away
    worker, calls = idle_worker(monkeypatch, resume_in=-0.001)

    # when: the worker goes to wait for events, for up to a second
    worker.wait_for_and_dispatch_events(1.0)

    # then: it listens first, rather than sleeping a second deaf to new connections
    assert calls == [("listen", True), ("wait", 1.0)]


def test_a_deferring_worker_sleeps_only_until_its_deferral_ends(monkeypatch):
    worker, calls = idle_worker(monkeypatch, resume_in=0.5)

    worker.wait_for_and_dispatch_events(1.0)

    ((what, timeout),) = calls
    assert what == "wait" and 0.4 < timeout <= 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(port: int):
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py", "tests.shop.pid_app:application"],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "PORT": str(port), "GUNICORN_WORKERS": str(WORKERS), "GUNICORN_THREADS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop(process)


def serving_pid(conn: socket.socket) -> int:
    conn.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response or not response.split(b"\r\n\r\n", 1)[1]:
        chunk = conn.recv(4096)
        assert chunk, f"connection closed after {response!r}"
        response += chunk
    return int(response.split(b"\r\n\r\n", 1)[1])


def wait_for_workers(port: int, timeout: float = 30.0) -> None:
    """Until every worker has booted: each answers some of a series of fresh connections."""
    deadline = time.monotonic() + timeout
    seen = set()
    while len(seen) < WORKERS:
        assert time.monotonic() < deadline, f"only {len(seen)} of {WORKERS} workers answered within {timeout} s"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                seen.add(serving_pid(conn))
        except OSError:
            time.sleep(0.1)


def test_a_burst_of_keep_alive_connections_is_spread_over_the_workers():
    # given: the shop's gunicorn settings (4 workers here) serving an app that answers with its worker's pid
    port = free_port()
    with gunicorn(port):
        wait_for_workers(port)
        time.sleep(0.5)  # the probe connections above are closed and no longer counted

        # when: a load balancer opens many connections at once, then sends a request on each
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
        try:
            time.sleep(0.5)
            per_worker = Counter(serving_pid(conn) for conn in conns)
        finally:
            for conn in conns:
                conn.close()

    # then: every worker holds some of them and none holds half again its share (plain gthread: 32/16/0/0 and worse)
    share = CONNECTIONS / WORKERS
    assert len(per_worker) == WORKERS, per_worker
    assert max(per_worker.values()) <= 1.5 * share, per_worker


@pytest.mark.parametrize(
    ("head", "method"),
    [
        (b"GET /health HTTP/1.1\r\nHost: 10.0.1.5\r\n\r\n", "GET"),
        (b"HEAD /health?from=alb HTTP/1.0\r\n\r\n", "HEAD"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", None),  # headers not all here yet: a thread reads them
        (b"GET /health/ready HTTP/1.1\r\n\r\n", None),  # readiness asks the dependencies: a request thread
        (b"GET /healthz HTTP/1.1\r\n\r\n", None),
        (b"POST /health HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", None),
        (b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", None),
        (b"GET /api/products HTTP/1.1\r\n\r\n", None),
    ],
)
def test_health_check_method_recognises_only_a_whole_bodiless_health_request(head, method):
    assert health_check_method(head) == method


def test_a_connection_that_sends_nothing_waits_in_the_poller_not_in_a_thread():
    # given: the shop's gunicorn settings (4 workers, 2 threads each) serving the pid app
    port = free_port()
    with gunicorn(port):
        wait_for_workers(port)

        # when: more silent connections are opened than there are request threads in all the workers
        silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(WORKERS * 2 * 3)]
        try:
            time.sleep(0.5)
            # then: a new connection is answered at once all the same
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                started = time.monotonic()
                serving_pid(conn)
                assert time.monotonic() - started < 1.0
        finally:
            for conn in silent:
                conn.close()
