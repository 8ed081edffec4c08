from django.db import models


class ShopperSession(models.Model):
    """A guest shopper. Only the SHA-256 of the token is stored, so a database dump cannot be replayed."""

    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"session {self.pk}"


class Order(models.Model):
    class Status(models.TextChoices):
        CONFIRMED = "confirmed"

    # PROTECT: cleanup_expired keeps the sessions that placed orders, so support can see who ordered what.
    session = models.ForeignKey(ShopperSession, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CONFIRMED)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_not_negative")]

    def __str__(self) -> str:
        return f"order {self.pk}"


class OrderLine(models.Model):
    # No index of its own: order_line_one_per_product (order, product) serves lookups by order.
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines", db_index=False)
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["order_id", "product_id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="order_line_one_per_product"),
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="order_line_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} @ {self.unit_price}"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one session: in progress while `response_status` is null, then its outcome.

    A success keeps the order (a replay renders it again); a failure keeps the error status and body.
    """

    # No index of its own: idempotency_key_once_per_session (session, key) serves lookups by session.
    session = models.ForeignKey(ShopperSession, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # When the current owner claimed the key; a claim older than the lease counts as abandoned.
    started_at = models.DateTimeField()
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="idempotency_key_once_per_session")]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.key}"
