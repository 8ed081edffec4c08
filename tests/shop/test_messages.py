"""Django's messages are built for pages only; API requests skip them."""

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.http import HttpResponse
from django.test import RequestFactory

from shop.middleware import PageMessageMiddleware


def through_middleware(path: str):
    seen = {}

    def view(request):
        seen["request"] = request
        return HttpResponse("ok")

    request = RequestFactory().get(path)
    request.session = {}
    PageMessageMiddleware(view)(request)
    return seen["request"]


def test_pages_get_message_storage():
    request = through_middleware("/admin/")
    messages.info(request, "saved")
    assert [str(message) for message in get_messages(request)] == ["saved"]


def test_api_requests_get_none():
    request = through_middleware("/api/checkout")
    assert not hasattr(request, "_messages")
    assert list(get_messages(request)) == []
    with pytest.raises(messages.MessageFailure):
        messages.info(request, "never shown")


@pytest.mark.django_db
def test_admin_login_page_still_renders_with_messages(client):
    assert client.get("/admin/login/").status_code == 200
