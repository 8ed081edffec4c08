import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from checkout import ratelimit
from checkout.models import ShopperSession
from checkout.ratelimit import address_bucket, client_ip, parse_rate
from shop.redis import BREAKER_COOLDOWN_SECONDS, breaker, redis_client
from tests.checkout.conftest import snapshot
from tests.servers import gunicorn_servers, server_env

SECRET = "origin-secret-for-tests"
SIGNED = {"X-Origin-Verify": SECRET}


def limit_key(name: str) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:rl:{name}"


# --- Client address -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "127.0.0.1"),
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "192.0.2.66, 203.0.113.7", "203.0.113.7"),
        (2, "192.0.2.66, 203.0.113.7, 198.51.100.1", "203.0.113.7"),
        (3, "192.0.2.66, 203.0.113.7, 198.51.100.1, 10.0.1.5", "203.0.113.7"),
        (2, "203.0.113.7", "127.0.0.1"),
        (1, "", "127.0.0.1"),
        (1, "not-an-address", "127.0.0.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
    ids=[
        "no-proxy",
        "one-proxy",
        "forged-left",
        "two-proxies",
        "three-proxies",
        "short-header",
        "empty",
        "garbage",
        "ipv6",
    ],
)
def test_client_ip_counts_trusted_hops_from_the_right(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops
    settings.ORIGIN_VERIFY = SECRET
    request = RequestFactory().post(
        "/api/sessions", HTTP_X_FORWARDED_FOR=forwarded, HTTP_X_ORIGIN_VERIFY=SECRET, REMOTE_ADDR="127.0.0.1"
    )

    assert client_ip(request) == expected


@pytest.mark.parametrize(
    ("configured", "presented"),
    [
        (SECRET, None),
        (SECRET, "wrong"),
        (SECRET, SECRET[:-1]),
        (SECRET, SECRET + " "),
        (SECRET, "é" * 8),
        ("", ""),
        ("", SECRET),
    ],
    ids=["missing", "wrong", "prefix", "longer", "not-ascii", "none-set-empty-sent", "none-set"],
)
def test_forwarded_for_is_ignored_without_the_origin_secret(settings, configured, presented):
    settings.TRUSTED_PROXY_COUNT = 2
    settings.ORIGIN_VERIFY = configured
    extra = {} if presented is None else {"HTTP_X_ORIGIN_VERIFY": presented}
    request = RequestFactory().post(
        "/api/sessions", HTTP_X_FORWARDED_FOR="203.0.113.7, 198.51.100.1", REMOTE_ADDR="10.0.1.5", **extra
    )

    assert client_ip(request) == "10.0.1.5"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [("203.0.113.7, 198.51.100.1", "198.51.100.1"), ("198.51.100.1", "198.51.100.1"), ("", ""), ("junk", "")],
)
def test_behind_the_front_on_a_unix_socket_the_peer_is_what_nginx_appended(settings, forwarded, expected):
    # given: gunicorn on a unix socket (REMOTE_ADDR empty) behind nginx, which appends its peer; no origin secret
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ORIGIN_VERIFY = "x" * 32
    request = RequestFactory().post("/api/sessions", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="")

    # then: the client's own entries are ignored, nginx's peer counts (not one bucket "" for every client)
    assert client_ip(request) == expected


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::1", "::/64"),
        ("", ""),
        ("garbage:", "garbage:"),
    ],
)
def test_address_bucket_counts_ipv6_per_64(address, bucket):
    assert address_bucket(address) == bucket


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


def post_session(client, forwarded: str = "", signed: bool = True, **extra):
    headers = {"X-Forwarded-For": forwarded, **(SIGNED if signed else {})} if forwarded else {}
    return client.post("/api/sessions", headers=headers, **extra)


@pytest.mark.django_db
def test_session_limit_in_local_memory_without_redis(client, settings):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "3/m"
    settings.RATELIMIT_LOCAL_PROCESSES = 4  # applies only while a configured Redis is away
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
    settings.ORIGIN_VERIFY = SECRET
    with redis_url(""):
        settings.RATELIMIT_ENABLED = False
        off = [post_session(client, "203.0.113.7").status_code for _ in range(3)]
        settings.RATELIMIT_ENABLED = True
        allowed = [post_session(client, "198.51.100.9").status_code for _ in range(3)]
        other = [post_session(client, "203.0.113.8").status_code for _ in range(2)]

    assert off == allowed == [201, 201, 201]
    assert other == [201, 429]


@pytest.mark.django_db
def test_ipv6_clients_share_one_limit_per_64(client, settings, needs_redis):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "2/m"

    def status(address: str) -> int:
        return post_session(client, REMOTE_ADDR=address).status_code

    statuses = [status("2001:db8:1:2::1"), status("2001:db8:1:2:aaaa::9"), status("2001:db8:1:2::3")]
    other_network = status("2001:db8:1:3::1")

    assert statuses == [201, 201, 429]
    assert other_network == 201
    assert needs_redis.zcard(limit_key("ip:sessions:2001:db8:1:2::/64")) == 2
    assert ShopperSession.objects.count() == 3


