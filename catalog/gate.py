"""The flash-sale gate: the sellable units of the products on sale, mirrored in Redis.

A doorbuster draws thousands of attempts at a few hundred units of one product. Without the gate each attempt is a
PostgreSQL transaction on the same stock row, sold out or not. With it, one Lua script admits an attempt (taking
its units off the gate) or refuses it (sold out, or the sale has not started), atomically and first come first
served; a refused attempt never reaches PostgreSQL. An admitted one goes on to PostgreSQL, whose conditional stock
UPDATE and CHECK (quantity >= 0) stay the last word; when PostgreSQL does not sell it, its units go back to the gate.

The gate is one Redis hash, gate_key(): `gen` (which build of the gate this is), `s:<id>` (the sale's start, epoch
milliseconds) and `u:<id>` (units left) per product on sale. Its counts err towards underselling: an attempt's
units leave the gate before its order commits and come back if it fails. Units given back carry the build they
were taken from, so units taken before a rebuild never inflate the rebuilt counts. A rebuild or a resync reads
PostgreSQL while orders may be in flight, so for a moment the gate may admit more than PostgreSQL holds; PostgreSQL
then refuses those, and an attempt PostgreSQL found short gives nothing back, which brings the gate down to it.

Redis down: admit() answers "no gate" and the checkout goes to PostgreSQL as it did before the gate existed.
Redis emptied (restart, eviction, failover): the first worker to see the hash missing rebuilds it from PostgreSQL
under a Redis lock (one rebuilder at a time); the others go to PostgreSQL meanwhile. `flash_sale --rebuild` does
the same by hand.
"""

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings

from catalog.models import Inventory, Product
from shop.database_identity import database_tag
from shop.redis import redis_call, redis_client, redis_eval

log = logging.getLogger("shop.gate")


def gate_key(name: str = "") -> str:
    """A key of the gate: `{CACHE_KEY_PREFIX}:gate:<db>` (the hash), or that and `:name`. <db> is
    shop.database_identity's tag, so a gate built from one database is never read for another."""
    key = f"{settings.CACHE_KEY_PREFIX}:gate:{database_tag()}"
    return f"{key}:{name}" if name else key


# A rebuild reads a handful of rows; a rebuilder that died lets the next one in after this long.
REBUILD_LOCK_MS = 5_000
# How stale a worker's list of products on sale may be. Every worker reads the hash once a second instead of once
# per checkout, so a checkout of a product not on sale costs no Redis round trip. A sale started or ended reaches
# every worker within this time; PostgreSQL checks the start on every order in the meantime.
SALES_REFRESH_SECONDS = 1.0

# KEYS[1] the gate, KEYS[2] the attempt's Idempotency-Key marker ('' without a key); ARGV: now (epoch ms), then
# product id and quantity per line, for the lines on sale. Returns {0, gen} admitted (units taken), {1, ids...} sold
# out, {2, ids...} not started, {3} no gate (rebuild), {4} a product is no longer on sale, {5} this key was admitted
# before (its answer is in PostgreSQL: replay it from there, taking no units). A key is remembered for 24 h, as
# long as PostgreSQL keeps its answer (checkout.idempotency.IDEMPOTENCY_TTL).
ADMIT_LUA = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return {3} end
if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return {5} end
local now = tonumber(ARGV[1])
local short, early = {}, {}
for i = 2, #ARGV, 2 do
    local starts = redis.call('HGET', KEYS[1], 's:' .. ARGV[i])
    if not starts then return {4} end
    if tonumber(starts) > now then
        early[#early + 1] = ARGV[i]
    elseif tonumber(redis.call('HGET', KEYS[1], 'u:' .. ARGV[i]) or '0') < tonumber(ARGV[i + 1]) then
        short[#short + 1] = ARGV[i]
    end
end
if #early > 0 then table.insert(early, 1, 2) return early end
if #short > 0 then table.insert(short, 1, 1) return short end
for i = 2, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[1], 'u:' .. ARGV[i], -tonumber(ARGV[i + 1]))
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], gen, 'EX', 86400) end
return {0, gen}
"""
# KEYS[1] the gate; ARGV: the gen the units were taken from, then product id and quantity per line.
GIVE_BACK_LUA = """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[1], 'u:' .. ARGV[i]) == 1 then
        redis.call('HINCRBY', KEYS[1], 'u:' .. ARGV[i], tonumber(ARGV[i + 1]))
    end
