import csv
import json

import pytest

from loadtests import endpoints, outcomes
from loadtests.phases import PhaseTimeline, black_friday_phases
from loadtests.recorder import PhaseRecorder
from loadtests.summary import build_summary, format_table, write_phase_csv, write_summary
from loadtests.thresholds import Limits


@pytest.fixture
def plan():
    return black_friday_phases(time_scale=0.01, peak_users=20)


@pytest.fixture
def timeline(plan):
    timeline = PhaseTimeline([phase.name for phase in plan])
    for name, at in (("baseline", 0.0), ("ramp", 10.0), ("peak", 20.0), ("cool-down", 30.0)):
        timeline.enter(name, at=at)
    timeline.finish(at=40.0)
    return timeline


def healthy_recorder() -> PhaseRecorder:
    recorder = PhaseRecorder()
    for phase in ("baseline", "ramp", "peak", "cool-down"):
        for response_ms in range(1, 101):
            recorder.record(phase=phase, name=endpoints.PRODUCT_PAGE, response_ms=response_ms)
        for _ in range(10):
            recorder.record(phase=phase, name=endpoints.CHECKOUT, response_ms=40)
            recorder.record_checkout(phase=phase, role="shopper", outcome=outcomes.CREATED)
            recorder.record(phase=phase, name=endpoints.BOT_CHECKOUT, response_ms=5)
            recorder.record_checkout(phase=phase, role="bot", outcome=outcomes.RATE_LIMITED)
    return recorder


def summarise(recorder, timeline, plan, limits=None, before=None, after=None) -> dict:
    return build_summary(
        recorder=recorder,
        timeline=timeline,
        plan=plan,
        limits=limits or Limits(),
        cache_before=before,
        cache_after=after,
        run={"host": "http://127.0.0.1:8501"},
    )


def failed(summary) -> set[tuple[str, str]]:
    return {(check["phase"], check["name"]) for check in summary["thresholds"] if not check["passed"]}


def test_build_summary_counts_rates_and_percentiles_per_phase_and_endpoint(plan, timeline):
    summary = summarise(healthy_recorder(), timeline, plan)

    peak = next(block for block in summary["phases"] if block["name"] == "peak")
    product = peak["endpoints"][endpoints.PRODUCT_PAGE]
    assert (product["requests"], product["rps"], product["p50_ms"], product["p95_ms"], product["p99_ms"]) == (
        100,
        10.0,
        50,
        95,
        99,
    )
    assert peak["totals"]["requests"] == 120
    assert peak["planned"] == {"start_s": 9.0, "end_s": 18.0, "users_from": 20, "users_to": 20}
    assert summary["all"]["totals"]["requests"] == 4 * 120
    assert summary["all"]["duration_s"] == 40.0
    assert peak["checkout"]["shopper"]["by_status"] == {"201": 10}
    assert peak["checkout"]["bot"]["by_status"] == {"429": 10}
    assert peak["checkout"]["shopper"]["created_share"] == 1.0
    assert summary["passed"] is True
    assert failed(summary) == set()


def test_build_summary_fails_the_phase_whose_p95_is_over_its_limit(plan, timeline):
    recorder = healthy_recorder()
    for _ in range(20):
        recorder.record(phase="peak", name=endpoints.PRODUCT_LIST, response_ms=450)

    summary = summarise(recorder, timeline, plan)

    assert failed(summary) == {("peak", f"p95 {endpoints.PRODUCT_LIST} (ms)")}
    assert summary["passed"] is False


def test_build_summary_p99_at_peak_covers_every_request_of_the_peak(plan, timeline):
    recorder = healthy_recorder()
    recorder.record(phase="peak", name=endpoints.SESSION_CREATE, response_ms=900)
    recorder.record(phase="peak", name=endpoints.SESSION_CREATE, response_ms=900)

    summary = summarise(recorder, timeline, plan)

    assert failed(summary) == {("peak", "p99 all requests (ms)")}


