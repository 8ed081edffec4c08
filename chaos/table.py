"""Each fault's figures and checks, and the one table `make chaos` prints."""

from collections import Counter
from dataclasses import dataclass, field

from chaos.client import SHED, Reply
from chaos.expectations import EXPECTATIONS, Check, invariant_checks
from chaos.faults import Measured
from chaos.ledger import Ledger

SETTLE_S = 0.5


@dataclass
class Result:
    name: str
    measured: Measured | None = None
    ledger: Ledger | None = None
    skipped: str = ""
    error: str = ""
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        """Broken checks that fail the run: every invariant and the fault's strict promises."""
        return [check for check in self.checks if not check.kept and check.strict]

    @property
    def not_yet(self) -> list[Check]:
        """Broken promises that are reported only (not in the fault's `strict` set yet)."""
        return [check for check in self.checks if not check.kept and not check.strict]


def statuses(replies: list[Reply]) -> Counter:
    return Counter(reply.status for reply in replies)


def worst(replies: list[Reply]) -> float:
    return max((reply.latency for reply in replies), default=0.0)


def p99(latencies: list[float]) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def during_fault(measured: Measured) -> list[Reply]:
    """The replies to requests sent while the fault lasted, from a moment after it began: a request already
    queued when it began says how long the queue was, not how fast the fault is answered."""
    start, end = measured.window
    return [reply for reply in measured.traffic.replies if start + SETTLE_S <= reply.started <= end]


def evaluate(result: Result) -> list[Check]:
    """The invariants and the fault's promises (chaos.expectations.EXPECTATIONS), each kept or not."""
    measured, ledger = result.measured, result.ledger
    replies = measured.traffic.replies
    retries = measured.traffic.retries
    seen = set(statuses(replies)) | set(statuses(retries))
    checks = invariant_checks(
        statuses=seen,
        worst_s=max(worst(replies), worst(retries)),
        lost=ledger.lost,
        doubled=ledger.doubled,
        drift=ledger.stock_drift,
    )
    expect = EXPECTATIONS[result.name]

    def promise(name: str, kept: bool, detail: str) -> None:
        checks.append(Check(name, kept, detail, name in expect.strict))

    during = set(statuses(replies))
    promise("statuses", during <= expect.statuses, f"answers {', '.join(sorted(during - expect.statuses))}")
    if expect.worst_s is not None:
        promise("worst_s", worst(replies) <= expect.worst_s, f"worst {worst(replies):.2f} s > {expect.worst_s} s")
    if expect.health_s is not None:
        health = worst([reply for reply in replies if reply.kind == "health"])
        promise("health_s", health <= expect.health_s, f"/health {health:.2f} s > {expect.health_s} s")
    if expect.product_s is not None:
        product = worst([reply for reply in during_fault(measured) if reply.kind == "product"])
        promise("product_s", product <= expect.product_s, f"a product page took {product:.2f} s > {expect.product_s} s")
    if expect.refused_s is not None:
        refused = worst([reply for reply in during_fault(measured) if reply.status == "503"])
        promise("refused_s", refused <= expect.refused_s, f"a 503 took {refused:.3f} s > {expect.refused_s} s")
    if expect.admitted_p99_s is not None:
        admitted = p99([reply.latency for reply in replies if reply.status.startswith("2")])
        detail = f"2xx p99 {admitted:.2f} s > {expect.admitted_p99_s} s"
        promise("admitted_p99_s", admitted <= expect.admitted_p99_s, detail)
    if expect.shed_p99_s is not None:
        shed = p99([reply.latency for reply in replies if reply.status == SHED])
        promise("shed_p99_s", shed <= expect.shed_p99_s, f"shed p99 {shed:.3f} s > {expect.shed_p99_s} s")
    if expect.retry_after:
        bare = sum(1 for reply in replies + retries if reply.status in ("503", SHED) and not reply.retry_after)
        promise("retry_after", bare == 0, f"{bare} 503(s) without Retry-After")
    if expect.resolved:
        promise("resolved", ledger.unresolved == 0, f"{ledger.unresolved} checkout(s) unresolved after retries")
    if expect.stalled_closed:
        promise("stalled_closed", bool(measured.stalled_closed), "stalled connections left open")
    return checks


def _counts(counter: Counter) -> str:
    return " ".join(f"{status}:{count}" for status, count in sorted(counter.items())) or "-"


def _verdict(result: Result) -> str:
    if result.skipped:
        return f"skipped: {result.skipped}"
    if result.error:
        return f"ERROR: {result.error}"
    if result.failed:
        return "FAILED: " + ", ".join(check.name for check in result.failed)
    if result.not_yet:
        return "not yet: " + ", ".join(check.name for check in result.not_yet)
    return "kept"


HEADER = (
    "fault",
    "requests",
    "statuses",
    "p99 s",
    "worst s",
    "/health worst s",
    "lost",
    "doubled",
    "unresolved",
    "stock drift",
    "promises",
)


def row(result: Result) -> tuple[str, ...]:
    if result.measured is None or result.ledger is None:
        return (result.name, *("-" for _ in HEADER[1:-1]), _verdict(result))
    replies = result.measured.traffic.replies
    health = [reply for reply in replies if reply.kind == "health"]
    ledger = result.ledger
    return (
        result.name,
        str(len(replies)),
        _counts(statuses(replies)),
        f"{p99([reply.latency for reply in replies]):.2f}",
        f"{worst(replies):.2f}",
        f"{worst(health):.2f}",
        str(ledger.lost),
        str(ledger.doubled),
        str(ledger.unresolved),
        str(ledger.stock_drift),
        _verdict(result),
    )


def format_table(results: list[Result]) -> str:
    """A Markdown table (it reads as well in a terminal), then each fault's notes and broken promises."""
    rows = [HEADER, *(row(result) for result in results)]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(HEADER))]

    def line(cells):
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    lines = [line(HEADER), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [line(cells) for cells in rows[1:]]
    lines.append("")
    for result in results:
        if result.measured is None:
            continue
        retries = result.measured.traffic.retries
        notes = [*result.measured.notes, f"{result.ledger.orders} order rows"]
        if retries:
            notes.append(f"retries {_counts(statuses(retries))}")
        notes += [check.detail for check in result.failed + result.not_yet]
        notes.append(f"{result.seconds:.0f} s")
        lines.append(f"- {result.name}: " + "; ".join(notes))
    return "\n".join(lines)
