import json
from collections import Counter

import pytest

from loadtests.recorder import PhaseRecorder, percentile, rounded_ms


@pytest.mark.parametrize(
    ("response_ms", "expected"), [(0.4, 0), (42.6, 43), (99.4, 99), (123.0, 120), (1567.0, 1600), (23456.0, 23000)]
)
def test_rounded_ms_keeps_two_significant_digits_above_100(response_ms, expected):
    assert rounded_ms(response_ms) == expected


def test_percentile_is_nearest_rank():
    histogram = Counter(range(1, 101))

    assert percentile(histogram, 0.50) == 50
    assert percentile(histogram, 0.95) == 95
    assert percentile(histogram, 0.99) == 99
    assert percentile(histogram, 1.0) == 100
    assert percentile(Counter(), 0.95) is None


def test_phase_recorder_buckets_by_phase_and_endpoint():
    recorder = PhaseRecorder()

    recorder.record(phase="baseline", name="GET /a", response_ms=10)
    recorder.record(phase="peak", name="GET /a", response_ms=30, error_kind="server_error")
    recorder.record(phase="peak", name="GET /b", response_ms=50)
    recorder.record_checkout(phase="peak", role="shopper", outcome="created")

    peak = recorder.combined(phase="peak")
    assert (peak.requests, peak.failures, peak.max_ms, dict(peak.errors)) == (2, 1, 50, {"server_error": 1})
    assert recorder.combined(names=("GET /a",)).requests == 2
    assert recorder.phases() == ["baseline", "peak"]
    assert recorder.checkout_outcomes(role="shopper") == Counter({"created": 1})
    assert recorder.checkout_outcomes(role="shopper", phase="baseline") == Counter()


def test_phase_recorder_drain_and_merge_add_up_a_worker_report():
    worker, master = PhaseRecorder(), PhaseRecorder()
    master.record(phase="peak", name="GET /a", response_ms=20)
    worker.record(phase="peak", name="GET /a", response_ms=120, error_kind="timeout")
    worker.record_checkout(phase="peak", role="bot", outcome="rate_limited")

    # The report travels as msgpack; JSON stands in for it (string keys only).
    report = json.loads(json.dumps(worker.drain()))
    master.merge(report)

    merged = master.combined(phase="peak", names=("GET /a",))
    assert (merged.requests, merged.failures, merged.histogram) == (2, 1, Counter({20: 1, 120: 1}))
    assert master.checkout_outcomes(role="bot") == Counter({"rate_limited": 1})
    assert worker.endpoints == {} and worker.checkouts == {}
