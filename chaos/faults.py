"""The faults: each starts its own shop (and proxy, Redis, namespace), drives traffic, breaks one thing for a
while, mends it, retries every checkout left in doubt with its own Idempotency-Key, and stops everything it
started.

A fault is a function `(run, stack) -> Measured`: whatever it starts is registered on `stack` (an ExitStack), so
it is stopped however the fault ends. Durations are multiplied by `run.scale` (CI runs a shorter scale).
"""

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from chaos.client import Traffic
from chaos.services import (
    HOST,
    Process,
    Shop,
    database_address,
    netns_create,
    netns_unavailable,
    serve_shop,
    start_proxy,
    start_redis,
    url_via,
)
from shop import nginx

# Checkouts write; a product page is answered from Redis; inventory reads PostgreSQL on every request.
MIX = {"checkout": 2, "product": 1, "inventory": 1}
# As many clients as request threads (4 workers x 4 threads), which is also how many requests nginx lets reach
# gunicorn at once: the traffic keeps every thread busy and is not shed while the shop keeps up.
USERS = 16
# Longer than gunicorn's 20 s worker timeout, the lease of a claim whose request died (docs/timeouts.md), whatever
# the scale: a retry loop this long sees every claim released or taken over. It ends as soon as nothing is in doubt.
RETRY_WITHIN_S = 25.0
# The app's deadline on one database call (DB_DEADLINE_MS's default): a frozen database stays frozen past it, so
# the calls in flight meet the deadline rather than the thaw, whatever the scale.
DB_DEADLINE_S = 8.0
STALLED_CONNECTIONS = 200
# The body a stalled client promises and the part of it it sends.
STALLED_BODY_PROMISED, STALLED_BODY_SENT = 1000, 10
# Stalled clients stall past nginx's client deadline by this much, then the run looks which ones it closed.
STALL_PAST_DEADLINE_S = 3.0
OVERLOAD_FACTOR = 4
OVERLOAD_LIMIT = 4000


class Skipped(Exception):
    """This machine cannot make the fault (not root, no `tc`): the reason goes in the table."""


@dataclass
class Run:
    """What every fault of one run shares: the run's database, its sessions and products, where logs go."""

    database_url: str
    tokens: list[str]
    product_ids: list[int]
    log_dir: Path
    env: dict[str, str]
    scale: float = 1.0

    def seconds(self, value: float) -> float:
        return value * self.scale

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


@dataclass
class Measured:
    traffic: Traffic
    notes: list[str] = field(default_factory=list)
    stalled_closed: bool | None = None
    # When the fault started and ended (time.monotonic()), for promises about the requests made during it.
    window: tuple[float, float] = (0.0, float("inf"))


def shop_start(run: Run, stack: ExitStack, *, name: str, database_url: str | None = None) -> tuple[Shop, Process]:
    """The shop on `database_url` (the run's database by default) with a Redis of its own; both stopped on exit."""
    redis, redis_url = start_redis(run.log(name + "-redis"))
    stack.callback(redis.stop)
    env = {**run.env, "DATABASE_URL": database_url or run.database_url, "REDIS_URL": redis_url}
    shop = serve_shop(env=env, log_path=run.log(name))
    stack.callback(shop.stop)
    return shop, redis


def drive(
    run: Run,
    traffic: Traffic,
    *,
    inject: Callable[[], None] = lambda: None,
    lift: Callable[[], None] = lambda: None,
    before: float = 2.0,
    during: float = 8.0,
    after: float = 3.0,
    users: int = USERS,
    mix: dict[str, int] = MIX,
    retry_all: bool = False,
    at_least: float = 0.0,
) -> tuple[float, float]:
    """Traffic and /health probes for before + during + after seconds, the fault between `inject` and `lift`
    (for `at_least` seconds whatever the scale), then the retries. Returns when the fault started and ended."""
    before, during, after = run.seconds(before), max(run.seconds(during), at_least), run.seconds(after)
    window = []

    async def timeline():
        # In a thread: starting a process or opening sockets must not pause the requests being timed.
        await asyncio.sleep(before)
        await asyncio.to_thread(inject)
        window.append(time.monotonic())
        await asyncio.sleep(during)
        window.append(time.monotonic())
        await asyncio.to_thread(lift)

    async def main():
        until = time.monotonic() + before + during + after
        await asyncio.gather(
            traffic.closed_loop(users=users, until=until, mix=mix), traffic.health_probe(until=until), timeline()
        )
        await traffic.retry(keys=list(traffic.checkouts) if retry_all else None, within=RETRY_WITHIN_S)

    asyncio.run(main())
    return window[0], window[1]


