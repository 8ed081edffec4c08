"""What PostgreSQL says happened: orders per Idempotency-Key and stock against units sold.

Read after the shop has stopped, so no transaction is in flight: every 201 a client saw must be exactly one order
row with its key, and for each product, stock taken = units in order lines written.
"""

from dataclasses import dataclass

import psycopg

from chaos.client import Checkout

STOCK_SQL = (
    "SELECT i.product_id, i.quantity, COALESCE(s.sold, 0) FROM catalog_inventory i "
    "LEFT JOIN (SELECT product_id, sum(quantity) AS sold FROM checkout_orderline GROUP BY product_id) s "
    "ON s.product_id = i.product_id"
)


@dataclass(frozen=True)
class Ledger:
    orders: int  # order rows written with this fault's keys
    lost: int  # a 201 the client saw with no order row (or another order than the one it was told)
    doubled: int  # more than one order for one key, or an order for a key the client was told failed
    unresolved: int  # no final answer after the retries: the client still does not know
    stock_drift: int  # units of stock taken without an order line, or sold without being taken


def stock_snapshot(url: str) -> dict[int, tuple[int, int]]:
    """product id -> (stock, units sold in all order lines)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0]: (row[1], row[2]) for row in conn.execute(STOCK_SQL)}


def orders_by_key(url: str, keys: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, id FROM checkout_order WHERE idempotency_key = ANY(%s) ORDER BY id", (keys,)
        )
        for key, order_id in rows:
            found.setdefault(key, []).append(order_id)
    return found


def stock_drift(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> int:
    drift = 0
    for product_id, (stock_after, sold_after) in after.items():
        stock_before, sold_before = before.get(product_id, (stock_after, sold_after))
        drift += abs((stock_before - stock_after) - (sold_after - sold_before))
    return drift


def ledger_read(
    url: str, *, checkouts: dict[str, Checkout], before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> Ledger:
    return ledger_count(checkouts=checkouts, rows=orders_by_key(url, list(checkouts)), before=before, after=after)


def ledger_count(
    *,
    checkouts: dict[str, Checkout],
    rows: dict[str, list[int]],
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
) -> Ledger:
    """What the clients were told against the order rows of their keys (`rows`) and the stock snapshots."""
    lost = doubled = unresolved = 0
    for key, checkout in checkouts.items():
        placed = rows.get(key, [])
        told = checkout.order_ids
        if told and not told <= set(placed):
            lost += 1
        if len(placed) > 1 or len(told) > 1:
            doubled += 1
        elif placed and not told and not checkout.in_doubt:
            doubled += 1
        if checkout.in_doubt:
            unresolved += 1
    return Ledger(
        orders=sum(len(ids) for ids in rows.values()),
        lost=lost,
        doubled=doubled,
        unresolved=unresolved,
        stock_drift=stock_drift(before, after),
    )
