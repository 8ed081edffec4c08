import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import RequestFactory

from checkout import ratelimit
from checkout.models import ShopperSession
from checkout.ratelimit import client_ip, parse_rate
from shop.redis import breaker, redis_client
from tests.checkout.conftest import snapshot

SERVER_PORTS = (8201, 8202)
UNREACHABLE_PORT = 8219
SILENT_PORT = 8218


# --- Client address -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "127.0.0.1"),
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "192.0.2.66, 203.0.113.7", "203.0.113.7"),
        (2, "192.0.2.66, 203.0.113.7, 198.51.100.1", "203.0.113.7"),
        (2, "203.0.113.7", "127.0.0.1"),
        (1, "", "127.0.0.1"),
        (1, "not-an-address", "127.0.0.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
    ids=["no-proxy", "one-proxy", "forged-left", "two-proxies", "short-header", "empty", "garbage", "ipv6"],
)
def test_client_ip_counts_trusted_hops_from_the_right(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops
    request = RequestFactory().post("/api/sessions", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="127.0.0.1")

    assert client_ip(request) == expected


def test_parse_rate_reads_count_per_period():
    assert parse_rate("30/m") == (30, 60)
    assert parse_rate("100/10s") == (100, 10)
    assert parse_rate("1000/h") == (1000, 3600)
    with pytest.raises(ImproperlyConfigured, match="30/m"):
        parse_rate("thirty per minute")


# --- In this process ------------------------------------------------------------------------------------


@contextmanager
def redis_url(url: str):
    """Point shop.redis at another REDIS_URL for the block (its client is built once per process)."""
    original = settings.REDIS_URL
    settings.REDIS_URL = url
    redis_client.cache_clear()
    breaker.reset()
    try:
        yield
    finally:
        settings.REDIS_URL = original
        redis_client.cache_clear()
        breaker.reset()


def post_session(client, forwarded: str = ""):
    return client.post("/api/sessions", headers={"X-Forwarded-For": forwarded} if forwarded else {})


@pytest.mark.django_db
def test_session_limit_in_local_memory_without_redis(client, settings):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "3/m"
    with redis_url(""):
        answers = [post_session(client) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["Cache-Control"] == "no-store"
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["retry_after"] == int(refused["Retry-After"])
    assert ShopperSession.objects.count() == 3


@pytest.mark.django_db
def test_limits_off_and_allow_list_never_limit(client, settings):
    settings.RATELIMIT_SESSIONS_PER_IP = "1/m"
    settings.RATELIMIT_ALLOW_IPS = ["198.51.100.0/24"]
    settings.TRUSTED_PROXY_COUNT = 1
    with redis_url(""):
        settings.RATELIMIT_ENABLED = False
        off = [post_session(client, "203.0.113.7").status_code for _ in range(3)]
        settings.RATELIMIT_ENABLED = True
        allowed = [post_session(client, "198.51.100.9").status_code for _ in range(3)]
        other = [post_session(client, "203.0.113.8").status_code for _ in range(2)]

    assert off == allowed == [201, 201, 201]
    assert other == [201, 429]


@pytest.mark.django_db
def test_checkout_session_limit_refuses_before_the_database(
    client, settings, needs_redis, make_product, make_token, django_assert_num_queries
):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_CHECKOUT_PER_SESSION = "2/m"
    product, token = make_product(stock=10), make_token()
    body = json.dumps({"product_id": product.pk, "quantity": 1})

    def buy():
        return client.post(
            "/api/checkout", data=body, content_type="application/json", headers={"X-Session-Token": token}
        )

    assert [buy().status_code for _ in range(2)] == [201, 201]
    before = snapshot()
    with django_assert_num_queries(0):
        refused = buy()

    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert snapshot() == before
    # another session from the same address is still served
    other = client.post(
        "/api/checkout", data=body, content_type="application/json", headers={"X-Session-Token": make_token()}
    )
    assert other.status_code == 201


@pytest.mark.django_db
def test_checkout_ip_limit_counts_every_session_of_an_address(client, settings, needs_redis, make_product, make_token):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_CHECKOUT_PER_IP = "2/m"
    product = make_product(stock=10)
    body = json.dumps({"product_id": product.pk, "quantity": 1})

    statuses = [
        client.post(
            "/api/checkout", data=body, content_type="application/json", headers={"X-Session-Token": make_token()}
        ).status_code
        for _ in range(3)
    ]

    assert statuses == [201, 201, 429]


@contextmanager
def silent_server():
    """A port on 127.0.0.1 that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", SILENT_PORT))
    server.listen(16)
    try:
        yield f"redis://127.0.0.1:{SILENT_PORT}/0"
    finally:
        server.close()


@contextmanager
def refused_port():
    yield f"redis://127.0.0.1:{UNREACHABLE_PORT}/0"


@pytest.mark.django_db
@pytest.mark.parametrize("down", [refused_port, silent_server], ids=["refused", "hanging"])
def test_limiter_fails_open_when_redis_is_down(client, settings, caplog, down):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "1/m"
    ratelimit._last_fail_open_log = 0.0
    with down() as url, redis_url(url), caplog.at_level(logging.WARNING):
        statuses = [post_session(client).status_code for _ in range(3)]

    assert statuses == [201, 201, 201]
    assert ShopperSession.objects.count() == 3
    assert "rate limiter failing open: redis unavailable" in caplog.messages
    # one line per outage, not one per request
    assert caplog.messages.count("rate limiter failing open: redis unavailable") == 1


# --- Two server processes, one Redis --------------------------------------------------------------------


@contextmanager
def gunicorn_servers(env: dict):
    processes = []
    try:
        for port in SERVER_PORTS:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py"],
                    cwd=settings.BASE_DIR,
                    env={**env, "PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in SERVER_PORTS:
            _wait_until_up(port)
        yield [f"http://127.0.0.1:{port}" for port in SERVER_PORTS]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"gunicorn on port {port} did not start within {timeout} s")


def http_post(url: str, *, forwarded: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=b"", method="POST", headers={"X-Forwarded-For": forwarded})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_limit_that_forged_headers_cannot_escape(needs_postgres, needs_redis):
    # given: two gunicorn servers behind one (simulated) proxy, on this test's database and Redis
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_DEBUG": "0",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
        "TRUSTED_PROXY_COUNT": "1",
        "RATELIMIT_ENABLED": "1",
        "RATELIMIT_SESSIONS_PER_IP": "4/m",
        "RATELIMIT_ALLOW_IPS": "198.51.100.0/24",
    }
    with gunicorn_servers(env) as (first, second):
        # when: one address alternates between the processes
        served = [http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded="203.0.113.7") for i in range(4)]
        refused = http_post(f"{first}/api/sessions", forwarded="203.0.113.7")
        refused_elsewhere = http_post(f"{second}/api/sessions", forwarded="203.0.113.7")
        forged = http_post(f"{second}/api/sessions", forwarded="192.0.2.1, 203.0.113.7")
        neighbour = http_post(f"{first}/api/sessions", forwarded="203.0.113.8")
        allow_listed = [
            http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded="198.51.100.9")[0] for i in range(8)
        ]

    # then
    assert [status for status, _, _ in served] == [201, 201, 201, 201]
    for status, headers, body in (refused, refused_elsewhere, forged):
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert headers["Cache-Control"] == "no-store"
        assert body["code"] == "rate_limited"
    assert neighbour[0] == 201
    assert allow_listed == [201] * 8
    assert ShopperSession.objects.count() == 4 + 1 + 8


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATELIMIT_CHECKOUT_PER_IP", "60 per minute", "RATELIMIT_CHECKOUT_PER_IP"),
        ("RATELIMIT_ALLOW_IPS", ["198.51.100.0/24", "office"], "RATELIMIT_ALLOW_IPS"),
    ],
)
def test_settings_check_names_a_bad_variable(settings, name, value, message):
    setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        ratelimit.ratelimit_settings_check()


def test_a_bad_limit_stops_the_process_at_start():
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "RATELIMIT_SESSIONS_PER_IP": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode != 0
    assert "RATELIMIT_SESSIONS_PER_IP: Rate limit 'lots' is not like 30/m" in run.stderr
