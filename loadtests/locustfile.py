"""The shop's Black-Friday load test: shoppers (and, with --bots N, bots) under BlackFridayShape.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8501 --time-scale 0.05 --peak-users 50

`make loadtest` runs it against a local gunicorn (loadtests/run.py). At the end of a run it writes
summary.json to --results-dir (default loadtests/results/<UTC timestamp>/) and the process exits non-zero when
any threshold fails.
"""

import csv
import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import urlencode

import gevent
from gevent.lock import Semaphore
from locust import FastHttpUser, between, constant, events, task
from locust import stats as locust_stats
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadtests import endpoints, outcomes, webui
from loadtests.phases import Phase, PhaseTimeline, black_friday_phases
from loadtests.recorder import PhaseRecorder, percentile
from loadtests.shape import BlackFridayShape
from loadtests.summary import build_summary, format_verdict, write_summary
from loadtests.thresholds import Limits

log = logging.getLogger("loadtests")

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "loadtests" / "results"
PHASE_MESSAGE = "shop_phase"
REPORT_KEY = "shop_phases"
# A client that timed out sends its checkout again with the same Idempotency-Key; this share of shoppers'
# confirmed checkouts does so, and must get the same order back.
REPLAY_SHARE = 0.05
INVENTORY_BATCH_SIZE = 20


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
        "--sold-out-products",
        type=int,
        default=1,
        help="With --reset-stock: the least popular products left with no stock, for real 409s to check.",
    )
    parser.add_argument("--results-dir", default="", help="Where summary.json goes (default results/<timestamp>).")
    limits = Limits()
    parser.add_argument("--max-error-rate", type=float, default=limits.max_error_rate, help="5xx+timeout share.")
    parser.add_argument("--max-p95-product-ms", type=float, default=limits.p95_product_ms)
    parser.add_argument("--max-p95-inventory-ms", type=float, default=limits.p95_inventory_ms)
    parser.add_argument("--max-p95-checkout-ms", type=float, default=limits.p95_checkout_ms)
    parser.add_argument("--max-p99-peak-ms", type=float, default=limits.p99_peak_ms)
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
        min_checkout_success=options.min_checkout_success,
        min_created_share=options.min_created_share,
    )


# --- What the users share within one process ----------------------------------------------------------------


def parsed_body(response):
    try:
        return json.loads(response.text or "null")
    except (ValueError, TypeError):
        return None


def response_json(response) -> dict:
    body = parsed_body(response)
    return body if isinstance(body, dict) else {}


def fail(response, kind: str, message: str) -> None:
    response.request_meta["context"]["error_kind"] = kind
    response.failure(message)


