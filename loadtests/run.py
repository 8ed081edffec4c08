"""`make loadtest` / `make loadtest-ui`: the Black-Friday run against a local production-like server.

For a local --host (127.0.0.1, localhost) it migrates and seeds the database of DATABASE_URL, starts gunicorn
with shop/gunicorn.conf.py on that port (PostgreSQL + Redis from DATABASE_URL/REDIS_URL, per-IP rate limits
raised because every simulated shopper comes from 127.0.0.1, per-session limits as configured), runs locust
(which resets stock deep at each start), prints the summary and always stops the server, whatever the run
ended with. Any other --host is load-tested as it is: nothing is started, seeded or reset there.

    python -m loadtests.run --host http://127.0.0.1:8501 --time-scale 0.1 --peak-users 500 [-- locust args]
"""

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib import request as urlrequest
from urllib.parse import urlsplit

from loadtests.serverlog import app_timings
from loadtests.summary import INCOMPLETE, INCOMPLETE_EXIT, format_table, write_summary

PROJECT_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_DIR / "loadtests" / "results"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Every simulated shopper shares 127.0.0.1, so a per-IP limit would throttle the whole crowd as one client.
RELAXED_PER_IP_RATE = "100000/m"
# Deeper than a full 31-minute run can sell: 500 shoppers buy at most about 130 units/s, the hottest product a fifth
# of them, some 25,000 units in 31 minutes.
DEEP_STOCK = 1_000_000
# A local run's doorbuster (docs/loadtests.md): fewer units than its crowd (100) and bots want, so it sells out.
DOORBUSTER_UNITS = 50
SERVER_START_SECONDS = 60
SERVER_STOP_SECONDS = 10
LOCUST_INTERRUPT_SECONDS = 5


class RunError(Exception):
    """Something the operator must fix before a run can start."""


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8501", help="The shop to load (local: started here).")
    parser.add_argument("--time-scale", type=float, default=1.0, help="1.0 = 31 minutes; 0.1 = about 3 minutes.")
    parser.add_argument("--peak-users", type=int, default=500)
    parser.add_argument("--web-ui", action="store_true", help="locust's web UI instead of a headless run.")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument(
        "--workers", type=int, default=0, help="Worker processes under a master on this machine (0: one process)."
    )
    parser.add_argument("--master-port", type=int, default=5557, help="Where the master listens for its workers.")
    parser.add_argument(
        "--reset-stock",
        action="store_true",
        help="Reset the stock even when DATABASE_URL is not a dedicated load-test database (no question asked).",
    )
    parser.add_argument("--results-dir", default="", help="Default: loadtests/results/<UTC timestamp>.")
    args, extra = parser.parse_known_args(argv)
    return args, [arg for arg in extra if arg != "--"]


def is_local(host: str) -> bool:
    return urlsplit(host).hostname in LOCAL_HOSTS


def server_environment(port: int) -> dict[str, str]:
    env = dict(os.environ)
    database_url, redis_url = env.get("DATABASE_URL", ""), env.get("REDIS_URL", "")
    if not database_url.startswith("postgres"):
        raise RunError("DATABASE_URL must name PostgreSQL (postgres://...): a load test measures the real stack.")
    if not redis_url.startswith("redis"):
        raise RunError("REDIS_URL must name Redis (redis://...): the cache and rate limits live there.")
    env.update(
        {
            "DJANGO_DEBUG": "0",
            "PORT": str(port),
            "GUNICORN_BIND": "127.0.0.1",
            "RATELIMIT_SESSIONS_PER_IP": RELAXED_PER_IP_RATE,
            "RATELIMIT_CHECKOUT_PER_IP": RELAXED_PER_IP_RATE,
        }
    )
    # A throwaway key and metrics token for this server when the shell has none.
    env.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    env["METRICS_TOKEN"] = env.get("METRICS_TOKEN") or secrets.token_urlsafe(24)
    return env


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RunError(f"manage.py {' '.join(args)} failed:\n{(result.stderr or result.stdout).strip()}")
    if result.stdout.strip():
        print(result.stdout.strip().splitlines()[-1])


