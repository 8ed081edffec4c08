"""Stampede protection across processes: 50 cold requests from two processes, one Redis, one database."""

import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tests.workers import HEAVY

pytestmark = HEAVY

THREADS_PER_PROCESS = 25


def run_stampede(path: str, *, no_lock: bool = False) -> dict:
    db = connection.settings_dict
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "tests.catalog.stampede_client", str(THREADS_PER_PROCESS), path]
    if no_lock:
        command.append("--no-lock")
    processes = [
        subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert _protocol_line(process) == "ready"
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [json.loads(_protocol_line(process)) for process in processes]
    finally:
        for process in processes:
            process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "responses": [response for report in reports for response in report["responses"]],
        "select": sum(report["statements"]["select"] for report in reports),
        "count": sum(report["statements"]["count"] for report in reports),
    }


def _protocol_line(process: subprocess.Popen) -> str:
    for line in process.stdout:
        if line.startswith("stampede "):
            return line.removeprefix("stampede ").strip()
    raise AssertionError(f"stampede client exited with {process.wait()} before reporting")


@pytest.mark.django_db(transaction=True)
def test_fifty_cold_requests_from_two_processes_rebuild_the_list_at_most_twice(
    make_products, needs_postgres, needs_redis
):
    # given: a cold cache and products beyond one page, so a rebuild reads the page and counts the rest
    make_products(150)

    # when
    result = run_stampede("/api/products")

    # then
    responses = result["responses"]
    assert len(responses) == 2 * THREADS_PER_PROCESS
    assert {response["status"] for response in responses} == {200}
    assert len({response["digest"] for response in responses}) == 1
    assert 1 <= result["select"] <= 2
    assert result["count"] <= result["select"]


@pytest.mark.django_db(transaction=True)
def test_without_the_lock_the_same_stampede_rebuilds_many_times(make_products, needs_postgres, needs_redis):
    """The control: the count above sees real rebuilds, so a broken lock would fail that test."""
    make_products(150)

    result = run_stampede("/api/products", no_lock=True)

    assert {response["status"] for response in result["responses"]} == {200}
    assert result["select"] > 2