class Catalogue:
    """Product ids and categories, read once per process from the first page of the product list.

    Shoppers favour a few hot products (weight 1/rank), as on a sale night; bots walk the whole list."""

    def __init__(self):
        self.ids: list[int] = []
        self.categories: list[str] = []
        self.pages = 1
        self._cumulative: list[float] = []

    def load(self, client) -> bool:
        if self.ids:
            return True
        with client.get("/api/products", name=endpoints.PRODUCT_LIST, catch_response=True) as response:
            body = parsed_body(response) if response.status_code == 200 else None
            if not isinstance(body, list) or not body:
                if response.status_code == 200:
                    fail(response, outcomes.BAD_RESPONSE, "the product list is empty: seed the catalogue first")
                return False
        self.ids = [product["id"] for product in body]
        self.categories = sorted({product["category"] for product in body})
        total = int(response.headers.get("X-Total-Count") or len(self.ids))
        self.pages = max(1, -(-total // len(self.ids)))
        self._cumulative = list(accumulate(1 / rank for rank in range(1, len(self.ids) + 1)))
        return True

    def hot_product(self) -> int:
        return random.choices(self.ids, cum_weights=self._cumulative)[0]

    def any_product(self) -> int:
        return random.choice(self.ids)


class TokenPool:
    """Pre-seeded session tokens (seed_products --sessions N), one per shopper until they run out."""

    def __init__(self):
        self.tokens: list[str] = []

    def load(self, path: str) -> None:
        self.tokens = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()] if path else []
        random.shuffle(self.tokens)

    def take(self) -> str | None:
        return self.tokens.pop() if self.tokens else None


catalogue = Catalogue()
token_pool = TokenPool()


def create_session(client) -> str | None:
    with client.post("/api/sessions", json={}, name=endpoints.SESSION_CREATE, catch_response=True) as response:
        token = response_json(response).get("session_token") if response.status_code == 201 else None
        if response.status_code == 201 and not token:
            fail(response, outcomes.BAD_RESPONSE, "201 without a session_token")
        return token


# --- Users ---------------------------------------------------------------------------------------------------


class Shopper(FastHttpUser):
    """Browses (60 %: 30 % the list, 70 % a product page), looks up stock (20 %) and buys (20 %), with one
    session of its own and 0.5-2.5 s between actions."""

    wait_time = between(0.5, 2.5)

    def on_start(self):
        self.session_token = token_pool.take()
        catalogue.load(self.client)
        self.session()

    def session(self) -> str | None:
        if self.session_token is None:
            self.session_token = create_session(self.client)
        return self.session_token

    @task(18)
    def browse_list(self):
        if not catalogue.load(self.client):
            return
        query = {"page": random.randint(1, catalogue.pages)}
        if random.random() < 0.25:
            query = {"category": random.choice(catalogue.categories)}
        self.client.get(f"/api/products?{urlencode(query)}", name=endpoints.PRODUCT_LIST)

    @task(42)
    def view_product(self):
        if catalogue.load(self.client):
            self.client.get(f"/api/products/{catalogue.hot_product()}", name=endpoints.PRODUCT_PAGE)

    @task(20)
    def check_inventory(self):
        if not catalogue.load(self.client):
            return
        if random.random() < 0.25:
            ids = random.sample(catalogue.ids, min(INVENTORY_BATCH_SIZE, len(catalogue.ids)))
            self.client.get(f"/api/inventory?product_ids={','.join(map(str, ids))}", name=endpoints.INVENTORY_BATCH)
        else:
            self.client.get(f"/api/inventory/{catalogue.hot_product()}", name=endpoints.INVENTORY_ONE)

    @task(20)
    def checkout(self):
        if not catalogue.load(self.client) or self.session() is None:
            return
        product_id, quantity = catalogue.hot_product(), random.randint(1, 3)
        body = {"session_token": self.session_token, "product_id": product_id, "quantity": quantity}
        key = uuid.uuid4().hex
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": key},
            name=endpoints.CHECKOUT,
            catch_response=True,
            context={"checkout_role": "shopper"},
        ) as response:
            answer = response_json(response)
            stock = None
            if response.status_code == 409 and answer.get("code") == "insufficient_stock":
                stock = self.stock_of(product_id)
            outcome = outcomes.checkout_outcome(
                status=response.status_code,
                code=answer.get("code"),
                product_ids=answer.get("product_ids") or [],
                product_id=product_id,
                quantity=quantity,
                stock=stock,
            )
            response.request_meta["context"]["checkout_outcome"] = outcome
            judge_shopper_checkout(response, outcome, answer, stock)
        if outcome == outcomes.CREATED and answer.get("order_id") and random.random() < REPLAY_SHARE:
            self.replay(body, key, answer["order_id"])

    def stock_of(self, product_id: int) -> int | None:
        with self.client.get(
            f"/api/inventory/{product_id}", name=endpoints.INVENTORY_VERIFY, catch_response=True
        ) as response:
            quantity = response_json(response).get("quantity") if response.status_code == 200 else None
            return quantity if isinstance(quantity, int) else None

    def replay(self, body: dict, key: str, order_id) -> None:
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": key},
            name=endpoints.CHECKOUT_REPLAY,
            catch_response=True,
        ) as response:
            if response.status_code == 429:
                fail(response, outcomes.THROTTLED, "429 for a shopper's replayed checkout")
            elif response.status_code in (201, 409) or 400 <= response.status_code < 500:
                replayed = response_json(response).get("order_id")
                if response.status_code == 201 and replayed == order_id:
                    response.success()
                else:
                    fail(
                        response,
                        outcomes.REPLAY_MISMATCH,
                        f"replay answered {response.status_code} order {replayed}, first answer was order {order_id}",
                    )


def judge_shopper_checkout(response, outcome: str, answer: dict, stock: int | None) -> None:
    status = response.status_code
    if outcome == outcomes.CREATED:
        if answer.get("order_id") is None:
            fail(response, outcomes.BAD_RESPONSE, "201 without an order_id")
        else:
            response.success()
    elif outcome in (outcomes.SOLD_OUT, outcomes.UNVERIFIED_409):
        # An unverified 409 is no error of the checkout (the failed stock read is counted on its own), but it
        # is no success either: it lowers the checkout success share.
        response.success()
    elif outcome == outcomes.IN_STOCK_409:
        fail(response, outcomes.STOCK_MISMATCH, f"409 insufficient_stock while the inventory shows {stock}")
    elif outcome == outcomes.RATE_LIMITED:
        fail(response, outcomes.THROTTLED, "429 for a shopper: only bots sharing a session should be limited")
    elif outcome == outcomes.REJECTED:
        fail(response, outcomes.CLIENT_ERROR, f"{status} {answer.get('code')}: {answer.get('detail')}")
    # 5xx and no answer: locust's own verdict (a failure) stands, and the kind comes from the status/exception.


