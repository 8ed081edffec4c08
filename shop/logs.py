"""One JSON object per log line on stdout, which CloudWatch Logs can query field by field."""

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii

# One encoder for every line: json.dumps(default=...) would build a new one per call.
_ENCODER = json.JSONEncoder(default=str)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def json_line(*, created: float, level: str, logger: str, message: str, fields: dict) -> str:
    entry = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    entry.update(fields)
    return _ENCODER.encode(entry)


class _SecondCache(threading.local):
    second: int | None = None
    text = ""


_seconds = _SecondCache()


def _iso_time(created: float) -> str:
    """datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"), formatting each second only once
    per thread: the datetime alone was a third of a request line's cost."""
    second, micro = divmod(round(created * 1_000_000), 1_000_000)
    if _seconds.second != second:
        _seconds.text = datetime.fromtimestamp(second, UTC).isoformat()[:19]
        _seconds.second = second
    return f"{_seconds.text}.{micro // 1000:03d}+00:00"


def request_line(
    *, created: float, method: str, path: str, status: int, duration_ms: float, cache: str, rid: str
) -> str:
    """The request log's line: exactly json_line(level="INFO", logger="shop.request", message="request", ...) with
    these fields, written out by hand at about half the cost (one line per request, on every request)."""
    return (
        f'{{"time": "{_iso_time(created)}", "level": "INFO", "logger": "shop.request", "message": "request", '
        f'"method": {encode_basestring_ascii(method)}, "path": {encode_basestring_ascii(path)}, "status": {status}, '
        f'"duration_ms": {duration_ms!r}, "cache": {encode_basestring_ascii(cache)}, '
        f'"request_id": {encode_basestring_ascii(rid)}}}'
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in record.__dict__.items() if key not in _STANDARD}
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        return json_line(
            created=record.created,
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
            fields=fields,
        )


class BufferedLines:
    """Lines kept in memory and written to stdout in batches: by a daemon thread every `interval` seconds, at
    once when `max_lines` wait, and at exit.

    For the request log, one line per request: an append here costs a fraction of a logging call, which takes a
    handler lock and makes a write() system call per line, and under gthread's four threads that was a fifth of a
    cache hit's CPU. The price is that a worker killed outright (SIGKILL, OOM) loses its last `interval` seconds of
    request lines. Warnings and errors keep going through logging, one write each.
    """

    def __init__(self, *, interval: float = 0.2, max_lines: int = 256):
        self.interval = interval
        self.max_lines = max_lines
        self._lines: deque[str] = deque()
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()
        atexit.register(self.flush)
        # A lock another thread held at fork() stays held in the child forever: a child starts with new ones.
        os.register_at_fork(after_in_child=self._new_locks)

    def _new_locks(self) -> None:
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def append(self, line: str) -> None:
        if self._pid != os.getpid():
            self._start()
        self._lines.append(line)
        if len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            batch = []
            while self._lines:
                batch.append(self._lines.popleft())
            if not batch:
                return
            try:
                sys.stdout.write("\n".join(batch) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):  # stdout closed or its reader gone: the lines cannot be kept
                pass

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._lines.clear()  # a forked child does not write its parent's lines twice
            threading.Thread(target=self._run, name="request-log-writer", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        event = threading.Event()
        while not event.wait(self.interval):
            self.flush()


class QuietStreamHandler(logging.StreamHandler):
    """A stream handler that writes the same warning or error once per `interval`, then how often it recurred.

    "The same" is one logger, one level and one message template (record.msg before its arguments: "Service
    Unavailable: %s" for every path), and one exception type. The first occurrence in a window is written at once;
    the others in the next `interval` seconds are counted, and when the window ends one more line is written: the
    last of them, with `"repeated": <how many were not written>` and `"window_s"`. So an outage that answers
    thousands of 503s writes a few lines per kind of error every `interval` seconds, not one per request. INFO and
    below (and the request log, which does not go through logging) are written as before.
    """

    def __init__(self, stream=None, *, interval: float = 10.0):
        super().__init__(stream)
        self.interval = interval
        self._windows: dict[tuple, list] = {}  # key -> [window end, records not written, last such record]
        self._windows_lock = threading.Lock()
        self._sweeper_pid: int | None = None
        # The parent's sweeper thread may hold the lock at fork() (gunicorn forks workers from a master that has
        # logged a warning): a child that inherited it held would block on its first warning forever.
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self._windows_lock = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return super().handle(record)
        if self._sweeper_pid != os.getpid():
            self._start_sweeper()
        key = (record.name, record.levelno, str(record.msg), record.exc_info[0] if record.exc_info else None)
        now = time.monotonic()
        with self._windows_lock:
            window = self._windows.get(key)
            if window is not None and now < window[0]:
                window[1] += 1
                window[2] = record
                return False
            self._windows[key] = [now + self.interval, 0, None]
        if window is not None and window[1]:
            self._write_repeats(window)
        return super().handle(record)

    def reset(self) -> None:
        """Forget every open window, so the next warning of each kind is written at once (tests)."""
        with self._windows_lock:
            self._windows.clear()

    def sweep(self, now: float | None = None) -> None:
        """Write the count of every window that has ended (the sweeper thread calls this every second)."""
        now = time.monotonic() if now is None else now
        with self._windows_lock:
            ended = [key for key, window in self._windows.items() if window[0] <= now]
            windows = [self._windows.pop(key) for key in ended]
        for window in windows:
            if window[1]:
                self._write_repeats(window)

    def _write_repeats(self, window: list) -> None:
        _, repeated, record = window
        record.repeated = repeated
        record.window_s = self.interval
        super().handle(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False):
            return  # stdout closed (a test's captured output, or a reader gone): the line cannot be kept
        super().handleError(record)

    def _start_sweeper(self) -> None:
        with self._windows_lock:
            if self._sweeper_pid == os.getpid():
                return
            self._windows.clear()  # a forked child does not count its parent's records
            self._sweeper_pid = os.getpid()
        threading.Thread(target=self._sweep_every_second, name="log-repeats", daemon=True).start()

    def _sweep_every_second(self) -> None:
        event = threading.Event()
        while not event.wait(1.0):
            self.sweep()