def test_build_summary_server_errors_and_timeouts_count_towards_the_error_rate(plan, timeline):
    recorder = healthy_recorder()
    recorder.record(phase="ramp", name=endpoints.PRODUCT_PAGE, response_ms=10, error_kind=outcomes.SERVER_ERROR)
    recorder.record(phase="ramp", name=endpoints.PRODUCT_PAGE, response_ms=10_000, error_kind=outcomes.TIMEOUT)

    summary = summarise(recorder, timeline, plan, limits=Limits(p95_product_ms=100_000, p99_peak_ms=100_000))

    ramp = next(block for block in summary["phases"] if block["name"] == "ramp")
    assert ramp["errors"] == {"server_error": 1, "timeout": 1}
    assert ramp["fatal_error_rate"] == round(2 / 122, 4)
    assert failed(summary) == {("ramp", "5xx+timeout rate")}


def test_build_summary_a_wrong_409_fails_checkout_success_but_bot_429s_do_not(plan, timeline):
    recorder = healthy_recorder()
    recorder.record_checkout(phase="peak", role="shopper", outcome=outcomes.IN_STOCK_409)
    recorder.record_checkout(phase="peak", role="shopper", outcome=outcomes.SOLD_OUT)

    summary = summarise(recorder, timeline, plan)

    shopper = next(block for block in summary["phases"] if block["name"] == "peak")["checkout"]["shopper"]
    assert (shopper["attempts"], shopper["created"], shopper["sold_out"]) == (12, 10, 1)
    assert shopper["success_share"] == round(11 / 12, 4)
    assert failed(summary) == {
        ("peak", "checkout success share"),
        ("all", "checkout success share"),
        ("peak", "checkout 201 share"),
    }


def test_build_summary_too_few_201s_fail_the_created_share(plan, timeline):
    recorder = healthy_recorder()
    for _ in range(5):
        recorder.record_checkout(phase="baseline", role="shopper", outcome=outcomes.SOLD_OUT)

    summary = summarise(recorder, timeline, plan, limits=Limits(min_created_share=0.7))

    assert failed(summary) == {("baseline", "checkout 201 share")}


def test_build_summary_cache_hit_rate_is_the_runs_own_share(plan, timeline):
    before = {"cache_hits": 100, "cache_misses": 100, "cache_hit_rate": 0.5}
    after = {"cache_hits": 1090, "cache_misses": 110, "cache_hit_rate": 0.9083}

    summary = summarise(healthy_recorder(), timeline, plan, before=before, after=after)

    assert summary["cache"]["hit_rate_during_run"] == 0.99
    assert (summary["cache"]["hits_during_run"], summary["cache"]["misses_during_run"]) == (990, 10)


def test_build_summary_unreadable_metrics_leave_the_hit_rate_empty(plan, timeline):
    summary = summarise(healthy_recorder(), timeline, plan, before={"error": "/api/metrics answered 401"}, after=None)

    assert summary["cache"]["hit_rate_during_run"] is None
    assert summary["passed"] is True


def test_build_summary_a_phase_without_requests_skips_its_checks(plan):
    timeline = PhaseTimeline([phase.name for phase in plan])
    timeline.enter("baseline", at=0.0)
    timeline.finish(at=10.0)
    recorder = PhaseRecorder()
    recorder.record(phase="baseline", name=endpoints.PRODUCT_PAGE, response_ms=5)

    summary = summarise(recorder, timeline, plan)

    peak_checks = [check for check in summary["thresholds"] if check["phase"] == "peak"]
    assert peak_checks and all(check["skipped"] and check["passed"] for check in peak_checks)


def test_write_summary_and_format_table(tmp_path, plan, timeline):
    recorder = healthy_recorder()
    recorder.record(phase="peak", name=endpoints.PRODUCT_LIST, response_ms=450)
    summary = summarise(recorder, timeline, plan, limits=Limits(p95_product_ms=1))

    write_summary(summary, tmp_path / "run" / "summary.json")
    table = format_table(summary)

    assert json.loads((tmp_path / "run" / "summary.json").read_text())["passed"] is False
    peak_line = next(line for line in table.splitlines() if line.startswith("peak") and "/api/products/[id]" in line)
    assert peak_line.split()[3:9] == ["100", "10.0", "50", "95", "99", "100"]
    assert "FAILED peak: p95 GET /api/products/[id] (ms) = 95, wanted < 1" in table
    assert table.endswith("thresholds met")


