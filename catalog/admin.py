from django.contrib import admin

from catalog.models import Inventory, Product
from catalog.services import inventory_set


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    # Saves and deletes send the model signals that invalidate the product cache (catalog.signals).
    list_display = ["sku", "name", "category", "price", "currency", "updated_at"]
    list_filter = ["category"]
    search_fields = ["sku", "name"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False  # a COUNT(*) per changelist page is slow at 100,000 products


@admin.register(Inventory)
class InventoryAdmin(admin.ModelAdmin):
    list_display = ["product", "quantity", "updated_at"]
    list_select_related = ["product"]
    search_fields = ["product__sku", "product__name"]
    readonly_fields = ["updated_at"]
    raw_id_fields = ["product"]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        # Stock changes go through the service, which validates the count and locks the row.
        saved = inventory_set(product_id=obj.product_id, quantity=obj.quantity)
        obj.updated_at = saved.updated_at
