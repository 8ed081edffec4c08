"""Schemathesis hooks of tests/shop/test_schemathesis.py, loaded by path through SCHEMATHESIS_HOOKS.

One rule of the checkout cannot be written in JSON Schema: a product listed twice in `items` is one line with the
quantities added, and the sum is held to the same maximum as one quantity. The schema states it in words (the
description of `items`); here it keeps such bodies out of the generated data, so a body the schema calls valid and
the server refuses by that rule alone is not reported as valid data rejected.
"""

import os
from collections import Counter

import schemathesis

MAX_QUANTITY = int(os.environ["SHOP_MAX_QUANTITY_PER_LINE"])


# filter_case rather than filter_body: the coverage phase applies only the case hooks.
@schemathesis.hook("filter_case").apply_to(path="/api/checkout", method="POST")
def merged_quantities_within_the_cap(context, case) -> bool:
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return True
    totals = Counter()
    for item in body["items"]:
        if isinstance(item, dict) and type(item.get("product_id")) is int and type(item.get("quantity")) is int:
            totals[item["product_id"]] += item["quantity"]
    return all(total <= MAX_QUANTITY for total in totals.values())
