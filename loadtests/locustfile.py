"""The shop's Black-Friday load test: shoppers (and, with --bots N, bots; loadtests/users.py) under
BlackFridayShape, with its options, per-phase recording and summary.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8501 --time-scale 0.05 --peak-users 50

`make loadtest` runs it against a local gunicorn (loadtests/run.py). At the end of a run it writes
summary.json to --results-dir (default loadtests/results/<UTC timestamp>/) and the process exits non-zero when
any threshold fails.
"""

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib import error as urlerror
from urllib import request as urlrequest

import gevent
from locust import events
from locust import runners as locust_runners
from locust import stats as locust_stats
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadtests import outcomes, webui
from loadtests.phases import DOORBUSTER, Phase, PhaseTimeline, black_friday_phases, describe
from loadtests.recorder import PhaseRecorder, percentile
from loadtests.shape import BlackFridayShape
from loadtests.summary import (
    INCOMPLETE,
    INCOMPLETE_EXIT,
    PASSED,
    build_summary,
    format_verdict,
    write_phase_csv,
    write_summary,
)
from loadtests.thresholds import Limits
from loadtests.users import (
    Bot,
    DoorbusterBot,
    DoorbusterShopper,
    Shopper,
    catalogue,
    doorbuster,
    token_pool,
)

log = logging.getLogger("loadtests")

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "loadtests" / "results"
PHASE_MESSAGE = "shop_phase"
# Heartbeats a master may miss (one a second) before it calls a worker missing and, with none left, stops the run.
# locust's 3 stopped two-worker runs 4 s in on this 2-core machine, where local workers share the CPUs with gunicorn
# and PostgreSQL; a dead worker is still noticed, 10 s later.
locust_runners.HEARTBEAT_LIVENESS = 10
REPORT_KEY = "shop_phases"


# --- Options -----------------------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def add_options(parser):
    parser.add_argument("--time-scale", type=float, default=1.0, help="1.0 = the full 31 minutes; 0.05 = 93 s.")
    parser.add_argument("--peak-users", type=int, default=500, help="Users at the peak.")
    parser.add_argument(
        "--bots", type=int, default=0, help="Bots sharing one session, on top of the shoppers (0: no bots)."
    )
    parser.add_argument(
        "--tokens-file",
        default="",
        help="Session tokens, one a line (seed_products --sessions); without: POST /api/sessions.",
    )
    parser.add_argument(
        "--metrics-token",
        default=os.environ.get("METRICS_TOKEN", ""),
        is_secret=True,
        help="Bearer token for /api/metrics (default $METRICS_TOKEN).",
    )
    parser.add_argument("--request-timeout", type=float, default=10.0, help="Seconds before a request is a timeout.")
    parser.add_argument(
        "--reset-stock", type=int, default=0, help="Set every product's stock to this at each start (0: leave it)."
    )
    parser.add_argument(
        "--reset-stock-confirmed",
        action="store_true",
        help="The operator agreed to reset a database that is not a dedicated load-test one (loadtests/stock.py).",
    )
    parser.add_argument(
        "--actions-per-user",
        type=int,
        default=0,
        help="A fixed workload: each user does this many actions without think time, then idles (0: the night).",
    )
    parser.add_argument(
        "--sold-out-products",
        type=int,
        default=1,
        help="With --reset-stock: the least popular products left with no stock, for real 409s to check.",
    )
    parser.add_argument(
        "--doorbuster-units",
        type=int,
        default=0,
        help="With --reset-stock: put one product on flash sale with this many units for the doorbuster phase.",
    )
    parser.add_argument("--doorbuster-limit", type=int, default=2, help="The doorbuster's units per session.")
    parser.add_argument(
        "--doorbuster-product",
        type=int,
        default=0,
        help="The product on flash sale (set by --doorbuster-units; give it for a stack set up by hand). 0: none.",
    )
    parser.add_argument("--doorbuster-crowd", type=int, default=100, help="Shoppers racing for the doorbuster.")
    parser.add_argument("--doorbuster-bots", type=int, default=5, help="Bots buying past the doorbuster's limit.")
    parser.add_argument("--results-dir", default="", help="Where summary.json goes (default results/<timestamp>).")
    limits = Limits()
    parser.add_argument("--max-error-rate", type=float, default=limits.max_error_rate, help="5xx+timeout share.")
    parser.add_argument("--max-p95-product-ms", type=float, default=limits.p95_product_ms)
    parser.add_argument("--max-p95-inventory-ms", type=float, default=limits.p95_inventory_ms)
    parser.add_argument("--max-p95-checkout-ms", type=float, default=limits.p95_checkout_ms)
    parser.add_argument("--max-p99-peak-ms", type=float, default=limits.p99_peak_ms)
    parser.add_argument("--max-p95-doorbuster-ms", type=float, default=limits.p95_doorbuster_ms)
    parser.add_argument(
        "--max-shed-rate",
        type=float,
        default=limits.max_shed_rate,
        help="Share of requests the front may shed (503 overloaded), counted apart from errors.",
    )
    parser.add_argument(
        "--min-checkout-success",
        type=float,
        default=limits.min_checkout_success,
        help="Share of shopper checkouts that must end 201, or 409 for a product really sold out.",
    )
    parser.add_argument(
        "--min-created-share", type=float, default=limits.min_created_share, help="Share of checkouts that are 201."
    )


