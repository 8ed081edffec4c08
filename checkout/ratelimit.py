"""Rate limits for the write endpoints: a sliding-window log per client address and per session.

Redis answering: every worker of every instance counts in the same Redis keys, so a client gets N requests per
window in total, not N per process. One Lua script does the whole check for one request in one round trip, on
Redis's clock (the instances' clocks may differ).

Redis away (refused, timed out, or skipped by the breaker of shop.redis): each process counts in its own memory and
admits its share of every limit, limit // RATELIMIT_LOCAL_PROCESSES (at least 1), so an instance running that many
processes admits no more than the limit. What a process admitted meanwhile it writes back to Redis in the round trip
of its first check once Redis answers again, so a client that used its limit during the outage stays limited for
the rest of its window. A Redis failure never becomes a 500 and never costs more than the client's 250 ms timeout.

REDIS_URL unset (local development): the whole limit in this process's memory.
"""

import hmac
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.commands.core import Script

from checkout.exceptions import RateLimited
from checkout.selectors import token_hash
from shop.redis import redis_call, redis_client, redis_eval

log = logging.getLogger("shop.ratelimit")

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# KEYS: one sorted set per limit. ARGV: a unique member, then (limit, window ms) per key.
# Returns 0 when allowed (and then counts the request in every key), else the ms until the fullest has room.
# Refused requests are not recorded, so a client that keeps hammering gets through again as soon as its window
# has room. A key holds more than `limit` members only after a write-back; room comes when all but limit - 1 of
# them have left the window, so the wait runs to the end of the (count - limit)-th oldest.
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i * 2])
  local window = tonumber(ARGV[i * 2 + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(freeing[2]) + window - now, 1)
  end
end
if wait > 0 then
  return wait
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, tonumber(ARGV[i * 2 + 1]))
end
return 0
"""

# KEYS[1]: one limit's key. ARGV: its window in ms, a unique member prefix, then the age in ms of each request this
# process admitted while Redis was away. Ages rather than times: they come from the process's monotonic clock and
# land on Redis's, whatever the instance's wall clock says.
_WRITE_BACK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])
for i = 3, #ARGV do
  local age = tonumber(ARGV[i])
  if age < window then
    redis.call('ZADD', KEYS[1], now - age, ARGV[2] .. ':' .. i)
  end
end
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""

_LOCAL_LOG_INTERVAL = 10.0
_last_local_log = 0.0


@dataclass(frozen=True)
class Limit:
    key: str
    count: int
    window: int  # seconds


@cache
def parse_rate(rate: str) -> tuple[int, int]:
    """'30/m' → (30, 60): requests per window seconds. Also '100/10s', '1000/h'."""
    match = _RATE.match(rate)
    if not match:
        raise ImproperlyConfigured(f"Rate limit {rate!r} is not like 30/m (count/period, period in s, m, h or d).")
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * _UNIT_SECONDS[unit]


@cache
def _allow_networks(allow: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in allow)
    except ValueError as exc:
        raise ImproperlyConfigured(f"RATELIMIT_ALLOW_IPS: {exc}") from None


def ratelimit_settings_check() -> None:
    """ImproperlyConfigured naming the variable when a RATELIMIT_* setting cannot be read."""
    for name in ("RATELIMIT_SESSIONS_PER_IP", "RATELIMIT_CHECKOUT_PER_IP", "RATELIMIT_CHECKOUT_PER_SESSION"):
        try:
            parse_rate(getattr(settings, name))
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None
    _allow_networks(tuple(settings.RATELIMIT_ALLOW_IPS))
    if settings.TRUSTED_PROXY_COUNT > 0 and not settings.ORIGIN_VERIFY:
        # Not an error: locally a front proxy may run without the secret. On AWS every request would count
        # against the address of the proxy in front of the app, so the whole site would share one limit.
        log.warning(
            "TRUSTED_PROXY_COUNT is set but ORIGIN_VERIFY is empty: X-Forwarded-For is ignored and every request "
            "counts against its peer address"
        )
    if settings.RATELIMIT_LOCAL_PROCESSES < 1:
        raise ImproperlyConfigured(
            f"RATELIMIT_LOCAL_PROCESSES: {settings.RATELIMIT_LOCAL_PROCESSES} is not a number of processes (1 or more)."
        )


# --- Who the client is ----------------------------------------------------------------------------------


def client_ip(request) -> str:
    """The address of the client as the trusted proxies saw it.

    X-Forwarded-For is read only on a request that carries the origin-verify secret (header X-Origin-Verify, which
    CloudFront adds and the ALB requires): anyone else can write that header, so without the secret the request is
    limited by its peer address. With TRUSTED_PROXY_COUNT = n, each of the n proxies appended the address it
    received from, so the n-th entry from the right is the client; anything left of it came from the client and
    is ignored. With n = 0, or a header shorter than n, the peer address (peer_address()).
    """
    remote = peer_address(request)
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0 or not came_through_origin(request):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < hops:
        return remote
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def peer_address(request) -> str:
    """The address the connection came from: REMOTE_ADDR, or, behind the nginx front on a unix socket (where
    REMOTE_ADDR is empty), the address nginx received the connection from, the last X-Forwarded-For entry it
    appended (shop/nginx/nginx.conf)."""
    remote = request.META.get("REMOTE_ADDR") or ""
    if remote:
        return remote
    appended = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(appended))
    except ValueError:
        return ""


def came_through_origin(request) -> bool:
    """The request carries the origin-verify secret (compared in constant time); never true without one set."""
    secret = settings.ORIGIN_VERIFY
    presented = request.META.get("HTTP_X_ORIGIN_VERIFY")
    if not secret or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), secret.encode())


def address_bucket(ip: str) -> str:
    """What one client's limit counts: an IPv4 address, or the /64 of an IPv6 one.

    A /64 is one subscriber's network (RFC 6177): a host picks any of its 2^64 addresses, so counting addresses
    would give it a fresh limit per address. An IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


