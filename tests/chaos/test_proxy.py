"""chaos.proxy as the faults use it: a process in front of a real upstream, its fault switched by signals."""

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from chaos.services import start_proxy


@pytest.fixture
def echo_server():
    """An upstream that sends back every byte it gets, on a free port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def echo(conn):
        with conn, contextlib.suppress(ConnectionResetError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def proxy(echo_server, tmp_path: Path):
    started = []

    def start(**options):
        process, port = start_proxy(
            name="test-proxy", upstream=("127.0.0.1", echo_server), log_path=tmp_path / "proxy.log", **options
        )
        started.append(process)
        return process, port

    yield start
    for process in started:
        process.stop()


def round_trip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> tuple[bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(payload)
        return conn.recv(65536), time.monotonic() - started


def test_proxy_forwards_both_ways(proxy):
    _, port = proxy()

    answer, _ = round_trip(port, b"hello")

    assert answer == b"hello"


def test_frozen_proxy_accepts_but_never_answers(proxy):
    process, port = proxy()
    process.signal(signal.SIGSTOP)

    with pytest.raises(TimeoutError):
        round_trip(port, timeout=0.5)
    process.signal(signal.SIGCONT)
    answer, _ = round_trip(port)

    assert answer == b"ping"


def test_latency_applies_only_while_the_fault_is_on(proxy):
    process, port = proxy(latency_ms=300)
    _, before = round_trip(port)

    process.signal(signal.SIGUSR1)
    time.sleep(0.2)
    answer, during = round_trip(port)
    process.signal(signal.SIGUSR2)
    time.sleep(0.2)
    _, after = round_trip(port)

    assert answer == b"ping"
    # Two chunks (there and back) wait 300 ms each; generous bounds on either side.
    assert during >= 0.5
    assert before < 0.5 and after < 0.5


def test_resets_end_open_connections_with_a_rst(proxy):
    process, port = proxy(reset_chance=1.0)
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(b"one")
    assert conn.recv(16) == b"one"

    process.signal(signal.SIGUSR1)
    time.sleep(0.5)

    with pytest.raises(ConnectionResetError):
        conn.sendall(b"two")
        conn.recv(16)
    conn.close()


def test_a_killed_proxy_refuses(proxy):
    process, port = proxy()
    process.stop()

    with pytest.raises(ConnectionRefusedError):
        round_trip(port)
