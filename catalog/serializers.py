"""The JSON shapes of the catalogue API.

Product and inventory rows are encoded by the plain functions below (a cold page of 100 products encodes in well
under a millisecond, several times faster than a DRF serializer); the Serializer classes describe the same shapes for
the OpenAPI schema, and a test keeps the two in step.
"""

import json
from datetime import datetime

from rest_framework import serializers


def product_item(row: dict) -> dict:
    return {
        "id": row["id"],
        "sku": row["sku"],
        "name": row["name"],
        "category": row["category"],
        "price": str(row["price"]),
        "currency": row["currency"],
        "created_at": iso_datetime(row["created_at"]),
    }


def product_detail_item(row: dict) -> dict:
    return {**product_item(row), "description": row["description"]}


def inventory_item(row: dict) -> dict:
    return {
        "product_id": row["product_id"],
        "quantity": row["quantity"],
        "available": row["available"],
        "updated_at": iso_datetime(row["updated_at"]),
    }


def iso_datetime(value: datetime | None) -> str | None:
    """ISO 8601 with "Z" for UTC, as DRF writes it."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def json_bytes(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class ProductSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2, help_text='A decimal string, e.g. "19.99".')
    currency = serializers.CharField(help_text="ISO 4217 code.")
    created_at = serializers.DateTimeField()


class ProductDetailSerializer(ProductSerializer):
    description = serializers.CharField(allow_blank=True)


class InventorySerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    quantity = serializers.IntegerField(min_value=0, help_text="Units in stock, read live from the database.")
    available = serializers.IntegerField(
        min_value=0, help_text="Units in stock less those held in shoppers' carts: what a checkout can still buy."
    )
    updated_at = serializers.DateTimeField(allow_null=True, help_text="Null when the product has no stock record.")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable, machine-readable error code.")
    detail = serializers.CharField(help_text="What was wrong, in one sentence.")
    product_ids = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="product_not_found: the ids no product has."
    )


class MetricsSerializer(serializers.Serializer):
    cache_hits = serializers.IntegerField(allow_null=True, help_text="Fleet-wide; null while Redis does not answer.")
    cache_misses = serializers.IntegerField(allow_null=True)
    cache_hit_rate = serializers.FloatField(allow_null=True, help_text="hits / (hits + misses), 0..1.")
    active_db_connections = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