end
return 1
"""
# KEYS[1] the gate; ARGV: gen, then field and value pairs. Replaces the whole hash in one step.
BUILD_LUA = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'gen', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
# KEYS[1] the gate; ARGV: product id, start (epoch ms) or '' to end its sale, units. Only on a built gate.
SYNC_LUA = """
if not redis.call('HGET', KEYS[1], 'gen') then return 0 end
if ARGV[2] == '' then
    redis.call('HDEL', KEYS[1], 's:' .. ARGV[1], 'u:' .. ARGV[1])
else
    redis.call('HSET', KEYS[1], 's:' .. ARGV[1], ARGV[2], 'u:' .. ARGV[1], ARGV[3])
end
return 1
"""
# Deletes the lock only if this rebuilder still holds it.
UNLOCK_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Admission:
    """Units an attempt took from the gate: give them back (give_back) when its order is not placed."""

    gen: str = ""
    lines: tuple[tuple[int, int], ...] = ()
    key_marker: str = ""  # see key_marker(): forget it (key_forget) when the attempt leaves no answer to replay


NO_ADMISSION = Admission()


@dataclass(frozen=True)
class Refusal:
    """The gate said no: `product_ids` sold out or, with reason "sale_not_started", not on sale yet."""

    product_ids: list[int]
    reason: str


@dataclass
class _Sales:
    """The products on sale as this worker last read them from the gate."""

    product_ids: frozenset[int] = frozenset()
    read_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


_sales = _Sales()


def sales_forget() -> None:
    """Read the products on sale again at the next attempt (after a sale starts or ends in this process)."""
    _sales.read_at = float("-inf")


def products_on_sale() -> frozenset[int]:
    """The products this worker sends through the gate, re-read from Redis at most once per SALES_REFRESH_SECONDS.

    A gate missing from Redis (never built, or Redis lost it) is rebuilt here, by one worker at a time.
    """
    if time.monotonic() - _sales.read_at < SALES_REFRESH_SECONDS:
        return _sales.product_ids
    # The other threads wait for the read (one Redis round trip a second): one that went on with a list known to be
    # stale could pass a product just put on sale, or just rebuilt, by the gate.
    with _sales.lock:
        now = time.monotonic()
        if now - _sales.read_at < SALES_REFRESH_SECONDS:
            return _sales.product_ids
        fields = redis_call(lambda client: client.hkeys(gate_key()), None)
        if fields is None:  # Redis down: no gate until it answers again
            _sales.product_ids = frozenset()
        elif not fields:
            _sales.product_ids = frozenset(gate_rebuild(wait=False) or ())
        else:
            _sales.product_ids = frozenset(int(name[2:]) for name in fields if name.startswith(b"s:"))
        _sales.read_at = now
        return _sales.product_ids


def admit(*, lines: list[tuple[int, int]], token: str, idempotency_key: str | None) -> Admission | Refusal:
    """Take the `(product_id, quantity)` lines' units from the gate, all or none.

    Lines of products not on sale pass untouched. Returns the Admission (NO_ADMISSION when no line is on sale, the
    gate cannot answer, or this session's `idempotency_key` was admitted before: the caller goes to PostgreSQL as
    without a gate), or a Refusal.
    """
    on_sale = products_on_sale()
    if not on_sale:
        return NO_ADMISSION
    gated = tuple((pid, quantity) for pid, quantity in lines if pid in on_sale)
    if not gated:
        return NO_ADMISSION
    args = [int(time.time() * 1000)]
    for pid, quantity in gated:
        args += [pid, quantity]
    marker = key_marker(token=token, idempotency_key=idempotency_key)
    answer = redis_call(lambda client: redis_eval(client, ADMIT_LUA, [gate_key(), marker], args), None)
    if answer is None:
        return NO_ADMISSION
    status = answer[0]
    if status == 0:
        return Admission(gen=answer[1].decode(), lines=gated, key_marker=marker)
    if status in (1, 2):
        reason = "sold_out" if status == 1 else "sale_not_started"
        return Refusal(product_ids=[int(pid) for pid in answer[1:]], reason=reason)
    if status in (3, 4):  # the gate is gone (rebuilt at the next read), or a sale ended
        sales_forget()
    return NO_ADMISSION


def key_marker(*, token: str, idempotency_key: str | None) -> str:
    """The Redis key remembering that the gate admitted this session's Idempotency-Key ('' without a key), so a
    repeat is answered by PostgreSQL (the stored order or error) even once the product is sold out."""
    if idempotency_key is None:
        return ""
    digest = hashlib.sha256(f"{token}\n{idempotency_key}".encode()).hexdigest()
    return gate_key(f"key:{digest}")


def key_forget(marker: str) -> None:
    """Forget an admitted key whose attempt left no answer in PostgreSQL (it failed before or without storing one)."""
    if marker:
        redis_call(lambda client: client.delete(marker), 0)


def give_back(admission: Admission, *, except_ids: frozenset[int] = frozenset()) -> None:
    """Return an admission's units to the gate, but for `except_ids` (lines PostgreSQL found short)."""
    lines = [(pid, quantity) for pid, quantity in admission.lines if pid not in except_ids]
    if not lines:
        return
    args = [admission.gen]
    for pid, quantity in lines:
        args += [pid, quantity]
    if not redis_call(lambda client: redis_eval(client, GIVE_BACK_LUA, [gate_key()], args), False):
        log.info("gate units not given back", extra={"lines": lines, "gen": admission.gen})


