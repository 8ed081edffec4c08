from unittest import mock

import pytest
from django.db import OperationalError


@pytest.mark.django_db
def test_health_answers_any_host_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health", HTTP_HOST="10.0.11.23")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body) == {"status", "version", "instance_id", "timestamp"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_ready_reports_each_dependency(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_ready_names_the_database_when_it_fails(client):
    with mock.patch("shop.health._check_database", side_effect=OperationalError("timeout")):
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
