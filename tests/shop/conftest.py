"""Real processes for the fault tests (a TCP proxy in front of the test database that can be frozen, and the shop
under gunicorn behind it), and fixtures the shop-wide tests borrow from the checkout tests."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.checkout.conftest import make_product, make_token  # noqa: F401 - fixtures for tests/shop


@dataclass
class Proxy:
    process: subprocess.Popen
    port: int

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def db_proxy():
    """A proxy to the test database, as its own process (tests/shop/tcp_proxy.py)."""
    db = connection.settings_dict
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.shop.tcp_proxy", db["HOST"] or "127.0.0.1", str(db["PORT"] or 5432)],
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield Proxy(process=process, port=int(process.stdout.readline()))
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(timeout=10)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def request(self, method: str, path: str, *, body=None, headers=None, timeout: float = 30) -> Response:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return Response(
            status=response.status,
            headers={key.lower(): value for key, value in response.getheaders()},
            body=data,
            seconds=time.monotonic() - started,
        )

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_path.read_text().splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def shop_server(tmp_path):
    """start(database_port, **env) runs `gunicorn --config shop/gunicorn.conf.py` on the shop, one worker, with the
    test database reached through `database_port`; stopped at the end of the test."""
    started = []

    def start(*, database_port: int, **env) -> Server:
        db = connection.settings_dict
        port = free_port()
        log_path = tmp_path / f"gunicorn-{port}.log"
        environment = {
            "PATH": "/usr/bin:/bin",
            "PORT": str(port),
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{database_port}/{db['NAME']}",
            "DJANGO_SECRET_KEY": "test-only-not-a-secret",
            "RATELIMIT_ENABLED": "0",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_THREADS": "2",
            "DB_CONNECT_TIMEOUT": "1",
            **{key: str(value) for key, value in env.items()},
        }
        log = log_path.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py"],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(process=process, port=port, log_path=log_path)
        started.append(server)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if server.request("GET", "/health", timeout=2).status == 200:
                    return server
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)
