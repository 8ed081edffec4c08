"""This process's copy of recent product responses: a repeated hit is a dict lookup, not a Redis round trip.

Redis stays the truth; a copy here is only a shortcut to it, served under three conditions:

- this process hears the invalidation channel: every version bump (catalog.cache) publishes on it, and the
  listener thread clears the copies when the message arrives. A bump made by this process clears them before
  `bump` returns, so the next request here is a MISS at once; elsewhere in the fleet it is one pub/sub delivery
  later (well under a millisecond on a healthy Redis).
- the channel is live: the listener pings every PING_SECONDS, and copies are served only while something was
  heard within LIVE_SECONDS. A lost or silent subscription turns this cache off at once, and it starts empty when
  the subscription is back, since bumps may have been missed meanwhile.
- the copy is younger than settings.PRODUCT_NEAR_CACHE_TTL, which bounds anything that changes Redis without
  publishing (a flush, a hand-edited version key).

A copy taken from Redis is kept only if no clear happened since its lookup began (the generation check), so a
lookup that raced a bump never stores the old bytes after the clear.
"""

import logging
import os
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger("catalog.cache")

PING_SECONDS = 1.0
# How long the listener waits for a message before it looks at its clock again (and at a stop request).
POLL_SECONDS = 0.25
LIVE_SECONDS = 3.0
RETRY_SECONDS = 1.0


class NearCache:
    """Entries by key, each with its expiry and size; the oldest go first once `max_bytes` would be exceeded, so
    a flood of distinct query strings costs a worker at most that much memory."""

    def __init__(self, *, ttl: float, max_bytes: int = 16 * 1024 * 1024):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.generation = 0
        self._entries: dict[str, tuple[float, object, int]] = {}
        self._bytes = 0
        self._live_until = 0.0
        self._hits = 0
        self._lock = threading.Lock()

    def get(self, key: str):
        now = time.monotonic()
        if now >= self._live_until:
            return None
        stored = self._entries.get(key)
        if stored is None or stored[0] <= now:
            return None
        with self._lock:
            self._hits += 1
        return stored[1]

    def put(self, key: str, entry, *, size: int, generation: int) -> None:
        """Keep `entry` (`size` bytes), looked up when the generation was `generation`, unless a clear came since."""
        with self._lock:
            if generation != self.generation or time.monotonic() >= self._live_until or size > self.max_bytes:
                return
            self._remove(key)
            while self._bytes + size > self.max_bytes:
                self._remove(next(iter(self._entries)))  # the oldest
            self._entries[key] = (time.monotonic() + self.ttl, entry, size)
            self._bytes += size

    def _remove(self, key: str) -> None:
        stored = self._entries.pop(key, None)
        if stored is not None:
            self._bytes -= stored[2]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries = {}
            self._bytes = 0

    def heard(self) -> None:
        """The channel answered: copies may be served for LIVE_SECONDS more."""
        self._live_until = time.monotonic() + LIVE_SECONDS

    def go_dark(self) -> None:
        self._live_until = 0.0
        self.clear()

    @property
    def live(self) -> bool:
        return time.monotonic() < self._live_until

    def take_hits(self) -> int:
        """Hits served from here since the last call, for the fleet-wide counter."""
        with self._lock:
            hits, self._hits = self._hits, 0
        return hits


class Listener:
    """One daemon thread per process that keeps a NearCache in step with the invalidation channel.

    Started lazily by `ensure_running` from a request, so each gunicorn worker runs its own after the fork.
    """

    def __init__(
        self,
        near: NearCache,
        *,
        client: Callable[[], redis.Redis | None],
        channel: Callable[[], str],
        flush_hits: Callable[[], None],
    ):
        self.near = near
        self._client = client
        self._channel = channel
        self._flush_hits = flush_hits
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self.near.go_dark()  # a forked child inherits nothing it can trust
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="near-cache-listener", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    def stop(self) -> None:
        """End the thread and wait for it (tests); the next ensure_running starts a new one."""
        with self._lock:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=PING_SECONDS + LIVE_SECONDS)
            self._thread = None
            self._pid = None
            self.near.go_dark()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._listen(stop)
            except (redis.RedisError, OSError) as exc:
                log.warning("near cache off: invalidation channel lost", extra={"error": str(exc)})
            self.near.go_dark()
            self._flush_hits()
            stop.wait(RETRY_SECONDS)

    def _listen(self, stop: threading.Event) -> None:
        client = self._client()
        if client is None:
            stop.wait(RETRY_SECONDS)
            return
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self._channel())
            pinged = 0.0
            heard_at = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now - heard_at > LIVE_SECONDS:
                    raise redis.ConnectionError(f"no answer on the invalidation channel for {LIVE_SECONDS:.0f} s")
                if now - pinged >= PING_SECONDS:
                    pubsub.ping()
                    pinged = now
                    self._flush_hits()
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None:
                    continue
                if message["type"] in ("subscribe", "message"):
                    # A bump, or a fresh subscription after which bumps from before it may have been missed.
                    self.near.clear()
                heard_at = time.monotonic()
                self.near.heard()
        finally:
            pubsub.close()
