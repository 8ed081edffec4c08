"""What /api/metrics reports: the fleet's product cache counters and this database's open connections."""

from django.db import connection, connections
from django.utils import timezone

from catalog import cache
from catalog.serializers import iso_datetime


def metrics_snapshot() -> dict:
    hits, misses = cache.counters()
    if hits is None or misses is None:
        hit_rate = None
    else:
        hit_rate = round(hits / (hits + misses), 4) if hits + misses else 0.0
    return {
        "cache_hits": hits,
        "cache_misses": misses,
        "cache_hit_rate": hit_rate,
        "active_db_connections": active_db_connections(),
        "timestamp": iso_datetime(timezone.now()),
    }


def active_db_connections() -> int:
    """Sessions connected to this database on PostgreSQL (all clients); elsewhere, this process's open connections."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            return cursor.fetchone()[0]
    return sum(1 for alias in connections if connections[alias].connection is not None)
