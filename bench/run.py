"""`make bench`: the shop's serving path measured against the floor, on PostgreSQL + Redis, with wrk.

Three passes, each on a freshly created database: 100 products (every endpoint, checkouts included), 100,000
products (the product list, hit and cold), and the doorbuster (5,000 checkouts racing for 500 units of one product
on flash sale at 64 and 256 connections, then that product's sold-out answers beside the floor; docs/doorbuster.md).
Each pass starts up to three servers with the same gunicorn and the same shop/gunicorn.conf.py: the shop, the shop
"cold" and the floor (bench/floor.py). It warms every endpoint up, then
runs each endpoint at each concurrency BENCH_REPEATS times, round robin with the floor, so every figure has a
floor figure measured minutes apart at most. Results: a table on stdout and bench/results/<timestamp>.json.
Servers are stopped on any exit.

Cold product lists: the cache key is the normalised query (unknown parameters are dropped), so no query string
can force a miss, and flushing Redis between requests is impossible at these rates. The "cold" server is the same
shop whose REDIS_URL names a port where nothing listens: every product request takes the BYPASS path, the SQL
and serialization of a cache miss from PostgreSQL, without the three sub-millisecond Redis round trips (lookup,
lock, store) a real miss adds.

Environment (all optional): BENCH_DATABASE_URL (dropped and recreated; the 100,000-product pass uses the same
name + "_large", the doorbuster pass name + "_door"), BENCH_REDIS_URL (its db is flushed), BENCH_PORT (8601:
three ports per pass from it, and BENCH_PORT + 28 kept closed for the cold server's Redis), BENCH_DURATION,
BENCH_WARMUP, BENCH_REPEATS, BENCH_ONLY (comma-separated endpoint names), BENCH_PASSES (small,large,doorbuster),
BENCH_PROFILE (endpoint names: after the measured runs, one more run of each at its highest concurrency under
py-spy, from requirements/dev.txt; the summary is printed and the stacks kept in bench/results/), QUICK=1 (one
short repeat: for iteration, not for reporting).
"""

import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import profile, report  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GUNICORN = Path(sys.executable).with_name("gunicorn")
PY_SPY = Path(sys.executable).with_name("py-spy")
HOST = "127.0.0.1"
LARGE_PRODUCTS = 100_000
SESSIONS = 256
# Deep enough that no checkout in a pass runs out: 409s would measure the refusal path instead.
DEEP_STOCK = 1_000_000_000
CHECKOUT = "bench/lua/checkout.lua"
DOORBUSTER = "bench/lua/doorbuster.lua"
# The doorbuster pass: this many checkouts race for DOORBUSTER_UNITS units of one product on flash sale, at
# each of DOORBUSTER_CONNECTIONS; a bot's session may buy DOORBUSTER_LIMIT (SESSIONS x limit >= units).
DOORBUSTER_ATTEMPTS = 5_000
DOORBUSTER_UNITS = 500
DOORBUSTER_LIMIT = 2
DOORBUSTER_CONNECTIONS = (64, 256)
# wrk's --timeout: a thread that lost an answer to it is stopped this long after the first thread is done.
RACE_GRACE_SECONDS = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Config:
    database_url: str
    redis_url: str
    port: int
    duration: int
    warmup: int
    repeats: int
    only: set[str]
    passes: list[str]
    profile: set[str]
    wrk_threads: int = 2


def config_from_env() -> Config:
    quick = os.environ.get("QUICK") == "1"
    return Config(
        database_url=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop_bench"),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"),
        port=int(os.environ.get("BENCH_PORT", 8601)),
        duration=int(os.environ.get("BENCH_DURATION", 2 if quick else 5)),
        warmup=int(os.environ.get("BENCH_WARMUP", 1 if quick else 2)),
        repeats=int(os.environ.get("BENCH_REPEATS", 1 if quick else 3)),
        only={name for name in os.environ.get("BENCH_ONLY", "").split(",") if name},
        passes=[name for name in os.environ.get("BENCH_PASSES", "small,large,doorbuster").split(",") if name],
        profile={name for name in os.environ.get("BENCH_PROFILE", "").split(",") if name},
    )


