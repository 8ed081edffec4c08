"""The product response cache: serialized response bytes, shared by the fleet through Redis.

Keys (the `{catalog}` hash tag keeps them in one slot, so the lookup script may name entry keys it builds):

    {prefix}:{catalog}:<db>:version                 bumped after every product change; part of each entry's key
    {prefix}:{catalog}:<db>:v<version>:<key>        one response, expires after settings.PRODUCT_CACHE_TTL
    {prefix}:{catalog}:<db>:lock:v<version>:<key>   held (SET NX PX) by the one request in the fleet rebuilding <key>
    {prefix}:{catalog}:<db>:hits, :misses           fleet-wide counters for /api/metrics

<db> is shop.database_identity's tag of the database the entries were built from, so entries of another database
(or of a dropped one of the same name) are never served.

A hit costs one Redis round trip: a script reads the version, the entry and counts the hit together. A repeated
hit in the same process costs none: catalog.nearcache keeps what this process served, while it hears the channel
every bump publishes on ({prefix}:{catalog}:<db>:bumped). Every call goes through shop.redis.redis_call, so a Redis
that fails makes requests answer from the database (BYPASS). Without REDIS_URL (`make run`) the same protocol runs
on a store in process memory.
"""

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from catalog.nearcache import Listener, NearCache
from shop.database_identity import database_tag
from shop.redis import redis_call, redis_client

log = logging.getLogger("catalog.cache")

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
# Outlasts the 5 s statement timeout: the lock expires on its own only under a rebuilder that died mid-way.
LOCK_TTL_MS = 6000
# How long a request waits for another one's rebuild before it builds the response itself.
WAIT_SECONDS = 1.0
_FIRST_POLL_SECONDS = 0.005
_MAX_POLL_SECONDS = 0.05
_UNAVAILABLE = object()


