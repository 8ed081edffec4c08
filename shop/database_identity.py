"""Which database this process serves: a short tag that Redis keys carry, so a cache entry is never served for
another database.

A Redis db that once held the entries of another database (another name, another server, or the same name
dropped and created again) would otherwise answer with that database's products. The tag is a digest of the
server address, the database name and, on PostgreSQL, the database's OID, which changes when a database of the
same name is created again. It is read once per process on a connection of its own (so no request thread's
connection or transaction is touched) and kept; while the database cannot be reached, the tag falls back to the
address and name alone and is read again on the next call.
"""

import hashlib
import logging
import threading

from django.db import connections
from django.db.utils import load_backend

log = logging.getLogger("shop.database_identity")

_lock = threading.Lock()
_tag: str | None = None


def database_tag() -> str:
    """Twelve hex characters naming the default database; read from the database once per process."""
    tag = _tag
    return tag if tag is not None else _read()


def database_tag_reset() -> None:
    """Forget the tag, so the next call reads it again (tests that switch databases)."""
    global _tag
    with _lock:
        _tag = None


def _read() -> str:
    global _tag
    with _lock:
        if _tag is not None:
            return _tag
        tag, complete = identify(connections["default"].settings_dict)
        if complete:
            _tag = tag
        return tag


def identify(settings_dict: dict) -> tuple[str, bool]:
    """(tag, complete) of the database these connection settings name; incomplete when it could not be reached."""
    parts = [str(settings_dict.get(key) or "") for key in ("HOST", "PORT", "NAME")]
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "identity")
    try:
        oid = _database_oid(wrapper)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database: fall back, retry next call
        log.warning("database identity unavailable, using address and name only: %s", exc)
        return _digest(parts), False
    finally:
        wrapper.close()
    return _digest([*parts, oid]), True


def _database_oid(wrapper) -> str:
    if wrapper.vendor != "postgresql":
        return ""
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        return str(cursor.fetchone()[0])


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