@dataclass
class Endpoint:
    name: str
    server: str  # "shop", "cold" or "floor"
    path: str
    connections: tuple[int, ...]
    script: str = "bench/lua/report.lua"
    script_args: tuple[str, ...] = ()


# --- Processes ----------------------------------------------------------------------------------------


class Server:
    """gunicorn with shop/gunicorn.conf.py, serving `app`. INFO lines (one per request) are dropped on the way to
    the log file, so it keeps only warnings and errors; the per-request logging cost itself is still paid."""

    def __init__(self, name: str, app: str, port: int, env: dict[str, str], log_path: Path):
        self.name, self.app, self.port, self.env, self.log_path = name, app, port, env, log_path
        self.process: subprocess.Popen | None = None
        self.log_filter: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.log_filter = subprocess.Popen(
            ["grep", "--line-buffered", "-v", "-F", '"level": "INFO"'],
            stdin=subprocess.PIPE,
            stdout=log,
            start_new_session=True,
        )
        self.process = subprocess.Popen(
            [str(GUNICORN), "--config", "shop/gunicorn.conf.py", self.app],
            cwd=ROOT,
            env={**self.env, "PORT": str(self.port), "GUNICORN_BIND": HOST},
            stdout=self.log_filter.stdin,
            stderr=log,
            start_new_session=True,
        )
        self.log_filter.stdin.close()
        log.close()

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout:.0f} s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(child) for child in children)

    def worker_rss_mb(self) -> list[float]:
        return [_status_kb(pid, "VmRSS") / 1024 for pid in self.worker_pids()]

    def interrupt(self) -> None:
        """SIGINT, gunicorn's quick shutdown, to the server's whole process group."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the server to exit until `deadline` (monotonic), then SIGKILL its group if it lingers."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        if self.log_filter is not None:
            try:
                self.log_filter.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.log_filter.kill()


def stop_all(servers: list[Server], grace: float = 15.0) -> None:
    """Stop the servers together: SIGINT to each, then SIGKILL whatever still runs after `grace` seconds.

    A Ctrl-C or SIGTERM arriving meanwhile is held until every server is gone, then acted on, so an impatient
    second Ctrl-C cannot leave a gunicorn behind.
    """
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum)) for sig in STOP_SIGNALS}
    try:
        for server in servers:
            server.interrupt()
        deadline = time.monotonic() + grace
        for server in servers:
            server.wait_stopped(deadline)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        signal.raise_signal(held[0])


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


# --- Services -----------------------------------------------------------------------------------------


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(url: str) -> None:
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def deepen_stock(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE catalog_inventory SET quantity = %s", (DEEP_STOCK,))


def product_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM catalog_product").fetchone()[0]


def deadlocks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def flush_redis(url: str) -> None:
    redis.Redis.from_url(url, socket_timeout=2).flushdb()


def unreachable_redis(cfg: Config) -> str:
    """A Redis URL on the last port of the bench's range, checked to have no listener."""
    port = cfg.port + 28
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            raise RuntimeError(f"port {port} has a listener; the cold server needs a Redis port that refuses")
    return f"redis://{HOST}:{port}/0"


