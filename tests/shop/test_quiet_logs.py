"""shop.logs.QuietStreamHandler: a repeated warning or error is written once per window, then with its count."""

import io
import json
import logging

from shop.logs import JsonFormatter, QuietStreamHandler


def quiet_logger(name: str) -> tuple[logging.Logger, io.StringIO, QuietStreamHandler]:
    stream = io.StringIO()
    handler = QuietStreamHandler(stream, interval=10.0)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger, stream, handler


def entries(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_same_error_is_written_once_then_counted_when_its_window_ends():
    logger, stream, handler = quiet_logger("tests.quiet.same")

    # when: an outage makes 500 identical errors (different paths, one template) and one other warning
    for number in range(500):
        logger.error("Service Unavailable: %s", f"/api/inventory/{number}", extra={"status_code": 503})
    logger.warning("database unavailable, failing fast")

    # then: each is written once at once
    written = entries(stream)
    assert [entry["message"] for entry in written] == [
        "Service Unavailable: /api/inventory/0",
        "database unavailable, failing fast",
    ]

    # when: the window ends
    handler.sweep(now=float("inf"))

    # then: one more line says how many were not written, as the last of them
    summary = entries(stream)[2:]
    assert len(summary) == 1
    assert summary[0]["message"] == "Service Unavailable: /api/inventory/499"
    assert (summary[0]["repeated"], summary[0]["window_s"], summary[0]["level"]) == (499, 10.0, "ERROR")


def test_info_lines_are_never_held_back():
    logger, stream, handler = quiet_logger("tests.quiet.info")

    for _ in range(50):
        logger.info("worker booted")
    handler.sweep(now=float("inf"))

    assert len(entries(stream)) == 50


def test_a_window_without_repeats_writes_nothing_more_and_the_next_error_opens_a_new_window():
    logger, stream, handler = quiet_logger("tests.quiet.windows")

    logger.error("boom")
    handler.sweep(now=float("inf"))
    logger.error("boom")

    assert [entry.get("repeated") for entry in entries(stream)] == [None, None]
