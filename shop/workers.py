"""The gunicorn worker class of shop/gunicorn.conf.py: gthread that hands new connections to the least busy worker.

gunicorn's workers accept from one shared listening socket, and a keep-alive connection stays with the worker
that accepted it, so whichever worker wakes first takes most of a burst of new connections. With 64 connections
opened at once, plain gthread left them 43/15/6/0 or 32/32/0/0 over four workers: the crowded worker, held to one
core by the GIL, answered its connections two or three times slower than the rest.

Here every worker publishes how many connections it holds in a small table shared by all the workers of one
gunicorn (anonymous shared memory created in the master before it forks). A worker holding more connections than
the least loaded live worker stops listening for a moment, so that worker takes the connection instead. The wait
is bounded by ACCEPT_DEFER_MAX: a connection never waits longer than that for a less loaded worker to wake up.

Two more duties, both in the worker's main loop, which no request thread can hold up:

- `/health` is answered there, never queued behind the request threads: a new connection whose first bytes are a
  complete `GET /health` (or HEAD) gets its answer from the main loop and is closed. So the load balancer keeps
  hearing "alive" while every thread waits on a slow database, and does not replace the whole fleet for it. It
  opens a new connection for each check; a /health sent on a kept-alive connection is answered by HealthMiddleware
  in a thread. A new connection that has sent nothing yet waits in the poller, not in a thread, until its first
  bytes arrive.
- Liveness: gthread's heartbeat comes from this loop, so gunicorn's worker timeout never fires for a request
  thread that is stuck. Here each thread's request start is kept; a request running longer than the worker
  timeout (`timeout`, as a sync worker would be killed for) makes the worker log it and exit, and the master
  starts a fresh one. Requests stop at the app's own deadlines long before that (docs/timeouts.md).
"""

import logging
import mmap
import os
import selectors
import socket
import sys
import threading
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("shop.worker")

SLOTS = 64  # a worker's slot is its age (spawn number) modulo this: unique among the live workers of a gunicorn
# A slot whose heartbeat is older than this belongs to a worker that has exited (live ones beat at least every 1 s).
STALE_AFTER = 3.0
# How long a busier worker leaves a waiting connection to a less loaded one: short next to any request.
ACCEPT_DEFER_MAX = 0.005
# How often a deferring worker looks again.
RECHECK = 0.001
# Bytes of a request peeked at to recognise a health check: its request line and headers fit.
HEALTH_PEEK = 2048

# Two doubles per slot: the connections held and the monotonic time of the last heartbeat. Created on import,
# which happens in the master (gunicorn resolves worker_class before forking), so every worker maps the same pages.
_table = memoryview(mmap.mmap(-1, SLOTS * 2 * 8)).cast("d")


def fewest_elsewhere(table, *, slot: int, now: float) -> float | None:
    """The fewest connections held by another live worker, or None when there is none."""
    counts = [table[2 * i] for i in range(SLOTS) if i != slot and now - table[2 * i + 1] < STALE_AFTER]
    return min(counts, default=None)


