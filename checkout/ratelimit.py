"""Rate limits for the write endpoints: a sliding-window log per client IP and per session, kept in Redis.

Every worker of every instance counts in the same Redis keys, so a client gets N requests per window in total,
not N per process. One Lua script does the whole check for one request in one round trip, on Redis's clock (the
instances' clocks may differ). Redis unreachable: the limiter lets the request through and logs it; it never
turns a Redis failure into a 500 and never waits longer than the client's 250 ms timeout (shop.redis). Only when
REDIS_URL is unset does it count in this process's memory (local development).
"""

import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.commands.core import Script

from checkout.exceptions import RateLimited
from checkout.selectors import token_hash
from shop.redis import redis_call, redis_client

log = logging.getLogger("shop.ratelimit")

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# KEYS: one sorted set per limit. ARGV: a unique member, then (limit, window ms) per key.
# Returns 0 when allowed (and then counts the request in every key), else the ms until the fullest frees a slot.
# Refused requests are not recorded, so a client that keeps hammering gets through again as soon as its window
# has room, and the log of a key never holds more than `limit` members.
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i * 2])
  local window = tonumber(ARGV[i * 2 + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now, 1)
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

_FAIL_OPEN_LOG_INTERVAL = 10.0
_last_fail_open_log = 0.0


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


def client_ip(request) -> str:
    """The address of the client as the trusted proxies saw it.

    With TRUSTED_PROXY_COUNT = n, each of the n proxies appended the address it received from, so the n-th entry
    from the right of X-Forwarded-For is the client; anything left of it came from the client and is ignored.
    With n = 0, or a header shorter than n (the request did not come through the proxies), REMOTE_ADDR.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < hops:
        return remote
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


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


def ratelimit_ip(request, *, scope: str, rate: str) -> None:
    """Count this request against its client IP in `scope`; RateLimited (429) once the window is full."""
    ip = client_ip(request)
    if _exempt(ip):
        return
    _enforce([(f"ip:{scope}:{ip}", rate)])


def ratelimit_session(request, *, token: str, rate: str) -> None:
    """Count a checkout against its session token (hashed, so it is checked before any database lookup)."""
    if _exempt(client_ip(request)):
        return
    _enforce([(f"session:{token_hash(token)}", rate)])


def _enforce(limits: list[tuple[str, str]]) -> None:
    parsed = [(f"{settings.CACHE_KEY_PREFIX}:rl:{name}", *parse_rate(rate)) for name, rate in limits]
    if redis_client() is None:
        wait_ms = _local_hit(parsed)
    else:
        wait_ms = redis_call(lambda client: _redis_hit(client, parsed), default=None)
        if wait_ms is None:
            _log_fail_open()
            return
    if wait_ms > 0:
        raise RateLimited(retry_after=max(1, math.ceil(wait_ms / 1000)))


@cache
def _script(client) -> Script:
    return client.register_script(_SLIDING_WINDOW)


def _redis_hit(client, parsed: list[tuple[str, int, int]]) -> int:
    args: list = [secrets.token_hex(8)]
    for _, limit, window in parsed:
        args += [limit, window * 1000]
    return int(_script(client)(keys=[key for key, _, _ in parsed], args=args, client=client))


_local_lock = threading.Lock()
_local_log: dict[str, deque] = {}


def _local_hit(parsed: list[tuple[str, int, int]]) -> int:
    """The same sliding window in this process's memory, for runs without REDIS_URL."""
    now = time.monotonic()
    wait = 0.0
    with _local_lock:
        for key, limit, window in parsed:
            log_ = _local_log.setdefault(key, deque())
            while log_ and log_[0] <= now - window:
                log_.popleft()
            if len(log_) >= limit:
                wait = max(wait, log_[0] + window - now)
        if wait > 0:
            return max(1, int(wait * 1000))
        for key, _, _ in parsed:
            _local_log[key].append(now)
    return 0


def _log_fail_open() -> None:
    global _last_fail_open_log
    now = time.monotonic()
    if now - _last_fail_open_log >= _FAIL_OPEN_LOG_INTERVAL:
        _last_fail_open_log = now
        log.warning("rate limiter failing open: redis unavailable")
