"""A trigram index for ?q= (name contains, case-insensitive) on PostgreSQL; nothing on other databases.

Django compiles `name__icontains` to `UPPER("name"::text) LIKE UPPER('%q%')`, so the index is on that expression.
pg_trgm is a trusted extension (PostgreSQL 13+, RDS included): the database owner may create it.
"""

from django.db import migrations

INDEX = "product_name_upper_trgm_idx"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON catalog_product USING gin (UPPER(name::text) gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("catalog", "0002_product_category_id_index")]

    operations = [migrations.RunPython(create_index, drop_index)]