@dataclass(frozen=True)
class CachedResponse:
    body: bytes
    etag: str
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> "CachedResponse":
        return cls(body=body, etag=f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"', headers=headers)

    def encode(self) -> bytes:
        meta = json.dumps({"etag": self.etag, "headers": self.headers}, separators=(",", ":")).encode()
        return meta + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> "CachedResponse":
        meta, _, body = raw.partition(b"\n")
        fields = json.loads(meta)
        return cls(body=body, etag=fields["etag"], headers=tuple(tuple(pair) for pair in fields["headers"]))


@dataclass(frozen=True)
class _Lookup:
    version: str
    entry: CachedResponse | None


def fetch(key: str, build: Callable[[], CachedResponse], *, near_key: str = "") -> tuple[CachedResponse, str]:
    """The response for `key` and how it was served: HIT, MISS (built here or by a concurrent request), or BYPASS.

    With a `near_key` (the request as it came, before its parameters are parsed), the entry is also kept in this
    process's near cache under that key, where `near_get` finds it without parsing the request again.
    """
    near = _near() if near_key else None
    if near is None:
        return _fetch_shared(key, build)
    entry = near.get(near_key)
    if entry is not None:
        return entry, HIT
    generation = near.generation
    entry, served = _fetch_shared(key, build)
    if served != BYPASS:
        near.put(near_key, entry, size=len(entry.body), generation=generation)
    return entry, served


def near_get(near_key: str) -> CachedResponse | None:
    """The entry this process keeps for the request `near_key`, if it may serve it (catalog.nearcache)."""
    near = _near()
    return near.get(near_key) if near is not None else None


def _fetch_shared(key: str, build: Callable[[], CachedResponse]) -> tuple[CachedResponse, str]:
    store = _store()
    lookup = store.lookup(key)
    if lookup is None:
        return build(), BYPASS
    if lookup.entry is not None:
        return lookup.entry, HIT
    token, entry = store.try_lock(lookup.version, key)
    if token is _UNAVAILABLE:
        return build(), BYPASS
    if entry is not None:
        # Built by another request between this one's lookup and its lock: no second rebuild.
        if token is not None:
            store.unlock(lookup.version, key, token)
        return entry, MISS
    if token is None:
        entry = store.wait(lookup.version, key)
        if entry is _UNAVAILABLE:
            return build(), BYPASS
        if entry is not None:
            return entry, MISS
        # The rebuilding request failed or is slow (a database under strain): build here rather than wait longer.
    try:
        entry = build()
        store.put(lookup.version, key, entry)
    finally:
        if token is not None:
            store.unlock(lookup.version, key, token)
    return entry, MISS


def invalidate() -> None:
    """Make every cached product response stale, once the current transaction (if any) commits.

    After the commit, so that no request can rebuild an entry for the new version from data not yet committed.
    """
    transaction.on_commit(_store().bump)


def counters() -> tuple[int | None, int | None]:
    """Fleet-wide (hits, misses); (None, None) while Redis does not answer."""
    return _store().counters()


def _store() -> "RedisStore | LocalStore":
    return _redis_store if settings.REDIS_URL else _local_store


def _near() -> NearCache | None:
    """This process's copy of Redis entries (catalog.nearcache); None without Redis or with the copy turned off."""
    ttl_ms = settings.PRODUCT_NEAR_CACHE_TTL_MS
    if not settings.REDIS_URL or ttl_ms <= 0:
        return None
    _near_cache.ttl = ttl_ms / 1000
    _near_listener.ensure_running()
    return _near_cache


def _prefix() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:{{catalog}}:{database_tag()}:"


_LOOKUP_SCRIPT = """
local version = redis.call('GET', KEYS[1]) or '0'
local entry = redis.call('GET', ARGV[1] .. version .. ':' .. ARGV[2])
if entry then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
return {version, entry}
"""

_UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@cache
def _scripts(client: redis.Redis) -> tuple:
    return client.register_script(_LOOKUP_SCRIPT), client.register_script(_UNLOCK_SCRIPT)


class RedisStore:
    def lookup(self, key: str) -> _Lookup | None:
        prefix = _prefix()

        def run(client):
            lookup_script, _ = _scripts(client)
            keys = [prefix + "version", prefix + "hits", prefix + "misses"]
            return lookup_script(keys=keys, args=[prefix + "v", key], client=client)

        result = redis_call(run, None)
        if result is None:
            return None
        version, raw = result
        return _Lookup(version=version.decode(), entry=CachedResponse.decode(raw) if raw is not None else None)

    def try_lock(self, version: str, key: str):
        """(token, entry): a token when this request holds the rebuild lock, None when another does, _UNAVAILABLE
        on failure; and the entry if one was stored meanwhile. A builder stores before it unlocks, so reading the
        entry right after taking the lock, in the same round trip, sees any rebuild that finished first."""
        token = secrets.token_hex(8)
        entry_key = f"{_prefix()}v{version}:{key}"
        lock_key = f"{_prefix()}lock:v{version}:{key}"
        replies = redis_call(
            lambda client: (
                client.pipeline(transaction=False)
                .set(lock_key, token, nx=True, px=LOCK_TTL_MS)
                .get(entry_key)
                .execute()
            ),
            _UNAVAILABLE,
        )
        if replies is _UNAVAILABLE:
            return _UNAVAILABLE, None
        acquired, raw = replies
        return (token if acquired else None), (CachedResponse.decode(raw) if raw is not None else None)

    def wait(self, version: str, key: str):
        """Poll for the entry another request is building; None once its lock is gone without an entry."""
        entry_key = f"{_prefix()}v{version}:{key}"
        lock_key = f"{_prefix()}lock:v{version}:{key}"
        deadline = time.monotonic() + WAIT_SECONDS
        delay = _FIRST_POLL_SECONDS
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_SECONDS)
            polled = redis_call(
                lambda client: client.pipeline(transaction=False).get(entry_key).exists(lock_key).execute(),
                _UNAVAILABLE,
            )
            if polled is _UNAVAILABLE:
                return _UNAVAILABLE
            raw, locked = polled
            if raw is not None:
                return CachedResponse.decode(raw)
            if not locked:
                return None
        return None

    def put(self, version: str, key: str, entry: CachedResponse) -> None:
        entry_key = f"{_prefix()}v{version}:{key}"
        redis_call(lambda client: client.set(entry_key, entry.encode(), ex=settings.PRODUCT_CACHE_TTL), None)

    def unlock(self, version: str, key: str, token: str) -> None:
        lock_key = f"{_prefix()}lock:v{version}:{key}"
        redis_call(lambda client: _scripts(client)[1](keys=[lock_key], args=[token], client=client), None)

    def bump(self) -> None:
        """A new version, announced on the channel every process's near cache listens to.

        This process's copies are dropped after the INCR, so none taken from the old version survives here.
        """
        prefix = _prefix()
        bumped = redis_call(
            lambda client: (
                client.pipeline(transaction=False).incr(prefix + "version").publish(_channel(), "").execute()
            ),
            None,
        )
        _near_cache.clear()
        if bumped is None:
            log.warning(
                "product cache not invalidated: redis unavailable; entries expire within PRODUCT_CACHE_TTL",
                extra={"ttl_s": settings.PRODUCT_CACHE_TTL},
            )

    def counters(self) -> tuple[int | None, int | None]:
        prefix = _prefix()

        def read(client):
            pipeline = client.pipeline(transaction=False)
            if near_hits:
                pipeline.incrby(prefix + "hits", near_hits)
            return pipeline.mget(prefix + "hits", prefix + "misses").execute()[-1]

        with _near_hits_lock:  # this process's own hits are all in the sum, none counted twice
            near_hits = _near_cache.take_hits()
            values = redis_call(read, None)
        if values is None:
            return None, None
        hits, misses = (int(value or 0) for value in values)
        return hits, misses