def new_traffic(run: Run, shop: Shop) -> Traffic:
    return Traffic(url=shop.url, tokens=run.tokens, product_ids=run.product_ids)


# --- Faults ---------------------------------------------------------------------------------------------


def baseline(run: Run, stack: ExitStack) -> Measured:
    shop, _ = shop_start(run, stack, name="baseline")
    traffic = new_traffic(run, shop)
    window = drive(run, traffic, before=2, during=0, after=3)
    return Measured(traffic, window=window)


def _db_proxy(run: Run, stack: ExitStack, name: str, **options) -> tuple[Process, int]:
    upstream = options.pop("upstream", database_address(run.database_url))
    proxy, port = start_proxy(name=name, upstream=upstream, log_path=run.log(name + "-proxy"), **options)
    stack.callback(proxy.stop)
    return proxy, port


def db_frozen(run: Run, stack: ExitStack) -> Measured:
    proxy, port = _db_proxy(run, stack, "db_frozen")
    shop, _ = shop_start(run, stack, name="db_frozen", database_url=url_via(run.database_url, HOST, port))
    traffic = new_traffic(run, shop)
    freeze, thaw = (lambda: proxy.signal(signal.SIGSTOP)), (lambda: proxy.signal(signal.SIGCONT))
    window = drive(run, traffic, inject=freeze, lift=thaw, at_least=DB_DEADLINE_S + 2)
    return Measured(traffic, window=window, notes=[f"proxy frozen {window[1] - window[0]:.0f} s"])


def db_latency(run: Run, stack: ExitStack) -> Measured:
    latency_ms = 150
    proxy, port = _db_proxy(run, stack, "db_latency", latency_ms=latency_ms)
    shop, _ = shop_start(run, stack, name="db_latency", database_url=url_via(run.database_url, HOST, port))
    traffic = new_traffic(run, shop)
    window = drive(run, traffic, inject=lambda: proxy.signal(signal.SIGUSR1), lift=lambda: proxy.signal(signal.SIGUSR2))
    return Measured(traffic, window=window, notes=[f"+{latency_ms} ms per packet each way for {run.seconds(8):.0f} s"])


def db_resets(run: Run, stack: ExitStack) -> Measured:
    chance = 0.05
    proxy, port = _db_proxy(run, stack, "db_resets", reset_chance=chance)
    shop, _ = shop_start(run, stack, name="db_resets", database_url=url_via(run.database_url, HOST, port))
    traffic = new_traffic(run, shop)
    window = drive(run, traffic, inject=lambda: proxy.signal(signal.SIGUSR1), lift=lambda: proxy.signal(signal.SIGUSR2))
    note = f"open connections reset, then {chance:.0%} of packets reset theirs"
    return Measured(traffic, window=window, notes=[note])


def db_refused(run: Run, stack: ExitStack) -> Measured:
    """The proxy killed: open connections closed, new ones refused; a new proxy on the same port ends it."""
    proxy, port = _db_proxy(run, stack, "db_refused")
    shop, _ = shop_start(run, stack, name="db_refused", database_url=url_via(run.database_url, HOST, port))
    traffic = new_traffic(run, shop)

    def restart():
        again, _ = start_proxy(
            name="db_refused",
            upstream=database_address(run.database_url),
            log_path=run.log("db_refused-proxy"),
            listen_port=port,
        )
        stack.callback(again.stop)

    window = drive(run, traffic, inject=lambda: proxy.signal(signal.SIGKILL), lift=restart, during=5)
    return Measured(traffic, window=window, notes=[f"proxy killed {run.seconds(5):.0f} s"])


