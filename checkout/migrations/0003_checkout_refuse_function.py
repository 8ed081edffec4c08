"""checkout_refuse(reason, product_id): raises an error, so a checkout's write batch on PostgreSQL can abort itself.

The order's writes go to PostgreSQL as one multi-statement query, which runs as one implicit transaction: an error
in any statement rolls all of them back. A stock UPDATE that finds too little stock, or a key's "done" UPDATE that
finds the key taken over, matches no row rather than failing; each is followed by a call of this function when it
matched nothing (checkout/writes.py), which turns that into an error naming the reason and the product.
Nothing is created on SQLite, where the writes run one by one in a transaction. EXECUTE goes to PUBLIC, PostgreSQL's
default for a new function, so the application's role (opsinfra shop-db-role) can call it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION checkout_refuse(reason text, product_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = reason, DETAIL = coalesce(product_id::text, '');
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS checkout_refuse(text, bigint)"


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("checkout", "0002_drop_indexes_covered_by_unique_constraints"),
    ]

    operations = [migrations.RunPython(create_function, drop_function)]
