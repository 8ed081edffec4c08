"""Product cache entries carry the identity of the database they were built from (shop/database_identity.py)."""

import psycopg
import pytest
from django.db import connection

from shop.database_identity import database_tag, database_tag_reset, identify


@pytest.fixture
def other_database(needs_postgres):
    """A second database on the same server: yields (create it again, its connection settings); dropped after."""
    name = f"{connection.settings_dict['NAME']}_other"
    params = {
        key: value for key, value in connection.get_connection_params().items() if key not in ("dbname", "options")
    }
    admin = psycopg.connect(dbname="postgres", autocommit=True, **params)

    def create():
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')

    create()
    yield create, {**connection.settings_dict, "NAME": name}
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.mark.django_db
def test_tag_differs_per_database_and_when_a_database_is_created_again(other_database):
    create, other = other_database
    ours, ours_complete = identify(connection.settings_dict)

    first, first_complete = identify(other)
    create()  # the same name, dropped and created again: a new OID
    again, again_complete = identify(other)

    assert ours_complete and first_complete and again_complete
    assert len({ours, first, again}) == 3
    assert all(len(tag) == 12 for tag in (ours, first, again))


@pytest.mark.django_db
def test_tag_is_read_once_per_process(needs_postgres, django_assert_num_queries):
    database_tag_reset()
    first = database_tag()
    assert first == identify(connection.settings_dict)[0]
    with django_assert_num_queries(0):
        assert database_tag() == first


def test_an_unreachable_database_falls_back_and_is_read_again():
    unreachable = {
        **connection.settings_dict,
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "NAME": "nowhere",
        "OPTIONS": {"connect_timeout": 1},
    }
    tag, complete = identify(unreachable)
    assert not complete
    assert identify({**unreachable, "NAME": "elsewhere"})[0] != tag