@pytest.mark.django_db
def test_forged_forwarded_for_counts_the_peer_address(client, settings, needs_redis):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "2/m"
    settings.TRUSTED_PROXY_COUNT = 1
    settings.ORIGIN_VERIFY = SECRET

    # a client rotating its own X-Forwarded-For, without the secret: every request counts against its peer address
    forged = [post_session(client, f"203.0.113.{n}", signed=False).status_code for n in range(1, 5)]
    # the same through the origin proxies (secret present): counted per forwarded address
    signed = [post_session(client, f"203.0.113.{n}").status_code for n in range(1, 5)]

    assert forged == [201, 201, 429, 429]
    assert signed == [201, 201, 201, 201]
    assert needs_redis.zcard(limit_key("ip:sessions:127.0.0.1")) == 2
    assert ShopperSession.objects.count() == 6


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
    """A loopback port that accepts connections and never answers: a Redis that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@contextmanager
def refused_port():
    """A loopback port bound but not listening, held for the block: connections are refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"redis://127.0.0.1:{holder.getsockname()[1]}/0"


@pytest.mark.django_db
@pytest.mark.parametrize("down", [refused_port, silent_server], ids=["refused", "hanging"])
def test_each_process_admits_its_share_while_redis_is_down(client, settings, caplog, down):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "4/m"
    settings.RATELIMIT_LOCAL_PROCESSES = 2
    ratelimit._last_local_log = 0.0
    with down() as url, redis_url(url), caplog.at_level(logging.WARNING):
        answers = [post_session(client) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [201, 201, 429, 429]
    for refused in answers[2:]:
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused["Retry-After"]) <= 60
    assert ShopperSession.objects.count() == 2
    # one line per outage, not one per request
    assert caplog.messages.count("rate limiter counting in this process: redis unavailable") == 1


@pytest.mark.django_db
def test_a_client_at_its_limit_stays_limited_when_redis_returns(client, settings, redis_process):
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_SESSIONS_PER_IP = "3/m"
    settings.RATELIMIT_LOCAL_PROCESSES = 1
    with redis_url(redis_process.url):
        # given: Redis dies, and this process admits the client's whole limit from its own counts
        redis_process.kill()
        during = [post_session(client).status_code for _ in range(4)]
        # a check that finds Redis still away keeps the counts for later
        breaker.reset()
        still_down = post_session(client).status_code

        # when: Redis is back, empty, and the client comes again
        redis_process.start()
        breaker.reset()
        after = post_session(client)
        neighbour = post_session(client, REMOTE_ADDR="127.0.0.2").status_code

    # then: the counts of the outage were written back, and the client waits out its window
    assert during == [201, 201, 201, 429]
    assert still_down == 429
    assert after.status_code == 429
    assert 50 <= int(after["Retry-After"]) <= 60
    assert redis_process.client().zcard(limit_key("ip:sessions:127.0.0.1")) == 3
    assert neighbour == 201
    assert redis_process.client().zcard(limit_key("ip:sessions:127.0.0.2")) == 1
    assert ShopperSession.objects.count() == 4


# --- gunicorn processes, one Redis ----------------------------------------------------------------------


def limiter_env(**overrides: str) -> dict:
    return server_env(RATELIMIT_ENABLED="1", ORIGIN_VERIFY=SECRET, **overrides)


def http_post(url: str, *, forwarded: str, signed: bool = True) -> tuple[int, dict, dict]:
    headers = {"X-Forwarded-For": forwarded, **(SIGNED if signed else {})}
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_limit_that_forged_headers_cannot_escape(needs_postgres, needs_redis):
    # given: two gunicorn servers behind one (simulated) proxy, on this test's database and Redis
    env = limiter_env(
        GUNICORN_WORKERS="1",
        TRUSTED_PROXY_COUNT="1",
        RATELIMIT_SESSIONS_PER_IP="4/m",
        RATELIMIT_ALLOW_IPS="198.51.100.0/24",
    )
    with gunicorn_servers(env, env) as (first, second):
        # when: one address alternates between the processes
        served = [http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded="203.0.113.7") for i in range(4)]
        refused = http_post(f"{first}/api/sessions", forwarded="203.0.113.7")
        refused_elsewhere = http_post(f"{second}/api/sessions", forwarded="203.0.113.7")
        forged = http_post(f"{second}/api/sessions", forwarded="192.0.2.1, 203.0.113.7")
        neighbour = http_post(f"{first}/api/sessions", forwarded="203.0.113.8")
        allow_listed = [
            http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded="198.51.100.9")[0] for i in range(8)
        ]
        # a client that reaches the servers directly, without the origin secret, rotating its own header
        unsigned = [
            http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded=f"198.51.100.{i}", signed=False)[0]
            for i in range(6)
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
    assert unsigned == [201, 201, 201, 201, 429, 429]
    assert needs_redis.zcard(limit_key("ip:sessions:127.0.0.1")) == 4
    assert ShopperSession.objects.count() == 4 + 1 + 8 + 4


