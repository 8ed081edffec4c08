"""What one pytest-xdist worker owns, so that workers running at the same time never meet.

`make test` runs the suite on every core (`pytest -n`). Each worker gets:

- its own PostgreSQL test database: pytest-django names it test_<name>_gw<N>;
- its own Redis space: CACHE_KEY_PREFIX is `<prefix>-gw<N>` (tests/testenv.py sets it before Django's settings
  load), so every key the shop writes (cache entries, rate limits, the flash-sale gate) starts with
  `redis_space()`, and tests flush that space only (`redis_space_flush`), never the whole db;
- its own share of a range of fixed ports (`worker_ports`); a free port from the kernel (bind to port 0) needs none;
- its own temporary directories: pytest's tmp_path and tmp_path_factory are per worker.

Without xdist the process is worker 0 of 1 and owns everything.
"""

import os

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...; "" outside xdist


def worker_index() -> int:
    return int(WORKER.removeprefix("gw")) if WORKER else 0


def worker_count() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def worker_ports(ports: range) -> range:
    """This worker's slice of `ports`: the workers' slices do not overlap."""
    size = len(ports) // worker_count()
    if size == 0:
        raise RuntimeError(f"{len(ports)} ports cannot be shared by {worker_count()} workers")
    start = ports.start + worker_index() * size
    return range(start, start + size)


def worker_key_prefix(prefix: str) -> str:
    """The CACHE_KEY_PREFIX of this worker: `prefix` itself outside xdist."""
    return f"{prefix}-{WORKER}" if WORKER else prefix


def redis_space() -> str:
    """The pattern matching every Redis key of this worker (settings.CACHE_KEY_PREFIX and what follows it)."""
    from django.conf import settings

    return f"{settings.CACHE_KEY_PREFIX}:*"


# One script, so the keys go at once as FLUSHDB's would: no request can write a key between the scan and the delete.
_FLUSH_LUA = """
local cursor, deleted = "0", 0
repeat
    local reply = redis.call("SCAN", cursor, "MATCH", ARGV[1], "COUNT", 1000)
    cursor = reply[1]
    for _, key in ipairs(reply[2]) do
        redis.call("UNLINK", key)
        deleted = deleted + 1
    end
until cursor == "0"
return deleted
"""


def redis_space_flush(client) -> int:
    """Delete this worker's keys (and only them) from the Redis db `client` talks to, atomically; how many."""
    return client.eval(_FLUSH_LUA, 0, redis_space())


# Tests that must not share the machine with one another: they start nginx or many gunicorn workers, run thousands
# of checkouts on many threads, or measure time or a spread of load. Under `--dist loadgroup` one worker runs them
# one after another (docs/testing.md).
HEAVY = pytest.mark.xdist_group("heavy")


def xdist_groups_apply(items) -> None:
    """Put each test's xdist_group into its node id (`<id>@<group>`), which is what `--dist loadgroup` schedules by.

    pytest-xdist 3.8 writes the suffix into `item._nodeid`, which pytest 9.2 no longer reads (a node's id is
    `item._id`), so without this every group is silently spread over the workers (pytest-dev/pytest-xdist#1386).
    On a pytest that still reads `_nodeid`, xdist's own hook does it and this does nothing.
    """
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})  # fmt: skip
        if names and hasattr(item, "_id") and "@" not in item.nodeid.rpartition("]")[2]:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