def limits_from(options) -> Limits:
    return Limits(
        max_error_rate=options.max_error_rate,
        p95_product_ms=options.max_p95_product_ms,
        p95_inventory_ms=options.max_p95_inventory_ms,
        p95_checkout_ms=options.max_p95_checkout_ms,
        p99_peak_ms=options.max_p99_peak_ms,
        p95_doorbuster_ms=options.max_p95_doorbuster_ms,
        max_shed_rate=options.max_shed_rate,
        min_checkout_success=options.min_checkout_success,
        min_created_share=options.min_created_share,
    )


# --- The run: phases, recording, summary ----------------------------------------------------------------------


def read_metrics(host: str, token: str) -> dict:
    """The app's /api/metrics (cache hits and misses), or why it could not be read."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urlrequest.urlopen(urlrequest.Request(f"{host}/api/metrics", headers=headers), timeout=5) as answer:
            return json.loads(answer.read())
    except urlerror.HTTPError as exc:
        return {"error": f"/api/metrics answered {exc.code}"}
    except (OSError, ValueError) as exc:
        return {"error": f"/api/metrics could not be read: {exc}"}


class LoadRun:
    """State of the run in this process. The master (or the only process) runs the shape, reads the metrics and
    writes the summary; workers record requests and send their buckets with each stats report."""

    def __init__(self):
        self.environment = None
        self.timeline = PhaseTimeline()
        self.recorder = PhaseRecorder()
        self.plan: list[Phase] = []
        self.cache_before: dict | None = None
        self.started_at: str | None = None
        self.results_dir: Path | None = None
        self.setup_errors: list[str] = []
        self.load_before = (0.0, 0.0, 0.0)
        self.last_summary: dict | None = None
        self.finished = False
        # Requests each worker reported (a distributed run's master), by locust's client id.
        self.worker_requests: Counter = Counter()
        # A worker's own --tokens-file, read at start; without one it takes its share of the master's.
        self.own_tokens = False

    @property
    def options(self):
        return self.environment.parsed_options

    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    def enter_phase(self, phase: Phase) -> None:
        if not self.timeline.enter(phase.name):
            return
        log.info("phase %s: %d -> %d users", phase.name, phase.users_from, phase.users_to)
        if isinstance(self.environment.runner, MasterRunner):
            self.environment.runner.send_message(PHASE_MESSAGE, phase.name)

    def on_request(self, name: str, response_time: float, response, exception, context: dict) -> None:
        status = getattr(response, "status_code", 0) or 0
        kind = outcomes.error_kind(status=status, exception=exception, context=context)
        phase = self.timeline.current
        self.recorder.record(phase=phase, name=name, response_ms=response_time, error_kind=kind)
        if context.get("checkout_role"):
            outcome = context.get("checkout_outcome") or outcomes.checkout_outcome(
                status=status, code=None, product_ids=[], product_id=0, quantity=1, available=None
            )
            self.recorder.record_checkout(phase=phase, role=context["checkout_role"], outcome=outcome)

    def new_run(self) -> None:
        """A run starts (BlackFridayShape.reset_time): the plan from the options (the web UI may have changed
        them), an empty timeline and recorder, the app's cache counters before the first request."""
        options = self.options
        configure_users(options)
        self.plan = black_friday_phases(
            time_scale=options.time_scale, peak_users=options.peak_users, doorbuster=bool(options.doorbuster_product)
        )
        self.timeline = PhaseTimeline([phase.name for phase in self.plan])
        self.recorder.reset()
        self.last_summary = None
        self.finished = False
        self.worker_requests = Counter()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.results_dir = Path(options.results_dir) if options.results_dir else RESULTS_DIR / stamp
        self.cache_before = read_metrics(self.environment.host, options.metrics_token)
        self.load_before = os.getloadavg()
        if not options.profile:
            # locust's HTML report shows its profile in the header: there it names the phases' windows.
            self.environment.profile = describe(self.plan)

    def shape_finished(self) -> None:
        self.finished = True

    def reset_stock(self) -> None:
        """Deep stock for the next run. Not in test_start: a shape tick that changes the user count restarts
        locust's spawning greenlet, and with it test_start, so slow work there is cut off and repeated."""
        quantity = self.options.reset_stock
        if quantity <= 0:
            return
        self.setup_errors = []
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "loadtests.stock",
                "--quantity",
                str(quantity),
                "--sold-out",
                str(self.options.sold_out_products),
                "--doorbuster-units",
                str(self.options.doorbuster_units),
                "--doorbuster-limit",
                str(self.options.doorbuster_limit),
                *(["--yes"] if self.options.reset_stock_confirmed else []),
            ],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            self.setup_errors.append(f"stock reset failed: {(result.stderr or result.stdout).strip()[-500:]}")
            log.error(self.setup_errors[-1])
        else:
            log.info(result.stdout.strip())
            found = re.search(r"^doorbuster: product (\d+)", result.stdout, re.MULTILINE)
            if found:
                # Workers get it with the master's other options at each spawn.
                self.options.doorbuster_product = int(found.group(1))
                configure_users(self.options)

    def summarise(self) -> None:
        """Build and write summary.json and phases.csv (once per run), and log the verdict."""
        if self.started_at is None or self.last_summary is not None:
            return
        if self.timeline.ended_at is None:
            self.timeline.finish()
        options = self.options
        summary = build_summary(
            recorder=self.recorder,
            timeline=self.timeline,
            plan=self.plan,
            limits=limits_from(options),
            finished=self.finished,
            cache_before=self.cache_before,
            cache_after=read_metrics(self.environment.host, options.metrics_token),
            run={
                "host": self.environment.host,
                "started_at": self.started_at,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "time_scale": options.time_scale,
                "peak_users": options.peak_users,
                "bots": options.bots,
                "actions_per_user": options.actions_per_user,
                "worker_requests": dict(sorted(self.worker_requests.items())),
                "doorbuster": doorbuster_config(options),
                "setup_errors": self.setup_errors,
                # The generator and (locally) the server share these CPUs: busy CPUs bend every percentile.
                "cpu_count": os.cpu_count(),
                "load_average_1m": {"start": self.load_before[0], "end": os.getloadavg()[0]},
            },
        )
        write_summary(summary, self.results_dir / "summary.json")
        write_phase_csv(summary, self.results_dir / "phases.csv")
        self.last_summary = summary
        if not options.profile:
            verdict = format_verdict(summary).splitlines()[-1]
            self.environment.profile = f"{describe(self.plan)}; {verdict}"
        # The whole table is in summary.json and phases.csv (and printed by loadtests/run.py): the log says the verdict.
        log.info("%s\nsummary: %s", format_verdict(summary), self.results_dir / "summary.json")
        if options.csv_prefix:
            # locust rewrites its CSV files once a second and not at exit: one more pass after the last request,
            # so the CSV counts what summary.json counts.
            gevent.sleep(locust_stats.CSV_STATS_INTERVAL_SEC + 0.2)

    def phase_rows(self) -> list[dict]:
        """One row per phase for the web UI's Black Friday tab."""
        durations = self.timeline.durations()
        rows = []
        for phase in self.plan:
            stats = self.recorder.combined(phase=phase.name)
            duration = durations.get(phase.name, 0.0)
            if phase.name == self.timeline.current and self.timeline.ended_at is None and durations:
                state = "running"
            else:
                state = "done" if phase.name in durations else "next"
            rows.append(
                {
                    "phase": phase.name,
                    "state": state,
                    "window": f"{phase.start_s:.0f}-{phase.end_s:.0f}",
                    "users": f"{phase.users_from} -> {phase.users_to}",
                    "requests": stats.requests,
                    "rps": round(stats.requests / duration, 1) if duration else 0,
                    "p95_ms": percentile(stats.histogram, 0.95),
                    "p99_ms": percentile(stats.histogram, 0.99),
                    "failures": stats.failures,
                    "checkouts_201": self.recorder.checkout_outcomes(role="shopper", phase=phase.name)[
                        outcomes.CREATED
                    ],
                }
            )
        return rows

    def current_phase(self) -> dict:
        return {
            "phase": self.timeline.current if self.timeline.started_at else None,
            "running": bool(self.timeline.started_at) and self.timeline.ended_at is None,
            "elapsed_s": round(time.time() - min(self.timeline.started_at.values()), 1)
            if self.timeline.started_at
            else 0,
            "phases": self.phase_rows(),
        }


