"""The one Redis client of a process, behind a circuit breaker.

Every caller (product cache, stampede locks, rate limiter) goes through `redis_call`, so a Redis that is down
costs at most one timeout (settings.REDIS_TIMEOUT) per process per cool-down, never one per request.
"""

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import redis
from django.conf import settings
from django_redis.pool import ConnectionFactory
from redis.backoff import NoBackoff
from redis.retry import Retry

from shop.metrics import app_metrics

log = logging.getLogger("shop.redis")
T = TypeVar("T")

BREAKER_COOLDOWN_SECONDS = 5.0


class CircuitBreaker:
    def __init__(self, cooldown: float = BREAKER_COOLDOWN_SECONDS):
        self.cooldown = cooldown
        self._open_until = 0.0
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, error: Exception) -> None:
        with self._lock:
            if not self.is_open():
                log.warning("redis unavailable, skipping it", extra={"error": str(error), "cooldown_s": self.cooldown})
                app_metrics.circuit_opened("redis")
            self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


breaker = CircuitBreaker()
app_metrics.watch_circuit("redis", breaker.is_open)


@cache
def redis_client() -> redis.Redis | None:
    """None when REDIS_URL is unset (the local-memory fallback)."""
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL,
        password=settings.REDIS_AUTH_TOKEN or None,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        socket_timeout=settings.REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )


def redis_call(operation: Callable[[redis.Redis], T], default: T) -> T:
    """Run `operation(client)`; on any Redis failure, or while the breaker is open, return `default`."""
    client = redis_client()
    if client is None or breaker.is_open():
        return default
    try:
        return operation(client)
    except (redis.RedisError, OSError) as exc:
        breaker.trip(exc)
        return default


def redis_available() -> bool:
    return redis_client() is not None and not breaker.is_open()


class _ThreadConnection(threading.local):
    client = None  # the redis.Redis whose server `connection` talks to
    connection = None


_thread = _ThreadConnection()
os.register_at_fork(after_in_child=lambda: globals().update(_thread=_ThreadConnection()))


def redis_eval(client: redis.Redis, source: str, keys: list, args: list):
    """Run the Lua script `source` (EVALSHA; SCRIPT LOAD first when Redis does not know it) on a connection this
    thread keeps to `client`'s server, and return Redis's reply.

    For the calls made thousands of times a second (the flash-sale gate, the rate limits). Through redis.Redis each
    command also checks a connection out of the pool and back (with a fork check each way), runs a deprecation
    check of its arguments, a retry wrapper and observability hooks; on a doorbuster's sold-out refusal that was
    half the CPU of the Redis round trip (docs/doorbuster.md). A failure raises as redis-py's would (redis_call
    trips the breaker); the connection is dropped and made anew by the next call.
    """
    connection = _thread.connection
    if connection is None or _thread.client is not client:
        if connection is not None:
            connection.disconnect()
        pool = client.connection_pool
        connection = _thread.connection = pool.connection_class(**pool.connection_kwargs)
        _thread.client = client
    sha = _sha1(source)
    try:
        try:
            connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            connection.send_command("SCRIPT", "LOAD", source)
            connection.read_response()
            connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
            return connection.read_response()
    except redis.exceptions.ResponseError:
        raise  # the reply was read whole: the connection is still in step
    except BaseException:
        connection.disconnect()
        _thread.connection = None
        raise


@cache
def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


class _BreakerConnectionMixin:
    """A connection that skips Redis while the breaker is open and trips it when Redis fails to answer."""

    def connect(self):
        if breaker.is_open():
            raise redis.ConnectionError("redis skipped: circuit breaker open")
        try:
            return super().connect()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            breaker.trip(exc)
            raise

    def send_packed_command(self, command, check_health=True):
        if breaker.is_open():
            raise redis.ConnectionError("redis skipped: circuit breaker open")
        try:
            return super().send_packed_command(command, check_health)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            breaker.trip(exc)
            raise

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            breaker.trip(exc)
            raise


@cache
def _breaker_connection_class(base: type) -> type:
    return type(f"Breaker{base.__name__}", (_BreakerConnectionMixin, base), {})


class BreakerConnectionFactory(ConnectionFactory):
    """django-redis connections (settings.CACHES) behind the same breaker as `redis_call`.

    With IGNORE_EXCEPTIONS a failed cache call returns the default; the breaker makes every call after the first
    failure return at once instead of waiting out its own timeout.
    """

    def get_connection_pool(self, params):
        pool = super().get_connection_pool(params)
        pool.connection_class = _breaker_connection_class(pool.connection_class)
        return pool