def fetch(url: str, *, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


# --- Measuring ----------------------------------------------------------------------------------------


def wrk(cfg: Config, endpoint: Endpoint, server: Server, connections: int, seconds: int, run_id: str) -> str:
    """`run_id` must be unique per run: the checkout script builds its Idempotency-Keys from it."""
    threads = min(cfg.wrk_threads, connections)
    args = list(endpoint.script_args)
    if endpoint.script in (CHECKOUT, DOORBUSTER):
        args = [*args, run_id, str(threads)]
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        endpoint.script,
        server.url + endpoint.path,
        "--",
        *args,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed for {endpoint.name}: {result.stderr or result.stdout}")
    return result.stdout


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each live process, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def database_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots; a process that started in between counts from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def measure(cfg: Config, endpoints: list[Endpoint], servers: dict[str, Server], database_url: str) -> list[report.Run]:
    """Warm every endpoint up, then run them round robin, `repeats` rounds, at each concurrency.

    Each run also records the CPU time its server's workers and the database's backends spent per request: unlike
    throughput, that figure barely moves when other work shares the machine.
    """
    runs = []
    levels = sorted({c for endpoint in endpoints for c in endpoint.connections})
    nonce = secrets.token_hex(4)
    for connections in levels:
        here = [endpoint for endpoint in endpoints if connections in endpoint.connections]
        for endpoint in here:
            run_id = f"{nonce}-{endpoint.name}-c{connections}-w"
            wrk(cfg, endpoint, servers[endpoint.server], connections, cfg.warmup, run_id)
        for repeat in range(1, cfg.repeats + 1):
            for endpoint in here:
                run_id = f"{nonce}-{endpoint.name}-c{connections}-r{repeat}"
                server = servers[endpoint.server]
                workers_before = cpu_seconds(server.worker_pids())
                database_before = cpu_seconds(database_backends(database_url))
                output = wrk(cfg, endpoint, server, connections, cfg.duration, run_id)
                workers_after = cpu_seconds(server.worker_pids())
                database_after = cpu_seconds(database_backends(database_url))
                run = report.parse_wrk(output, endpoint=endpoint.name, connections=connections, repeat=repeat)
                if run.requests:
                    run.cpu_us = round(cpu_used(workers_before, workers_after) / run.requests * 1e6)
                    run.db_cpu_us = round(cpu_used(database_before, database_after) / run.requests * 1e6)
                runs.append(run)
                print(
                    f"  {endpoint.name:<22} c={connections:<3} #{repeat}  {run.rps:>8.0f} rps"
                    f"  p99 {run.p99_ms:6.1f} ms  non-2xx {run.non_2xx}",
                    flush=True,
                )
    return runs


def profile_endpoint(cfg: Config, endpoint: Endpoint, server: Server, stem: Path) -> str:
    """One more run of `endpoint` at its highest concurrency while py-spy samples every worker of `server`."""
    if not PY_SPY.exists():
        raise RuntimeError(f"{PY_SPY} is missing: BENCH_PROFILE needs `pip install -r requirements/dev.txt`")
    connections = max(endpoint.connections)
    stacks = stem.with_suffix(".stacks.txt")
    spy = subprocess.Popen(
        [
            # --gil: only the thread holding the GIL is sampled, so shares are of CPU spent in Python, not of waits.
            *(str(PY_SPY), "record", "--pid", str(server.process.pid), "--subprocesses", "--gil", "--format", "raw"),
            *("--duration", str(cfg.duration + 1), "--output", str(stacks)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        wrk(cfg, endpoint, server, connections, cfg.duration, f"profile{secrets.token_hex(4)}")
        spy.wait(timeout=cfg.duration + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
    summary = profile.format_profile(profile.summarize(stacks.read_text()), top=20)
    stem.with_suffix(".profile.txt").write_text(summary + "\n")
    return f"-- profile of {endpoint.name} at {connections} connections ({stacks.relative_to(ROOT)})\n{summary}"


def cold_search_term(names: list[str]) -> str:
    """The commonest word of four letters or more in the first page's names: a search shoppers would make."""
    words = Counter(word.lower() for name in names for word in name.split() if word.isalpha() and len(word) >= 4)
    return words.most_common(1)[0][0]


def deep_page_query(total: int) -> str:
    """The page 90% of the way through the catalogue (at page size 10 when there are fewer than ten pages)."""
    page_size = 100 if total >= 1000 else 10
    pages = -(-total // page_size)
    return f"page={max(1, pages * 9 // 10)}&page_size={page_size}"


def small_endpoints(products: list[dict], total: int, tokens_file: Path) -> list[Endpoint]:
    first = products[0]
    ids = ",".join(str(product["id"]) for product in products)
    both = (16, 64)
    return [
        Endpoint("floor", "floor", "/api/products", both),
        Endpoint("health", "shop", "/health", both),
        Endpoint("list_hit", "shop", "/api/products", both),
        Endpoint("detail_hit", "shop", f"/api/products/{first['id']}", both),
        Endpoint("inventory_live", "shop", f"/api/inventory/{first['id']}", both),
        *cold_list_endpoints(products, total, both),
        Endpoint("checkout_100", "shop", "/api/checkout", both, CHECKOUT, (str(tokens_file), ids)),
        Endpoint("checkout_hot", "shop", "/api/checkout", both, CHECKOUT, (str(tokens_file), str(first["id"]))),
    ]


def cold_list_endpoints(products: list[dict], total: int, connections: tuple[int, ...]) -> list[Endpoint]:
    category = products[0]["category"]
    term = cold_search_term([product["name"] for product in products])
    queries = {
        "list_cold_page1": "",
        "list_cold_category": f"?category={urllib.request.quote(category)}",
        "list_cold_deep": "?" + deep_page_query(total),
        "list_cold_search": f"?q={urllib.request.quote(term)}",
    }
    return [Endpoint(name, "cold", "/api/products" + query, connections) for name, query in queries.items()]


def large_endpoints(products: list[dict], total: int) -> list[Endpoint]:
    # One connection shows the cold list's own latency (the < 20 ms target); at 16 and 64 connections on two
    # cores the queue in front of the workers dominates it.
    levels = (1, 16, 64)
    return [
        Endpoint("floor", "floor", "/api/products", levels),
        Endpoint("list_hit", "shop", "/api/products", (16, 64)),
        *cold_list_endpoints(products, total, levels),
    ]


# --- Passes -------------------------------------------------------------------------------------------


def shop_env(cfg: Config, database_url: str) -> dict[str, str]:
    # GUNICORN_* pass through: they tune shop/gunicorn.conf.py for the shop and the floor alike.
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        REDIS_URL=cfg.redis_url,
        RATELIMIT_ENABLED="0",
    )
    env.pop("DB_SECRET_ARN", None)
    env.pop("APP_SECRET_ARN", None)
    return env


def create_sessions(server: Server, path: Path, count: int) -> None:
    tokens = []
    for _ in range(count):
        status, _, body = fetch(server.url + "/api/sessions", method="POST", body=b"{}")
        if status != 201:
            raise RuntimeError(f"POST /api/sessions answered {status}")
        tokens.append(json.loads(body)["session_token"])
    path.write_text("\n".join(tokens) + "\n")


def statements_per_checkout(env: dict[str, str]) -> dict:
    output = manage("shell", "--command", "from bench.statements import main; main()", env=env)
    # The shell's stdout also carries the request log lines of the checkouts it made.
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "logger" not in line][-1]


def run_pass(cfg: Config, name: str, products_count: int, port: int, stamp: str) -> dict:
    database_url = cfg.database_url
    if name == "large":
        database_url = with_database(database_url, database_name(database_url) + "_large")
    env = shop_env(cfg, database_url)
    print(f"== pass {name}: {products_count} products on {database_name(database_url)}", flush=True)
    recreate_database(database_url)
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    manage("seed_products", "--products", str(products_count), "--seed", "1", env=env)
    seeded = product_count(database_url)
    if seeded != products_count:
        raise RuntimeError(f"seed_products left {seeded} products, not {products_count}")
    if name == "small":
        deepen_stock(database_url)
    flush_redis(cfg.redis_url)

    log_path = RESULTS / f"{stamp}-{name}.log"
    floor_body = RESULTS / f"{stamp}-{name}-floor-body.json"
    shop = Server("shop", "shop.wsgi:application", port, env, log_path)
    cold = Server("cold", "shop.wsgi:application", port + 1, {**env, "REDIS_URL": unreachable_redis(cfg)}, log_path)
    floor = Server("floor", "bench.floor:application", port + 2, {**env, "BENCH_FLOOR_BODY": str(floor_body)}, log_path)
    servers = {"shop": shop, "cold": cold, "floor": floor}
    load_before = os.getloadavg()
    try:
        shop.start()
        cold.start()
        shop.wait_ready("/health")
        cold.wait_ready("/health")
        _, headers, body = fetch(shop.url + "/api/products")
        if headers.get("X-Cache-Status") != "MISS":
            # A HIT here would be another catalogue's bytes: BENCH_REDIS_URL must be this bench's alone.
            raise RuntimeError(f"the first product list was a {headers.get('X-Cache-Status')}, not a MISS")
        products = json.loads(body)
        total = int(headers.get("X-Total-Count", len(products)))
        floor_body.write_bytes(body)
        floor.start()
        floor.wait_ready("/api/products")
        if fetch(floor.url + "/api/products")[2] != body:
            raise RuntimeError("the floor does not return the product list's bytes")

        tokens_file = RESULTS / f"{stamp}-{name}-tokens.txt"
        if name == "small":
            create_sessions(shop, tokens_file, SESSIONS)
            endpoints = small_endpoints(products, total, tokens_file)
        else:
            endpoints = large_endpoints(products, total)
        if cfg.only:
            endpoints = [endpoint for endpoint in endpoints if endpoint.name in cfg.only or endpoint.name == "floor"]
        print(f"   list body {len(body)} bytes, X-Total-Count {total}", flush=True)
        for endpoint in endpoints:
            print(f"   {endpoint.name:<22} {endpoint.server:<6} {endpoint.path}", flush=True)

        deadlocks_before = deadlocks(database_url)
        runs = measure(cfg, endpoints, servers, database_url)
        deadlock_count = deadlocks(database_url) - deadlocks_before
        rss = {server.name: server.worker_rss_mb() for server in servers.values()}
        for endpoint in endpoints:
            if endpoint.name in cfg.profile:
                stem = RESULTS / f"{stamp}-{name}-{endpoint.name}"
                print(profile_endpoint(cfg, endpoint, servers[endpoint.server], stem), flush=True)
    finally:
        for leftover in (floor_body, RESULTS / f"{stamp}-{name}-tokens.txt"):
            leftover.unlink(missing_ok=True)
        stop_all(list(servers.values()))
    load_after = os.getloadavg()

    statements = statements_per_checkout(env) if name == "small" else None
    rows = report.summarize(runs)
    check = report.check_targets(
        rows, worker_rss_mb=rss, deadlocks=deadlock_count, cold_latency_connections=1 if name == "large" else None
    )
    print(report.format_table(rows))
    print("worker RSS MB: " + "; ".join(f"{server} {_sizes(sizes)}" for server, sizes in rss.items()))
    if statements:
        print(f"SQL statements per checkout: {statements}")
    print(f"deadlocks during the pass: {deadlock_count}")
    print(f"load average before {_load(load_before)}, after {_load(load_after)}")
    print(report.format_targets(check), flush=True)
    return {
        "pass": name,
        "products": products_count,
        "database": database_name(database_url),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "runs": [report.as_json(run) for run in runs],
        "rows": [report.as_json(row) for row in rows],
        "worker_rss_mb": rss,
        "deadlocks": deadlock_count,
        "sql_statements_per_checkout": statements,
        "targets": [report.as_json(target) for target in check.targets],
    }


def database_transactions(url: str) -> int:
    """Commits and rollbacks of the database so far (pg_stat_database; backends report them within a second)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return row[0]


def doorbuster_stock(url: str, product_id: int) -> tuple[int, int]:
    """The product's stock now and the units sold of it in orders."""
    with psycopg.connect(url, autocommit=True) as conn:
        stock = conn.execute("SELECT quantity FROM catalog_inventory WHERE product_id = %s", (product_id,)).fetchone()[
            0
        ]
        sold = conn.execute(
            "SELECT coalesce(sum(quantity), 0) FROM checkout_orderline WHERE product_id = %s", (product_id,)
        ).fetchone()[0]
    return stock, sold


def doorbuster_reset(url: str, product_id: int, env: dict[str, str]) -> None:
    """A fresh race: no orders (every session may buy its limit again), DOORBUSTER_UNITS on hand, the gate rebuilt."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM checkout_idempotencyrecord")
        conn.execute("DELETE FROM checkout_orderline")
        conn.execute("DELETE FROM checkout_order")
        conn.execute("UPDATE catalog_inventory SET quantity = %s WHERE product_id = %s", (DOORBUSTER_UNITS, product_id))
    manage("flash_sale", "--rebuild", env=env)


def doorbuster_race(cfg: Config, server: Server, tokens_file: Path, product_id: int, connections: int, env, url):
    """DOORBUSTER_ATTEMPTS checkouts at `connections`; what they were answered and what PostgreSQL did."""
    doorbuster_reset(url, product_id, env)
    threads = min(cfg.wrk_threads, connections)
    budget = DOORBUSTER_ATTEMPTS // threads
    endpoint = Endpoint(
        "doorbuster",
        "shop",
        "/api/checkout",
        (connections,),
        DOORBUSTER,
        (str(tokens_file), str(product_id), str(budget)),
    )
    time.sleep(1.5)  # the reset's own transactions reported before the count starts
    transactions_before = database_transactions(url)
    started = time.monotonic()
    output = doorbuster_wrk(server, endpoint, connections, threads, run_id=f"door{secrets.token_hex(4)}")
    seconds = round(time.monotonic() - started, 1)
    time.sleep(1.5)
    transactions = database_transactions(url) - transactions_before
    data = json.loads(
        [line for line in output.splitlines() if line.startswith(report.MARKER)][-1][len(report.MARKER) :]
    )
    stock, sold = doorbuster_stock(url, product_id)
    return report.DoorbusterRace(
        connections=connections,
        attempts=budget * threads,
        answered=data["answered"],
        orders=data["status_201"],
        sold_out=data["status_409"],
        shed_503=data["status_503_retry"],
        other_5xx=data["status_503_bare"] + data["status_5xx_other"],
        other=data["status_other"],
        stock_after=stock,
        units_sold=sold,
        transactions=transactions,
        socket_errors=sum(data.get(f"errors_{kind}", 0) for kind in ("connect", "read", "write", "timeout")),
        seconds=seconds,
    )


def doorbuster_wrk(server: Server, endpoint: Endpoint, connections: int, threads: int, *, run_id: str) -> str:
    """wrk with the doorbuster script, interrupted (it then prints its report) once every thread has its answers,
    or RACE_GRACE_SECONDS after the first one has, when an answer was lost to a socket error."""
    command = [
        *("wrk", f"-t{threads}", f"-c{connections}", "-d120s", "--timeout", "10s", "-s", endpoint.script),
        *(server.url + endpoint.path, "--", *endpoint.script_args, run_id, str(threads)),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, first_done = b"", None
    while process.poll() is None and seen.count(b"THREAD_DONE") < threads:
        if first_done is not None and time.monotonic() - first_done > RACE_GRACE_SECONDS:
            break
        if select.select([process.stdout], [], [], 0.2)[0]:
            seen += os.read(process.stdout.fileno(), 65536)
            if first_done is None and b"THREAD_DONE" in seen:
                first_done = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=30)
    if process.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"wrk failed for {endpoint.name}: {errors.decode()}")
    return (seen + rest).decode()


def run_doorbuster(cfg: Config, port: int, stamp: str) -> dict:
    """The doorbuster pass: races for one product on flash sale, then its sold-out answers beside the floor."""
    database_url = with_database(cfg.database_url, database_name(cfg.database_url) + "_door")
    env = shop_env(cfg, database_url)
    print(f"== pass doorbuster: {DOORBUSTER_ATTEMPTS} checkouts for {DOORBUSTER_UNITS} units", flush=True)
    recreate_database(database_url)
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    manage("seed_products", "--products", "100", "--seed", "1", env=env)
    flush_redis(cfg.redis_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        product_id = conn.execute("SELECT min(id) FROM catalog_product").fetchone()[0]
    manage("flash_sale", str(product_id), "--max-per-session", str(DOORBUSTER_LIMIT), env=env)

    log_path = RESULTS / f"{stamp}-doorbuster.log"
    floor_body = RESULTS / f"{stamp}-doorbuster-floor-body.json"
    tokens_file = RESULTS / f"{stamp}-doorbuster-tokens.txt"
    shop = Server("shop", "shop.wsgi:application", port, env, log_path)
    floor = Server("floor", "bench.floor:application", port + 2, {**env, "BENCH_FLOOR_BODY": str(floor_body)}, log_path)
    servers = {"shop": shop, "floor": floor}
    races = []
    try:
        shop.start()
        shop.wait_ready("/health")
        floor_body.write_bytes(fetch(shop.url + "/api/products")[2])
        floor.start()
        floor.wait_ready("/api/products")
        create_sessions(shop, tokens_file, SESSIONS)
        for connections in DOORBUSTER_CONNECTIONS:
            race = doorbuster_race(cfg, shop, tokens_file, product_id, connections, env, database_url)
            print(f"   {report.format_race(race)}", flush=True)
            races.append(race)
        sold_out = (str(tokens_file), str(product_id))
        endpoints = [
            Endpoint("floor", "floor", "/api/products", DOORBUSTER_CONNECTIONS),
            Endpoint("checkout_sold_out", "shop", "/api/checkout", DOORBUSTER_CONNECTIONS, CHECKOUT, sold_out),
        ]
        runs = measure(cfg, endpoints, servers, database_url)
        for endpoint in endpoints:
            if endpoint.name in cfg.profile:
                stem = RESULTS / f"{stamp}-doorbuster-{endpoint.name}"
                print(profile_endpoint(cfg, endpoint, servers[endpoint.server], stem), flush=True)
    finally:
        for leftover in (floor_body, tokens_file):
            leftover.unlink(missing_ok=True)
        stop_all(list(servers.values()))
    rows = report.summarize(runs)
    check = report.check_doorbuster(races, rows, units=DOORBUSTER_UNITS)
    print(report.format_table(rows))
    print(report.format_targets(check), flush=True)
    return {
        "pass": "doorbuster",
        "database": database_name(database_url),
        "races": [report.as_json(race) for race in races],
        "runs": [report.as_json(run) for run in runs],
        "rows": [report.as_json(row) for row in rows],
        "targets": [report.as_json(target) for target in check.targets],
    }


def _sizes(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


def _load(values: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cfg = config_from_env()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    result = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "config": {
            "duration_s": cfg.duration,
            "warmup_s": cfg.warmup,
            "repeats": cfg.repeats,
            "wrk_threads": cfg.wrk_threads,
            "only": sorted(cfg.only),
        },
        "passes": [],
    }
    sizes = {"small": 100, "large": LARGE_PRODUCTS}
    for offset, name in enumerate(cfg.passes):
        if name == "doorbuster":
            result["passes"].append(run_doorbuster(cfg, cfg.port + 3 * offset, stamp))
            continue
        result["passes"].append(run_pass(cfg, name, sizes[name], cfg.port + 3 * offset, stamp))
    result["elapsed_s"] = round(time.monotonic() - started)
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)} ({result['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
