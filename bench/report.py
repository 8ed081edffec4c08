"""The bench's arithmetic: parse wrk's report line, take medians over repeats, compare with the floor, check the
targets and print the table. Pure functions, so tests/bench can check them without running a server."""

import json
import statistics
from dataclasses import asdict, dataclass, field

FLOOR = "floor"
MARKER = "BENCH_JSON "


@dataclass
class Run:
    """One wrk run of one endpoint at one concurrency."""

    endpoint: str
    connections: int
    repeat: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    status_5xx: int | None = None
    # CPU time per request of the server's workers and of PostgreSQL's backends, in microseconds.
    cpu_us: int | None = None
    db_cpu_us: int | None = None


@dataclass
class Row:
    """The medians of one endpoint at one concurrency, beside the floor's medians from the same pass."""

    endpoint: str
    connections: int
    repeats: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    status_5xx: int | None = None
    cpu_us: int | None = None
    db_cpu_us: int | None = None
    floor_rps: float | None = None
    floor_p95_ms: float | None = None
    floor_p99_ms: float | None = None
    rps_ratio: float | None = None
    p99_ratio: float | None = None


@dataclass
class Target:
    name: str
    measured: str
    limit: str
    met: bool


@dataclass
class Check:
    """The targets of one pass, each with what was measured."""

    targets: list[Target] = field(default_factory=list)

    def add(self, name: str, measured: str, limit: str, met: bool) -> None:
        self.targets.append(Target(name, measured, limit, met))


def parse_wrk(output: str, *, endpoint: str, connections: int, repeat: int) -> Run:
    """The Run from wrk's stdout, read from the line bench/lua/report.lua prints in done()."""
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise ValueError(f"wrk printed no {MARKER.strip()} line for {endpoint}; its output was:\n{output}")
    data = json.loads(lines[-1][len(MARKER) :])
    seconds = data["duration_us"] / 1_000_000
    socket_errors = sum(data.get(f"errors_{kind}", 0) for kind in ("connect", "read", "write", "timeout"))
    # wrk counts a response as an error when its status is above 399; the checkout script counts every class.
    non_2xx = data.get("errors_status", 0)
    if "status_2xx" in data:
        non_2xx = data["requests"] - data["status_2xx"]
    return Run(
        endpoint=endpoint,
        connections=connections,
        repeat=repeat,
        rps=round(data["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        requests=data["requests"],
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        status_5xx=data.get("status_5xx"),
    )


def summarize(runs: list[Run]) -> list[Row]:
    """Median of each figure over the repeats (max: the worst over all repeats); counts are summed."""
    groups: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.endpoint, run.connections), []).append(run)
    rows = []
    for (endpoint, connections), group in groups.items():
        fives = [run.status_5xx for run in group if run.status_5xx is not None]
        rows.append(
            Row(
                endpoint=endpoint,
                connections=connections,
                repeats=len(group),
                rps=round(statistics.median(run.rps for run in group), 1),
                p50_ms=round(statistics.median(run.p50_ms for run in group), 2),
                p95_ms=round(statistics.median(run.p95_ms for run in group), 2),
                p99_ms=round(statistics.median(run.p99_ms for run in group), 2),
                max_ms=round(max(run.max_ms for run in group), 2),
                non_2xx=sum(run.non_2xx for run in group),
                socket_errors=sum(run.socket_errors for run in group),
                status_5xx=sum(fives) if fives else None,
                cpu_us=_median_of(run.cpu_us for run in group),
                db_cpu_us=_median_of(run.db_cpu_us for run in group),
            )
        )
    return with_floor(rows)


def _median_of(values) -> int | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known)) if known else None


def with_floor(rows: list[Row]) -> list[Row]:
    """Each row gets the floor's figures at the same concurrency and the ratios to them."""
    floors = {row.connections: row for row in rows if row.endpoint == FLOOR}
    for row in rows:
        floor = floors.get(row.connections)
        if floor is None:
            continue
        row.floor_rps, row.floor_p95_ms, row.floor_p99_ms = floor.rps, floor.p95_ms, floor.p99_ms
        row.rps_ratio = round(row.rps / floor.rps, 3) if floor.rps else None
        row.p99_ratio = round(row.p99_ms / floor.p99_ms, 2) if floor.p99_ms else None
    return rows


