"""The load test end to end: loadtests/run.py migrates and seeds the test database, starts gunicorn on it and on
Redis, runs locust as a subprocess (gevent's monkey-patching never enters the test process) and stops the server.
"""

import json

import pytest
from django.db import connection
from django.db.models import Sum

from catalog.models import Inventory
from checkout.models import OrderLine
from loadtests import stock
from loadtests.run import (
    ANSWERED,
    DEDICATED,
    FLAGGED,
    NEW,
    RELAXED_PER_IP_RATE,
    RunError,
    is_local,
    locust_command,
    parse_args,
    run,
    server_environment,
    stock_reset_consent,
    worker_command,
)
from tests.loadtests.runs import NO_LATENCY_LIMITS, free_smoke_port, locust_counts, port_answers, run_loadtest
from tests.loadtests.test_stock import make_products
from tests.workers import HEAVY

pytestmark = HEAVY

DOORBUSTER_ARGS = ("--doorbuster-units=8", "--doorbuster-limit=2", "--doorbuster-crowd=20", "--doorbuster-bots=2")


def test_loadtest_smoke_run_writes_a_summary_that_matches_locust_and_fails_on_an_impossible_threshold(
    server_env, tmp_path
):
    port = free_smoke_port()

    # when: a short run with reachable thresholds, long enough for a doorbuster (1.2 s) of 8 units, 2 per session,
    # raced for by 20 shoppers and 2 bots
    passing = run_loadtest(
        server_env,
        tmp_path / "pass",
        port,
        *NO_LATENCY_LIMITS,
        *DOORBUSTER_ARGS,
        run_args=("--time-scale", "0.01", "--peak-users", "12"),
    )

    # then: it passes, and summary.json counts what locust counted
    assert passing.returncode == 0, passing.stdout[-3000:] + passing.stderr[-3000:]
    summary = json.loads((tmp_path / "pass" / "summary.json").read_text())
    counts = locust_counts(tmp_path / "pass")
    whole_run = summary["all"]
    assert counts.pop("Aggregated") == (whole_run["totals"]["requests"], whole_run["totals"]["failures"])
    assert counts == {name: (row["requests"], row["failures"]) for name, row in whole_run["endpoints"].items()}
    assert sum(block["totals"]["requests"] for block in summary["phases"]) == whole_run["totals"]["requests"]
    assert whole_run["totals"]["failures"] == 0
    shopper, bot = whole_run["checkout"]["shopper"], whole_run["checkout"]["bot"]
    assert shopper["created"] > 0 and shopper["success_share"] == 1.0
    # One bot without think time passes the per-session limit within the run and is throttled.
    assert bot["by_status"].get("429", 0) > 0
    assert summary["cache"]["after"]["cache_hits"] > summary["cache"]["before"]["cache_hits"]
    # The runner adds the app's own time per request from the server's log.
    assert summary["app_time"]["all"]["requests"] >= whole_run["totals"]["requests"]
    assert summary["passed"] is True
    assert (tmp_path / "pass" / "report.html").exists()
    assert "gunicorn stopped" in passing.stdout and "PASSED" in passing.stdout
    # The doorbuster sold no unit past its stock nor past a session's limit, and the database agrees with the clients.
    door = whole_run["checkout"]["doorbuster"]
    sale = summary["run"]["doorbuster"]
    assert door["crowd"]["attempts"] > 0 and door["bots"]["attempts"] > 0
    assert door["over_limit"] == 0 and door["units_sold"] <= 8
    assert Inventory.objects.get(product_id=sale["product_id"]).quantity == 8 - door["units_sold"]
    units_per_session = (
        OrderLine.objects.filter(product_id=sale["product_id"])
        .values("order__session_id")
        .annotate(units=Sum("quantity"))
    )
    assert sum(row["units"] for row in units_per_session) == door["units_sold"]
    assert max((row["units"] for row in units_per_session), default=0) <= 2

    # when: the smoke run with a p95 no server can meet, without the doorbuster
    failing = run_loadtest(
        server_env, tmp_path / "fail", port, *NO_LATENCY_LIMITS, "--max-p95-product-ms=0", "--doorbuster-units=0"
    )

    # then: locust exits non-zero, the summary names the threshold, and the server was stopped all the same
    assert failing.returncode == 1, failing.stdout[-3000:] + failing.stderr[-3000:]
    summary = json.loads((tmp_path / "fail" / "summary.json").read_text())
    assert summary["passed"] is False
    assert {check["name"] for check in summary["thresholds"] if not check["passed"]} <= {
        "p95 GET /api/products (ms)",
        "p95 GET /api/products/[id] (ms)",
    }
    assert "gunicorn stopped" in failing.stdout
    assert not port_answers(port)


