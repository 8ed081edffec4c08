import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

FIELDS = {"cache_hits", "cache_misses", "cache_hit_rate", "active_db_connections", "timestamp"}


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    return settings.METRICS_TOKEN


def test_metrics_report_fleet_counters_with_the_token(client, make_products, cache_backend, token):
    make_products(1)
    for _ in range(3):
        client.get("/api/products")

    response = client.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert (body["cache_hits"], body["cache_misses"]) == (2, 1)
    assert body["cache_hit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert body["active_db_connections"] >= 1
    assert body["timestamp"].endswith("Z")
    assert response["Cache-Control"] == "no-store"


def test_metrics_count_connections_from_pg_stat_activity(client, needs_postgres, token):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        expected = cursor.fetchone()[0]

    body = client.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert body["active_db_connections"] == expected


def test_metrics_hit_rate_is_zero_before_any_request(client, cache_backend, token):
    body = client.get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").json()

    assert (body["cache_hits"], body["cache_misses"], body["cache_hit_rate"]) == (0, 0, 0.0)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0LW1ldHJpY3M=", "s3cret-metrics"])
def test_metrics_refuse_a_missing_or_wrong_token(client, token, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = client.get("/api/metrics", **headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"
    assert response["Cache-Control"] == "no-store"


def test_metrics_without_a_token_are_hidden_when_debug_is_off(client, settings):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False

    response = client.get("/api/metrics")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_metrics_without_a_token_are_open_in_debug(client, settings):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True

    response = client.get("/api/metrics")

    assert response.status_code == 200
    assert set(response.json()) == FIELDS
