"""The checkout's request and response shapes (validation of form only; the rules live in services)."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from checkout.exceptions import InvalidRequest
from checkout.models import Order
from checkout.services import MAX_LINES, LineRequest

# A session token as POST /api/sessions hands it out is 43 URL-safe characters; any token is printable ASCII
# without blanks. In the schema \A and \Z become ECMA's ^ and $ (Python's $ would let a trailing newline through).
PRINTABLE_NO_BLANK = r"\A[\x21-\x7e]+\Z"
SESSION_TOKEN_MAX_LENGTH = 128


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, and only that: "2" (text), 2.0 and true are refused rather than converted."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, and only that: 12345 is refused rather than converted."""

    def to_internal_value(self, data):
        if type(data) is not str:
            self.fail("invalid")
        return super().to_internal_value(data)


class QuantityField(StrictIntegerField):
    """Units of one product: 1 to CHECKOUT_MAX_QUANTITY_PER_LINE (enforced by services.lines_merge, after merging)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, **kwargs)


class QuantityFieldSchema(OpenApiSerializerFieldExtension):
    """The cap is a setting, so the schema reads it when it is generated."""

    target_class = QuantityField

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": 1, "maximum": settings.CHECKOUT_MAX_QUANTITY_PER_LINE}


def session_token_field(**kwargs) -> StrictCharField:
    return StrictCharField(
        max_length=SESSION_TOKEN_MAX_LENGTH,
        trim_whitespace=False,
        validators=[RegexValidator(PRINTABLE_NO_BLANK, "A session token is printable ASCII without blanks.")],
        **kwargs,
    )


class LineInputSerializer(serializers.Serializer):
    product_id = StrictIntegerField(min_value=1)
    quantity = QuantityField()


class CheckoutInputSerializer(serializers.Serializer):
    """Either one line (`product_id`, `quantity`: what existing clients send) or `items`."""

    session_token = session_token_field(required=False, help_text="Or header X-Session-Token.")
    product_id = StrictIntegerField(min_value=1, required=False)
    quantity = QuantityField(required=False)
    items = LineInputSerializer(
        many=True,
        required=False,
        allow_empty=False,
        max_length=MAX_LINES,
        help_text=f"1 to {MAX_LINES} lines. A product listed twice is one line with the quantities added, and the "
        "sum is held to the same maximum as one quantity.",
    )

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


class CheckoutInputSchema(OpenApiSerializerExtension):
    """What validate() enforces, in JSON Schema: exactly one of the two shapes, and the bounds of `items`."""

    target_class = CheckoutInputSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["items"].update(minItems=1, maxItems=MAX_LINES)
        schema["oneOf"] = [
            {"required": ["product_id", "quantity"], "not": {"required": ["items"]}},
            {"required": ["items"], "not": {"anyOf": [{"required": ["product_id"]}, {"required": ["quantity"]}]}},
        ]
        return schema


def checkout_input(data) -> tuple[list[LineRequest], str | None]:
    """The lines and the body's session_token, exactly as CheckoutInputSerializer validates `data`.

    The bodies clients send (whole numbers, a plain token) are read here in a few µs, where building and running
    the serializer cost about 100 µs; any other body goes through the serializer, so every 400 carries its errors.
    """
    lines = _plain_lines(data)
    if lines is not None and ("session_token" not in data or _plain_token(data["session_token"])):
        return lines, data.get("session_token")
    serializer = CheckoutInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.lines(), serializer.validated_data.get("session_token")


def _plain_lines(data) -> list[LineRequest] | None:
    """The lines of a body the serializer accepts as they are, else None (the serializer then decides)."""
    if type(data) is not dict:
        return None
    if "items" not in data:
        line = _plain_line(data)
        return None if line is None else [line]
    items = data["items"]
    if "product_id" in data or "quantity" in data or type(items) is not list or not 0 < len(items) <= MAX_LINES:
        return None
    lines = [_plain_line(item) for item in items]
    return None if any(line is None for line in lines) else lines


def _plain_line(item) -> LineRequest | None:
    if type(item) is not dict:
        return None
    product_id, quantity = item.get("product_id"), item.get("quantity")
    # type() rather than isinstance(): the serializer refuses True, which is an int too.
    if type(product_id) is int and type(quantity) is int and product_id >= 1 and quantity >= 1:
        return LineRequest(product_id=product_id, quantity=quantity)
    return None


def _plain_token(token) -> bool:
    """A token the serializer accepts: text, 1-128 printable ASCII characters, no blank (PRINTABLE_NO_BLANK)."""
    return (
        type(token) is str
        and 0 < len(token) <= SESSION_TOKEN_MAX_LENGTH
        and token.isascii()
        and token.isprintable()
        and " " not in token
    )


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


def order_output(order: Order) -> dict:
    """What OrderOutputSerializer(order).data is, with the same fields formatting each value.

    Built without a serializer instance: copying the serializer's fields for each answer cost about 230 µs of CPU.
    """
    fields = OrderOutputSerializer._declared_fields
    money = OrderLineOutputSerializer._declared_fields["unit_price"]
    lines = getattr(order, "placed_lines", None)
    if lines is None:
        lines = order.lines.all()
    return {
        "order_id": order.pk,
        "status": str(order.status),
        "items": [
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": money.to_representation(line.unit_price),
            }
            for line in lines
        ],
        "total": fields["total"].to_representation(order.total),
        "currency": order.currency,
        "created_at": fields["created_at"].to_representation(order.created_at),
    }


class CheckoutErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    product_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    retry_after = serializers.IntegerField(required=False, help_text="429 only; also sent as Retry-After.")
    errors = serializers.DictField(required=False, help_text="Per-field messages of a 400.")


class HoldQuantityField(StrictIntegerField):
    """Units of one product to hold: 0 (remove the line) to CHECKOUT_MAX_QUANTITY_PER_LINE."""

    def __init__(self, **kwargs):
        super().__init__(min_value=0, **kwargs)


class HoldQuantityFieldSchema(OpenApiSerializerFieldExtension):
    target_class = HoldQuantityField

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": 0, "maximum": settings.CHECKOUT_MAX_QUANTITY_PER_LINE}


class CartItemInputSerializer(serializers.Serializer):
    quantity = HoldQuantityField(help_text="Units to hold; 0 removes the line.")


class CartLineOutputSerializer(serializers.Serializer):
    product_id = serializers.IntegerField()
    name = serializers.CharField()
    unit_price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    quantity = serializers.IntegerField()
    held_until = serializers.DateTimeField(help_text="The hold ends then; the units go back to other shoppers.")
    seconds_left = serializers.IntegerField()


class CartOutputSerializer(serializers.Serializer):
    items = CartLineOutputSerializer(many=True)


def cart_item_input(data) -> int:
    """The `quantity` of a cart line's body: a whole number (its range is the service's to check)."""
    quantity = data.get("quantity") if type(data) is dict else None
    if type(quantity) is not int:
        raise InvalidRequest('Send {"quantity": <whole number>}; 0 removes the line.')
    return quantity


def cart_output(lines) -> dict:
    """The cart's JSON: each held line, when its hold ends and how many seconds are left of it."""
    now = timezone.now()
    return {
        "items": CartLineOutputSerializer(
            [
                {
                    "product_id": line.product_id,
                    "name": line.name,
                    "unit_price": line.price,
                    "currency": line.currency,
                    "quantity": line.quantity,
                    "held_until": line.expires_at,
                    "seconds_left": max(int((line.expires_at - now).total_seconds()), 0),
                }
                for line in lines
            ],
            many=True,
        ).data
    }