def test_server_environment_raises_only_the_per_ip_limits(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("RATELIMIT_CHECKOUT_PER_SESSION", "20/m")
    monkeypatch.delenv("RATELIMIT_ALLOW_IPS", raising=False)

    env = server_environment(8501)

    assert env["RATELIMIT_SESSIONS_PER_IP"] == env["RATELIMIT_CHECKOUT_PER_IP"] == RELAXED_PER_IP_RATE
    assert env["RATELIMIT_CHECKOUT_PER_SESSION"] == "20/m"
    assert "RATELIMIT_ALLOW_IPS" not in env
    assert (env["PORT"], env["DJANGO_DEBUG"]) == ("8501", "0")
    assert env["METRICS_TOKEN"]


@pytest.mark.parametrize(
    ("database_url", "redis_url"),
    [("sqlite:///db.sqlite3", "redis://127.0.0.1:6379/0"), ("postgres://postgres@127.0.0.1/shop", "")],
)
def test_server_environment_refuses_a_stack_that_is_not_postgres_and_redis(monkeypatch, database_url, redis_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)

    with pytest.raises(RunError):
        server_environment(8501)


def test_locust_command_resets_stock_only_on_a_local_server(tmp_path):
    args, extra = parse_args(["--host", "https://shop.example.com", "--peak-users", "50", "--", "--bots", "3"])

    remote = locust_command(args, extra, tmp_path, reset_stock=is_local(args.host))
    local = locust_command(args, extra, tmp_path, reset_stock=True)

    assert "--reset-stock" not in remote
    assert "--reset-stock" in local
    assert remote[-2:] == ["--bots", "3"]
    assert "--headless" in remote
    assert is_local("http://127.0.0.1:8501") and is_local("http://localhost:8501")


@pytest.mark.parametrize(
    ("host", "database_url"),
    [
        ("127.0.0.1:{port}", "postgres://postgres@127.0.0.1:5432/shop"),
        ("http://127.0.0.1:{port}", "sqlite:///db.sqlite3"),
    ],
)
def test_run_refused_before_anything_is_started_or_written(monkeypatch, tmp_path, host, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = free_smoke_port()
    args, extra = parse_args(["--host", host.format(port=port), "--results-dir", str(tmp_path / "results")])

    with pytest.raises(RunError):
        run(args, extra)

    assert not (tmp_path / "results").exists()
    assert not port_answers(port)


def test_run_refuses_to_reset_the_stock_of_a_database_not_marked_dedicated(server_env, monkeypatch, tmp_path):
    # given: somebody's catalogue (committed, so the runner's processes see it) in a database without the marker
    stock.database_mark_dedicated(dedicated=False)
    make_products(3)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, server_env[name])
    port = free_smoke_port()
    args, extra = parse_args(["--host", f"http://127.0.0.1:{port}", "--results-dir", str(tmp_path / "results")])
    questions = []

    # when: nobody to ask (no terminal, no RESET_STOCK=1), then an operator who answers no
    with pytest.raises(RunError) as unasked:
        run(args, extra, ask=None)
    with pytest.raises(RunError) as answered_no:
        run(args, extra, ask=lambda question: questions.append(question) or "n")

    # then: both name the database, and nothing was started or written
    database = f"{connection.settings_dict['NAME']}@"
    assert "RESET_STOCK=1" in str(unasked.value) and database in str(unasked.value)
    assert database in questions[0] and "3 products" in questions[0]
    assert database in str(answered_no.value)
    assert set(Inventory.objects.values_list("quantity", flat=True)) == {3}
    assert not stock.database_is_dedicated()
    assert not (tmp_path / "results").exists()
    assert not port_answers(port)


@pytest.mark.parametrize(
    ("status", "flag", "answer", "expected"),
    [
        ({"dedicated": True, "products": 5000}, False, None, DEDICATED),
        ({"dedicated": False, "products": 0}, False, None, NEW),
        ({"dedicated": False, "products": 5000}, True, None, FLAGGED),
        ({"dedicated": False, "products": 5000}, False, "y", ANSWERED),
        ({"dedicated": False, "products": 5000}, False, "yes", ANSWERED),
        ({"dedicated": False, "products": 5000}, False, "", RunError),
        ({"dedicated": False, "products": 5000}, False, None, RunError),
    ],
)
def test_stock_reset_consent(status, flag, answer, expected):
    status = {"database": "shop@127.0.0.1:5432", **status}
    ask = None if answer is None else (lambda _question: answer)

    if expected is RunError:
        with pytest.raises(RunError, match=r"shop@127\.0\.0\.1:5432"):
            stock_reset_consent(status, flag=flag, ask=ask)
    else:
        assert stock_reset_consent(status, flag=flag, ask=ask) == expected


def test_locust_command_confirms_the_reset_only_when_the_operator_did(tmp_path):
    args, extra = parse_args(["--workers", "2", "--master-port", "18299"])

    confirmed = locust_command(args, extra, tmp_path, reset_stock=True, confirmed=True)
    dedicated = locust_command(args, extra, tmp_path, reset_stock=True)

    assert "--reset-stock-confirmed" in confirmed and "--reset-stock-confirmed" not in dedicated
    assert confirmed[confirmed.index("--master-bind-port") + 1] == "18299"
    assert confirmed[confirmed.index("--expect-workers") + 1] == "2"
    assert worker_command(args)[-4:] == ["--master-host", "127.0.0.1", "--master-port", "18299"]
