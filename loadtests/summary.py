"""summary.json: per phase and per endpoint counts, rates, percentiles, errors, checkout outcomes, the app's
cache hit rate before and after, and the verdict of every threshold; plus the table printed at the end."""

import csv
import json
from collections import Counter
from pathlib import Path

from loadtests import outcomes
from loadtests.phases import Phase, PhaseTimeline
from loadtests.recorder import EndpointStats, PhaseRecorder, percentile
from loadtests.thresholds import WHOLE_RUN, Limits, evaluate

PASSED, FAILED, INCOMPLETE = "PASSED", "FAILED", "INCOMPLETE"
# The exit code of a run stopped before its shape finished (1 is a failed threshold).
INCOMPLETE_EXIT = 3


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def endpoint_row(stats: EndpointStats, duration_s: float) -> dict:
    return {
        "requests": stats.requests,
        "failures": stats.failures,
        "rps": round(stats.requests / duration_s, 2) if duration_s else None,
        "avg_ms": round(stats.total_ms / stats.requests, 1) if stats.requests else None,
        "p50_ms": percentile(stats.histogram, 0.50),
        "p95_ms": percentile(stats.histogram, 0.95),
        "p99_ms": percentile(stats.histogram, 0.99),
        "max_ms": round(stats.max_ms, 1),
        "errors": dict(sorted(stats.errors.items())),
    }


def _by_status(counts: Counter) -> dict:
    by_status = Counter()
    for outcome, count in counts.items():
        by_status[outcomes.OUTCOME_STATUS.get(outcome, "other")] += count
    return dict(sorted(by_status.items()))


def doorbuster_block(recorder: PhaseRecorder, phase: str | None) -> dict:
    """The doorbuster's crowd and bots (one unit an attempt): units sold, sales past the limit, the gate's
    momentary undersell (reported, not failed)."""
    crowd = recorder.checkout_outcomes(role="doorbuster", phase=phase)
    bots = recorder.checkout_outcomes(role="doorbuster_bot", phase=phase)
    attempts = sum(crowd.values())
    sold = crowd[outcomes.CREATED] + bots[outcomes.CREATED] + crowd[outcomes.OVER_LIMIT] + bots[outcomes.OVER_LIMIT]
    return {
        "units_sold": sold,
        "over_limit": crowd[outcomes.OVER_LIMIT] + bots[outcomes.OVER_LIMIT],
        "gate_undersell": crowd[outcomes.GATE_UNDERSELL],
        "crowd": {
            "attempts": attempts,
            "created": crowd[outcomes.CREATED],
            "sold_out": crowd[outcomes.SOLD_OUT],
            "success_share": _rate(sum(crowd[outcome] for outcome in outcomes.SUCCESSFUL_OUTCOMES), attempts),
            "by_status": _by_status(crowd),
            "outcomes": dict(sorted(crowd.items())),
        },
        "bots": {
            "attempts": sum(bots.values()),
            "created": bots[outcomes.CREATED],
            "limit_refused": bots[outcomes.LIMIT_REFUSED],
            "by_status": _by_status(bots),
            "outcomes": dict(sorted(bots.items())),
        },
    }


def checkout_block(recorder: PhaseRecorder, phase: str | None) -> dict:
    shopper = recorder.checkout_outcomes(role="shopper", phase=phase)
    bot = recorder.checkout_outcomes(role="bot", phase=phase)
    attempts = sum(shopper.values())
    successful = sum(shopper[outcome] for outcome in outcomes.SUCCESSFUL_OUTCOMES)
    return {
        "shopper": {
            "attempts": attempts,
            "created": shopper[outcomes.CREATED],
            "sold_out": shopper[outcomes.SOLD_OUT],
            "gate_undersell": shopper[outcomes.GATE_UNDERSELL],
            "created_share": _rate(shopper[outcomes.CREATED], attempts),
            "success_share": _rate(successful, attempts),
            "by_status": _by_status(shopper),
            "outcomes": dict(sorted(shopper.items())),
        },
        # A bot's 429 is the rate limiter doing its job: counted here, never as an error.
        "bot": {
            "attempts": sum(bot.values()),
            "by_status": _by_status(bot),
            "outcomes": dict(sorted(bot.items())),
        },
        "doorbuster": doorbuster_block(recorder, phase),
    }


