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


def test_a_child_forked_while_the_lock_is_held_can_still_log():
    # given: a handler whose lock another thread holds at the moment of fork() (the parent's sweeper, mid-sweep)
    import io
    import logging
    import os

    from shop.logs import QuietStreamHandler

    handler = QuietStreamHandler(io.StringIO())
    handler._windows_lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child: its first warning must not block on the inherited lock
            record = logging.LogRecord("x", logging.WARNING, __file__, 1, "in the child", None, None)
            handler.handle(record)
            os._exit(0 if "in the child" in handler.stream.getvalue() else 1)
    finally:
        handler._windows_lock.release()
    # then: the child logged and exited (a hung child would fail the test by timing out here)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the forked child blocked on the lock it inherited")