def sellable_units(*, product_ids: list[int] | None = None) -> dict[int, tuple[int, int]]:
    """From PostgreSQL: `{product_id: (sale start in epoch ms, units)}` of the products on sale (among
    `product_ids`, or all). Units: the stock on hand."""
    products = Product.objects.filter(sale_starts_at__isnull=False)
    if product_ids is not None:
        products = products.filter(pk__in=product_ids)
    starts = dict(products.values_list("pk", "sale_starts_at"))
    units = dict(Inventory.objects.filter(product_id__in=list(starts)).values_list("product_id", "quantity"))
    return {pid: (int(start.timestamp() * 1000), units.get(pid, 0)) for pid, start in starts.items()}


def gate_rebuild(*, wait: bool = True) -> list[int] | None:
    """Build the gate afresh from PostgreSQL, under the rebuild lock; the ids of the products on sale.

    Returns None when Redis does not answer, or when another process holds the lock and `wait` is False (with
    `wait`, retries for up to REBUILD_LOCK_MS).
    """
    client = redis_client()
    if client is None:
        return None
    token = secrets.token_hex(8)
    deadline = time.monotonic() + REBUILD_LOCK_MS / 1000
    while not redis_call(lambda c: c.set(gate_key("rebuild"), token, nx=True, px=REBUILD_LOCK_MS), False):
        if not wait or time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    try:
        sales = sellable_units()
        args = [secrets.token_hex(8)]
        for pid, (starts, units) in sales.items():
            args += [f"s:{pid}", starts, f"u:{pid}", units]
        built = redis_call(lambda c: redis_eval(c, BUILD_LUA, [gate_key()], args), None)
        if built is None:
            return None
        log.info("gate rebuilt", extra={"products": len(sales)})
        return sorted(sales)
    finally:
        redis_call(lambda c: redis_eval(c, UNLOCK_LUA, [gate_key("rebuild")], [token]), None)
        sales_forget()


def gate_sync(*, product_id: int) -> bool:
    """Set one product's entry from PostgreSQL (its sale started, ended, or its stock was counted anew).

    False when the gate is not built or Redis does not answer: the next rebuild reads the product anyway.
    """
    sale = sellable_units(product_ids=[product_id]).get(product_id)
    args = [product_id, "", 0] if sale is None else [product_id, *sale]
    synced = redis_call(lambda c: redis_eval(c, SYNC_LUA, [gate_key()], args), 0)
    sales_forget()
    return bool(synced)


def gate_units() -> dict[int, int] | None:
    """The units left per product on sale, as the gate has them; None when the gate is not built or Redis is down."""
    fields = redis_call(lambda client: client.hgetall(gate_key()), None)
    if not fields:
        return None
    return {int(name[2:]): int(value) for name, value in fields.items() if name.startswith(b"u:")}
