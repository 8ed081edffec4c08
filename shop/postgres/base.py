"""Django's PostgreSQL backend with deadlines the app enforces, health-checking only a connection that may have
sat idle.

Deadlines (shop/postgres/deadline.py): every statement, commit, rollback and health check registers its deadline
with the process's watchdog, which drops the connection when it passes; connecting is bounded by connect_timeout.
After either fails, the circuit fails the calls that follow at once (DatabaseUnavailable, an OperationalError, so
the request answers 503 + Retry-After) until a probe succeeds. Nothing is sent to the server for any of this: no
SET, no startup option, so it holds behind RDS Proxy's transaction pooling.

Health checks: with CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request that reuses
a connection: one more round trip on each checkout, about a twentieth of its CPU. A connection dies while idle (the
proxy's idle timeout, a failover, a restart between two requests); one that a request of this thread used a moment
ago is as alive as the check would find it. So the check runs only when the last request to use this connection
began HEALTH_CHECK_AFTER_IDLE or more ago. The gap measured is never shorter than the real idle time.
"""

import threading
import time

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.postgresql import base
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from shop.postgres.credentials import RereadCredentialsOnRefusal
from shop.postgres.deadline import DatabaseUnavailable, DeadlineExceeded, circuit, watchdog

HEALTH_CHECK_AFTER_IDLE = 1.0  # seconds

_running = watchdog.running
_thread_id = threading.get_ident
_now = time.monotonic


def _skipped() -> DatabaseUnavailable:
    return DatabaseUnavailable(f"database skipped for {circuit.retry_after()} s: it did not answer")


class DatabaseWrapper(RereadCredentialsOnRefusal, base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_use_at = float("-inf")  # when a request last began using this connection
        self.deadline_seconds = settings.DB_DEADLINE_MS / 1000
        self.deadline_passed = False

    def watched(self, call, *args):
        """`call(*args)` under this connection's deadline and the circuit."""
        if circuit.open_until and not circuit.allow():
            raise _skipped()
        thread_id = _thread_id()
        _running[thread_id] = (_now() + self.deadline_seconds, self)
        try:
            result = call(*args)
        except DatabaseError as exc:
            if self.deadline_passed:
                self.deadline_passed = False
                self.close()  # its socket is shut: the next call of this request reconnects (or meets the circuit)
                raise DeadlineExceeded(f"the database did not answer within {self.deadline_seconds} s") from exc
            raise
        finally:
            _running.pop(thread_id, None)
        if circuit.open_until:
            circuit.reset()
        if self.deadline_passed:  # passed as the call returned, or in is_usable, which reports it as False
            self.deadline_passed = False
        return result

    def make_cursor(self, cursor):
        return DeadlineCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return DeadlineCursorDebugWrapper(cursor, self)

    def _commit(self):
        return self.watched(super()._commit)

    def _rollback(self):
        return self.watched(super()._rollback)

    def is_usable(self):
        try:
            return self.watched(super().is_usable)
        except DatabaseUnavailable:
            return False

    def get_new_connection(self, conn_params):
        if circuit.open_until and not circuit.allow():
            raise _skipped()
        watchdog.start()
        try:
            connection = super().get_new_connection(conn_params)
        except Exception as exc:
            circuit.trip(exc)
            raise
        if circuit.open_until:
            circuit.reset()
        return connection

    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return super().close_if_health_check_failed()
        now = time.monotonic()
        recent, self.first_use_at = now - self.first_use_at < HEALTH_CHECK_AFTER_IDLE, now
        if recent:
            self.health_check_done = True
            return None
        return super().close_if_health_check_failed()

    def connect(self):
        super().connect()
        self.first_use_at = time.monotonic()


class _Deadlines:
    """Statements under the connection's deadline (DatabaseWrapper.watched). Fetches from a client-side cursor
    read rows already received; a server-side cursor's fetchmany goes to the server and is watched too."""

    def _execute(self, sql, params, *ignored):
        return self.db.watched(super()._execute, sql, params, *ignored)

    def _executemany(self, sql, param_list, *ignored):
        return self.db.watched(super()._executemany, sql, param_list, *ignored)

    def fetchmany(self, *args):
        return self.db.watched(self.db.wrap_database_errors(self.cursor.fetchmany), *args)


class DeadlineCursorWrapper(_Deadlines, CursorWrapper):
    pass


class DeadlineCursorDebugWrapper(_Deadlines, CursorDebugWrapper):
    pass
