from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    description = models.TextField(blank=True)
    # A doorbuster: how many units one shopper session may buy in all (None: no limit beyond the per-line cap).
    max_per_session = models.PositiveSmallIntegerField(null=True, blank=True)
    # On flash sale from this moment: its sellable units are mirrored in the Redis gate (catalog.gate) and nothing
    # of it sells before then. None: not on sale.
    sale_starts_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        # A category page is read in id order: (category, id) serves the filter and the order from one index.
        indexes = [
            models.Index(fields=["category", "id"], name="product_category_id_idx"),
            # The gate's rebuild reads the few products on sale among 100,000.
            models.Index(fields=["id"], name="product_on_sale_idx", condition=models.Q(sale_starts_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_not_negative"),
            models.CheckConstraint(
                condition=models.Q(max_per_session__gte=1) | models.Q(max_per_session__isnull=True),
                name="product_max_per_session_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Inventory(models.Model):
    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True, related_name="inventory")
    quantity = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "inventory"
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="inventory_quantity_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.quantity}"


class StockHold(models.Model):
    """Units of a product held in one shopper session's cart until `expires_at` (see checkout.carts).

    A hold counts against the product's available units while `expires_at` is in the future; an expired row counts
    for nothing wherever it is read, so no sweep is needed for it to release (cleanup_expired deletes it later).
    """

    session = models.ForeignKey("checkout.ShopperSession", on_delete=models.CASCADE, related_name="+", db_index=False)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False)
    units = models.PositiveIntegerField()
    expires_at = models.DateTimeField()
    # The one extension a hold gets when its checkout starts has been used.
    extended = models.BooleanField(default=False)
    # The client address that placed the hold: the per-address cap counts its active holds.
    client_ip = models.CharField(max_length=45)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "product"], name="stock_hold_one_per_session_product"),
            models.CheckConstraint(condition=models.Q(units__gte=1), name="stock_hold_units_positive"),
        ]
        indexes = [
            # Every stock take and availability read sums a product's active holds.
            models.Index(fields=["product", "expires_at"], name="stock_hold_product_idx"),
            models.Index(fields=["client_ip", "expires_at"], name="stock_hold_client_ip_idx"),
            models.Index(fields=["expires_at"], name="stock_hold_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.units} x {self.product_id} for session {self.session_id}"
