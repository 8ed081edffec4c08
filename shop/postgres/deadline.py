"""Deadlines the app enforces on every database call, and the circuit that fails fast after one passes.

A frozen server, a hung RDS Proxy or a dead NAT path keeps the TCP connection open: no error comes, and no socket
option fires while the peer's kernel still acknowledges. So each call registers its thread's deadline with one
watchdog thread per process (`watch`); when a deadline passes, the watchdog shuts the connection's socket down.
The waiting thread wakes at once with an OperationalError and the request answers 503.

Why the socket and not a cancel request: PostgreSQL's cancel travels over a new connection to the same server
(through the same proxy, the same path), which is the thing that is not answering. A server that answers but is
slow is stopped sooner by its own statement_timeout (set on the role), which leaves the connection usable.

After a deadline passes or a connect fails, the circuit opens: for COOLDOWN seconds every call fails at once
without touching the network, then one call probes while the others keep failing fast; its success closes the
circuit, its failure opens it again. The Redis client (shop/redis.py) has the same shape, without the probe.
"""

import logging
import os
import socket
import threading
import time

from django.db import OperationalError

from shop.metrics import app_metrics

log = logging.getLogger("shop.db")

# Seconds the circuit stays open after a failure: also the Retry-After of the 503 (shop.middleware).
COOLDOWN = 5.0
# How often the watchdog looks at the running calls: a deadline is enforced up to this late.
TICK = 0.1


class DatabaseUnavailable(OperationalError):
    """The database was skipped (circuit open) or did not answer before the app's deadline."""


class DeadlineExceeded(DatabaseUnavailable):
    pass


class Circuit:
    def __init__(self, *, cooldown: float = COOLDOWN):
        self.cooldown = cooldown
        self.open_until = 0.0  # 0.0: closed. Read without the lock on every call (one attribute read)
        self.probe_until = 0.0  # while a probe runs: when it is given up
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether a call may go to the database now. Closed: yes. Open: no, until the cool-down ends; then one
        caller (the probe) goes, and the others wait for its answer, failing fast."""
        if not self.open_until:
            return True
        with self._lock:
            now = time.monotonic()
            if not self.open_until:
                return True
            if now < self.open_until or now < self.probe_until:
                return False
            self.probe_until = now + self.cooldown
            return True

    def trip(self, error: BaseException) -> None:
        with self._lock:
            if not self.open_until:
                log.warning(
                    "database unavailable, failing fast", extra={"error": str(error), "cooldown_s": self.cooldown}
                )
                app_metrics.circuit_opened("database")
            self.open_until = time.monotonic() + self.cooldown
            self.probe_until = 0.0

    def reset(self) -> None:
        with self._lock:
            if self.open_until:
                log.warning("database answers again")
            self.open_until = self.probe_until = 0.0

    def retry_after(self) -> int:
        """Whole seconds until the next probe, at least 1."""
        return max(1, int(self.open_until - time.monotonic() + 0.999))


circuit = Circuit()
app_metrics.watch_circuit("database", lambda: bool(circuit.open_until))


class Watchdog:
    """One daemon thread per process that enforces the deadlines of the calls in flight.

    A call costs two dict operations (`running[thread] = …`, then `pop`); the thread wakes every TICK seconds and
    compares the few entries with the clock.
    """

    def __init__(self, *, tick: float = TICK):
        self.tick = tick
        self.running: dict[int, tuple[float, object]] = {}  # thread id -> (deadline, DatabaseWrapper)
        self._started_in: int | None = None
        self._start_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.running.clear()  # a forked child has none of its parent's threads
        self._started_in = None

    def start(self) -> None:
        with self._start_lock:
            if self._started_in == os.getpid():
                return
            threading.Thread(target=self._run, name="db-deadline-watchdog", daemon=True).start()
            self._started_in = os.getpid()

    def _run(self) -> None:
        wake = threading.Event()
        while not wake.wait(self.tick):
            try:
                self.expire_due(time.monotonic())
            except Exception:  # the watchdog must outlive any one failure, or no deadline would be enforced
                log.exception("database deadline watchdog failed; it goes on")

    def expire_due(self, now: float) -> None:
        for thread_id, entry in list(self.running.items()):
            if entry[0] <= now and self.running.get(thread_id) is entry:
                self.running.pop(thread_id, None)
                self.expire(entry[1])

    @staticmethod
    def expire(db) -> None:
        """Wake the thread waiting on `db`'s connection: shut its socket down, so the read returns end-of-file."""
        db.deadline_passed = True
        circuit.trip(DeadlineExceeded(f"no answer within {db.deadline_seconds} s"))
        try:
            fd = db.connection.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception as exc:  # noqa: BLE001 - the connection was closed meanwhile: nothing waits on it
            log.debug("deadline passed on a closed connection", extra={"error": str(exc)})


watchdog = Watchdog()