def start_server(env: dict[str, str], host: str, log_path: Path) -> subprocess.Popen:
    log_file = log_path.open("w")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # A session of its own: stopping it stops its workers too, and a Ctrl-C in this terminal reaches only us.
    server = subprocess.Popen(
        [str(gunicorn), "--config", "shop/gunicorn.conf.py"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RunError(f"gunicorn exited with {server.returncode} at start; see {log_path}")
        try:
            with urlrequest.urlopen(f"{host}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    raise RunError(f"gunicorn did not answer {host}/health within {SERVER_START_SECONDS} s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to gunicorn's process group (graceful), SIGKILL if it is still there after a few seconds."""
    if server.poll() is not None:
        return
    group = os.getpgid(server.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        server.wait(timeout=SERVER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        server.wait()


def locust_command(
    args: argparse.Namespace, extra: list[str], results_dir: Path, *, reset_stock: bool, confirmed: bool = False
) -> list[str]:
    """The master's (or the only process's) command. `confirmed`: the operator agreed to reset the stock of a
    database that is not a dedicated load-test one."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "loadtests/locustfile.py",
        "--host",
        args.host,
        "--time-scale",
        str(args.time_scale),
        "--peak-users",
        str(args.peak_users),
        "--results-dir",
        str(results_dir),
        "--html",
        str(results_dir / "report.html"),
        "--csv",
        str(results_dir / "locust"),
    ]
    if reset_stock:
        command += ["--reset-stock", str(DEEP_STOCK), "--doorbuster-units", str(DOORBUSTER_UNITS)]
        if confirmed:
            command += ["--reset-stock-confirmed"]
    if args.workers:
        command += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(args.master_port),
            "--expect-workers",
            str(args.workers),
        ]
    if args.web_ui:
        command += ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
    else:
        # The phase lines and the summary below say more than locust's table every two seconds.
        command += ["--headless", "--only-summary"]
    return command + extra


def worker_command(args: argparse.Namespace) -> list[str]:
    """A worker on this machine. The master sends it the run's options with each spawn (locust passes a
    locustfile's own options on), so it needs only where the master is."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "loadtests/locustfile.py",
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(args.master_port),
    ]


def start_workers(args: argparse.Namespace, env: dict[str, str], results_dir: Path) -> list[subprocess.Popen]:
    workers = []
    for index in range(args.workers):
        with (results_dir / f"worker-{index}.log").open("w") as log_file:
            workers.append(
                subprocess.Popen(
                    worker_command(args), cwd=PROJECT_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT
                )
            )
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """Workers leave when their master quits; one still there a few seconds later is terminated."""
    for worker in workers:
        try:
            worker.wait(timeout=LOCUST_INTERRUPT_SECONDS)
        except subprocess.TimeoutExpired:
            worker.terminate()
            worker.wait()


def stock_status(env: dict[str, str]) -> dict:
    """The database DATABASE_URL names: its label, whether it is a dedicated load-test one, its product count."""
    result = subprocess.run(
        [sys.executable, "-m", "loadtests.stock", "--status"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RunError(f"could not read the database of DATABASE_URL:\n{(result.stderr or result.stdout).strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# How this run may reset the stock (loadtests/stock.py): the database is marked as a dedicated load-test one, or
# it is empty (this run seeds and marks it), or the operator said so (flag or answer).
DEDICATED, NEW, FLAGGED, ANSWERED = "dedicated", "new", "flagged", "answered"


def stock_reset_consent(status: dict, *, flag: bool, ask: Callable[[str], str] | None) -> str:
    """DEDICATED, NEW, FLAGGED or ANSWERED; RunError when the stock of somebody's database would be changed without
    their say (no flag, and no terminal to ask on, or a "no")."""
    if status["dedicated"]:
        return DEDICATED
    if not status["products"]:
        return NEW
    change = (
        f"the load test sets the stock of every product in {status['database']} ({status['products']:,} products) "
        f"to {DEEP_STOCK:,} and ends its flash sales, and that database is not marked as a dedicated load-test one"
    )
    if flag:
        print(f"{change}: going ahead (--reset-stock / RESET_STOCK=1)")
        return FLAGGED
    if ask is None:
        raise RunError(
            f"refused: {change}. Run with RESET_STOCK=1 (--reset-stock) to change it anyway, or point DATABASE_URL "
            "at a database of its own (docs/loadtests.md)."
        )
    if ask(f"{change}. Change it? [y/N] ").strip().lower() in {"y", "yes"}:
        return ANSWERED
    raise RunError(f"stopped: the stock of {status['database']} is left as it is")


def verdict_code(summary: dict) -> int:
    """0 for PASSED, 1 for FAILED, 3 for INCOMPLETE (the shape did not finish: nothing to pass)."""
    if summary.get("verdict") == INCOMPLETE:
        return INCOMPLETE_EXIT
    return 0 if summary["passed"] else 1


def interrupt(locust: subprocess.Popen) -> int:
    """Ctrl-C: locust (same terminal, same signal) writes its reports and exits. When the signal reached this
    process alone, locust gets a SIGTERM (a background job may ignore SIGINT) and shuts down."""
    try:
        return locust.wait(timeout=LOCUST_INTERRUPT_SECONDS)
    except subprocess.TimeoutExpired:
        locust.terminate()
        return locust.wait()


def print_summary(results_dir: Path, *, server_log: Path | None) -> dict | None:
    """The summary table; for a local server, with the app's own time per phase added to summary.json first."""
    path = results_dir / "summary.json"
    if not path.exists():
        print(f"no summary at {path}: the run ended before its first test stop")
        return None
    summary = json.loads(path.read_text())
    if server_log is not None and server_log.exists():
        with server_log.open() as lines:
            summary["app_time"] = app_timings(lines, [*summary["phases"], summary["all"]])
        write_summary(summary, path)
    print()
    print(format_table(summary))
    print(f"reports: {results_dir}")
    return summary


def run(args: argparse.Namespace, extra: list[str], *, ask: Callable[[str], str] | None = None) -> int:
    """One load test; `ask` puts a question to the operator (None: nobody to ask, so no means no)."""
    if not urlsplit(args.host).scheme.startswith("http"):
        raise RunError(f"--host (HOST) must be a URL like http://127.0.0.1:8501, not {args.host!r}")
    if args.workers < 0:
        raise RunError(f"--workers (WORKERS) must be 0 or more, not {args.workers}")
    local = is_local(args.host)
    env = dict(os.environ)
    server = None
    consent = None
    if local:
        port = urlsplit(args.host).port or 80
        env = server_environment(port)
        if port_in_use(port):
            raise RunError(f"port {port} is in use: stop what runs there or choose another HOST port")
        # Before anything is written: whose stock this run would change, and whether it may.
        consent = stock_reset_consent(stock_status(env), flag=args.reset_stock, ask=ask)
    if args.workers and port_in_use(args.master_port):
        raise RunError(f"port {args.master_port} is in use: choose another MASTER_PORT for locust's master")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR / stamp
    results_dir.mkdir(parents=True, exist_ok=True)
    if local:
        manage(env, "migrate", "--noinput")
        # Never add sample products to somebody's catalogue: only an empty one is seeded, and then it is ours.
        manage(env, "seed_products", "--if-empty")
        if consent == NEW:
            mark = subprocess.run(
                [sys.executable, "-m", "loadtests.stock", "--mark-dedicated"],
                cwd=PROJECT_DIR,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            print((mark.stdout or mark.stderr).strip())
    else:
        print(f"{args.host} is not local: no server is started and its stock is not reset")
    locust = None
    workers: list[subprocess.Popen] = []
    try:
        if local:
            server = start_server(env, args.host, results_dir / "server.log")
            print(f"gunicorn serves {args.host} (log: {results_dir / 'server.log'})")
        command = locust_command(args, extra, results_dir, reset_stock=local, confirmed=consent in {FLAGGED, ANSWERED})
        locust = subprocess.Popen(command, cwd=PROJECT_DIR, env=env)
        workers = start_workers(args, env, results_dir)
        if workers:
            print(f"locust: a master on 127.0.0.1:{args.master_port} and {len(workers)} workers")
        try:
            code = locust.wait()
        except KeyboardInterrupt:
            code = interrupt(locust)
    finally:
        if locust is not None and locust.poll() is None:
            locust.terminate()
            locust.wait()
        stop_workers(workers)
        if server is not None:
            stop_server(server)
            print("gunicorn stopped")
    # After the server stopped: its workers flush their request log as they exit.
    summary = print_summary(results_dir, server_log=results_dir / "server.log" if local else None)
    if summary is None:
        return code or 1
    # The summary's verdict decides, so an interrupted run never exits 0; a locust that failed otherwise stays failed.
    return verdict_code(summary) or code


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    # A SIGTERM (CI cancelling the job) unwinds like Ctrl-C, through the finally that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args, extra, ask=input if sys.stdin.isatty() else None)
    except RunError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
