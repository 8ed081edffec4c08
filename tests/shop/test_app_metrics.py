"""The app's CloudWatch metrics (shop.metrics): aggregated per process and interval, written as EMF records that
keep the format's rules (tests/shop/emf_rules.py), fork-safe, and written by a request served as `make serve`
serves it (nginx + gunicorn), with nginx's shed requests found by the stack's metric filter."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from catalog.exceptions import InsufficientStock
from opsinfra.cfn.observability import SHED_LINE, json_filter_pattern
from shop import metrics, nginx
from shop.metrics import Aggregator, checkout_outcome, endpoint_class
from shop.nginx.__main__ import BODY_MAX_BYTES
from tests.checkout.conftest import on_sale  # noqa: F401 - a fixture
from tests.servers import gunicorn_servers, server_env
from tests.shop.emf_rules import metrics_of, record_errors
from tests.shop.test_front import address, exchange, free_port, gunicorn_processes, needs_nginx  # noqa: F401
from tests.shop.test_front import request as http_request


class _Answer:
    def __init__(self, data):
        self.data = data


def _aggregator(tmp_path, **options) -> Aggregator:
    aggregator = Aggregator()
    aggregator.configure(path=str(tmp_path / "metrics.log"), namespace="shop-test", interval=60, **options)
    # No writer thread: these tests take the records themselves, and a writer would take them at the turn of the
    # wall clock's minute, in the middle of a test now and then.
    aggregator._writing = True
    return aggregator


def _by_dimension(records: list[dict], dimension: str) -> dict[str, dict]:
    return {record[dimension]: record for record in records if dimension in record}


def test_requests_are_aggregated_into_one_record_per_endpoint_and_outcome(tmp_path):
    aggregator = _aggregator(tmp_path)
    for _ in range(500):
        aggregator.request(path="/api/products", status=200, duration_ms=1.2, cache="HIT")
    aggregator.request(path="/api/products/7", status=200, duration_ms=30.0, cache="MISS")
    aggregator.request(path="/api/products", status=200, duration_ms=40.0, cache="BYPASS")
    aggregator.request(path="/api/checkout", status=201, duration_ms=12.0, cache="")
    sold_out = InsufficientStock(product_ids=[3], reason="sold_out").body()
    aggregator.request(path="/api/checkout", status=409, duration_ms=0.8, cache="", response=_Answer(sold_out))
    aggregator.request(path="/api/cart/checkout", status=503, duration_ms=8000.0, cache="")
    aggregator.request(path="/api/sessions", status=429, duration_ms=0.5, cache="")

    records = aggregator.records(now=time.time())

    lines = [json.dumps(record) for record in records]
    assert [error for line in lines for error in record_errors(line)] == []
    fleet = records[0]
    assert fleet["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert (fleet["ProductCacheHits"], fleet["ProductCacheMisses"], fleet["ProductCacheBypasses"]) == (500, 1, 1)
    assert (fleet["DatabaseCircuitOpen"], fleet["RedisCircuitOpen"]) == (0, 0)
    endpoints = _by_dimension(records, "Endpoint")
    assert set(endpoints) == {"product_list", "product_detail", "checkout", "sessions"}
    assert endpoints["product_list"]["Requests"] == 501
    checkout = endpoints["checkout"]
    assert (checkout["Requests"], checkout["Errors5xx"], checkout["Unavailable503"]) == (3, 1, 1)
    assert endpoints["sessions"]["RateLimited429"] == 1
    assert checkout["Latency"]["Count"] == 3 and checkout["Latency"]["Max"] == 8000.0
    assert checkout["Latency"]["Min"] == 0.8 and checkout["Latency"]["Sum"] == 8012.8
    outcomes = {name: record["Checkouts"] for name, record in _by_dimension(records, "Outcome").items()}
    assert outcomes == {"201": 1, "409_sold_out": 1, "503": 1}
    # then the next interval starts empty
    assert [record.get("Endpoint") for record in aggregator.records()] == [None]


def test_latency_distribution_keeps_percentiles_within_its_bucket_width(tmp_path):
    aggregator = _aggregator(tmp_path)
    # given: 10,000 latencies from 0.01 ms to 200 s, far more distinct values than EMF's 100 a metric
    durations = [0.01 * 1.0017**step for step in range(10_000)]
    for duration in durations:
        aggregator.request(path="/api/checkout", status=201, duration_ms=duration, cache="")

    (record,) = [r for r in aggregator.records() if r.get("Endpoint") == "checkout"]

    latency = record["Latency"]
    assert record_errors(json.dumps(record)) == []
    assert len(latency["Values"]) <= 100 and sum(latency["Counts"]) == latency["Count"] == 10_000
    assert latency["Max"] == pytest.approx(durations[-1], rel=1e-6) and latency["Min"] == 0.01
    for quantile in (0.5, 0.9, 0.99):
        exact = durations[int(quantile * len(durations)) - 1]
        position, seen = quantile * latency["Count"], 0
        value = latency["Values"][0]
        for value, count in zip(latency["Values"], latency["Counts"], strict=True):  # noqa: B007 - read after
            seen += count
            if seen >= position:
                break
        if exact < 117_000:  # inside the top bucket's start the midpoint is within half a bucket (7.5 %)
            assert value == pytest.approx(exact, rel=0.16), quantile


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/products", "product_list"),
        ("/api/products/12", "product_detail"),
        ("/api/checkout", "checkout"),
        ("/api/cart/checkout", "checkout"),
        ("/api/cart/items/3", "cart"),
        ("/api/orders/9", "orders"),
        ("/api/inventory/3", "inventory"),
        ("/api/schema/", "api_other"),
        ("/health/ready", "health"),
        ("/static/app.css", "static"),
        ("/", "pages"),
        ("/anything/else", "pages"),
    ],
)
def test_endpoint_classes_are_a_fixed_set(path, expected):
    assert endpoint_class(path) == expected
    assert expected in metrics.ENDPOINTS


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {}, "201"),
        (409, InsufficientStock(product_ids=[1]).body(), "409_insufficient_stock"),
        (409, InsufficientStock(product_ids=[1], reason="sold_out").body(), "409_sold_out"),
        (409, InsufficientStock(product_ids=[1], reason="sale_not_started").body(), "409_sale_not_started"),
        (409, {"code": "limit_exceeded"}, "409_limit_exceeded"),
        (409, {"code": "request_in_progress"}, "409_request_in_progress"),
        (409, {"code": "made_up_by_a_client"}, "409_other"),
        (409, None, "409_other"),
        (422, {}, "422"),
        (429, {}, "429"),
        (503, None, "503"),
        (500, None, "5xx"),
        (418, None, "4xx_other"),
    ],
)
def test_checkout_outcomes_name_the_409_cause(status, body, expected):
    assert checkout_outcome(status, body) == expected


def test_a_circuit_that_opened_during_the_interval_reads_1_even_once_closed(tmp_path):
    aggregator = _aggregator(tmp_path)
    state = {"open": False}
    aggregator.watch_circuit("database", lambda: state["open"])
    aggregator.watch_circuit("redis", lambda: False)

    aggregator.circuit_opened("database")
    first = aggregator.records()[0]
    state["open"] = True
    second = aggregator.records()[0]
    state["open"] = False
    third = aggregator.records()[0]

    assert [r["DatabaseCircuitOpen"] for r in (first, second, third)] == [1, 1, 0]
    assert {r["RedisCircuitOpen"] for r in (first, second, third)} == {0}


def test_the_shops_circuits_report_through_the_process_aggregator():
    from shop.postgres.deadline import circuit
    from shop.redis import breaker

    metrics.app_metrics.records()  # start an interval of our own
    circuit.trip(OSError("test"))
    breaker.trip(OSError("test"))
    try:
        fleet = metrics.app_metrics.records()[0]
    finally:
        circuit.reset()
        breaker.reset()
    assert (fleet["DatabaseCircuitOpen"], fleet["RedisCircuitOpen"]) == (1, 1)
    assert metrics.app_metrics.records()[0]["DatabaseCircuitOpen"] == 0


def test_a_forked_child_starts_empty_with_working_locks(tmp_path):
    aggregator = _aggregator(tmp_path)
    aggregator.request(path="/api/products", status=200, duration_ms=1.0, cache="HIT")
    aggregator._lock.acquire()  # held by "another thread" at fork(), as the writer thread may hold it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            aggregator.request(path="/api/checkout", status=201, duration_ms=2.0, cache="")
            records = aggregator.records()
            endpoints = [r["Endpoint"] for r in records if "Endpoint" in r]
            os.write(write, json.dumps([*endpoints, records[0]["ProductCacheHits"]]).encode())
        finally:
            os._exit(0)
    os.close(write)
    aggregator._lock.release()
    with os.fdopen(read) as pipe:
        reported = json.loads(pipe.read() or "null")
    os.waitpid(child, 0)
    assert reported == ["checkout", 0]
    assert _by_dimension(aggregator.records(), "Endpoint")["product_list"]["Requests"] == 1


def test_flush_appends_whole_lines_that_keep_the_rules(tmp_path):
    aggregator = _aggregator(tmp_path, properties={"version": "v1"})
    aggregator.request(path="/api/products", status=200, duration_ms=1.0, cache="HIT")
    aggregator.flush()
    aggregator.request(path="/api/checkout", status=201, duration_ms=3.0, cache="")
    aggregator.flush()

    lines = (tmp_path / "metrics.log").read_text().splitlines()

    assert len(lines) == 5  # fleet + product_list; fleet + checkout + its outcome
    assert all(record_errors(line) == [] for line in lines)
    assert {json.loads(line)["version"] for line in lines} == {"v1"}


def test_nothing_is_counted_without_a_file(client):
    # given: the test settings name no METRICS_EMF_FILE
    metrics.app_metrics.records()

    client.get("/api/no-such-endpoint")

    assert metrics.app_metrics.enabled is False
    assert [record.get("Endpoint") for record in metrics.app_metrics.records()] == [None]


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"Requests": 1}, "no _aws object"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["Endpoint"]],
          "Metrics": [{"Name": "Requests"}]}]}, "Requests": 1}, "dimension 'Endpoint' has no string member"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],
          "Metrics": [{"Name": "Requests", "Unit": "Requests"}]}]}, "Requests": 1}, "unknown Unit"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],
          "Metrics": [{"Name": "Requests"}]}]}}, "has no member on the root"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],
          "Metrics": [{"Name": "L"}]}]}, "L": list(range(101))}, "an array of 1-100 numbers"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],
          "Metrics": [{"Name": "L"}]}]}, "L": {"Values": [1], "Counts": [2], "Max": 1, "Min": 1, "Count": 3,
                                               "Sum": 2}}, "Counts add up to Count"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Metrics": [{"Name": "R"}],
          "Dimensions": [[f"d{i}" for i in range(31)]]}]}, "R": 1, **{f"d{i}": "x" for i in range(31)}},
         "at most 30 names"),
        ({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]],
          "Metrics": [{"Name": f"m{i}"} for i in range(101)]}]}, **{f"m{i}": 1 for i in range(101)}}, "1-100 def"),
    ],
)  # fmt: skip
def test_the_rules_refuse_what_cloudwatch_would_refuse(record, complaint):
    errors = record_errors(json.dumps(record))
    assert any(complaint in error for error in errors), errors


# --- a request served as `make serve` serves it ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("needs_nginx", "needs_postgres", "needs_redis")
def test_requests_through_nginx_and_gunicorn_write_emf_records_cloudwatch_accepts(request, make_product):
    # given: a product on flash sale with one unit, nginx + gunicorn as `make serve` runs them (2 workers)
    doorbuster = request.getfixturevalue("on_sale")(make_product(stock=1))
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_DEBUG": "0",
        "TRUSTED_PROXY_COUNT": "1",
        "RATELIMIT_ENABLED": "0",
        "METRICS_INTERVAL_SECONDS": "1",
        "METRICS_NAMESPACE": "shop-test",
    }
    env.pop("METRICS_EMF_FILE", None)
    run_dir = Path(tempfile.mkdtemp(prefix="shop-mx-"))
    run_dir.chmod(0o755)
    pair = nginx.start(
        port=f"127.0.0.1:{free_port()}", run_dir=run_dir, workers=2, threads=2, in_flight=1,
        body_max_bytes=BODY_MAX_BYTES, env=env, output=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        nginx.wait_ready(pair)
        target = address(pair)
        sent = Counter()

        def send(method, path, *, body=b"", headers=None):
            status, _, answer = exchange(target, http_request(method, path, body=body, headers=headers))
            sent[(path, status)] += 1
            return status, answer

        # when: product reads (a miss, then hits), checkouts (201, then the gate's sold out, 401, 400)
        for _ in range(5):
            send("GET", "/api/products")
        token = json.loads(send("POST", "/api/sessions")[1])["session_token"]
        line = json.dumps({"product_id": doorbuster.pk, "quantity": 1}).encode()
        session = {"X-Session-Token": token, "Content-Type": "application/json"}
        assert send("POST", "/api/checkout", body=line, headers=session)[0] == 201
        status, answer = send("POST", "/api/checkout", body=line, headers=session)
        assert (status, json.loads(answer).get("reason")) == (409, "sold_out")
        assert send("POST", "/api/checkout", body=line, headers={"Content-Type": "application/json"})[0] == 401
        assert send("POST", "/api/checkout", body=b"[", headers=session)[0] == 400
        # and one request shed by nginx: gunicorn frozen under the one request it may hold
        frozen = gunicorn_processes(pair.gunicorn.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            held = socket.create_connection(target, timeout=10)
            held.sendall(http_request("GET", "/api/products"))
            time.sleep(0.5)
            assert send("POST", "/api/checkout", body=line, headers=session)[0] == 503
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert held.recv(65536).split(b" ", 2)[1] == b"200"
        held.close()
        sent[("/api/products", 200)] += 1
        time.sleep(1.5)  # a writer's interval passes while the server runs
        written_while_running = (Path(pair.config.log_dir) / "metrics.log").read_text().splitlines()
    finally:
        pair.stop()  # gunicorn's workers write what they counted since at exit
    lines = (Path(pair.config.log_dir) / "metrics.log").read_text().splitlines()
    access = [json.loads(line) for line in (Path(pair.config.log_dir) / "nginx-access.log").read_text().splitlines()]
    shutil.rmtree(run_dir, ignore_errors=True)

    # then: every line is a valid EMF record, some written on the interval, the rest at exit
    assert written_while_running
    assert {line: record_errors(line) for line in lines if record_errors(line)} == {}
    records = [json.loads(line) for line in lines]
    totals = Counter()
    latency_counts = Counter()
    for record in records:
        for namespace, name, dimensions in metrics_of(json.dumps(record)):
            assert namespace == "shop-test"
            value = record[name]
            key = (name, *dimensions.values())
            if isinstance(value, dict):
                latency_counts[key] += value["Count"]
            else:
                totals[key] += value
    # counted once each, across workers and intervals (a forked worker does not repeat its master's counts)
    assert totals["Requests", "product_list"] == sent["/api/products", 200] == 6
    assert latency_counts["Latency", "product_list"] == 6
    assert totals["ProductCacheMisses",] >= 1 and totals["ProductCacheHits",] + totals["ProductCacheMisses",] == 6
    assert totals["Requests", "checkout"] == 4 and totals["Requests", "sessions"] == 1
    outcomes = {key[1]: count for key, count in totals.items() if key[0] == "Checkouts"}
    assert outcomes == {"201": 1, "409_sold_out": 1, "401": 1, "400": 1}
    assert pair.gunicorn.pid not in {record["pid"] for record in records}  # the master serves nothing
    # and the shed request is nginx's alone: one access line that the stack's ShedRequests filter counts
    shed = [line for line in access if all(line.get(field) == value for field, value in SHED_LINE.items())]
    # (by then nginx has sent the request to its error handler: the line names GET /_error/502, not the request)
    assert [(line["method"], line["path"], line["status"]) for line in shed] == [("GET", "/_error/502", 503)]
    assert json_filter_pattern(SHED_LINE) == (
        '{ ($.logger = "nginx.access") && ($.status = 503) && ($.upstream_addr = "shop_app") }'
    )


@pytest.mark.parametrize("interval", ["0", "-5", "soon"])
def test_a_bad_metrics_interval_stops_the_process_at_start(interval):
    environ = {**os.environ, "DJANGO_DEBUG": "1", "METRICS_INTERVAL_SECONDS": interval}
    result = subprocess.run(
        [sys.executable, "-c", "import shop.settings"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"METRICS_INTERVAL_SECONDS={interval!r}" in result.stderr or f"METRICS_INTERVAL_SECONDS={interval}" in (
        result.stderr
    )


@pytest.mark.django_db
def test_a_worker_writes_what_it_counted_when_it_exits(tmp_path, needs_postgres):
    # given: an interval far longer than the test, so only the exit can write
    env = server_env(METRICS_EMF_FILE=str(tmp_path / "metrics.log"), METRICS_INTERVAL_SECONDS="3600")
    with gunicorn_servers(env) as (url,):
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"{url}/api/no-such-endpoint", timeout=10)
        assert not (tmp_path / "metrics.log").exists()

    lines = (tmp_path / "metrics.log").read_text().splitlines()
    assert all(record_errors(line) == [] for line in lines)
    requests = [json.loads(line) for line in lines if json.loads(line).get("Endpoint") == "api_other"]
    assert sum(record["Requests"] for record in requests) == 3