run = LoadRun()


def configure_users(options) -> None:
    for user_class in (Shopper, Bot, DoorbusterShopper, DoorbusterBot):
        user_class.network_timeout = user_class.connection_timeout = options.request_timeout
    for user_class in (Shopper, Bot):
        user_class.actions_per_user = options.actions_per_user
    on_sale = options.doorbuster_product
    doorbuster.product_id = catalogue.exclude = on_sale
    doorbuster.limit = options.doorbuster_limit
    Bot.fixed_count = options.bots
    DoorbusterShopper.fixed_count = options.doorbuster_crowd if on_sale else 0
    DoorbusterBot.fixed_count = options.doorbuster_bots if on_sale else 0
    fixed = [Bot, DoorbusterShopper, DoorbusterBot]
    BlackFridayShape.user_classes = [Shopper, *[user_class for user_class in fixed if user_class.fixed_count]]
    BlackFridayShape.fixed_users = sum(user_class.fixed_count for user_class in fixed)


def doorbuster_config(options) -> dict | None:
    if not options.doorbuster_product:
        return None
    return {
        "product_id": options.doorbuster_product,
        # Known when this run put it on sale (or the operator said): the units no sale may go past.
        "units": options.doorbuster_units or None,
        "limit": options.doorbuster_limit,
        "crowd": options.doorbuster_crowd,
        "bots": options.doorbuster_bots,
    }