def _exempt(ip: str) -> bool:
    if not settings.RATELIMIT_ENABLED:
        return True
    networks = _allow_networks(tuple(settings.RATELIMIT_ALLOW_IPS))
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


# --- The limits -----------------------------------------------------------------------------------------


def ratelimit_ip(request, *, scope: str, rate: str) -> None:
    """Count this request against its client address in `scope`; RateLimited (429) once the window is full."""
    ip = client_ip(request)
    if _exempt(ip):
        return
    _enforce([(f"ip:{scope}:{address_bucket(ip)}", rate)])


def ratelimit_session(request, *, token: str, rate: str) -> None:
    """Count a checkout against its session token (hashed, so it is checked before any database lookup)."""
    if _exempt(client_ip(request)):
        return
    _enforce([(f"session:{token_hash(token)}", rate)])


def _enforce(limits: list[tuple[str, str]]) -> None:
    parsed = [Limit(f"{settings.CACHE_KEY_PREFIX}:rl:{name}", *parse_rate(rate)) for name, rate in limits]
    if redis_client() is None:
        wait_ms = local_counts.hit(parsed, processes=1, write_back=False)
    else:
        wait_ms = redis_call(lambda client: _redis_hit(client, parsed), default=None)
        if wait_ms is None:
            _log_counting_locally()
            wait_ms = local_counts.hit(parsed, processes=settings.RATELIMIT_LOCAL_PROCESSES, write_back=True)
    if wait_ms > 0:
        raise RateLimited(retry_after=max(1, math.ceil(wait_ms / 1000)))


@cache
def _script(client, source: str) -> Script:
    return client.register_script(source)


def _redis_hit(client, parsed: list[Limit]) -> int:
    args: list = [secrets.token_hex(8)]
    for limit in parsed:
        args += [limit.count, limit.window * 1000]
    keys = [limit.key for limit in parsed]
    unsent = local_counts.take_unsent()
    if not unsent:
        return int(redis_eval(client, _SLIDING_WINDOW, keys, args))
    # Redis is back: this process's admissions of the outage go in first, in the same round trip as the check.
    try:
        pipe = client.pipeline(transaction=False)
        now = time.monotonic()
        for key, (window, times) in unsent.items():
            ages = [int((now - at) * 1000) for at in times]
            _script(client, _WRITE_BACK)(keys=[key], args=[window * 1000, secrets.token_hex(8), *ages], client=pipe)
        _script(client, _SLIDING_WINDOW)(keys=keys, args=args, client=pipe)
        results = pipe.execute()
    except BaseException:
        local_counts.put_back(unsent)
        raise
    log.info("rate limiter wrote back its local counts", extra={"keys": len(unsent)})
    return int(results[-1])


class LocalCounts:
    """The same sliding windows in this process's memory, and what Redis has not yet been told of."""

    SWEEP_FROM = 10_000  # keys; past this, keys whose window has passed are dropped (rotating addresses)

    def __init__(self):
        self._lock = threading.Lock()
        self._log: dict[str, tuple[int, deque]] = {}
        self._unsent: dict[str, tuple[int, list[float]]] = {}
        self._sweep_at = self.SWEEP_FROM

    def hit(self, parsed: list[Limit], *, processes: int, write_back: bool) -> int:
        """0 when this process admits the request (and counts it), else the ms until it has room.

        Each process admits limit // processes per window (at least 1).
        """
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for limit in parsed:
                _, times = self._log.setdefault(limit.key, (limit.window, deque()))
                while times and times[0] <= now - limit.window:
                    times.popleft()
                share = max(1, limit.count // processes)
                if len(times) >= share:
                    wait = max(wait, times[len(times) - share] + limit.window - now)
            if wait > 0:
                return max(1, math.ceil(wait * 1000))
            for limit in parsed:
                self._log[limit.key][1].append(now)
                if write_back:
                    self._unsent.setdefault(limit.key, (limit.window, []))[1].append(now)
            if len(self._log) >= self._sweep_at:
                self._sweep(now)
        return 0

    def take_unsent(self) -> dict[str, tuple[int, list[float]]]:
        if not self._unsent:  # the common case, without the lock
            return {}
        with self._lock:
            unsent, self._unsent = self._unsent, {}
        return unsent

    def put_back(self, unsent: dict[str, tuple[int, list[float]]]) -> None:
        with self._lock:
            for key, (window, times) in unsent.items():
                self._unsent.setdefault(key, (window, []))[1][:0] = times

    def clear(self) -> None:
        with self._lock:
            self._log.clear()
            self._unsent.clear()

    def _sweep(self, now: float) -> None:
        for key in [key for key, (window, times) in self._log.items() if not times or times[-1] <= now - window]:
            del self._log[key]
        for key in [key for key, (window, times) in self._unsent.items() if times[-1] <= now - window]:
            del self._unsent[key]
        self._sweep_at = max(self.SWEEP_FROM, 2 * len(self._log))


local_counts = LocalCounts()


def _log_counting_locally() -> None:
    global _last_local_log
    now = time.monotonic()
    if now - _last_local_log >= _LOCAL_LOG_INTERVAL:
        _last_local_log = now
        log.warning(
            "rate limiter counting in this process: redis unavailable",
            extra={"processes": settings.RATELIMIT_LOCAL_PROCESSES},
        )
