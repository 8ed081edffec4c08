"""Drop two indexes that a unique constraint already covers: every claim and every order line paid to keep them.

IdempotencyRecord.session is the first column of idempotency_key_once_per_session (session, key), and
OrderLine.order the first of order_line_one_per_product (order, product), so lookups by either keep an index.
On PostgreSQL the indexes go with DROP INDEX CONCURRENTLY, which takes no lock that blocks checkouts (hence no
transaction around this migration); the foreign keys themselves are left as they are.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "checkout_idempotencyrecord_session_id_410fa166": ("checkout_idempotencyrecord", "session_id"),
    "checkout_orderline_order_id_e794e82c": ("checkout_orderline", "order_id"),
}


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX{_concurrently(schema_editor)} IF EXISTS {schema_editor.quote_name(name)}")


def create_indexes(apps, schema_editor):
    quote = schema_editor.quote_name
    for name, (table, column) in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})"
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("checkout", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="idempotencyrecord",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="checkout.shoppersession",
                    ),
                ),
                migrations.AlterField(
                    model_name="orderline",
                    name="order",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="checkout.order",
                    ),
                ),
            ],
        ),
    ]
