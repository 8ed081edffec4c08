"""`make chaos` / `python -m chaos`: every fault against a real gunicorn, PostgreSQL and Redis, then one table.

The run creates a database of its own (the name of CHAOS_DATABASE_URL, else DATABASE_URL, + "_chaos"), migrates
and seeds it, and drops it at the end. Exit code 1 when an invariant or a strict promise broke, or a fault could
not run; 0 otherwise (a promise not yet kept is reported, not failed).
"""

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from chaos.faults import FAULTS, Run, Skipped
from chaos.ledger import ledger_read, stock_snapshot
from chaos.services import (
    ROOT,
    database_drop,
    database_name,
    database_recreate,
    manage,
    sessions_create,
    stock_set,
    with_database,
)
from chaos.table import Result, evaluate, format_table

PRODUCTS = 4
# Deep enough that no checkout of a run meets insufficient stock: a 409 would hide what the fault did.
STOCK = 1_000_000
SESSIONS = 64


def run_database_url() -> str:
    base = os.environ.get("CHAOS_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        raise SystemExit("chaos: set DATABASE_URL (or CHAOS_DATABASE_URL) to a postgres:// URL")
    return with_database(base, database_name(base) + "_chaos")


def shop_env(database_url: str) -> dict[str, str]:
    """The environment of `make serve` (DEBUG off) for the run's database; GUNICORN_* pass through."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "REDIS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="shop.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        # The traffic comes from one address and a few sessions: limits would answer 429 instead of the fault.
        RATELIMIT_ENABLED="0",
    )
    for key in ("DB_SECRET_ARN", "APP_SECRET_ARN", "REDIS_URL"):
        env.pop(key, None)
    return env


def prepare(database_url: str, log_dir: Path, scale: float) -> Run:
    env = shop_env(database_url)
    database_recreate(database_url)
    manage("migrate", "--noinput", env=env)
    manage("seed_products", "--products", str(PRODUCTS), "--seed", "1", env=env)
    product_ids = stock_set(database_url, quantity=STOCK)
    tokens = sessions_create(database_url, count=SESSIONS)
    return Run(database_url=database_url, tokens=tokens, product_ids=product_ids, log_dir=log_dir, env=env, scale=scale)


def run_fault(run: Run, name: str) -> Result:
    """One fault, isolated: everything it starts is stopped before PostgreSQL is read for the ledger."""
    result = Result(name)
    started = time.monotonic()
    before = stock_snapshot(run.database_url)
    try:
        with ExitStack() as stack:
            result.measured = FAULTS[name](run, stack)
    except Skipped as exc:
        result.skipped = str(exc)
    except Exception as exc:  # noqa: BLE001 - one fault that cannot run is reported; the others still run
        result.error = f"{type(exc).__name__}: {exc}"
        (run.log_dir / f"{name}.error.txt").write_text(traceback.format_exc())
    result.seconds = time.monotonic() - started
    if result.measured is not None:
        after = stock_snapshot(run.database_url)
        result.ledger = ledger_read(
            run.database_url, checkouts=result.measured.traffic.checkouts, before=before, after=after
        )
        result.checks = evaluate(result)
    return result


def run_faults(names: list[str], *, scale: float = 1.0, log_dir: Path, keep_database: bool = False) -> list[Result]:
    database_url = run_database_url()
    try:
        run = prepare(database_url, log_dir, scale)
        results = []
        for name in names:
            print(f"chaos: {name} ...", file=sys.stderr, flush=True)
            results.append(run_fault(run, name))
        return results
    finally:
        if not keep_database:
            database_drop(database_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description="Faults against the real shop; one table.")
    parser.add_argument("--only", help=f"comma-separated faults (default all): {', '.join(FAULTS)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every fault's durations (default 1)")
    parser.add_argument("--keep-database", action="store_true", help="keep the run's database for inspection")
    args = parser.parse_args(argv)
    names = [name for name in (args.only or "").split(",") if name] or list(FAULTS)
    unknown = [name for name in names if name not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(unknown)}")
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="chaos-") as logs:
        started = time.monotonic()
        results = run_faults(names, scale=args.scale, log_dir=Path(logs), keep_database=args.keep_database)
        print(format_table(results))
        print(f"\n{len(results)} faults in {time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs")
        broken = [result for result in results if result.failed or result.error]
        for result in broken:
            for path in sorted(Path(logs).glob(f"{result.name}*")):
                print(f"\n--- {path.name} (last lines)\n" + "\n".join(path.read_text().splitlines()[-15:]))
    return 1 if broken else 0
