"""The bench's arithmetic: wrk's report line, medians over repeats, ratios to the floor, targets."""

import pytest

from bench import profile, report
from bench.run import cold_search_term, cpu_used, deep_page_query

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8601/api/products
  2 threads and 16 connections
BENCH_JSON {"requests": 10000, "duration_us": 5000000, "bytes": 1, "max_us": 48000, "mean_us": 3100.5, \
"p50_us": 2500, "p75_us": 3000, "p90_us": 4000, "p95_us": 5000, "p99_us": 9000, "errors_connect": 0, \
"errors_read": 1, "errors_write": 0, "errors_status": 3, "errors_timeout": 2}
"""


def run(endpoint: str, connections: int, rps: float, p99_ms: float, repeat: int = 1, **extra) -> report.Run:
    figures = {"p50_ms": 1.0, "p95_ms": 2.0, "max_ms": 10.0, "requests": 100, "non_2xx": 0, "socket_errors": 0}
    figures.update(extra)
    return report.Run(endpoint, connections, repeat, rps=rps, p99_ms=p99_ms, **figures)


def test_parse_wrk_reads_the_report_line():
    parsed = report.parse_wrk(WRK_OUTPUT, endpoint="list_hit", connections=16, repeat=2)

    assert (parsed.endpoint, parsed.connections, parsed.repeat) == ("list_hit", 16, 2)
    assert parsed.rps == 2000.0
    assert (parsed.p50_ms, parsed.p95_ms, parsed.p99_ms, parsed.max_ms) == (2.5, 5.0, 9.0, 48.0)
    assert parsed.non_2xx == 3
    assert parsed.socket_errors == 3
    assert parsed.status_5xx is None


def test_parse_wrk_counts_every_non_2xx_class_from_the_checkout_script():
    output = (
        'BENCH_JSON {"requests": 50, "duration_us": 1000000, "bytes": 1, "max_us": 1, "mean_us": 1, "p50_us": 1, '
        '"p75_us": 1, "p90_us": 1, "p95_us": 1, "p99_us": 1, "errors_status": 4, "status_2xx": 45, '
        '"status_4xx": 4, "status_5xx": 0, "status_other": 1, "status_409": 4}'
    )

    parsed = report.parse_wrk(output, endpoint="checkout_100", connections=64, repeat=1)

    assert parsed.non_2xx == 5
    assert parsed.status_5xx == 0


def test_parse_wrk_without_report_line_names_the_endpoint():
    with pytest.raises(ValueError, match="list_cold_page1"):
        report.parse_wrk("unable to connect to 127.0.0.1:8601", endpoint="list_cold_page1", connections=16, repeat=1)


def test_summarize_takes_medians_and_the_floor_ratio_per_concurrency():
    runs = [
        run("floor", 16, 1000, 4.0, 1),
        run("floor", 16, 1200, 6.0, 2),
        run("floor", 16, 900, 5.0, 3),
        run("list_hit", 16, 700, 8.0, 1, max_ms=30.0),
        run("list_hit", 16, 950, 9.0, 2, non_2xx=1),
        run("list_hit", 16, 800, 20.0, 3),
        run("floor", 64, 2000, 10.0),
        run("list_hit", 64, 1000, 15.0),
    ]

    rows = {(row.endpoint, row.connections): row for row in report.summarize(runs)}

    hit16 = rows[("list_hit", 16)]
    assert (hit16.rps, hit16.p99_ms, hit16.max_ms, hit16.non_2xx, hit16.repeats) == (800, 9.0, 30.0, 1, 3)
    assert (hit16.floor_rps, hit16.floor_p99_ms) == (1000, 5.0)
    assert (hit16.rps_ratio, hit16.p99_ratio) == (0.8, 1.8)
    assert rows[("list_hit", 64)].rps_ratio == 0.5
    assert rows[("floor", 64)].rps_ratio == 1.0


def test_check_targets_flags_each_miss():
    rows = report.summarize(
        [
            run("floor", 64, 2000, 10.0),
            run("list_hit", 64, 1700, 25.0),
            run("detail_hit", 64, 1400, 10.0),
            run("checkout_100", 64, 150, 300.0, non_2xx=2, status_5xx=2),
            run("floor", 1, 900, 1.0),
            run("list_cold_deep", 1, 100, 30.0, p95_ms=25.0),
            run("list_cold_page1", 1, 400, 6.0, p95_ms=4.0),
        ]
    )

    check = report.check_targets(rows, worker_rss_mb={"shop": [90.0, 160.0]}, deadlocks=1, cold_latency_connections=1)

    verdicts = {target.name: target.met for target in check.targets}
    assert verdicts["list_hit @64 rps"] is True
    assert verdicts["list_hit @64 p99"] is False
    assert verdicts["detail_hit @64 rps"] is False
    assert verdicts["checkout_100 @64 rps"] is False
    assert verdicts["checkout_100 @64 p99"] is False
    assert verdicts["checkout_100 @64 5xx"] is False
    assert verdicts["checkout_100 @64 errors"] is False
    assert verdicts["checkout deadlocks"] is False
    assert verdicts["list_cold_deep @1 p95"] is False
    assert verdicts["list_cold_page1 @1 p95"] is True
    assert verdicts["shop worker RSS"] is False
    assert "MISS list_hit @64 p99" in report.format_targets(check)


def test_format_table_puts_the_floor_first_at_each_concurrency():
    rows = report.summarize([run("list_hit", 16, 800, 9.0), run("floor", 16, 1000, 5.0)])

    lines = report.format_table(rows).splitlines()

    assert lines[2].startswith("floor")
    assert lines[3].startswith("list_hit")
    assert "0.80" in lines[3]


def test_cold_search_term_is_the_commonest_long_word():
    assert cold_search_term(["Blue Wireless Mouse", "Red wireless Keyboard", "Desk Lamp 2"]) == "wireless"


def test_deep_page_query_is_ninety_percent_through():
    assert deep_page_query(100_000) == "page=900&page_size=100"
    assert deep_page_query(100) == "page=9&page_size=10"


def test_profile_summary_counts_each_function_once_per_stack():
    collapsed = (
        "<module> (app.py:1);handle (/v/lib/python3.11/site-packages/gunicorn/workers/gthread.py:10);"
        "view (app.py:5);view (app.py:7) 3\n"
        "<module> (app.py:1);handle (/v/lib/python3.11/site-packages/gunicorn/workers/gthread.py:10) 1\n"
    )

    summary = profile.summarize(collapsed)

    assert summary.samples == 4
    assert summary.inclusive["view (app.py)"] == 3
    assert summary.inclusive["handle (gunicorn/workers/gthread.py)"] == 4
    assert summary.own == {"view (app.py)": 3, "handle (gunicorn/workers/gthread.py)": 1}
    assert "75.0%  view (app.py)" in profile.format_profile(summary)


def test_summarize_takes_the_median_cpu_per_request_of_the_runs_that_have_one():
    runs = [
        run("list_hit", 16, 800, 9.0, 1, cpu_us=120, db_cpu_us=0),
        run("list_hit", 16, 800, 9.0, 2, cpu_us=100, db_cpu_us=0),
        run("list_hit", 16, 800, 9.0, 3, cpu_us=None, db_cpu_us=None),
    ]

    (row,) = report.summarize(runs)

    assert (row.cpu_us, row.db_cpu_us) == (110, 0)


def test_cpu_used_counts_new_processes_from_zero_and_skips_gone_ones():
    before = {10: 1.0, 11: 2.0, 12: 5.0}
    after = {10: 1.5, 11: 2.25, 13: 0.25}

    assert cpu_used(before, after) == 1.0


def race(**changes) -> report.DoorbusterRace:
    figures = dict(
        connections=64,
        attempts=5000,
        answered=5000,
        orders=500,
        sold_out=4500,
        shed_503=0,
        other_5xx=0,
        other=0,
        stock_after=0,
        units_sold=500,
        transactions=1100,
        socket_errors=0,
        seconds=9.5,
    )
    return report.DoorbusterRace(**{**figures, **changes})


def test_doorbuster_targets_met_by_a_clean_race():
    rows = report.summarize(
        [run("floor", 64, rps=1000, p99_ms=10), run("checkout_sold_out", 64, rps=600, p99_ms=12, non_2xx=100)]
    )

    check = report.check_doorbuster([race()], rows, units=500)

    assert [target.met for target in check.targets] == [True] * 6
    assert check.targets[-1].measured == "0.60x floor"


@pytest.mark.parametrize(
    "changes, missed",
    [
        ({"orders": 501, "units_sold": 501}, "doorbuster @64 orders"),
        ({"units_sold": 499}, "doorbuster @64 orders"),
        ({"stock_after": 1}, "doorbuster @64 stock after"),
        ({"other_5xx": 1}, "doorbuster @64 5xx (not shed)"),
        ({"transactions": 5000}, "doorbuster @64 transactions"),
        ({"socket_errors": 2}, "doorbuster @64 socket errors"),
    ],
)
def test_doorbuster_targets_name_what_went_wrong(changes, missed):
    check = report.check_doorbuster([race(**changes)], [], units=500)

    assert [target.name for target in check.targets if not target.met] == [missed]


def test_doorbuster_shed_503s_are_counted_apart_not_failed():
    check = report.check_doorbuster([race(shed_503=40, sold_out=4460)], [], units=500)

    assert all(target.met for target in check.targets)
    assert "shed 503 40" in report.format_race(race(shed_503=40))
