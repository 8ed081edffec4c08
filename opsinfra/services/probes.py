"""HTTP probes of a running shop: is the product cache warm, which release answers /health. Standard library only."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

TIMEOUT_S = 10
# The app's own header (docs/api.md); CloudFront writes X-Cache, "Hit from cloudfront" when its edge answered.
CACHE_HEADER = "X-Cache-Status"
EDGE_HEADER = "X-Cache"


@dataclass(frozen=True)
class Answer:
    path: str
    status: int  # 0: no HTTP answer at all
    cache: str  # HIT, MISS, BYPASS, EDGE-HIT (a CloudFront hit), "" when the header is absent
    body: bytes = b""
    error: str = ""

    @property
    def warm(self) -> bool:
        return self.status == 200 and self.cache in ("HIT", "EDGE-HIT")


def get(base_url: str, path: str) -> Answer:
    request = urllib.request.Request(
        base_url.rstrip("/") + path, headers={"Accept": "application/json", "User-Agent": "shop-preflight"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return Answer(path, response.status, _cache_status(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(path, exc.code, _cache_status(exc.headers), exc.read() or b"")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Answer(path, 0, "", error=str(reason))


def _cache_status(headers) -> str:
    if headers is None:
        return ""
    if str(headers.get(EDGE_HEADER, "")).lower().startswith("hit from cloudfront"):
        return "EDGE-HIT"
    return str(headers.get(CACHE_HEADER, "")).upper()


@dataclass(frozen=True)
class CacheProbe:
    answers: tuple[Answer, ...]

    @property
    def cold(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status == 200 and not answer.warm]

    @property
    def broken(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status != 200]


def product_cache_probe(*, base_url: str, pages: int, products: int) -> CacheProbe:
    """The first `pages` pages of /api/products, then the first `products` products of the first page, each asked
    once: a warm cache answers every one from Redis (HIT) or CloudFront's edge. A miss fills the entry it missed,
    so a second run finds it warm."""
    answers = [
        get(base_url, "/api/products" if page == 1 else f"/api/products?page={page}") for page in range(1, pages + 1)
    ]
    ids = _product_ids(answers[0].body) if answers and answers[0].status == 200 else []
    answers.extend(get(base_url, f"/api/products/{product_id}") for product_id in ids[:products])
    return CacheProbe(tuple(answers))


def _product_ids(body: bytes) -> list[int]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    items = data.get("results", data) if isinstance(data, dict) else data
    return [item["id"] for item in items if isinstance(item, dict) and "id" in item] if isinstance(items, list) else []


def health_version(*, base_url: str) -> tuple[Answer, str]:
    """GET /health: the answer and the version the instance that answered runs ("" when none)."""
    answer = get(base_url, "/health")
    try:
        version = str(json.loads(answer.body).get("version", "")) if answer.status == 200 else ""
    except (ValueError, AttributeError):
        version = ""
    return answer, version
