import json
from datetime import UTC, datetime

from loadtests.serverlog import app_timings

START = datetime(2026, 11, 27, 5, 0, tzinfo=UTC).timestamp()


def request_line(*, at: float, duration_ms: float, path: str = "/api/products/1") -> str:
    entry = {
        "time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
        "logger": "shop.request",
        "message": "request",
        "path": path,
        "status": 200,
        "duration_ms": duration_ms,
    }
    return json.dumps(entry) + "\n"


def test_app_timings_buckets_the_request_log_by_phase_window():
    phases = [
        {"name": "baseline", "started_at": START, "duration_s": 10.0},
        {"name": "peak", "started_at": START + 10, "duration_s": 10.0},
        {"name": "all", "started_at": START, "duration_s": 20.0},
    ]
    lines = [
        "[2026-11-27 05:00:00 +0000] [1] [INFO] Booting worker with pid: 2\n",
        request_line(at=START + 1, duration_ms=12),
        request_line(at=START + 2, duration_ms=30),
        request_line(at=START + 11, duration_ms=450),
        request_line(at=START + 12, duration_ms=5, path="/health"),
        request_line(at=START + 25, duration_ms=9),
        '{"time": "2026-11-27T05:00:03+00:00", "logger": "shop.redis", "message": "redis unavailable"}\n',
        "{not json\n",
    ]

    timings = app_timings(lines, phases)

    # the request finished after the shape's end (in flight when the run stopped) counts in the last phase
    assert timings["baseline"] == {"requests": 2, "p50_ms": 12, "p95_ms": 30, "p99_ms": 30}
    assert timings["peak"] == {"requests": 2, "p50_ms": 9, "p95_ms": 450, "p99_ms": 450}
    assert timings["all"] == {"requests": 4, "p50_ms": 12, "p95_ms": 450, "p99_ms": 450}


def test_app_timings_skips_phases_that_never_started():
    timings = app_timings(
        [request_line(at=START, duration_ms=3)], [{"name": "peak", "started_at": None, "duration_s": 0}]
    )

    assert timings == {}
