"""An error code means one thing: one exception class raises it, docs/api.md's table documents it, and the OpenAPI
schema names it in the responses that can carry it."""

import json
import re
from collections import Counter

from django.conf import settings

import catalog.apis
import catalog.exceptions
import catalog.seeding
import checkout.exceptions
from shop.exceptions import DomainError

# Raised by management commands only; a request never meets them.
COMMAND_CODES = {"seed_refused", "invalid_quantity"}
# Answered by shop.exceptions or the middleware without a class of their own (docs/serving.md has the whole list).
HANDLER_CODES = {"database_unavailable"}


def _classes(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_classes(sub)]
    return found


def _coded() -> list[type]:
    """The DomainError classes that set a code of their own (ReplayedError answers a stored body instead)."""
    modules = {catalog.exceptions, checkout.exceptions, catalog.apis, catalog.seeding}
    return [
        cls
        for cls in _classes(DomainError)
        if "code" in vars(cls) and any(cls.__module__ == m.__name__ for m in modules)
    ]


def _documented() -> set[str]:
    text = (settings.BASE_DIR / "docs" / "api.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if re.match(r"\| \d{3} \|", line)]
    return {code for row in rows for code in re.findall(r"`([a-z_]+)`", row[2])}


def test_each_code_is_raised_by_one_class():
    counts = Counter(cls.code for cls in _coded())
    assert counts and {code: n for code, n in counts.items() if n > 1} == {}


def test_the_docs_table_lists_exactly_the_codes_a_request_can_get():
    raised = {cls.code for cls in _coded()} - COMMAND_CODES
    assert _documented() == raised | HANDLER_CODES


def test_every_code_a_request_can_get_is_named_in_the_schema(client):
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    described = " ".join(
        response.get("description", "")
        for operations in schema["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
    )
    missing = {code for code in _documented() if not re.search(rf"\b{code}\b", described)}
    assert missing == set()
