"""The admin: wrong passwords throttled (django-axes), and switched off or moved by a setting."""

import importlib

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.urls import clear_url_caches

import shop.urls

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def staff():
    return User.objects.create_superuser("boss", "boss@example.com", "right-password-123")


def login(client, password: str):
    return client.post(LOGIN, {"username": "boss", "password": password})


def test_a_right_password_logs_in(client, staff):
    response = login(client, "right-password-123")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert "_auth_user_id" in client.session


def test_wrong_passwords_lock_the_client_out_even_with_the_right_one(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200  # the form again, with its error

    locked = login(client, "wrong")
    after = login(client, "right-password-123")

    assert locked.status_code == 429 and after.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="boss").failures_since_start >= settings.AXES_FAILURE_LIMIT


def test_a_locked_user_name_is_locked_from_another_address_too(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong")

    response = client.post(LOGIN, {"username": "boss", "password": "right-password-123"}, REMOTE_ADDR="10.9.9.9")

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.fixture
def reload_urls(settings):
    """shop.urls rebuilt with other admin settings, and rebuilt with the original ones afterwards."""
    original = {name: getattr(settings, name) for name in ("ADMIN_ENABLED", "ADMIN_PATH")}

    def reload(**values):
        for name, value in values.items():
            setattr(settings, name, value)
        importlib.reload(shop.urls)
        clear_url_caches()

    yield reload
    reload(**original)


def test_the_admin_can_be_switched_off(client, staff, reload_urls):
    reload_urls(ADMIN_ENABLED=False)

    assert client.get("/admin/login/").status_code == 404


def test_the_admin_can_be_moved(client, staff, reload_urls):
    reload_urls(ADMIN_PATH="back-office-7f3a/")

    assert client.get("/admin/login/").status_code == 404
    assert client.get("/back-office-7f3a/login/").status_code == 200