@events.init.add_listener
def on_init(environment, **_kwargs):
    run.environment = environment
    options = environment.parsed_options
    configure_users(options)
    BlackFridayShape.listener = run
    doorbuster.running = lambda: run.timeline.current == DOORBUSTER and run.timeline.ended_at is None
    token_pool.load(options.tokens_file)
    run.own_tokens = bool(options.tokens_file)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(PHASE_MESSAGE, lambda msg, **_kw: run.timeline.enter(msg.data))
    if environment.web_ui:
        webui.install(environment.web_ui, run.phase_rows, run.current_phase)
    if not isinstance(environment.runner, WorkerRunner):
        run.reset_stock()


@events.request.add_listener
def on_request(name, response_time, response, exception, context, **_kwargs):
    run.on_request(name, response_time, response, exception, context or {})


@events.report_to_master.add_listener
def on_report_to_master(data, **_kwargs):
    data[REPORT_KEY] = run.recorder.drain()


@events.worker_report.add_listener
def on_worker_report(client_id, data, **_kwargs):
    if REPORT_KEY in data:
        run.recorder.merge(data[REPORT_KEY])
        run.worker_requests[client_id] += sum(stats["requests"] for _, _, stats in data[REPORT_KEY]["endpoints"])


@events.test_start.add_listener
def on_test_start(environment, **_kwargs):
    if run.is_worker():
        run.recorder.reset()
        # The master's options arrived with the spawn (locust copies a locustfile's options to its workers).
        options = environment.parsed_options
        configure_users(options)
        if not run.own_tokens and options.tokens_file:
            runner = environment.runner
            token_pool.load(options.tokens_file, share=runner.worker_index, shares=max(options.expect_workers, 1))


@events.reset_stats.add_listener
def on_reset_stats(**_kwargs):
    # The web UI's "Reset stats" clears locust's numbers: the per-phase ones start again with them.
    run.recorder.reset()


@events.test_stop.add_listener
def on_test_stop(environment, **_kwargs):
    if run.is_worker():
        return
    run.timeline.finish()
    if isinstance(environment.runner, MasterRunner):
        if environment.parsed_options.headless:
            # A headless master fires test_stop before it tells the workers to quit; their last requests reach
            # it with the final reports, before `quitting`, where the summary is written.
            return
        # Workers report every few seconds; the next report carries their last requests.
        gevent.sleep(WORKER_REPORT_INTERVAL + 1)
    run.summarise()
    if not environment.parsed_options.headless:
        # The web UI may start another run: it starts from deep stock too.
        run.reset_stock()


@events.quitting.add_listener
def on_quitting(environment, **_kwargs):
    if not run.is_worker():
        run.summarise()
    if run.last_summary is not None:
        verdict = run.last_summary["verdict"]
        environment.process_exit_code = 0 if verdict == PASSED else INCOMPLETE_EXIT if verdict == INCOMPLETE else 1
