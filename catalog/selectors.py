"""Catalogue reads. Product reads return plain rows (dicts) because their callers serialize them straight to bytes."""

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Inventory, Product, StockHold
from shop.sql import db_datetime, from_db, model_sql, placeholders

PRODUCT_FIELDS = ("id", "sku", "name", "category", "price", "currency", "created_at")
# Above this many matching rows X-Total-Count is PostgreSQL's estimate instead of a COUNT(*), which reads every
# match: 30 ms for the 11,000 products named "Classic ..." of 110,000, and 10 ms for a search matching 10,000,
# more than half a cold page's budget. Up to 1,000 matches a count costs about a millisecond. The planner's
# estimate moves with each ANALYZE's sample, so a limit near a common result size would flip between the two.
EXACT_COUNT_LIMIT = 1_000
DEFERRED_JOIN_OFFSET = 1_000
# Every product among the ids, with its inventory row if it has one (the ids' placeholders follow), in parts
# named by the model whose names they use.
INVENTORY_SQL = (
    (Product, "SELECT p.{id}, "),
    (Inventory, "i.{quantity}, i.{updated_at}, "),
    # Available: on hand less every session's active holds (the `now` placeholder comes before the ids').
    (StockHold, "(SELECT COALESCE(SUM(h.{units}), 0) FROM {table} h WHERE h.{product} = "),
    (Product, "p.{id} AND "),
    (StockHold, "h.{expires_at} > %s) FROM "),
    (Product, "{table} p LEFT JOIN "),
    (Inventory, "{table} i ON i.{product} = "),
    (Product, "p.{id} WHERE p.{id} IN "),
)


def product_list(*, category: str, q: str, offset: int, limit: int) -> list[dict]:
    products = _products(category=category, q=q)
    if offset >= DEFERRED_JOIN_OFFSET:
        # OFFSET reads every skipped row; skipping index entries (the ids) instead and then reading only the page's
        # rows builds page 990 of 110,000 products in 10 ms instead of 26 ms on PostgreSQL.
        page_ids = products.values("pk")[offset : offset + limit]
        return list(Product.objects.filter(pk__in=page_ids).order_by("id").values(*PRODUCT_FIELDS))
    return list(products.values(*PRODUCT_FIELDS)[offset : offset + limit])


def product_count(*, category: str, q: str) -> int:
    """Exact when few products match; above EXACT_COUNT_LIMIT on PostgreSQL, the planner's estimate."""
    products = _products(category=category, q=q)
    estimate = _estimated_rows(products)
    if estimate is not None and estimate > EXACT_COUNT_LIMIT:
        return estimate
    return products.count()


def product_detail(*, product_id: int) -> dict | None:
    return Product.objects.filter(pk=product_id).values(*PRODUCT_FIELDS, "description").first()


def product_categories() -> list[str]:
    if connection.vendor != "postgresql":
        return list(Product.objects.order_by("category").values_list("category", flat=True).distinct())
    # PostgreSQL 15 has no skip scan: DISTINCT reads all 100,000 index entries (about 20 ms), while one index probe
    # per category (a "loose index scan" on the (category, id) index) takes well under a millisecond.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE categories AS (
                (SELECT category FROM catalog_product ORDER BY category LIMIT 1)
                UNION ALL
                SELECT (SELECT p.category FROM catalog_product p WHERE p.category > c.category
                        ORDER BY p.category LIMIT 1)
                FROM categories c WHERE c.category IS NOT NULL
            )
            SELECT category FROM categories WHERE category IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


def storefront_products(*, category: str, q: str, offset: int, limit: int) -> list[dict]:
    """Product rows plus live `quantity` and `available` (on hand less every cart's active holds), for the
    storefront's list."""
    rows = product_list(category=category, q=q, offset=offset, limit=limit)
    stock = {item["product_id"]: item for item in inventory_list(product_ids=[row["id"] for row in rows])}
    return [
        {**row, "quantity": stock[row["id"]]["quantity"], "available": stock[row["id"]]["available"]} for row in rows
    ]


def storefront_product(*, product_id: int) -> dict | None:
    """One product for its storefront page: the detail, its flash sale (`sale_starts_at`, `max_per_session`) and
    live `quantity` and `available`; None when there is no such product."""
    product = (
        Product.objects.filter(pk=product_id)
        .values(*PRODUCT_FIELDS, "description", "sale_starts_at", "max_per_session")
        .first()
    )
    if product is None:
        return None
    stock = inventory_get(product_id=product_id) or {"quantity": 0, "available": 0}
    return {**product, "quantity": stock["quantity"], "available": stock["available"]}


def inventory_get(*, product_id: int) -> dict | None:
    """Live stock of one product: None when the product does not exist, quantity 0 when it has no inventory row."""
    rows = inventory_list(product_ids=[product_id])
    return rows[0] if rows else None


def inventory_list(*, product_ids: list[int]) -> list[dict]:
    """Live stock of the products that exist among `product_ids`, in id order; one query, never cached.

    `quantity` is on hand; `available` is on hand less the active holds of every cart (never below 0).

    Written by hand (the storefront polls it for every product on the page): the ORM spent more CPU building this
    query than the rest of the request.
    """
    if not product_ids:
        return []
    sql = "".join(model_sql(model, part) for model, part in INVENTORY_SQL)
    sql += f"({placeholders(len(product_ids))}) ORDER BY 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [db_datetime(timezone.now()), *product_ids])
        rows = cursor.fetchall()
    return [
        {
            "product_id": product_id,
            "quantity": quantity or 0,
            "available": max((quantity or 0) - held, 0),
            "updated_at": None if updated_at is None else from_db(Inventory, "updated_at", updated_at),
        }
        for product_id, quantity, updated_at, held in rows
    ]


def stock_short(*, lines: list[tuple[int, int]]) -> list[int]:
    """The product ids of the `(product_id, quantity)` lines their stock cannot fill now (a plain read, no locks),
    in the lines' order; a product without an Inventory row has none."""
    if not lines:
        return []
    available = dict(
        Inventory.objects.filter(product_id__in=[pid for pid, _ in lines]).values_list("product_id", "quantity")
    )
    return [pid for pid, quantity in lines if available.get(pid, 0) < quantity]


def _products(*, category: str, q: str) -> QuerySet[Product]:
    products = Product.objects.order_by("id")
    if category:
        products = products.filter(category=category)
    if q:
        products = products.filter(name__icontains=q)
    return products


def _estimated_rows(products: QuerySet[Product]) -> int | None:
    """The planner's row estimate (from pg_class.reltuples and column statistics: seed_products analyses the table
    after loading), at the cost of planning the query and no execution."""
    if connection.vendor != "postgresql":
        return None
    sql, params = products.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return int(plan[0]["Plan"]["Plan Rows"])
