"""Query parameters of the catalogue endpoints: validated once, and normalised so equal queries share a cache key."""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import QueryDict

from catalog.exceptions import InvalidParameter, ProductNotFound

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
MAX_PAGE = 100_000
MAX_TEXT_LENGTH = 100  # Product.category's max_length; longer search text cannot match a useful share of names.
MAX_BATCH_IDS = 100
MAX_ID = 2**63 - 1  # a bigint primary key; larger numbers would make PostgreSQL raise instead of find nothing.


@dataclass(frozen=True)
class ProductListParams:
    category: str = ""
    q: str = ""
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def query_string(self, page: int | None = None) -> str:
        """The canonical query: defaults left out, names in a fixed order (the cache key and the Link targets)."""
        pairs = []
        if self.category:
            pairs.append(("category", self.category))
        if self.q:
            pairs.append(("q", self.q))
        page = self.page if page is None else page
        if page != 1:
            pairs.append(("page", page))
        if self.page_size != DEFAULT_PAGE_SIZE:
            pairs.append(("page_size", self.page_size))
        return urlencode(pairs)


def product_list_params(query: QueryDict) -> ProductListParams:
    """Raises InvalidParameter naming the first bad parameter; unknown parameters are ignored."""
    return ProductListParams(
        category=_text(query, "category"),
        q=_text(query, "q"),
        page=_whole_number(query, "page", default=1, maximum=MAX_PAGE),
        page_size=_whole_number(query, "page_size", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE),
    )


def product_id_param(raw: str) -> int:
    """A product id from a URL path; anything that cannot be one is a product that does not exist."""
    if not _is_digits(raw) or raw.startswith("0") or int(raw) > MAX_ID:
        raise ProductNotFound(path_id=raw)
    return int(raw)


def product_ids_param(query: QueryDict) -> list[int]:
    """`1,2,3`: 1 to MAX_BATCH_IDS positive ids separated by commas, nothing else (no blanks, no empty entries)."""
    raw = query.get("product_ids")
    if not raw:
        raise InvalidParameter("product_ids is required: a comma-separated list of product ids, e.g. 1,2,3.")
    parts = raw.split(",")
    if len(parts) > MAX_BATCH_IDS:
        raise InvalidParameter(f"product_ids may name at most {MAX_BATCH_IDS} products, got {len(parts)}.")
    if not all(_is_digits(part) and 0 < int(part) <= MAX_ID for part in parts):
        raise InvalidParameter("product_ids must be positive whole numbers separated by commas, e.g. 1,2,3.")
    return sorted({int(part) for part in parts})


def _text(query: QueryDict, name: str) -> str:
    """Up to MAX_TEXT_LENGTH characters as sent, without NUL; blanks at either end are dropped."""
    value = query.get(name, "")
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidParameter(f"{name} may be at most {MAX_TEXT_LENGTH} characters long.")
    if "\x00" in value:
        raise InvalidParameter(f"{name} must not contain NUL characters.")
    return value.strip()


def _whole_number(query: QueryDict, name: str, *, default: int, maximum: int) -> int:
    """Absent: the default. Present: digits only, 1 to maximum (an empty value is refused, not read as absent)."""
    raw = query.get(name)
    if raw is None:
        return default
    if not _is_digits(raw) or not 1 <= int(raw) <= maximum:
        raise InvalidParameter(f"{name} must be a whole number from 1 to {maximum}, got {raw[:20]!r}.")
    return int(raw)


def _is_digits(raw: str) -> bool:
    # str.isdigit alone accepts digits int() rejects ("²"); 19 digits hold any bigint and keep int() cheap.
    return len(raw) <= 19 and raw.isascii() and raw.isdigit()
