"""The app's own CloudWatch metrics: counted per process, written as Embedded Metric Format records once a minute.

No API call on the request path. A request adds a few counters and one latency bucket to this process's
aggregate (under one lock); a daemon thread writes the aggregate as EMF records, one line each, to
METRICS_EMF_FILE once every METRICS_INTERVAL_SECONDS (aligned to the wall clock, so each minute holds one
record per process), and at exit. The CloudWatch agent ships that file to a log group, where CloudWatch
extracts the metrics. After gunicorn forks, each worker starts with an empty aggregate, new locks and its own
writer thread.

What is written (namespace METRICS_NAMESPACE; docs/metrics.md):

    dimensions  Endpoint   Requests, Errors5xx, Unavailable503, RateLimited429 (Count), Latency (Milliseconds)
    dimensions  Outcome    Checkouts (Count): "201", "409_sold_out", "503", ... (checkout_outcome)
    none                   ProductCacheHits, ProductCacheMisses, ProductCacheBypasses (Count),
                           DatabaseCircuitOpen, RedisCircuitOpen (None: 1 when open at any moment of the interval)

Latency is a distribution, not one value per request: `{"Values", "Counts", "Max", "Min", "Count", "Sum"}`, the
shape the CloudWatch agent and the OpenTelemetry EMF exporter write, so CloudWatch computes percentiles (p99)
over every process of the fleet. Values are the midpoints of 100 buckets growing by 15 % from 0.1 ms (up to 117
s): a percentile is off by at most 7.5 %; Max, Min and Sum are exact.
"""

import atexit
import json
import math
import os
import threading
import time
from collections.abc import Callable

# Latency buckets: bucket i holds [FIRST * GROWTH**i, FIRST * GROWTH**(i+1)) ms; EMF allows 100 values a metric.
BUCKETS = 100
FIRST_MS = 0.1
GROWTH = 1.15
_PER_LOG = 1 / math.log(GROWTH)
_MIDPOINTS = [round(FIRST_MS * GROWTH ** (index + 0.5), 3) for index in range(BUCKETS)]

# Request paths by class: the Endpoint dimension, a fixed set so the metric count stays fixed.
_EXACT = {
    "/api/products": "product_list",
    "/api/checkout": "checkout",
    "/api/cart/checkout": "checkout",
    "/api/sessions": "sessions",
    "/api/cart": "cart",
    "/api/inventory": "inventory",
    "/health": "health",
    "/health/ready": "health",
}
_PREFIXES = (
    ("/api/products/", "product_detail"),
    ("/api/inventory/", "inventory"),
    ("/api/cart/", "cart"),
    ("/api/orders/", "orders"),
    ("/api/", "api_other"),
    ("/static/", "static"),
)
ENDPOINTS = frozenset([*_EXACT.values(), *(name for _, name in _PREFIXES), "pages"])
CACHE_METRICS = {"HIT": "ProductCacheHits", "MISS": "ProductCacheMisses", "BYPASS": "ProductCacheBypasses"}
# 409 refusals of a checkout by cause: the error code, or the gate's reason (sold_out, sale_not_started).
CHECKOUT_409_CAUSES = frozenset(
    ["insufficient_stock", "sold_out", "sale_not_started", "limit_exceeded", "request_in_progress", "cart_empty"]
)
CIRCUITS = {"database": "DatabaseCircuitOpen", "redis": "RedisCircuitOpen"}


def endpoint_class(path: str) -> str:
    exact = _EXACT.get(path)
    if exact is not None:
        return exact
    for prefix, name in _PREFIXES:
        if path.startswith(prefix):
            return name
    return "pages"


def checkout_outcome(status: int, body) -> str:
    """The Outcome dimension of a checkout answer: its status, a 409 with its cause, any other 5xx as "5xx"."""
    if status == 409:
        cause = ""
        if isinstance(body, dict):
            cause = body.get("reason") or body.get("code") or ""
        return f"409_{cause}" if cause in CHECKOUT_409_CAUSES else "409_other"
    if status in (201, 400, 401, 404, 422, 429, 503):
        return str(status)
    return "5xx" if status >= 500 else "4xx_other"


class _Endpoint:
    __slots__ = ("buckets", "errors", "limited", "max_ms", "min_ms", "requests", "total_ms", "unavailable")

    def __init__(self):
        self.requests = self.errors = self.unavailable = self.limited = 0
        self.buckets: dict[int, int] = {}
        self.total_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0