def db_packets_dropped(run: Run, stack: ExitStack) -> Measured:
    """Every packet between the shop and PostgreSQL dropped (tc netem loss 100%): a dead network path.

    The path crosses a veth pair into a namespace of its own and back: shop -> proxy inside the namespace ->
    proxy on the host end of the pair -> PostgreSQL, so only database packets cross the lossy link.
    """
    reason = netns_unavailable()
    if reason:
        raise Skipped(reason)
    try:
        netns = netns_create()
    except RuntimeError as exc:
        raise Skipped(f"cannot create a network namespace: {exc}") from exc
    stack.callback(netns.delete)
    try:
        qdisc = netns.dropping_qdisc()
    except RuntimeError as exc:
        raise Skipped(f"tc cannot drop packets here: {exc}") from exc
    _, outer_port = _db_proxy(run, stack, "db_packets_dropped-outer", listen_host=netns.host_ip)
    _, inner_port = _db_proxy(
        run,
        stack,
        "db_packets_dropped-inner",
        listen_host=netns.inner_ip,
        netns=netns.name,
        upstream=(netns.host_ip, outer_port),
    )
    database_url = url_via(run.database_url, netns.inner_ip, inner_port)
    shop, _ = shop_start(run, stack, name="db_packets_dropped", database_url=database_url)
    traffic = new_traffic(run, shop)
    window = drive(
        run, traffic, inject=lambda: netns.drop_packets(qdisc), lift=netns.restore, at_least=DB_DEADLINE_S + 2
    )
    note = f"every packet dropped ({' '.join(qdisc)}) for {window[1] - window[0]:.0f} s"
    return Measured(traffic, window=window, notes=[note])


def redis_killed(run: Run, stack: ExitStack) -> Measured:
    shop, redis = shop_start(run, stack, name="redis_killed")
    traffic = new_traffic(run, shop)
    port = urlsplit(shop.env["REDIS_URL"]).port

    def restart():
        again, _ = start_redis(run.log("redis_killed-redis"), port=port)
        stack.callback(again.stop)

    window = drive(run, traffic, inject=lambda: redis.signal(signal.SIGKILL), lift=restart, during=5)
    return Measured(traffic, window=window, notes=[f"redis-server killed {run.seconds(5):.0f} s, restarted empty"])


def redis_frozen(run: Run, stack: ExitStack) -> Measured:
    shop, redis = shop_start(run, stack, name="redis_frozen")
    traffic = new_traffic(run, shop)
    freeze, thaw = (lambda: redis.signal(signal.SIGSTOP)), (lambda: redis.signal(signal.SIGCONT))
    window = drive(run, traffic, inject=freeze, lift=thaw, during=5)
    return Measured(traffic, window=window, notes=[f"redis-server stopped (SIGSTOP) {run.seconds(5):.0f} s"])