def phase_block(
    recorder: PhaseRecorder, *, name: str, phase: str | None, duration_s: float, started_at: float | None
) -> dict:
    totals = recorder.combined(phase=phase)
    names = sorted({stats_name for stats_phase, stats_name in recorder.endpoints if phase in (None, stats_phase)})
    fatal = sum(count for kind, count in totals.errors.items() if kind in outcomes.FATAL_KINDS)
    return {
        "name": name,
        "started_at": started_at,
        "duration_s": round(duration_s, 2),
        "totals": endpoint_row(totals, duration_s),
        "endpoints": {
            endpoint: endpoint_row(recorder.combined(phase=phase, names=(endpoint,)), duration_s) for endpoint in names
        },
        "errors": dict(sorted(totals.errors.items())),
        "fatal_error_rate": _rate(fatal, totals.requests),
        "shed_rate": _rate(totals.errors[outcomes.SHED], totals.requests),
        "checkout": checkout_block(recorder, phase),
    }


def cache_block(before: dict | None, after: dict | None) -> dict:
    """The app's own counters from /api/metrics, and the hit rate of the requests between the two reads."""
    block = {"before": before, "after": after, "hit_rate_during_run": None}
    try:
        hits = after["cache_hits"] - before["cache_hits"]
        misses = after["cache_misses"] - before["cache_misses"]
    except (KeyError, TypeError):
        return block
    block["hits_during_run"] = hits
    block["misses_during_run"] = misses
    block["hit_rate_during_run"] = _rate(hits, hits + misses)
    return block


def build_summary(
    *,
    recorder: PhaseRecorder,
    timeline: PhaseTimeline,
    plan: list[Phase],
    limits: Limits,
    cache_before: dict | None,
    cache_after: dict | None,
    run: dict,
    finished: bool = True,
) -> dict:
    """`finished`: the shape ran to its end. A run stopped before (Ctrl-C, the web UI's Stop, --run-time) is
    INCOMPLETE whatever its numbers: it never reached what it did not measure, so it cannot pass."""
    durations = timeline.durations()
    planned = {phase.name: phase for phase in plan}
    names = list(dict.fromkeys([phase.name for phase in plan] + recorder.phases()))
    phases = []
    for name in names:
        block = phase_block(
            recorder,
            name=name,
            phase=name,
            duration_s=durations.get(name, 0.0),
            started_at=timeline.started_at.get(name),
        )
        if name in planned:
            phase = planned[name]
            block["planned"] = {
                "start_s": round(phase.start_s, 2),
                "end_s": round(phase.end_s, 2),
                "users_from": phase.users_from,
                "users_to": phase.users_to,
            }
        phases.append(block)
    summary = {
        "run": run,
        "phases": phases,
        "all": phase_block(
            recorder,
            name=WHOLE_RUN,
            phase=None,
            duration_s=sum(durations.values()),
            started_at=min(timeline.started_at.values(), default=None),
        ),
        "cache": cache_block(cache_before, cache_after),
        "limits": limits.to_dict(),
    }
    summary["thresholds"] = evaluate(summary, limits)
    reached = sorted(timeline.started_at, key=timeline.started_at.get)
    summary["completion"] = {
        "finished": finished,
        "phases_reached": reached,
        "phases_not_reached": [phase.name for phase in plan if phase.name not in timeline.started_at],
        "ran_s": round(sum(durations.values()), 2),
        "planned_s": round(plan[-1].end_s, 2) if plan else None,
    }
    # A run whose setup failed (stock not reset) proves nothing, whatever its numbers.
    met = all(check["passed"] for check in summary["thresholds"]) and not run.get("setup_errors")
    summary["verdict"] = INCOMPLETE if not finished else PASSED if met else FAILED
    summary["passed"] = summary["verdict"] == PASSED
    return summary


