"""The checkout's request and response shapes (validation of form only; the rules live in services)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from checkout.services import MAX_LINES, LineRequest


class LineInputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1)


class CheckoutInputSerializer(serializers.Serializer):
    """Either one line (`product_id`, `quantity`: what existing clients send) or `items`."""

    session_token = serializers.CharField(required=False, max_length=128, help_text="Or header X-Session-Token.")
    product_id = serializers.IntegerField(min_value=1, required=False)
    quantity = serializers.IntegerField(min_value=1, required=False)
    items = LineInputSerializer(many=True, required=False, allow_empty=False, max_length=MAX_LINES)

    def validate(self, attrs):
        single = "product_id" in attrs or "quantity" in attrs
        if single and "items" in attrs:
            raise serializers.ValidationError("Send either product_id and quantity, or items, not both.")
        if "items" in attrs:
            return attrs
        missing = [name for name in ("product_id", "quantity") if name not in attrs]
        if missing:
            raise serializers.ValidationError(
                {name: "This field is required (or send items)." for name in missing}, code="required"
            )
        return attrs

    def lines(self) -> list[LineRequest]:
        data = self.validated_data
        items = data.get("items") or [{"product_id": data["product_id"], "quantity": data["quantity"]}]
        return [LineRequest(product_id=item["product_id"], quantity=item["quantity"]) for item in items]


class SessionOutputSerializer(serializers.Serializer):
    session_token = serializers.CharField(help_text="Shown once; send it as X-Session-Token or session_token.")
    expires_at = serializers.DateTimeField()


class OrderLineOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2)


class OrderOutputSerializer(serializers.Serializer):
    order_id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    items = serializers.SerializerMethodField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(OrderLineOutputSerializer(many=True))
    def get_items(self, order):
        # A just-placed order carries its lines; a stored one reads them (prefetched by its selector).
        lines = getattr(order, "placed_lines", None)
        if lines is None:
            lines = order.lines.all()
        return OrderLineOutputSerializer(lines, many=True).data


class CheckoutErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    product_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    retry_after = serializers.IntegerField(required=False, help_text="429 only; also sent as Retry-After.")
    errors = serializers.DictField(required=False, help_text="Per-field messages of a 400.")