def stalled_clients(run: Run, stack: ExitStack) -> Measured:
    """Connections that send part of their headers, or headers and part of a promised body, then nothing."""
    shop, _ = shop_start(run, stack, name="stalled_clients")
    traffic = new_traffic(run, shop)
    address = (HOST, shop.port)
    stalled: list[socket.socket] = []
    closed_by_server: list[int] = []

    def stall():
        for n in range(STALLED_CONNECTIONS):
            sock = socket.create_connection(address, timeout=5)
            stack.callback(sock.close)
            if n % 2:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: chaos\r\nX-Stalled: ")
            else:
                head = (
                    "POST /api/checkout HTTP/1.1\r\nHost: chaos\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {STALLED_BODY_PROMISED}\r\n\r\n"
                )
                sock.sendall(head.encode() + b"{" * STALLED_BODY_SENT)
            sock.setblocking(False)
            stalled.append(sock)

    def release():
        closed_by_server.append(sum(_closed(sock) for sock in stalled))
        for sock in stalled:
            sock.close()

    stall_s = nginx.CLIENT_TIMEOUT + STALL_PAST_DEADLINE_S
    window = drive(run, traffic, inject=stall, lift=release, at_least=stall_s)
    closed = closed_by_server[0] if closed_by_server else 0
    held = window[1] - window[0]
    note = f"{STALLED_CONNECTIONS} stalled {held:.0f} s; the server closed {closed} within {stall_s:.0f} s"
    return Measured(
        traffic,
        window=window,
        notes=[note],
        stalled_closed=closed == STALLED_CONNECTIONS,
    )


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def worker_killed(run: Run, stack: ExitStack) -> Measured:
    """SIGKILL a worker while checkouts are in flight, twice, then retry every checkout with its own key."""
    shop, _ = shop_start(run, stack, name="worker_killed")
    traffic = new_traffic(run, shop)
    killed: list[int] = []

    def kill_one():
        pid = shop.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    window = drive(
        run,
        traffic,
        inject=kill_one,
        lift=kill_one,
        before=1.5,
        during=2,
        after=2,
        users=16,
        mix={"checkout": 1},
        retry_all=True,
    )
    # nginx answers a request whose worker died under it 503 upstream_unavailable; a reset would be nginx's own.
    cut = sum(reply.status == "reset" or reply.code == "upstream_unavailable" for reply in traffic.replies)
    return Measured(
        traffic,
        window=window,
        notes=[f"workers {', '.join(map(str, killed))} killed; {cut} checkouts cut; all retried with their keys"],
    )


def overload_4x(run: Run, stack: ExitStack) -> Measured:
    """Checkouts arriving at four times the capacity, on a fixed schedule whatever the answers do.

    Capacity: CHAOS_CAPACITY (checkouts/s; `make bench`'s highest checkouts/s with p99 under 1 s), else measured
    here first: after a second of warm-up, 8 closed-loop clients for 3 s, whose 201s per second stand for it.
    """
    shop, _ = shop_start(run, stack, name="overload_4x")
    traffic = new_traffic(run, shop)
    capacity = float(os.environ.get("CHAOS_CAPACITY", 0))
    if not capacity:
        calibration = Traffic(url=shop.url, tokens=run.tokens, product_ids=run.product_ids, checkouts=traffic.checkouts)
        asyncio.run(calibration.closed_loop(users=8, until=time.monotonic() + 1, mix={"checkout": 1}))
        calibration.replies.clear()
        seconds = run.seconds(3)
        asyncio.run(calibration.closed_loop(users=8, until=time.monotonic() + seconds, mix={"checkout": 1}))
        capacity = max(sum(reply.status == "201" for reply in calibration.replies) / seconds, 1.0)
    rate = OVERLOAD_FACTOR * capacity
    seconds = run.seconds(5)

    window = (time.monotonic(), time.monotonic() + seconds)

    async def main():
        until = window[1]
        lag, _ = await asyncio.gather(
            traffic.open_loop(rate=rate, until=until, mix={"checkout": 1}, limit=OVERLOAD_LIMIT),
            traffic.health_probe(until=until),
        )
        await traffic.retry(within=RETRY_WITHIN_S)
        return lag

    lag = asyncio.run(main())
    return Measured(
        traffic,
        window=window,
        notes=[f"capacity {capacity:.0f}/s, offered {rate:.0f}/s for {seconds:.0f} s; client lag up to {lag:.2f} s"],
    )


FAULTS: dict[str, Callable[[Run, ExitStack], Measured]] = {
    "baseline": baseline,
    "db_frozen": db_frozen,
    "db_packets_dropped": db_packets_dropped,
    "db_latency": db_latency,
    "db_resets": db_resets,
    "db_refused": db_refused,
    "redis_killed": redis_killed,
    "redis_frozen": redis_frozen,
    "stalled_clients": stalled_clients,
    "worker_killed": worker_killed,
    "overload_4x": overload_4x,
}
