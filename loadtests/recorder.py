"""Per-phase, per-endpoint response-time histograms, error kinds and checkout outcomes.

locust's own statistics are cumulative over the run, so a p99 "at peak" needs its own recording: every request
is added to the bucket of the phase running when it finished. Buckets are plain counters, so workers of a
distributed run send theirs to the master, which adds them up (`drain` and `merge`).
"""

import math
from collections import Counter
from dataclasses import dataclass, field


def rounded_ms(response_ms: float) -> int:
    """Histogram key: exact below 100 ms, then two significant digits (what locust's own percentiles use)."""
    value = round(response_ms)
    if value < 100:
        return value
    magnitude = 10 ** (len(str(value)) - 2)
    return round(value / magnitude) * magnitude


def percentile(histogram: Counter, share: float) -> int | None:
    """Nearest-rank percentile of a histogram of rounded milliseconds; None when it is empty."""
    count = sum(histogram.values())
    if not count:
        return None
    rank = max(math.ceil(share * count), 1)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


@dataclass
class EndpointStats:
    requests: int = 0
    failures: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    histogram: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def add(self, response_ms: float, error_kind: str | None) -> None:
        self.requests += 1
        self.total_ms += response_ms
        self.max_ms = max(self.max_ms, response_ms)
        self.histogram[rounded_ms(response_ms)] += 1
        if error_kind:
            self.failures += 1
            self.errors[error_kind] += 1

    def merge(self, other: "EndpointStats") -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.histogram.update(other.histogram)
        self.errors.update(other.errors)

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "total_ms": self.total_ms,
            "max_ms": self.max_ms,
            # String keys: the dict travels to the master as msgpack and is written as JSON.
            "histogram": {str(value): count for value, count in self.histogram.items()},
            "errors": dict(self.errors),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "EndpointStats":
        return cls(
            requests=data["requests"],
            failures=data["failures"],
            total_ms=data["total_ms"],
            max_ms=data["max_ms"],
            histogram=Counter({int(value): count for value, count in data["histogram"].items()}),
            errors=Counter(data["errors"]),
        )


class PhaseRecorder:
    def __init__(self):
        self.endpoints: dict[tuple[str, str], EndpointStats] = {}
        self.checkouts: dict[tuple[str, str], Counter] = {}

    def record(self, *, phase: str, name: str, response_ms: float, error_kind: str | None = None) -> None:
        key = (phase, name)
        if key not in self.endpoints:
            self.endpoints[key] = EndpointStats()
        self.endpoints[key].add(response_ms, error_kind)

    def record_checkout(self, *, phase: str, role: str, outcome: str) -> None:
        self.checkouts.setdefault((phase, role), Counter())[outcome] += 1

    def to_dict(self) -> dict:
        return {
            "endpoints": [[phase, name, stats.to_dict()] for (phase, name), stats in self.endpoints.items()],
            "checkouts": [[phase, role, dict(outcomes)] for (phase, role), outcomes in self.checkouts.items()],
        }

    def drain(self) -> dict:
        """Everything recorded since the last drain, then start afresh (a worker's report to its master)."""
        data = self.to_dict()
        self.reset()
        return data

    def merge(self, data: dict) -> None:
        for phase, name, stats in data["endpoints"]:
            key = (phase, name)
            if key not in self.endpoints:
                self.endpoints[key] = EndpointStats()
            self.endpoints[key].merge(EndpointStats.from_dict(stats))
        for phase, role, outcomes in data["checkouts"]:
            self.checkouts.setdefault((phase, role), Counter()).update(outcomes)

    def reset(self) -> None:
        self.endpoints = {}
        self.checkouts = {}

    def phases(self) -> list[str]:
        return list(dict.fromkeys([phase for phase, _ in self.endpoints] + [phase for phase, _ in self.checkouts]))

    def combined(self, *, phase: str | None = None, names: tuple[str, ...] | None = None) -> EndpointStats:
        """One EndpointStats adding up the chosen phase (all when None) and endpoint names (all when None)."""
        total = EndpointStats()
        for (stats_phase, name), stats in self.endpoints.items():
            if (phase is None or stats_phase == phase) and (names is None or name in names):
                total.merge(stats)
        return total

    def checkout_outcomes(self, *, role: str, phase: str | None = None) -> Counter:
        total = Counter()
        for (outcome_phase, outcome_role), outcomes in self.checkouts.items():
            if outcome_role == role and (phase is None or outcome_phase == phase):
                total.update(outcomes)
        return total