class Aggregator:
    """One process's counters for the current interval, and the thread that writes them out."""

    def __init__(self):
        self.enabled = False
        self.path = ""
        self.namespace = "shop-local"
        self.interval = 60.0
        self.properties: dict = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._writing = False  # whether this process runs its writer thread (a forked child does not, yet)
        self._reset()
        atexit.register(self.flush)
        # A lock another thread held at fork() stays held in the child forever, and a child must not write its
        # parent's counts a second time: a child starts with new locks and nothing counted.
        os.register_at_fork(after_in_child=self._after_fork)

    def configure(self, *, path: str, namespace: str, interval: float, properties: dict | None = None) -> None:
        """Write to `path` (empty: count nothing) every `interval` seconds under `namespace`."""
        self.path = path
        self.namespace = namespace
        self.interval = float(interval)
        self.properties = dict(properties or {})
        self.enabled = bool(path)

    def watch_circuit(self, name: str, is_open: Callable[[], bool]) -> None:
        """How to read circuit `name` (CIRCUITS) when an interval is written: its metric is 1 when it is open then,
        or when it opened at any moment of the interval (circuit_opened)."""
        self._gauges[CIRCUITS[name]] = is_open

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._writing = False
        self._reset()

    def _reset(self) -> None:
        self._started = time.time()
        self._endpoints: dict[str, _Endpoint] = {}
        self._outcomes: dict[str, int] = {}
        self._cache = dict.fromkeys(CACHE_METRICS.values(), 0)
        self._marks: dict[str, float] = {}

    # --- the request path -------------------------------------------------------------------------------------

    def request(self, path: str, status: int, duration_ms: float, cache: str, response=None) -> None:
        """Count one answered request. `response` is read only for a checkout's 409 (its code and reason)."""
        if not self._writing:
            self._start_writer()
        endpoint = endpoint_class(path)
        outcome = checkout_outcome(status, getattr(response, "data", None)) if endpoint == "checkout" else None
        bucket = int(math.log(duration_ms / FIRST_MS) * _PER_LOG) if duration_ms > FIRST_MS else 0
        if bucket >= BUCKETS:
            bucket = BUCKETS - 1
        cache_metric = CACHE_METRICS.get(cache)
        with self._lock:
            counts = self._endpoints.get(endpoint)
            if counts is None:
                counts = self._endpoints[endpoint] = _Endpoint()
            counts.requests += 1
            if status >= 500:
                counts.errors += 1
                if status == 503:
                    counts.unavailable += 1
            elif status == 429:
                counts.limited += 1
            counts.buckets[bucket] = counts.buckets.get(bucket, 0) + 1
            counts.total_ms += duration_ms
            if duration_ms < counts.min_ms:
                counts.min_ms = duration_ms
            if duration_ms > counts.max_ms:
                counts.max_ms = duration_ms
            if cache_metric is not None:
                self._cache[cache_metric] += 1
            if outcome is not None:
                self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1

    def circuit_opened(self, name: str) -> None:
        """A circuit (CIRCUITS) opened: its metric is 1 for this interval even if it closes again before the end."""
        if self.enabled:
            self._marks[CIRCUITS[name]] = 1

    # --- writing ----------------------------------------------------------------------------------------------

    def records(self, *, now: float | None = None) -> list[dict]:
        """Take this interval's counts (starting the next interval) and return them as EMF records."""
        now = time.time() if now is None else now
        with self._lock:
            started, endpoints, outcomes = self._started, self._endpoints, self._outcomes
            cache, marks = self._cache, self._marks
            self._reset()
            self._started = now
        timestamp = int(started * 1000)
        fleet = {**cache}
        for name in CIRCUITS.values():
            read = self._gauges.get(name)
            fleet[name] = 1 if marks.get(name) or (read is not None and read()) else 0
        records = [self._record(timestamp, {}, fleet, units={name: "None" for name in CIRCUITS.values()})]
        for endpoint, counts in sorted(endpoints.items()):
            values = {
                "Requests": counts.requests,
                "Errors5xx": counts.errors,
                "Unavailable503": counts.unavailable,
                "RateLimited429": counts.limited,
                "Latency": _distribution(counts),
            }
            records.append(self._record(timestamp, {"Endpoint": endpoint}, values, units={"Latency": "Milliseconds"}))
        for outcome, count in sorted(outcomes.items()):
            records.append(self._record(timestamp, {"Outcome": outcome}, {"Checkouts": count}))
        return records

    def _record(self, timestamp: int, dimensions: dict, values: dict, *, units: dict | None = None) -> dict:
        units = units or {}
        directive = {
            "Namespace": self.namespace,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": units.get(name, "Count")} for name in values],
        }
        return {"_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]}, **dimensions, **values,
                **self.properties, "pid": os.getpid()}  # fmt: skip

    def flush(self) -> None:
        """Write this interval's records now (the writer thread, and at exit)."""
        if not self.enabled or not self._writing:
            return
        lines = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in self.records())
        try:
            # One write of whole lines in append mode: the workers of one gunicorn share the file, and logrotate's
            # copytruncate leaves it for the next write to start over at the end.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, lines.encode())
            finally:
                os.close(descriptor)
        except OSError:
            pass  # a full or missing disk must not fail requests; the next interval tries again

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._writing:
                return
            self._writing = True
            self._started = time.time()
        threading.Thread(target=self._run, name="metrics-writer", daemon=True).start()

    def _run(self) -> None:
        wake = threading.Event()
        while True:
            now = time.time()
            # Just after the interval's boundary of the wall clock, so each minute of CloudWatch holds one record a
            # process (a wait that ends a hair early would start the next interval in the minute before).
            if wake.wait(self.interval - now % self.interval + 0.005):
                return
            self.flush()


def _distribution(counts: _Endpoint) -> dict:
    buckets = sorted(counts.buckets.items())
    return {
        "Values": [_MIDPOINTS[index] for index, _ in buckets],
        "Counts": [count for _, count in buckets],
        "Max": round(counts.max_ms, 3),
        "Min": round(counts.min_ms, 3),
        "Count": counts.requests,
        "Sum": round(counts.total_ms, 3),
    }


app_metrics = Aggregator()
