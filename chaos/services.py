"""What a chaos run starts and owns: its database, its Redis, its proxies, its network namespace, the shop.

Proxies and Redis are started in a session of their own (their own process group) and stopped by group; the shop
is started by shop.nginx.start, as `make serve` starts it, and stopped with its workers; so a run that fails or is
interrupted leaves nothing behind. The shared PostgreSQL is only reached through a database this run
creates and drops; the shared Redis is never touched: each run starts its own redis-server on a free port.
"""

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from shop import nginx
from shop.nginx.__main__ import BODY_MAX_BYTES

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Process:
    """A child in its own process group: SIGSTOP/SIGCONT/SIGKILL reach it and anything it started."""

    def __init__(self, name: str, command: list[str], *, log_path: Path, reads_stdout: bool = False):
        self.name = name
        log = log_path.open("ab")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE if reads_stdout else log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read_line(self, timeout: float = 10.0) -> str:
        """The next stdout line, or RuntimeError if none comes within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.popen.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            chunk = self.popen.stdout.read() or b""
            buffer += chunk
            if b"\n" in buffer:
                return buffer.split(b"\n", 1)[0].decode()
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} printed no line within {timeout:.0f} s (exit code {self.popen.poll()})")

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.popen.poll() is None:
            # A stopped group cannot act on SIGKILL until it runs again; SIGKILL still ends it, but SIGCONT first
            # keeps the order of events obvious.
            self.signal(signal.SIGKILL)
            self.signal(signal.SIGCONT)
        self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


# --- PostgreSQL through a proxy -------------------------------------------------------------------------


def start_proxy(
    *,
    name: str,
    upstream: tuple[str, int],
    log_path: Path,
    listen_host: str = HOST,
    listen_port: int = 0,
    latency_ms: int = 0,
    reset_chance: float = 0.0,
    netns: str | None = None,
) -> tuple[Process, int]:
    """A chaos.proxy process (inside `netns` when given) and the port it listens on."""
    command = [
        sys.executable,
        "-m",
        "chaos.proxy",
        *("--listen", f"{listen_host}:{listen_port}", "--upstream", f"{upstream[0]}:{upstream[1]}"),
        *("--latency-ms", str(latency_ms), "--reset-chance", str(reset_chance)),
    ]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = Process(name, command, log_path=log_path, reads_stdout=True)
    line = process.read_line()
    if not line.startswith("listening "):
        process.stop()
        raise RuntimeError(f"{name} said {line!r}, not 'listening <port>'")
    return process, int(line.split()[1])


def database_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or HOST, parts.port or 5432


def url_via(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced: the same database reached through a proxy."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


# --- A network namespace for packet faults --------------------------------------------------------------


@dataclass
class Netns:
    """A namespace joined to this one by a veth pair: `host_ip` here, `inner_ip` inside."""

    name: str
    host_dev: str
    inner_dev: str
    host_ip: str
    inner_ip: str

    def run(self, *args: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *args], check=True, capture_output=True)

    def drop_packets(self, qdisc: list[str]) -> None:
        """`qdisc` as the root qdisc of both ends of the veth pair: packets are dropped whichever way they go."""
        subprocess.run(["tc", "qdisc", "add", "dev", self.host_dev, "root", *qdisc], check=True, capture_output=True)
        self.run("tc", "qdisc", "add", "dev", self.inner_dev, "root", *qdisc)

    def dropping_qdisc(self) -> list[str]:
        """netem dropping every packet; where the kernel has no netem, a FIFO of length 0, which drops every
        packet too (to TCP both are loss: it retransmits and waits). RuntimeError when neither is available."""
        errors = []
        for qdisc in (["netem", "loss", "100%"], ["pfifo", "limit", "0"]):
            try:
                self.drop_packets(qdisc)
            except subprocess.CalledProcessError as exc:
                errors.append(f"{qdisc[0]}: {exc.stderr.decode().strip()}")
                self.restore()
                continue
            self.restore()
            return qdisc
        raise RuntimeError("; ".join(errors))

    def restore(self) -> None:
        subprocess.run(["tc", "qdisc", "del", "dev", self.host_dev, "root"], check=False, capture_output=True)
        subprocess.run(
            ["ip", "netns", "exec", self.name, "tc", "qdisc", "del", "dev", self.inner_dev, "root"],
            check=False,
            capture_output=True,
        )

    def delete(self) -> None:
        # Deleting the namespace deletes the veth end inside it, and with it the pair.
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", self.host_dev], check=False, capture_output=True)


def netns_unavailable() -> str | None:
    """Why packet faults cannot run here, or None when they can (root, `ip` and `tc`)."""
    if os.geteuid() != 0:
        return "needs root (ip netns, tc netem)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2)"
    return None


def netns_create() -> Netns:
    """A namespace and veth pair with names and a /30 from 10.213.0.0/16 unique to this process."""
    tag = f"{os.getpid() % 100000}{secrets.token_hex(1)}"
    third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
    netns = Netns(
        name=f"chaos{tag}",
        host_dev=f"ch{tag}h",
        inner_dev=f"ch{tag}n",
        host_ip=f"10.213.{third}.{fourth + 1}",
        inner_ip=f"10.213.{third}.{fourth + 2}",
    )
    steps = [
        ["ip", "netns", "add", netns.name],
        ["ip", "link", "add", netns.host_dev, "type", "veth", "peer", "name", netns.inner_dev],
        ["ip", "link", "set", netns.inner_dev, "netns", netns.name],
        ["ip", "addr", "add", f"{netns.host_ip}/30", "dev", netns.host_dev],
        ["ip", "link", "set", netns.host_dev, "up"],
        ["ip", "netns", "exec", netns.name, "ip", "addr", "add", f"{netns.inner_ip}/30", "dev", netns.inner_dev],
        ["ip", "netns", "exec", netns.name, "ip", "link", "set", netns.inner_dev, "up"],
        ["ip", "netns", "exec", netns.name, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            result = subprocess.run(step, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"`{' '.join(step)}` failed: {result.stderr.strip()}")
    except BaseException:
        netns.delete()
        raise
    return netns


# --- Redis ----------------------------------------------------------------------------------------------


def start_redis(log_path: Path, *, port: int = 0) -> tuple[Process, str]:
    """A redis-server of our own, without persistence, on `port` (a free one by default); the URL to reach it."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; the chaos run starts its own (apt-get install redis-server)")
    port = port or free_port()
    process = Process(
        "redis",
        ["redis-server", "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
        log_path=log_path,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return process, f"redis://{HOST}:{port}/0"
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"redis-server did not listen on {port} within 10 s; see {log_path}")


# --- The database ---------------------------------------------------------------------------------------


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def database_recreate(url: str) -> None:
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(url: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


def stock_set(url: str, *, quantity: int) -> list[int]:
    """Every product's stock set to `quantity`; the product ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE catalog_inventory SET quantity = %s", (quantity,))
        return [row[0] for row in conn.execute("SELECT product_id FROM catalog_inventory ORDER BY product_id")]


def sessions_create(url: str, *, count: int) -> list[str]:
    """`count` shopper sessions written straight to the table, as checkout.services.session_create stores them."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO checkout_shoppersession (token_hash, created_at, expires_at) VALUES (%s, %s, %s)",
            [(hashlib.sha256(token.encode()).hexdigest(), now, now + timedelta(days=1)) for token in tokens],
        )
    return tokens


# --- The shop -------------------------------------------------------------------------------------------


@dataclass
class Shop:
    """The shop as `make serve` runs it: nginx on `url` (what every client calls) in front of gunicorn on a unix
    socket. `port` is nginx's."""

    url: str
    port: int
    env: dict[str, str]
    pair: nginx.Pair
    run_dir: Path
    log_filter: subprocess.Popen

    def worker_pids(self) -> list[int]:
        pid = self.pair.gunicorn.pid
        return sorted(int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())

    def stop(self) -> None:
        workers = self.worker_pids() if self.pair.gunicorn.poll() is None else []
        # SIGINT first: gunicorn's quick shutdown, so a request still held by a fault does not delay the next one.
        if self.pair.gunicorn.poll() is None:
            self.pair.gunicorn.send_signal(signal.SIGINT)
        self.pair.stop(timeout=10)
        # A worker that outlives its master (one that would not stop within the 10 s) is ended here: it would hold
        # the log pipe and its connections for as long as it lives.
        for pid in workers:
            try:
                # Still this shop's worker (its command names this run directory), not a reused pid.
                if str(self.run_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        try:
            self.log_filter.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.log_filter.kill()
            self.log_filter.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def serve_shop(*, env: dict[str, str], log_path: Path) -> Shop:
    """nginx on a free port in front of gunicorn on a unix socket, started by shop.nginx.start as `make serve`
    starts them, with production's workers x threads (GUNICORN_WORKERS, GUNICORN_THREADS, else its defaults).

    The one place a chaos run starts the shop: every fault, stalled clients and overload included, goes through
    the front. gunicorn's and nginx's output go to `log_path` without the INFO lines (one per request).
    """
    workers = int(env.get("GUNICORN_WORKERS") or (os.cpu_count() or 1) * 2)
    threads = int(env.get("GUNICORN_THREADS") or 4)
    # Short (a unix socket's path has at most 107 bytes) and open to nginx's workers (nobody when run as root).
    run_dir = Path(tempfile.mkdtemp(prefix="chaos-front-"))
    run_dir.chmod(0o755)
    log = log_path.open("ab")
    log_filter = subprocess.Popen(
        ["grep", "--line-buffered", "-v", "-F", '"level": "INFO"'],
        stdin=subprocess.PIPE,
        stdout=log,
        start_new_session=True,
    )
    log.close()
    # nginx is one hop in front of the app, as under `make serve`.
    env = {**env, "TRUSTED_PROXY_COUNT": "1"}
    port = free_port()
    try:
        pair = nginx.start(
            port=f"{HOST}:{port}",
            run_dir=run_dir,
            workers=workers,
            threads=threads,
            body_max_bytes=BODY_MAX_BYTES,
            env=env,
            output=log_filter.stdin,
        )
    finally:
        log_filter.stdin.close()
    shop = Shop(url=pair.url, port=port, env=env, pair=pair, run_dir=run_dir, log_filter=log_filter)
    try:
        nginx.wait_ready(pair)
        # Workers fork after the master answers; wait until each is up so a fault never meets a half-started pool.
        deadline = time.monotonic() + 15
        while len(shop.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
    except BaseException:
        shop.stop()
        raise
    return shop
