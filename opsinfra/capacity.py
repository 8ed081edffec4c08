"""Connection arithmetic shared by the synth and the system check, and the per-instance throughput the preflight
plans with. Plain numbers: no troposphere here."""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# RDS PostgreSQL's default max_connections is LEAST(DBInstanceClassMemory / 9531392, 5000).
_BYTES_PER_CONNECTION = 9_531_392
_MAX_CONNECTIONS_CAP = 5_000
# DBInstanceClassMemory is the class's memory less what RDS keeps for the OS and its agents, about a tenth:
# a db.t3.medium (4 GiB) reports about 405 connections, not the 450 the nominal memory gives.
_USABLE_MEMORY = 0.9
_GIB = 1024**3

DB_INSTANCE_MEMORY_GIB = {
    "db.t3.micro": 1,
    "db.t3.small": 2,
    "db.t3.medium": 4,
    "db.t3.large": 8,
    "db.t3.xlarge": 16,
    "db.t3.2xlarge": 32,
    "db.t4g.micro": 1,
    "db.t4g.small": 2,
    "db.t4g.medium": 4,
    "db.t4g.large": 8,
    "db.m6g.large": 8,
    "db.m6g.xlarge": 16,
    "db.m7g.large": 8,
    "db.m7g.xlarge": 16,
    "db.r6g.large": 16,
    "db.r6g.xlarge": 32,
    "db.r7g.large": 16,
    "db.r7g.xlarge": 32,
}


def db_max_connections(instance_class: str) -> int:
    """PostgreSQL's default max_connections on an RDS instance class; KeyError for a class not in the table."""
    memory = DB_INSTANCE_MEMORY_GIB[instance_class] * _GIB * _USABLE_MEMORY
    return min(int(memory // _BYTES_PER_CONNECTION), _MAX_CONNECTIONS_CAP)


@dataclass(frozen=True)
class ConnectionBudget:
    instances: int
    workers: int
    threads: int
    instance_class: str
    max_connections: int
    proxy_max_connections_percent: int

    @property
    def client_connections(self) -> int:
        """Every gunicorn thread holds at most one database connection."""
        return self.instances * self.workers * self.threads

    @property
    def proxy_connections(self) -> int:
        """Database connections the proxy may open: its share of max_connections."""
        return self.max_connections * self.proxy_max_connections_percent // 100

    @property
    def exceeded(self) -> bool:
        return self.client_connections > self.proxy_connections


def connection_budget(
    *, instances: int, workers: int, threads: int, instance_class: str, proxy_max_connections_percent: int
) -> ConnectionBudget:
    return ConnectionBudget(
        instances=instances,
        workers=workers,
        threads=threads,
        instance_class=instance_class,
        max_connections=db_max_connections(instance_class),
        proxy_max_connections_percent=proxy_max_connections_percent,
    )


# --- requests per instance, and the cache's memory: what the preflight plans with -------------------------------

INSTANCE_CAPACITY_FILE = Path(__file__).parent / "data" / "instance_capacity.json"
# ElastiCache's published memory per node type (GiB), of which Redis may use all but its reserved share.
CACHE_NODE_MEMORY_GIB = {
    "cache.t3.micro": 0.5,
    "cache.t3.small": 1.37,
    "cache.t3.medium": 3.09,
    "cache.t4g.micro": 0.5,
    "cache.t4g.small": 1.37,
    "cache.t4g.medium": 3.09,
    "cache.m6g.large": 6.38,
    "cache.r6g.large": 13.07,
}


@cache
def instance_capacity_table() -> dict:
    """The dated table of requests/s per instance type, with its source (opsinfra/data/instance_capacity.json)."""
    return json.loads(INSTANCE_CAPACITY_FILE.read_text())


def instance_requests_per_second(instance_type: str) -> float:
    """Requests/s one app instance of this type is planned to serve; KeyError for a type not in the table."""
    return instance_capacity_table()["types"][instance_type]["requests_per_second"]