def check_targets(
    rows: list[Row],
    *,
    worker_rss_mb: dict[str, list[float]],
    deadlocks: int,
    cold_latency_connections: int | None,
) -> Check:
    """The issue's targets, each with what was measured. Cold-list latency is judged at the concurrency given,
    the other latency targets at every concurrency the endpoint ran at."""
    check = Check()
    for row in rows:
        label = f"{row.endpoint} @{row.connections}"
        if row.endpoint == "list_hit" and row.rps_ratio is not None:
            check.add(f"{label} rps", f"{row.rps_ratio:.2f}x floor", ">= 0.80x", row.rps_ratio >= 0.8)
            check.add(f"{label} p99", f"{row.p99_ratio:.2f}x floor", "<= 2.00x", row.p99_ratio <= 2.0)
        if row.endpoint == "detail_hit" and row.rps_ratio is not None:
            check.add(f"{label} rps", f"{row.rps_ratio:.2f}x floor", ">= 0.75x", row.rps_ratio >= 0.75)
        if row.endpoint.startswith("list_cold") and row.connections == cold_latency_connections:
            check.add(f"{label} p95", f"{row.p95_ms:.1f} ms", "< 20 ms", row.p95_ms < 20)
        if row.endpoint == "checkout_100" and row.connections == 64 and row.rps_ratio is not None:
            check.add(f"{label} rps", f"{row.rps_ratio:.3f}x floor", ">= 0.08x", row.rps_ratio >= 0.08)
            check.add(f"{label} p99", f"{row.p99_ms:.1f} ms", "< 250 ms", row.p99_ms < 250)
            check.add(f"{label} 5xx", str(row.status_5xx or 0), "0", not row.status_5xx)
        if row.endpoint != FLOOR:
            errors = row.non_2xx + row.socket_errors
            check.add(f"{label} errors", str(errors), "0", errors == 0)
    if any(row.endpoint.startswith("checkout") for row in rows):
        check.add("checkout deadlocks", str(deadlocks), "0", deadlocks == 0)
    for server, sizes in worker_rss_mb.items():
        if sizes:
            check.add(f"{server} worker RSS", f"{max(sizes):.0f} MB (max)", "<= 150 MB", max(sizes) <= 150)
    return check


@dataclass
class DoorbusterRace:
    """One race of the doorbuster pass: checkouts for one product on flash sale, and what PostgreSQL shows after."""

    connections: int
    attempts: int
    answered: int
    orders: int
    sold_out: int
    shed_503: int  # 503 with Retry-After: load shed, counted apart
    other_5xx: int
    other: int
    stock_after: int
    units_sold: int
    transactions: int  # pg_stat_database commits + rollbacks during the race
    socket_errors: int
    seconds: float


def check_doorbuster(races: list[DoorbusterRace], rows: list[Row], *, units: int) -> Check:
    """The doorbuster's targets: exactly `units` sold, stock 0, no 5xx but shed 503s, transactions near the
    orders, and the sold-out answers at >= 0.5x the floor's requests/s. (How many of the attempts were answered
    is reported, not judged: wrk may build a request it never sends, which the script counts as sent.)"""
    check = Check()
    for race in races:
        label = f"doorbuster @{race.connections}"
        check.add(f"{label} orders", str(race.orders), f"== {units}", race.orders == units == race.units_sold)
        check.add(f"{label} stock after", str(race.stock_after), "== 0", race.stock_after == 0)
        check.add(f"{label} socket errors", str(race.socket_errors), "0", race.socket_errors == 0)
        check.add(f"{label} 5xx (not shed)", str(race.other_5xx), "0", race.other_5xx == 0)
        per_order = race.transactions / race.orders if race.orders else float("inf")
        check.add(f"{label} transactions", f"{race.transactions} ({per_order:.1f}/order)", "<= 3/order", per_order <= 3)
    for row in rows:
        if row.endpoint == "checkout_sold_out" and row.rps_ratio is not None:
            label = f"{row.endpoint} @{row.connections}"
            check.add(f"{label} rps", f"{row.rps_ratio:.2f}x floor", ">= 0.50x", row.rps_ratio >= 0.5)
    return check


def format_race(race: DoorbusterRace) -> str:
    return (
        f"race c={race.connections:<3} {race.answered}/{race.attempts} answered in {race.seconds:.1f} s: "
        f"201 {race.orders}, 409 {race.sold_out}, shed 503 {race.shed_503}, other 5xx {race.other_5xx}, "
        f"other {race.other}, socket errors {race.socket_errors}; sold {race.units_sold}, stock {race.stock_after}; "
        f"PostgreSQL transactions {race.transactions}"
    )


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'endpoint':<22}{'conn':>5}{'rps':>9}{'floor':>9}{'ratio':>7}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'floor99':>8}{'ratio':>7}{'max':>8}{'non2xx':>7}{'sockerr':>8}{'cpu/req':>9}{'db/req':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in sorted(rows, key=lambda r: (r.connections, r.endpoint != FLOOR)):
        lines.append(
            f"{row.endpoint:<22}{row.connections:>5}{row.rps:>9.0f}{_num(row.floor_rps, 9, 0)}"
            f"{_num(row.rps_ratio, 7, 2)}{row.p50_ms:>8.1f}{row.p95_ms:>8.1f}{row.p99_ms:>8.1f}"
            f"{_num(row.floor_p99_ms, 8, 1)}{_num(row.p99_ratio, 7, 2)}{row.max_ms:>8.0f}"
            f"{row.non_2xx:>7}{row.socket_errors:>8}{_num(row.cpu_us, 9, 0)}{_num(row.db_cpu_us, 8, 0)}"
        )
    lines.append(
        "latencies in ms; medians of the repeats (max: worst of them); ratio = endpoint / floor; "
        "cpu/req, db/req: CPU microseconds per request in the server's workers and in PostgreSQL"
    )
    return "\n".join(lines)


def format_targets(check: Check) -> str:
    lines = []
    for target in check.targets:
        verdict = "ok  " if target.met else "MISS"
        lines.append(f"{verdict} {target.name:<34} {target.measured:>18}  (target {target.limit})")
    return "\n".join(lines)


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def as_json(obj) -> dict:
    return asdict(obj)
