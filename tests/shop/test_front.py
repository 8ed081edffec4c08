"""The nginx front (shop/nginx) with the real gunicorn, PostgreSQL and Redis behind it: stalled clients hold no
worker and are closed by the stated deadline, nginx's refusals have the app's error shape, and overload is shed
at once."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from checkout.models import Order
from shop import nginx
from shop.nginx.__main__ import BODY_MAX_BYTES
from tests.conftest import REQUIRE_SERVICES
from tests.workers import HEAVY

pytestmark = HEAVY

STALLED = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def needs_nginx():
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        message = "nginx is not installed (make serve and .ci/run install it)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}, but SHOP_REQUIRE_SERVICES=1 demands it")
        pytest.skip(message)


@contextmanager
def running_front(*, workers: int = 1, threads: int = 2, in_flight: int | None = None):
    """nginx + gunicorn on this test's database and Redis, nginx on a free port, gunicorn on a unix socket."""
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_DEBUG": "0",
        "TRUSTED_PROXY_COUNT": "1",
        "RATELIMIT_ENABLED": "0",
    }
    # Short: a unix socket's path has at most 107 bytes. Readable by nginx's workers (nobody when run as root).
    run_dir = Path(tempfile.mkdtemp(prefix="shop-front-"))
    run_dir.chmod(0o755)
    pair = nginx.start(
        port=f"127.0.0.1:{free_port()}",
        run_dir=run_dir,
        workers=workers,
        threads=threads,
        in_flight=in_flight,
        body_max_bytes=BODY_MAX_BYTES,
        env=env,
        output=subprocess.DEVNULL,
    )
    try:
        nginx.wait_ready(pair)
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def address(pair) -> tuple[str, int]:
    host, port = pair.url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(target, raw: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send raw bytes on a new connection (TCP address or unix socket path); the status, headers and body."""
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(target)
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("Transfer-Encoding") == "chunked":
        body = dechunk(body)
    return int(lines[0].split(" ")[1]), headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def request(
    method: str, path: str, *, host: str = "127.0.0.1", headers: dict | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in pieces) + b"0\r\n\r\n"


def timed_get(pair, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    status, _, _ = exchange(address(pair), request("GET", path))
    return status, time.perf_counter() - started


def assert_error(status, headers, body, expected_status: int, code: str) -> None:
    assert status == expected_status
    assert headers["Content-Type"] == "application/json"
    parsed = json.loads(body)
    assert parsed["code"] == code and parsed["detail"]


@pytest.mark.django_db(transaction=True)
def test_stalled_clients_hold_no_worker_and_are_closed_by_the_deadline(
    needs_nginx, needs_postgres, needs_redis, make_product, capsys
):
    # given: one worker with two threads behind nginx, and a product page in the cache
    product = make_product(stock=5)
    with running_front(workers=1, threads=2) as pair:
        assert timed_get(pair, f"/api/products/{product.pk}")[0] == 200
        before = [timed_get(pair, path)[1] for path in ("/health", f"/api/products/{product.pk}") * 5]

        # when: 100 clients stall in their headers and 100 in their bodies (10 of 1,000 promised bytes)
        stalled = []
        for number in range(STALLED):
            conn = socket.create_connection(address(pair), timeout=5)
            if number % 2:
                conn.sendall(b"GET /api/products HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            else:
                conn.sendall(
                    b"POST /api/checkout HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"product_'
                )
            stalled.append((conn, time.monotonic()))
        during = [timed_get(pair, path) for path in ("/health", f"/api/products/{product.pk}") * 10]

        # then: /health and the cached product answer as before
        assert all(status == 200 for status, _ in during)
        worst = max(seconds for _, seconds in during)
        assert worst < 2.0, f"a probe took {worst:.3f} s behind {STALLED} stalled clients"

        # and: nginx closes every stalled connection by the stated deadline (reset, or closed without an answer)
        closed_after = []
        for conn, last_byte_at in stalled:
            conn.settimeout(nginx.CLIENT_TIMEOUT + 10)
            try:
                while conn.recv(65536):
                    pass
                closed_after.append(time.monotonic() - last_byte_at)
            except ConnectionResetError:  # reset_timedout_connection: a reset, not a FIN
                closed_after.append(time.monotonic() - last_byte_at)
            except TimeoutError:
                closed_after.append(float("inf"))
            finally:
                conn.close()
        time.sleep(1.5)  # the access log is flushed every second
        access_log = (Path(pair.config.log_dir) / "nginx-access.log").read_text()

    assert max(closed_after) < nginx.CLIENT_TIMEOUT + 5
    assert min(closed_after) >= nginx.CLIENT_TIMEOUT - 1
    assert Order.objects.count() == 0
    with capsys.disabled():
        print(
            f"\n{STALLED} stalled clients: probes worst {worst * 1000:.1f} ms (before: {max(before) * 1000:.1f} ms); "
            f"closed after {min(closed_after):.2f}-{max(closed_after):.2f} s (deadline {nginx.CLIENT_TIMEOUT} s)"
        )
    assert '"status": 408' in access_log


@pytest.mark.django_db(transaction=True)
def test_refusals_through_nginx_have_the_apps_error_shape(
    needs_nginx, needs_postgres, needs_redis, make_product, make_token
):
    product = make_product(stock=5)
    token = make_token()
    checkout = json.dumps({"product_id": product.pk, "quantity": 1}).encode()
    with running_front() as pair:
        target = address(pair)
        long_header = {"X-Long": "a" * 9000}
        responses = {
            "unknown path": exchange(target, request("GET", "/api/no-such-thing")),
            "bad host": exchange(target, request("GET", "/api/products", host="evil.example")),
            "wrong method": exchange(target, request("DELETE", "/api/products")),
            "long uri": exchange(target, request("GET", "/api/products?q=" + "a" * 9000)),
            "long header": exchange(target, request("GET", "/api/products", headers=long_header)),
            "malformed": exchange(target, b"NOT HTTP\r\n\r\n"),
            "big body": exchange(
                target,
                request("POST", "/api/checkout", body=b"x" * (BODY_MAX_BYTES + 1), headers={"X-Session-Token": token}),
            ),
            "big chunked body": exchange(
                target,
                request(
                    "POST",
                    "/api/checkout",
                    headers={"Transfer-Encoding": "chunked", "X-Session-Token": token},
                    body=chunked(b"x" * (BODY_MAX_BYTES + 1), size=4096),
                ),
            ),
        }
        assert Order.objects.count() == 0
        # A chunked checkout: nginx reads it whole and hands gunicorn a Content-Length.
        placed = exchange(
            target,
            request(
                "POST",
                "/api/checkout",
                headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json", "X-Session-Token": token},
                body=chunked(checkout),
            ),
        )
        # The same straight to gunicorn's socket: refused, never read as an empty body.
        direct = exchange(
            pair.config.upstream.removeprefix("unix:"),
            request(
                "POST",
                "/api/checkout",
                headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json", "X-Session-Token": token},
                body=chunked(checkout),
            ),
        )

    assert_error(*responses["unknown path"], 404, "not_found")
    assert_error(*responses["bad host"], 400, "bad_request")
    assert_error(*responses["wrong method"], 405, "method_not_allowed")
    assert_error(*responses["long uri"], 414, "uri_too_long")
    assert_error(*responses["long header"], 431, "headers_too_large")
    assert_error(*responses["malformed"], 400, "bad_request")
    assert_error(*responses["big body"], 413, "body_too_large")
    assert_error(*responses["big chunked body"], 413, "body_too_large")
    assert placed[0] == 201, placed
    assert json.loads(placed[2])["items"] == [{"product_id": product.pk, "quantity": 1, "unit_price": "19.99"}]
    assert_error(*direct, 411, "length_required")
    assert Order.objects.count() == 1


def gunicorn_processes(master: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, check=False).stdout
    return [master, *(int(pid) for pid in children.split())]


@pytest.mark.django_db(transaction=True)
def test_requests_beyond_the_in_flight_limit_are_shed_at_once(needs_nginx, needs_postgres, needs_redis):
    # given: room for one request at gunicorn, and gunicorn frozen so that one never finishes
    with running_front(workers=1, threads=1, in_flight=1) as pair:
        target = address(pair)
        frozen = gunicorn_processes(pair.gunicorn.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            held = socket.create_connection(target, timeout=10)
            held.sendall(request("GET", "/api/products"))
            time.sleep(0.5)  # nginx has taken the one connection to gunicorn for it

            # when
            started = time.perf_counter()
            shed = exchange(target, request("POST", "/api/checkout", body=b"{}"))
            shed_seconds = time.perf_counter() - started
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        held_status = held.recv(65536).split(b" ", 2)[1]
        held.close()

    # then: refused with the overload answer, not queued; the held request is answered once gunicorn runs again
    assert_error(*shed, 503, "overloaded")
    assert shed[1]["Retry-After"] == "1"
    assert shed_seconds < 1.0
    assert held_status == b"200"


@pytest.mark.django_db(transaction=True)
def test_a_stopped_gunicorn_is_answered_upstream_unavailable_not_overloaded(needs_nginx, needs_postgres, needs_redis):
    with running_front() as pair:
        pair.gunicorn.terminate()
        pair.gunicorn.wait(timeout=40)

        status, headers, body = exchange(address(pair), request("GET", "/api/products"))

    assert_error(status, headers, body, 503, "upstream_unavailable")
    assert headers["Retry-After"] == "5"


def test_the_fronts_body_limit_is_the_apps():
    assert BODY_MAX_BYTES == settings.REQUEST_BODY_MAX_BYTES == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    config = nginx.FrontConfig(
        listen="8000", upstream="unix:/run/shop/gunicorn.sock", run_dir="/run/shop", log_dir="/var/log/shop",
        body_max_bytes=BODY_MAX_BYTES, max_in_flight=32,
    )  # fmt: skip

    rendered = nginx.render(config)

    assert f"client_max_body_size {BODY_MAX_BYTES};" in rendered
    assert "max_conns=32 " in rendered and "{{" not in rendered
    assert f"client_header_timeout {nginx.CLIENT_TIMEOUT}s;" in rendered
    assert f"client_body_timeout {nginx.CLIENT_TIMEOUT}s;" in rendered


def test_the_front_sits_inside_the_timeout_chain():
    production = settings.OPSINFRA["ENVIRONMENTS"]["production"]
    rendered = nginx.render(
        nginx.FrontConfig(
            listen="8000", upstream="unix:/s", run_dir="/r", log_dir="/l", body_max_bytes=1, max_in_flight=1
        )
    )
    keepalive = int(rendered.split("keepalive_timeout ")[1].split("s;")[0])

    # gunicorn gives up on a request before nginx gives up on gunicorn, and nginx before CloudFront gives up on it
    assert production["gunicorn_timeout"] < nginx.UPSTREAM_READ_TIMEOUT < production["origin_read_timeout"]
    # the ALB closes an idle connection to nginx before nginx would, so it never reuses one nginx has closed
    assert nginx.CLIENT_TIMEOUT < production["alb_idle_timeout"] < keepalive