def test_build_summary_a_failed_stock_reset_fails_the_run(plan, timeline):
    summary = build_summary(
        recorder=healthy_recorder(),
        timeline=timeline,
        plan=plan,
        limits=Limits(),
        cache_before=None,
        cache_after=None,
        run={"setup_errors": ["stock reset failed: no inventory rows"]},
    )

    assert failed(summary) == set()
    assert summary["passed"] is False
    assert format_table(summary).endswith("setup: stock reset failed: no inventory rows\nFAILED: 29/29 thresholds met")


def test_build_summary_checkouts_without_an_answer_are_named_by_status(plan, timeline):
    recorder = healthy_recorder()
    recorder.record_checkout(phase="peak", role="shopper", outcome=outcomes.NO_ANSWER)
    recorder.record_checkout(phase="peak", role="shopper", outcome=outcomes.FAILED)

    summary = summarise(recorder, timeline, plan)

    shopper = next(block for block in summary["phases"] if block["name"] == "peak")["checkout"]["shopper"]
    assert shopper["by_status"] == {"201": 10, "5xx": 1, "no answer": 1}
    assert shopper["success_share"] == round(10 / 12, 4)


def test_write_phase_csv_has_a_row_per_phase_and_endpoint(tmp_path, plan, timeline):
    summary = summarise(healthy_recorder(), timeline, plan)

    write_phase_csv(summary, tmp_path / "phases.csv")

    with (tmp_path / "phases.csv").open() as file:
        rows = list(csv.DictReader(file))
    peak = {row["Name"]: row for row in rows if row["Phase"] == "peak"}
    assert set(peak) == {endpoints.PRODUCT_PAGE, endpoints.CHECKOUT, endpoints.BOT_CHECKOUT, "Aggregated"}
    assert (peak["Aggregated"]["Requests"], peak[endpoints.PRODUCT_PAGE]["p95"]) == ("120", "95")
    assert len(rows) == 5 * 4


def test_build_summary_of_a_run_stopped_before_the_shape_finished_is_incomplete_and_never_passes(plan):
    # given: every threshold met, but the run stopped during its ramp
    timeline = PhaseTimeline([phase.name for phase in plan])
    timeline.enter("baseline", at=0.0)
    timeline.enter("ramp", at=3.0)
    timeline.finish(at=5.0)
    recorder = PhaseRecorder()
    for phase in ("baseline", "ramp"):
        recorder.record(phase=phase, name=endpoints.PRODUCT_PAGE, response_ms=5)

    summary = build_summary(
        recorder=recorder,
        timeline=timeline,
        plan=plan,
        limits=Limits(),
        cache_before=None,
        cache_after=None,
        run={"host": "http://127.0.0.1:8501"},
        finished=False,
    )

    assert (summary["verdict"], summary["passed"]) == ("INCOMPLETE", False)
    assert failed(summary) == set()
    assert summary["completion"] == {
        "finished": False,
        "phases_reached": ["baseline", "ramp"],
        "phases_not_reached": ["peak", "cool-down"],
        "ran_s": 5.0,
        "planned_s": 18.6,
    }
    verdict = format_table(summary).splitlines()[-1]
    assert verdict.startswith("INCOMPLETE: stopped after 5.0 s of the planned 18.6 s; phases reached: baseline, ramp")
    assert "measured 2 requests, 0 failures" in verdict
    assert "PASSED" not in format_table(summary)


def test_build_summary_of_a_finished_run_is_passed_or_failed(plan, timeline):
    passing = summarise(healthy_recorder(), timeline, plan)
    failing = summarise(healthy_recorder(), timeline, plan, limits=Limits(p95_product_ms=1))

    assert (passing["verdict"], passing["completion"]["finished"]) == ("PASSED", True)
    assert failing["verdict"] == "FAILED"
    assert format_table(failing).splitlines()[-1].startswith("FAILED: ")


