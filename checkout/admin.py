from django.contrib import admin

from checkout.models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ["product", "quantity", "unit_price"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders as placed: read-only, since stock and idempotency records were written with them."""

    list_display = ["id", "session_id", "status", "total", "currency", "idempotency_key", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["=id", "=session__id", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = False
    readonly_fields = ["session", "status", "total", "currency", "idempotency_key", "created_at", "updated_at"]
    inlines = [OrderLineInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