def keepalive_posts(url: str, *, connections: int, rounds: int, forwarded: str) -> list[int]:
    """`rounds` POSTs on each of `connections` kept-alive connections, all sending at once.

    The connections open 0.2 s apart, so shop.workers.FairThreadWorker hands them to the worker holding fewest.
    """
    host, port = url.removeprefix("http://").split(":")
    conns = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(connections)]
    statuses: list[int] = []
    lock = threading.Lock()

    def run(conn):
        for _ in range(rounds):
            conn.request("POST", "/api/sessions", body=b"", headers={"X-Forwarded-For": forwarded, **SIGNED})
            response = conn.getresponse()
            response.read()
            with lock:
                statuses.append(response.status)

    for conn in conns:
        conn.connect()
        time.sleep(0.2)
    threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for conn in conns:
        conn.close()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_one_instance_admits_no_more_than_its_limit_while_redis_is_down(needs_postgres, redis_process):
    # given: one instance of 2 workers (RATELIMIT_LOCAL_PROCESSES follows GUNICORN_WORKERS), and its Redis killed
    env = limiter_env(
        REDIS_URL=redis_process.url,
        GUNICORN_WORKERS="2",
        TRUSTED_PROXY_COUNT="1",
        RATELIMIT_SESSIONS_PER_IP="4/m",
    )
    env.pop("RATELIMIT_LOCAL_PROCESSES", None)
    with gunicorn_servers(env) as (url,):
        redis_process.kill()
        # when: one client sends 16 requests over four connections, which the workers share between them
        statuses = keepalive_posts(url, connections=4, rounds=4, forwarded="203.0.113.7")

    # then: each worker admitted 4 // 2; the instance no more than the limit
    admitted = statuses.count(201)
    assert 2 <= admitted <= 4
    assert statuses.count(429) == 16 - admitted
    assert ShopperSession.objects.count() == admitted


@pytest.mark.django_db(transaction=True)
def test_counts_from_a_redis_outage_are_written_back_when_it_returns(needs_postgres, redis_process):
    # given: two instances of one worker, each taking half of every limit while Redis is away
    env = limiter_env(
        REDIS_URL=redis_process.url,
        GUNICORN_WORKERS="1",
        TRUSTED_PROXY_COUNT="1",
        RATELIMIT_SESSIONS_PER_IP="4/m",
        RATELIMIT_LOCAL_PROCESSES="2",
    )
    with gunicorn_servers(env, env) as (first, second):
        redis_process.kill()
        during = [http_post(f"{(first, second)[i % 2]}/api/sessions", forwarded="203.0.113.7")[0] for i in range(8)]
        outage_ended = time.monotonic()

        # when: Redis comes back empty; once the breaker's cool-down has passed, each process checks a request
        redis_process.start()
        time.sleep(max(0.0, outage_ended + BREAKER_COOLDOWN_SECONDS + 0.5 - time.monotonic()))
        others = [
            http_post(f"{url}/api/sessions", forwarded=f"203.0.113.{20 + i}")[0]
            for i, url in enumerate((first, second))
        ]
        after = [http_post(f"{url}/api/sessions", forwarded="203.0.113.7") for url in (first, second)]

    # then: the client used its limit during the outage and stays limited for the rest of its window
    assert sorted(during) == [201] * 4 + [429] * 4
    assert others == [201, 201]
    for status, headers, body in after:
        assert status == 429
        assert body["code"] == "rate_limited"
        assert 45 <= int(headers["Retry-After"]) <= 60
    assert redis_process.client().zcard(limit_key("ip:sessions:203.0.113.7")) == 4
    assert ShopperSession.objects.count() == 4 + 2


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATELIMIT_CHECKOUT_PER_IP", "60 per minute", "RATELIMIT_CHECKOUT_PER_IP"),
        ("RATELIMIT_ALLOW_IPS", ["198.51.100.0/24", "office"], "RATELIMIT_ALLOW_IPS"),
        ("RATELIMIT_LOCAL_PROCESSES", 0, "RATELIMIT_LOCAL_PROCESSES"),
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


def test_settings_check_warns_when_forwarded_addresses_can_never_be_read(settings, caplog):
    settings.TRUSTED_PROXY_COUNT = 2
    settings.ORIGIN_VERIFY = ""

    with caplog.at_level(logging.WARNING, logger="shop.ratelimit"):
        ratelimit.ratelimit_settings_check()
        settings.ORIGIN_VERIFY = SECRET
        ratelimit.ratelimit_settings_check()

    assert [record.getMessage() for record in caplog.records] == [
        "TRUSTED_PROXY_COUNT is set but ORIGIN_VERIFY is empty: X-Forwarded-For is ignored and every request "
        "counts against its peer address"
    ]
