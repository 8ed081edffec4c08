from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from checkout.models import IdempotencyRecord, Order, ShopperSession
from checkout.selectors import session_get_by_token
from checkout.services import session_create, session_tokens_write

pytestmark = pytest.mark.django_db


def expired_session(*, hours_ago: float) -> ShopperSession:
    session, _ = session_create()
    ShopperSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(hours=hours_ago))
    return session


def record(session, key: str, *, expires_in: timedelta) -> IdempotencyRecord:
    now = timezone.now()
    return IdempotencyRecord.objects.create(
        session=session, key=key, request_hash="0" * 64, started_at=now, expires_at=now + expires_in
    )


@pytest.fixture
def expired_data():
    live, _ = session_create()
    stale = [expired_session(hours_ago=2) for _ in range(3)]
    just_expired = expired_session(hours_ago=0.01)  # within the grace period: a request may still hold it
    with_order = expired_session(hours_ago=5)
    Order.objects.create(session=with_order, total="1.00", currency="USD")
    record(live, "old", expires_in=-timedelta(hours=1))
    record(live, "new", expires_in=timedelta(hours=1))
    return {"live": live, "stale": stale, "just_expired": just_expired, "with_order": with_order}


def test_cleanup_expired_dry_run_counts_and_deletes_nothing(expired_data):
    out = StringIO()

    call_command("cleanup_expired", "--dry-run", stdout=out)

    assert out.getvalue().strip() == "Would delete 3 expired session(s), 1 idempotency record(s) and 0 cart hold(s)."
    assert ShopperSession.objects.count() == 6
    assert IdempotencyRecord.objects.count() == 2


def test_cleanup_expired_deletes_in_batches_and_keeps_sessions_with_orders(expired_data):
    out = StringIO()

    call_command("cleanup_expired", "--batch-size", "2", stdout=out)

    assert out.getvalue().strip() == "Deleted 3 expired session(s), 1 idempotency record(s) and 0 cart hold(s)."
    remaining = set(ShopperSession.objects.values_list("pk", flat=True))
    assert remaining == {expired_data[name].pk for name in ("live", "just_expired", "with_order")}
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert Order.objects.count() == 1


def test_cleanup_expired_refuses_a_zero_batch():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("cleanup_expired", "--batch-size", "0", stdout=StringIO())


def test_session_tokens_write_creates_usable_sessions(tmp_path):
    path = session_tokens_write(count=5, path=tmp_path / "load" / "tokens.txt")

    tokens = path.read_text().splitlines()
    assert len(tokens) == len(set(tokens)) == 5
    assert ShopperSession.objects.count() == 5
    assert {session_get_by_token(token=token).pk for token in tokens} == set(
        ShopperSession.objects.values_list("pk", flat=True)
    )


def test_admin_lists_orders_read_only(admin_client, make_product):
    product = make_product(price="5.00")
    session, _ = session_create()
    order = Order.objects.create(session=session, total="10.00", currency="USD", idempotency_key="k-1")
    order.lines.create(product=product, quantity=2, unit_price="5.00")

    listing = admin_client.get("/admin/checkout/order/")
    detail = admin_client.get(f"/admin/checkout/order/{order.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert b"k-1" in listing.content
    assert b"5.00" in detail.content
    assert b'name="_save"' not in detail.content
    assert admin_client.get("/admin/checkout/order/add/").status_code == 403


def test_seed_products_sessions_writes_one_token_per_line(tmp_path):
    out = StringIO()
    path = tmp_path / "tokens.txt"

    call_command("seed_products", "--products", "2", "--sessions", "3", "--sessions-file", str(path), stdout=out)

    tokens = path.read_text().splitlines()
    assert len(tokens) == 3
    assert str(path) in out.getvalue()
    assert all(session_get_by_token(token=token) for token in tokens)


def test_seed_products_refuses_negative_sessions():
    with pytest.raises(CommandError, match="--sessions"):
        call_command("seed_products", "--products", "1", "--sessions", "-1", stdout=StringIO())
    assert ShopperSession.objects.count() == 0