class FairThreadWorker(ThreadWorker):
    table = _table

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.slot = self.age % SLOTS
        self.resume_at = 0.0  # while deferring: when to listen again
        self.defer_until = None  # the end of the current deferral window
        self.started: dict[int, tuple[float, str]] = {}  # request thread -> (monotonic start, path) while it runs

    def publish(self) -> None:
        self.table[2 * self.slot] = self.nr_conns
        self.table[2 * self.slot + 1] = time.monotonic()

    def accept(self, listener):
        now = time.monotonic()
        fewest = fewest_elsewhere(self.table, slot=self.slot, now=now)
        if fewest is not None and self.nr_conns > fewest:
            if self.defer_until is None or now > self.defer_until + ACCEPT_DEFER_MAX:
                self.defer_until = now + ACCEPT_DEFER_MAX
            if now < self.defer_until:
                self.resume_at = now + RECHECK
                super().set_accept_enabled(False)
                return
        self.defer_until = None
        super().accept(listener)
        self.publish()

    def set_accept_enabled(self, enabled):
        # The event loop asks to listen again on every turn; a deferring worker waits until resume_at.
        if enabled and time.monotonic() < self.resume_at:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        self.publish()
        if not self._accepting and self.alive and self.nr_conns < self.worker_connections:
            wait = self.resume_at - time.monotonic()
            if wait > 0:
                timeout = min(timeout, wait)
            else:
                # The deferral ended after the event loop's own "listen again" was turned away: listen now, or this
                # worker would sleep up to a second deaf to new connections while the others defer to it.
                super().set_accept_enabled(True)
        super().wait_for_and_dispatch_events(timeout)
        self.check_request_threads()

    # --- liveness: no request thread may run past the worker timeout ------------------------------------------

    def handle_request(self, req, conn):
        thread_id = threading.get_ident()
        self.started[thread_id] = (time.monotonic(), req.path)
        try:
            return super().handle_request(req, conn)
        finally:
            del self.started[thread_id]

    def check_request_threads(self) -> None:
        if not self.started:
            return
        now = time.monotonic()
        for started_at, path in list(self.started.values()):
            if now - started_at > self.cfg.timeout:  # self.timeout is half of it: gunicorn's heartbeat interval
                self.exit_stuck(seconds=now - started_at, path=path)

    def exit_stuck(self, *, seconds: float, path: str) -> None:
        """A request thread is stuck: threads cannot be stopped from outside, so the process goes (the master starts
        another). The other threads' requests are cut off with it."""
        log.error(
            "request thread stuck, worker exits",
            extra={"path": path, "running_s": round(seconds, 1), "timeout_s": self.cfg.timeout, "pid": os.getpid()},
        )
        middleware = sys.modules.get("shop.middleware")
        if middleware is not None:
            middleware.request_lines.flush()
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    # --- /health from the main loop -----------------------------------------------------------------------------

    def enqueue_req(self, conn):
        if conn.initialized:
            # A kept-alive connection goes on as gthread's: the load balancer's health checks come on new
            # connections (it closes each after its check), so its requests need no look (a system call each).
            return super().enqueue_req(conn)
        try:
            head = conn.sock.recv(HEALTH_PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            # Nothing sent yet: wait in the poller rather than in a thread (gthread's own pending list).
            conn.sock.setblocking(False)
            conn.timeout = time.monotonic() + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
            return None
        except OSError:
            return super().enqueue_req(conn)  # the thread meets the same error and handles it as gthread does
        conn.data_ready = True  # the thread need not wait for the first bytes: they are here
        method = health_check_method(head)
        if method is None:
            return super().enqueue_req(conn)
        self.answer_health(conn, head=head, method=method)
        return None

    def answer_health(self, conn, *, head: bytes, method: str) -> None:
        from shop.health import health_http_response
        from shop.logs import request_line
        from shop.middleware import request_lines

        started = time.perf_counter()
        end = head.index(b"\r\n\r\n") + 4
        try:
            conn.sock.recv(end, socket.MSG_DONTWAIT)  # the request, already peeked: consumed, not waited for
            conn.sock.send(health_http_response(head_only=method == "HEAD"), socket.MSG_DONTWAIT)
        except OSError:
            pass  # the health checker left: nothing to answer
        finally:
            self.nr_conns -= 1
            conn.close()
        request_lines.append(
            request_line(
                created=time.time(),
                method=method,
                path="/health",
                status=200,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                cache="",
                rid="",
            )
        )


def health_check_method(head: bytes) -> str | None:
    """ "GET" or "HEAD" when `head` is a whole bodiless request for /health (the request line and every header
    received), else None."""
    if not head.startswith((b"GET /health", b"HEAD /health")) or b"\r\n\r\n" not in head:
        return None
    request_line, _, headers = head.partition(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    target = parts[1]
    if target != b"/health" and not target.startswith(b"/health?"):
        return None
    headers = headers.lower()
    if b"content-length:" in headers or b"transfer-encoding:" in headers:
        return None
    return parts[0].decode()