def write_summary(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")


def write_phase_csv(summary: dict, path: Path) -> None:
    """phases.csv: locust's CSV columns, one row per phase and endpoint (locust's own CSV has no phases)."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["Phase", "Name", "Requests", "Failures", "RPS", "p50", "p95", "p99", "Max", "Errors"])
        for block in [*summary["phases"], summary["all"]]:
            for name, row in [*block["endpoints"].items(), ("Aggregated", block["totals"])]:
                errors = ";".join(f"{kind}={count}" for kind, count in row["errors"].items())
                writer.writerow(
                    [
                        block["name"],
                        name,
                        row["requests"],
                        row["failures"],
                        row["rps"],
                        row["p50_ms"],
                        row["p95_ms"],
                        row["p99_ms"],
                        row["max_ms"],
                        errors,
                    ]
                )


def _cell(value) -> str:
    return "-" if value is None else str(value)


def format_table(summary: dict) -> str:
    """The summary as text: one line per phase and endpoint, then checkouts, cache and failed thresholds."""
    header = ("phase", "endpoint", "requests", "rps", "p50", "p95", "p99", "max", "errors")
    rows = []
    for block in [*summary["phases"], summary["all"]]:
        for endpoint, row in [*block["endpoints"].items(), ("(all)", block["totals"])]:
            errors = ", ".join(f"{kind} {count}" for kind, count in row["errors"].items()) or "0"
            rows.append(
                (
                    block["name"],
                    endpoint,
                    row["requests"],
                    row["rps"],
                    row["p50_ms"],
                    row["p95_ms"],
                    row["p99_ms"],
                    round(row["max_ms"]),
                    errors,
                )
            )
    cells = [header, *[tuple(_cell(value) for value in row) for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.append("")
    for block in [*summary["phases"], summary["all"]]:
        shopper, bot = block["checkout"]["shopper"], block["checkout"]["bot"]
        line = (
            f"checkouts {block['name']}: shopper {shopper['attempts']} attempts {shopper['by_status']}, "
            f"201 share {_cell(shopper['created_share'])}, success share {_cell(shopper['success_share'])}"
        )
        if bot["attempts"]:
            line += f"; bot {bot['attempts']} attempts {bot['by_status']}"
        lines.append(line)
        door = block["checkout"]["doorbuster"]
        if door["crowd"]["attempts"] or door["bots"]["attempts"]:
            lines.append(
                f"doorbuster {block['name']}: {door['units_sold']} units sold, {door['over_limit']} past the limit, "
                f"{door['gate_undersell']} gate undersells; crowd {door['crowd']['attempts']} attempts "
                f"{door['crowd']['by_status']}; bots {door['bots']['attempts']} attempts {door['bots']['by_status']}"
            )
    for name, timing in summary.get("app_time", {}).items():
        lines.append(
            f"app time {name} (server log): {timing['requests']} requests, p50 {_cell(timing['p50_ms'])}, "
            f"p95 {_cell(timing['p95_ms'])}, p99 {_cell(timing['p99_ms'])} ms"
        )
    cache = summary["cache"]
    lines.append(
        f"cache hit rate during the run: {_cell(cache['hit_rate_during_run'])} "
        f"(app counters before {_cell((cache['before'] or {}).get('cache_hit_rate'))}, "
        f"after {_cell((cache['after'] or {}).get('cache_hit_rate'))})"
    )
    lines.append(format_verdict(summary))
    return "\n".join(lines)


def format_verdict(summary: dict) -> str:
    """Each failed threshold, then the verdict: PASSED or FAILED with the count of thresholds met, or INCOMPLETE
    with the phases the run reached and what it measured (never PASSED)."""
    failed = [check for check in summary["thresholds"] if not check["passed"]]
    lines = [f"FAILED {check['phase']}: {check['name']} = {check['value']}, wanted {check['rule']}" for check in failed]
    lines += [f"setup: {error}" for error in summary["run"].get("setup_errors", [])]
    checked = sum(1 for check in summary["thresholds"] if not check["skipped"])
    verdict = summary.get("verdict", PASSED if summary["passed"] else FAILED)
    if verdict != INCOMPLETE:
        lines.append(f"{verdict}: {checked - len(failed)}/{checked} thresholds met")
        return "\n".join(lines)
    completion = summary["completion"]
    totals = summary["all"]["totals"]
    lines.append(
        f"INCOMPLETE: stopped after {completion['ran_s']} s of the planned {completion['planned_s']} s; "
        f"phases reached: {', '.join(completion['phases_reached']) or 'none'}; "
        f"not reached: {', '.join(completion['phases_not_reached']) or 'none'}; "
        f"measured {totals['requests']} requests, {totals['failures']} failures; "
        f"{checked - len(failed)}/{checked} thresholds met on what was measured (no verdict)"
    )
    return "\n".join(lines)
