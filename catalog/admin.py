from django.contrib import admin, messages
from django.utils import timezone

from catalog.models import Inventory, Product
from catalog.services import flash_sale_end, flash_sale_start, inventory_set


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    # Saves and deletes send the model signals that invalidate the product cache (catalog.signals).
    list_display = ["sku", "name", "category", "price", "currency", "sale_starts_at", "max_per_session", "updated_at"]
    list_filter = ["category"]
    search_fields = ["sku", "name"]
    readonly_fields = ["created_at", "updated_at", "sale_starts_at"]
    show_full_result_count = False  # a COUNT(*) per changelist page is slow at 100,000 products
    actions = ["start_flash_sale", "end_flash_sale"]

    @admin.action(description="Start a flash sale now (keeps each product's max per session)")
    def start_flash_sale(self, request, queryset):
        # Through the service, which writes each product's gate entry once the sale is committed.
        for product in queryset:
            flash_sale_start(product_id=product.pk, starts_at=timezone.now(), max_per_session=product.max_per_session)
        self.message_user(request, f"{len(queryset)} product(s) on flash sale.", messages.SUCCESS)

    @admin.action(description="End the flash sale")
    def end_flash_sale(self, request, queryset):
        for product in queryset:
            flash_sale_end(product_id=product.pk)
        self.message_user(request, f"{len(queryset)} product(s) off sale.", messages.SUCCESS)


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