class BotSession:
    """The one session every bot of a process shares, so the per-session limit throttles them together."""

    token: str | None = None
    # Bots start together: without the lock each would create a session of its own.
    lock = Semaphore()

    @classmethod
    def get(cls, client) -> str | None:
        with cls.lock:
            if cls.token is None:
                cls.token = create_session(client)
        return cls.token


class Bot(FastHttpUser):
    """Scrapes product pages and hammers checkout with no think time; its 429s are expected."""

    wait_time = constant(0)
    fixed_count = 0

    def on_start(self):
        catalogue.load(self.client)

    @task
    def scrape(self):
        if catalogue.load(self.client):
            self.client.get(f"/api/products/{catalogue.any_product()}", name=endpoints.PRODUCT_PAGE)

    @task
    def hammer_checkout(self):
        if not catalogue.load(self.client):
            return
        token = BotSession.get(self.client)
        if token is None:
            return
        body = {"session_token": token, "product_id": catalogue.any_product(), "quantity": 1}
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name=endpoints.BOT_CHECKOUT,
            catch_response=True,
            context={"checkout_role": "bot"},
        ) as response:
            answer = response_json(response)
            outcome = outcomes.checkout_outcome(
                status=response.status_code,
                code=answer.get("code"),
                product_ids=answer.get("product_ids") or [],
                product_id=body["product_id"],
                quantity=1,
                stock=None,
            )
            response.request_meta["context"]["checkout_outcome"] = outcome
            if outcome in (outcomes.CREATED, outcomes.RATE_LIMITED, outcomes.UNVERIFIED_409):
                response.success()
            elif outcome == outcomes.REJECTED:
                fail(response, outcomes.CLIENT_ERROR, f"{response.status_code} {answer.get('code')}")


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
                status=status, code=None, product_ids=[], product_id=0, quantity=1, stock=None
            )
            self.recorder.record_checkout(phase=phase, role=context["checkout_role"], outcome=outcome)

    def new_run(self) -> None:
        """A run starts (BlackFridayShape.reset_time): the plan from the options (the web UI may have changed
        them), an empty timeline and recorder, the app's cache counters before the first request."""
        options = self.options
        configure_users(options)
        self.plan = black_friday_phases(time_scale=options.time_scale, peak_users=options.peak_users)
        self.timeline = PhaseTimeline([phase.name for phase in self.plan])
        self.recorder.reset()
        self.last_summary = None
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.results_dir = Path(options.results_dir) if options.results_dir else RESULTS_DIR / stamp
        self.cache_before = read_metrics(self.environment.host, options.metrics_token)
        self.load_before = os.getloadavg()

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

    def summarise(self) -> None:
        """Build and write summary.json (once per run), and log its table."""
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
            cache_before=self.cache_before,
            cache_after=read_metrics(self.environment.host, options.metrics_token),
            run={
                "host": self.environment.host,
                "started_at": self.started_at,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "time_scale": options.time_scale,
                "peak_users": options.peak_users,
                "bots": options.bots,
                "setup_errors": self.setup_errors,
                # The generator and (locally) the server share these CPUs: busy CPUs bend every percentile.
                "cpu_count": os.cpu_count(),
                "load_average_1m": {"start": self.load_before[0], "end": os.getloadavg()[0]},
            },
        )
        write_summary(summary, self.results_dir / "summary.json")
        write_phase_csv(summary, self.results_dir / "phases.csv")
        self.last_summary = summary
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


run = LoadRun()


def configure_users(options) -> None:
    for user_class in (Shopper, Bot):
        user_class.network_timeout = user_class.connection_timeout = options.request_timeout
    Bot.fixed_count = options.bots
    BlackFridayShape.user_classes = [Shopper, Bot] if options.bots else [Shopper]
    BlackFridayShape.bots = options.bots


@events.init.add_listener
def on_init(environment, **_kwargs):
    run.environment = environment
    options = environment.parsed_options
    configure_users(options)
    BlackFridayShape.listener = run
    token_pool.load(options.tokens_file)
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
def on_worker_report(data, **_kwargs):
    if REPORT_KEY in data:
        run.recorder.merge(data[REPORT_KEY])


@events.test_start.add_listener
def on_test_start(environment, **_kwargs):
    if run.is_worker():
        run.recorder.reset()


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
        environment.process_exit_code = 0 if run.last_summary["passed"] else 1
