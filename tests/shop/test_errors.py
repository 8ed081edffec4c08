"""One error shape under /api/: JSON {"code", "detail"} for every refusal, and no traceback for a client's error."""

import io
import json
import logging

import pytest

from checkout.models import Order
from shop.exceptions import ClientErrorFilter

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) >= {"code", "detail"} and body["code"] == code and body["detail"]
    return body


@pytest.fixture
def log_output():
    """What the configured stdout handler (its filters included) writes while the test runs."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, ClientErrorFilter) for f in h.filters))
    stream = io.StringIO()
    # Not setStream(): it flushes the old stream, which pytest's capture may already have closed.
    previous, handler.stream = handler.stream, stream
    handler.reset()  # a warning an earlier test wrote must not hide this test's (shop.logs.QuietStreamHandler)
    yield stream
    handler.stream = previous


def test_an_unknown_api_path_is_a_json_404(client):
    assert_error(client.get("/api/no-such-thing"), 404, "not_found")


def test_an_unknown_page_keeps_djangos_html_404(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/api/products", "/api/checkout", "/api/no-such-thing"])
def test_a_bad_host_is_a_json_400_logged_without_a_traceback(client, log_output, path):
    response = client.get(path, HTTP_HOST="evil.example")

    assert_error(response, 400, "bad_request")
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    host_lines = [line for line in lines if line["logger"] == "django.security.DisallowedHost"]
    assert len(host_lines) == 1
    assert host_lines[0]["level"] == "WARNING" and "exc_info" not in host_lines[0]


def test_a_wrong_method_is_a_json_405(client):
    assert_error(client.delete("/api/products"), 405, "method_not_allowed")


def test_a_body_over_the_limit_is_413_before_it_is_read(client, settings, make_product, make_token):
    product = make_product(stock=5)
    body = json.dumps({"product_id": product.pk, "quantity": 1, "pad": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})

    response = client.post(
        "/api/checkout", data=body, content_type="application/json", headers={"X-Session-Token": make_token()}
    )

    assert_error(response, 413, "body_too_large")
    assert Order.objects.count() == 0


def test_a_content_length_that_is_not_a_number_is_a_json_400(client):
    response = client.generic("POST", "/api/checkout", b"{}", content_type="application/json", CONTENT_LENGTH="ten")

    assert_error(response, 400, "bad_request")


def test_a_chunked_body_reaching_the_app_is_refused_with_411(client, make_product, make_token):
    product = make_product(stock=5)
    body = json.dumps({"product_id": product.pk, "quantity": 1})

    response = client.generic(
        "POST",
        "/api/checkout",
        body,
        content_type="application/json",
        headers={"X-Session-Token": make_token(), "Transfer-Encoding": "chunked"},
    )

    assert_error(response, 411, "length_required")
    assert Order.objects.count() == 0


def test_a_server_error_under_api_is_json_500(rf):
    from shop.exceptions import server_error

    assert_error(server_error(rf.get("/api/checkout")), 500, "server_error")


def test_the_client_error_filter_keeps_server_errors_whole():
    record = logging.LogRecord("django.request", logging.ERROR, "", 0, "boom", (), (ValueError, ValueError(), None))
    record.status_code = 500

    ClientErrorFilter().filter(record)

    assert record.levelname == "ERROR" and record.exc_info is not None
