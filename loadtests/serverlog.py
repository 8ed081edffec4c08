"""The app's own time per request, per phase, from a local server's JSON request log (shop.request lines).

Set beside what the clients measured it splits their wait into work in the app and queueing in front of it
(gunicorn's backlog, CPUs shared with the load generator).
"""

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from loadtests.recorder import percentile, rounded_ms

# The run's own bookkeeping, not shopper traffic.
IGNORED_PATHS = frozenset({"/health", "/api/metrics"})


def app_timings(lines: Iterable[str], phases: list[dict]) -> dict[str, dict]:
    """Requests and p50/p95/p99 of the app's duration_ms per phase of a summary (each with started_at, duration_s).

    A request the app finished after the shape's last second (in flight when the run stopped) counts in the last
    window, as locust counts its answer in the last phase.
    """
    windows = [
        (phase["name"], phase["started_at"], phase["started_at"] + phase["duration_s"])
        for phase in phases
        if phase.get("started_at") is not None
    ]
    last_end = max((end for _, _, end in windows), default=None)
    histograms = {name: Counter() for name, _, _ in windows}
    for line in lines:
        entry = _request_entry(line)
        if entry is None:
            continue
        finished = datetime.fromisoformat(entry["time"]).timestamp()
        for name, start, end in windows:
            # Phases do not overlap; the whole run's window holds them all.
            if start <= finished < end or (end == last_end and finished >= end):
                histograms[name][rounded_ms(entry["duration_ms"])] += 1
    return {
        name: {
            "requests": sum(histogram.values()),
            "p50_ms": percentile(histogram, 0.50),
            "p95_ms": percentile(histogram, 0.95),
            "p99_ms": percentile(histogram, 0.99),
        }
        for name, histogram in histograms.items()
    }


def _request_entry(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if entry.get("logger") != "shop.request" or "duration_ms" not in entry or "time" not in entry:
        return None
    return None if entry.get("path") in IGNORED_PATHS else entry