class LocalStore:
    """The same protocol in process memory, for one process (`make run`, a laptop without Redis).

    Not shared between processes: a product change in one gunicorn worker would not reach another's entries, so
    several workers need REDIS_URL.
    """

    MAX_ENTRIES = 1024

    def __init__(self):
        self._lock = threading.Lock()
        self._version = 0
        self._entries: OrderedDict[tuple[str, str], tuple[float, CachedResponse]] = OrderedDict()
        self._building: dict[tuple[str, str], threading.Event] = {}
        self._hits = 0
        self._misses = 0

    def lookup(self, key: str) -> _Lookup:
        with self._lock:
            version = str(self._version)
            stored = self._entries.get((version, key))
            if stored is not None and stored[0] > time.monotonic():
                self._hits += 1
                return _Lookup(version=version, entry=stored[1])
            self._misses += 1
            return _Lookup(version=version, entry=None)

    def try_lock(self, version: str, key: str) -> tuple[str | None, CachedResponse | None]:
        with self._lock:
            stored = self._entries.get((version, key))
            if stored is not None and stored[0] > time.monotonic():
                return None, stored[1]
            if (version, key) in self._building:
                return None, None
            self._building[(version, key)] = threading.Event()
            return "local", None

    def wait(self, version: str, key: str) -> CachedResponse | None:
        with self._lock:
            building = self._building.get((version, key))
        if building is not None:
            building.wait(WAIT_SECONDS)
        with self._lock:
            stored = self._entries.get((version, key))
        return stored[1] if stored is not None else None

    def put(self, version: str, key: str, entry: CachedResponse) -> None:
        with self._lock:
            self._entries[(version, key)] = (time.monotonic() + settings.PRODUCT_CACHE_TTL, entry)
            self._entries.move_to_end((version, key))
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def unlock(self, version: str, key: str, token: str) -> None:
        with self._lock:
            building = self._building.pop((version, key), None)
        if building is not None:
            building.set()

    def bump(self) -> None:
        with self._lock:
            self._version += 1
            self._entries.clear()

    def counters(self) -> tuple[int, int]:
        with self._lock:
            return self._hits, self._misses


def _channel() -> str:
    return _prefix() + "bumped"


def _flush_near_hits() -> None:
    """Add the hits this process served from its near cache to the fleet-wide counter."""
    with _near_hits_lock:
        hits = _near_cache.take_hits()
        if hits:
            redis_call(lambda client: client.incrby(_prefix() + "hits", hits), None)


_redis_store = RedisStore()
_local_store = LocalStore()
_near_cache = NearCache(ttl=1.0)
_near_hits_lock = threading.Lock()
_near_listener = Listener(_near_cache, client=redis_client, channel=_channel, flush_hits=_flush_near_hits)
