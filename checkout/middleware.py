"""POST /api/checkout answered right after the request log, ahead of the session, auth, messages, CSRF and URL
resolving work the rest of the stack does, and of DRF's request, negotiation and response objects.

A doorbuster's sold-out attempts are thousands per second, each refused by one Redis round trip at the flash-sale
gate: the stack below this point cost more CPU than the refusal itself (docs/doorbuster.md has the figures). A
JSON body is read here as DRF's JSONParser reads it and answered by checkout.apis.checkout_answer, the same
function the view calls; a body DRF must judge (another media type or charset, malformed JSON, no body), or an
Accept header or query string its content negotiation must read, goes on to the view, which gives DRF's own
answer. Nothing is counted or written before that choice is made.
"""

import json

from checkout.apis import CHECKOUT_PATH, checkout_answer

_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
# CheckoutApi's one renderer is JSON: DRF's negotiation gives it for these (the storefront sends the last).
_JSON_ACCEPTS = frozenset({None, "*/*", "application/json"})


class _NotPlainJson(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotPlainJson(name)  # NaN and Infinity: DRF's strict JSON refuses them


_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def json_body(request):
    """The body parsed as DRF's JSONParser would parse it, or None when the view must judge it (the body, or an
    Accept header or query string DRF's content negotiation must read)."""
    meta = request.META
    if meta.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES or not meta.get("CONTENT_LENGTH"):
        return None
    if meta.get("HTTP_ACCEPT") not in _JSON_ACCEPTS or meta.get("QUERY_STRING"):
        return None
    try:
        return _decoder.decode(request.body.decode("utf-8"))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError and _NotPlainJson are ValueErrors
        return None


class CheckoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == CHECKOUT_PATH and request.method == "POST":
            data = json_body(request)
            if data is not None:
                request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it (DisallowedHost: a 400)
                response = checkout_answer(request, data)
                response["X-Content-Type-Options"] = "nosniff"
                return response
        return self.get_response(request)
