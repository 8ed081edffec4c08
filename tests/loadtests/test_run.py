"""The load test end to end: loadtests/run.py migrates and seeds the test database, starts gunicorn on it and on
Redis, runs locust as a subprocess (gevent's monkey-patching never enters the test process) and stops the server.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from loadtests.run import (
    RELAXED_PER_IP_RATE,
    RunError,
    is_local,
    locust_command,
    parse_args,
    run,
    server_environment,
)
from tests.workers import HEAVY, worker_ports

pytestmark = HEAVY

PROJECT_DIR = Path(__file__).resolve().parents[2]
# This suite's share of the project's port range, split between pytest-xdist workers; a concurrent run of the
# suite takes the next free one.
SMOKE_PORTS = worker_ports(range(8502, 8520))
# About 5.6 s of shape (0.9 s baseline, 1.8 s ramp, 2.7 s peak, 0.2 s cool-down): 12 shoppers and 1 bot, enough
# for some 40 shopper actions, so a run without a single checkout (0.8^40) does not happen.
SMOKE_ARGS = ("--time-scale", "0.003", "--peak-users", "12")
# Speed is not what a smoke run on a shared CI machine can judge: these limits only catch a broken run.
NO_LATENCY_LIMITS = (
    "--max-p95-product-ms=60000",
    "--max-p95-inventory-ms=60000",
    "--max-p95-checkout-ms=60000",
    "--max-p99-peak-ms=60000",
)


def database_url_of(database: dict) -> str:
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    return f"postgres://{database['USER']}{password}@{host}:{port}/{database['NAME']}"


@pytest.fixture
def server_env(needs_postgres, needs_redis, transactional_db):
    """The environment for a server in another process: the test database (data committed, so that process sees
    it; pytest-django empties it afterwards) and the test Redis."""
    return dict(
        os.environ,
        DATABASE_URL=database_url_of(settings.DATABASES["default"]),
        REDIS_URL=settings.REDIS_URL,
        METRICS_TOKEN="smoke-metrics-token",
        GUNICORN_WORKERS="2",
        # The bot (no think time) meets it within a second even on a slow machine; a shopper thinks 0.5-2.5 s
        # between actions, so in the ~6 s run it cannot reach 15 checkouts (with 5/m one sometimes did).
        RATELIMIT_CHECKOUT_PER_SESSION="15/m",
    )


def free_smoke_port() -> int:
    return next(port for port in SMOKE_PORTS if not port_answers(port))


def run_loadtest(env: dict, results_dir: Path, port: int, *locust_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.run",
            "--host",
            f"http://127.0.0.1:{port}",
            *SMOKE_ARGS,
            "--results-dir",
            str(results_dir),
            "--",
            "--bots",
            "1",
            *locust_args,
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def locust_counts(results_dir: Path) -> dict[str, tuple[int, int]]:
    with (results_dir / "locust_stats.csv").open() as file:
        return {row["Name"]: (int(row["Request Count"]), int(row["Failure Count"])) for row in csv.DictReader(file)}


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_loadtest_smoke_run_writes_a_summary_that_matches_locust_and_fails_on_an_impossible_threshold(
    server_env, tmp_path
):
    port = free_smoke_port()

    # when: a short run with reachable thresholds
    passing = run_loadtest(server_env, tmp_path / "pass", port, *NO_LATENCY_LIMITS)

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

    # when: the same run with a p95 no server can meet
    failing = run_loadtest(server_env, tmp_path / "fail", port, *NO_LATENCY_LIMITS, "--max-p95-product-ms=0")

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
