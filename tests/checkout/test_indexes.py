"""Indexes of the tables every checkout writes: none that a unique constraint already covers."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("table", "column"), [("checkout_idempotencyrecord", "session_id"), ("checkout_orderline", "order_id")]
)
def test_a_foreign_key_led_by_a_unique_constraint_has_no_index_of_its_own(needs_postgres, table, column):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)

    own = [name for name, c in constraints.items() if c["index"] and not c["unique"] and c["columns"] == [column]]
    covering = [name for name, c in constraints.items() if c["unique"] and c["columns"][:1] == [column]]
    assert own == []
    assert len(covering) == 1  # lookups by the foreign key alone use this one
