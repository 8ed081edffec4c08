"""The request log: one JSON line per request on stdout, written in batches."""

import io
import json
import logging
import sys
import time

import pytest

from shop.logs import BufferedLines, json_line, request_line
from shop.middleware import request_lines

pytestmark = pytest.mark.django_db


def request_entries(output: str) -> list[dict]:
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry["logger"] == "shop.request"]


def test_each_request_writes_one_json_line(client, capsys):
    client.get("/api/products?page_size=1", HTTP_X_AMZN_TRACE_ID="Root=1-abc")
    client.get("/no-such-page")
    request_lines.flush()

    first, second = request_entries(capsys.readouterr().out)

    assert first["level"] == "INFO" and first["message"] == "request"
    assert (first["method"], first["path"], first["status"]) == ("GET", "/api/products", 200)
    assert first["cache"] in {"MISS", "BYPASS"} and first["request_id"] == "Root=1-abc"
    assert first["duration_ms"] >= 0 and first["time"].endswith("+00:00")
    assert (second["path"], second["status"], second["cache"]) == ("/no-such-page", 404, "")


def test_request_lines_follow_the_log_level(client, capsys):
    logger = logging.getLogger("shop.request")
    logger.setLevel(logging.WARNING)
    try:
        client.get("/api/products")
        request_lines.flush()
    finally:
        logger.setLevel(logging.NOTSET)

    assert request_entries(capsys.readouterr().out) == []


def test_lines_reach_stdout_within_the_interval_without_a_flush(capsys):
    lines = BufferedLines(interval=0.05)
    lines.append('{"logger": "shop.request", "n": 1}')

    deadline = time.monotonic() + 3
    output = ""
    while time.monotonic() < deadline and not output:
        time.sleep(0.02)
        output += capsys.readouterr().out

    assert output == '{"logger": "shop.request", "n": 1}\n'


def test_a_full_batch_is_written_at_once(capsys):
    lines = BufferedLines(interval=3600, max_lines=3)
    for number in range(3):
        lines.append(f'{{"n": {number}}}')

    assert capsys.readouterr().out.splitlines() == ['{"n": 0}', '{"n": 1}', '{"n": 2}']


def test_a_closed_stdout_loses_the_lines_but_not_the_request(monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    lines = BufferedLines(interval=3600, max_lines=1)

    lines.append('{"n": 1}')  # written at once, into a closed stream: dropped, no exception


@pytest.mark.parametrize(
    "created",
    # "now" by name: pytest-xdist workers must collect the same test ids.
    [0.0, 1764000000.0, 1764000000.0005, 1764000000.9994999, 1764000000.9999996, 1796083199.123456,
     pytest.param(time.time(), id="now")],
)  # fmt: skip
@pytest.mark.parametrize(
    ("path", "rid"),
    [("/api/products", ""), ('/a"b\\c/\u00e9\u2603\n\t', "Root=1-\x00\x7f"), ("/\ud800", "\U0001f600")],
)
def test_request_line_is_exactly_the_json_line_it_replaces(created, path, rid):
    fields = {"method": "GET", "path": path, "status": 201, "duration_ms": 12.35, "cache": "HIT", "request_id": rid}
    expected = json_line(created=created, level="INFO", logger="shop.request", message="request", fields=fields)

    line = request_line(created=created, method="GET", path=path, status=201, duration_ms=12.35, cache="HIT", rid=rid)

    assert line == expected
    assert json.loads(line)["path"] == path


def test_runserver_adds_no_second_line_per_request():
    # runserver logs each request to django.server; the request log already wrote the request's one line
    import logging

    assert not logging.getLogger("django.server").isEnabledFor(logging.ERROR)
    assert logging.getLogger("shop.request").isEnabledFor(logging.INFO)
