"""Django's PostgreSQL backend, health-checking only a connection that may have sat idle.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request that reuses a
connection: one more round trip on each checkout, about a twentieth of its CPU. A connection dies while idle (the
proxy's idle timeout, a failover, a restart between two requests); one that a request of this thread used a
moment ago is as alive as the check would find it. So the check runs only when the last request to use this
connection began HEALTH_CHECK_AFTER_IDLE or more ago. The gap measured is never shorter than the real idle time.
"""

import time

from django.db.backends.postgresql import base

from shop.postgres.credentials import RereadCredentialsOnRefusal

HEALTH_CHECK_AFTER_IDLE = 1.0  # seconds


class DatabaseWrapper(RereadCredentialsOnRefusal, base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first_use_at = float("-inf")  # when a request last began using this connection

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