def doorbuster_summary(*, units: int, extra_crowd: tuple[str, ...] = (), extra_bots: tuple[str, ...] = ()) -> dict:
    plan = black_friday_phases(time_scale=0.01, peak_users=20, doorbuster=True)
    timeline = PhaseTimeline([phase.name for phase in plan])
    for name, at in (("baseline", 0.0), ("ramp", 3.0), ("doorbuster", 9.0), ("peak", 10.2), ("cool-down", 18.0)):
        timeline.enter(name, at=at)
    timeline.finish(at=18.6)
    recorder = PhaseRecorder()
    crowd = [outcomes.CREATED] * 8 + [outcomes.SOLD_OUT] * 5 + [outcomes.GATE_UNDERSELL] + list(extra_crowd)
    bots = [outcomes.CREATED] * 4 + [outcomes.LIMIT_REFUSED] * 3 + [outcomes.RATE_LIMITED] * 10 + list(extra_bots)
    for role, name, attempts in (
        ("doorbuster", endpoints.DOORBUSTER_CHECKOUT, crowd),
        ("doorbuster_bot", endpoints.DOORBUSTER_BOT_CHECKOUT, bots),
    ):
        for outcome in attempts:
            recorder.record(phase="doorbuster", name=name, response_ms=30)
            recorder.record_checkout(phase="doorbuster", role=role, outcome=outcome)
    return build_summary(
        recorder=recorder,
        timeline=timeline,
        plan=plan,
        limits=Limits(),
        cache_before=None,
        cache_after=None,
        run={"doorbuster": {"product_id": 99, "units": units, "limit": 2, "crowd": 14, "bots": 2}},
    )


def test_doorbuster_phase_sold_within_its_stock_and_limits_passes_and_reports_the_gate_undersell():
    summary = doorbuster_summary(units=12)

    door = next(block for block in summary["phases"] if block["name"] == "doorbuster")["checkout"]["doorbuster"]
    assert (door["units_sold"], door["over_limit"], door["gate_undersell"]) == (12, 0, 1)
    assert door["crowd"]["success_share"] == 1.0
    assert door["bots"]["by_status"] == {"201": 4, "409 limit_exceeded": 3, "429": 10}
    assert failed(summary) == set()
    names = {(check["phase"], check["name"]) for check in summary["thresholds"] if not check["skipped"]}
    assert ("all", "doorbuster units sold past its stock") in names
    assert ("doorbuster", "p95 POST /api/checkout (doorbuster) (ms)") in names
    assert ("doorbuster", "p99 all requests (ms)") in names
    assert "doorbuster doorbuster: 12 units sold, 0 past the limit, 1 gate undersells" in format_table(summary)


@pytest.mark.parametrize(
    ("units", "extra_crowd", "extra_bots", "expected"),
    [
        (10, (), (), {("all", "doorbuster units sold past its stock")}),
        (
            13,
            (),
            (outcomes.OVER_LIMIT,),
            {
                ("doorbuster", "doorbuster sales past the per-session limit"),
                ("all", "doorbuster sales past the per-session limit"),
            },
        ),
        (
            12,
            (outcomes.IN_STOCK_409,),
            (),
            {("doorbuster", "doorbuster crowd success share"), ("all", "doorbuster crowd success share")},
        ),
    ],
)
def test_doorbuster_phase_fails_an_oversell_a_sale_past_the_limit_and_a_wrong_refusal(
    units, extra_crowd, extra_bots, expected
):
    summary = doorbuster_summary(units=units, extra_crowd=extra_crowd, extra_bots=extra_bots)

    assert failed(summary) == expected
    assert summary["verdict"] == "FAILED"


@pytest.mark.parametrize(("shed", "passes"), [(1, True), (3, False)])
def test_shed_503s_are_counted_apart_and_fail_only_past_their_own_rate(plan, timeline, shed, passes):
    # given: 120 requests a phase; at the peak, `shed` more answered 503 overloaded by the front
    recorder = healthy_recorder()
    for _ in range(shed):
        recorder.record(phase="peak", name=endpoints.PRODUCT_PAGE, response_ms=2, error_kind=outcomes.SHED)

    summary = summarise(recorder, timeline, plan)

    peak = next(block for block in summary["phases"] if block["name"] == "peak")
    assert peak["errors"] == {outcomes.SHED: shed}
    assert peak["fatal_error_rate"] == 0.0
    assert peak["shed_rate"] == round(shed / (120 + shed), 4)
    # (over the whole run's 480 requests, 3 shed stay under 1 %)
    assert failed(summary) == (set() if passes else {("peak", "shed 503 rate")})
