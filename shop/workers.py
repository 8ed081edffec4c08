"""The gunicorn worker class of shop/gunicorn.conf.py: gthread that hands new connections to the least busy worker.

gunicorn's workers accept from one shared listening socket, and a keep-alive connection stays with the worker
that accepted it, so whichever worker wakes first takes most of a burst of new connections. With 64 connections
opened at once, plain gthread left them 43/15/6/0 or 32/32/0/0 over four workers: the crowded worker, held to one
core by the GIL, answered its connections two or three times slower than the rest.

Here every worker publishes how many connections it holds in a small table shared by all the workers of one
gunicorn (anonymous shared memory created in the master before it forks). A worker holding more connections than
the least loaded live worker stops listening for a moment, so that worker takes the connection instead. The wait
is bounded by ACCEPT_DEFER_MAX: a connection never waits longer than that for a less loaded worker to wake up.
"""

import mmap
import time

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 64  # a worker's slot is its age (spawn number) modulo this: unique among the live workers of a gunicorn
# A slot whose heartbeat is older than this belongs to a worker that has exited (live ones beat at least every 1 s).
STALE_AFTER = 3.0
# How long a busier worker leaves a waiting connection to a less loaded one: short next to any request.
ACCEPT_DEFER_MAX = 0.005
# How often a deferring worker looks again.
RECHECK = 0.001

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
