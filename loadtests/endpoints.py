"""Request names as they appear in locust's statistics and in summary.json, grouped for the thresholds."""

PRODUCT_LIST = "GET /api/products"
# The first page read once per process (more when its first users start together) for the ids to pick from.
CATALOGUE = "GET /api/products (catalogue)"
PRODUCT_PAGE = "GET /api/products/[id]"
INVENTORY_ONE = "GET /api/inventory/[id]"
INVENTORY_BATCH = "GET /api/inventory?product_ids"
# After a 409 the shopper reads the product's stock to tell "sold out" from a wrong answer.
INVENTORY_VERIFY = "GET /api/inventory/[id] (verify)"
SESSION_CREATE = "POST /api/sessions"
CHECKOUT = "POST /api/checkout"
# The same body and Idempotency-Key sent again, as a client does after a timeout.
CHECKOUT_REPLAY = "POST /api/checkout (replay)"
BOT_CHECKOUT = "POST /api/checkout (bot)"
# The doorbuster's crowd and its bots, on the one product on flash sale.
DOORBUSTER_CHECKOUT = "POST /api/checkout (doorbuster)"
DOORBUSTER_BOT_CHECKOUT = "POST /api/checkout (doorbuster bot)"

PRODUCT_ENDPOINTS = (PRODUCT_LIST, PRODUCT_PAGE)
INVENTORY_ENDPOINTS = (INVENTORY_ONE, INVENTORY_BATCH, INVENTORY_VERIFY)
CHECKOUT_ENDPOINTS = (CHECKOUT,)
DOORBUSTER_ENDPOINTS = (DOORBUSTER_CHECKOUT,)
# What one action of a shopper sends first (its own request; a 409's verify read and a replay come on top).
SHOPPER_ACTIONS = (PRODUCT_LIST, PRODUCT_PAGE, INVENTORY_ONE, INVENTORY_BATCH, CHECKOUT)
