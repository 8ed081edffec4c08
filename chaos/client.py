"""The chaos client: HTTP/1.1 over asyncio streams, one connection per request, and the traffic it makes.

One connection per request keeps every request independent: a reset, a killed worker or a stalled server affects
the requests it touches and no other. Each request has a deadline (HANG_BOUND_S); one that passes it is recorded
as "timeout", never waited for longer. Outcomes that are not an HTTP status: "timeout", "reset" (the connection
closed or was reset before a whole answer), "refused".
"""

import asyncio
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Longer than any answer the shop's timeout chain allows (gunicorn's worker timeout is 20 s): a request still
# unanswered after this hangs.
HANG_BOUND_S = 30.0
# A 503 whose code is "overloaded": the front refused the request before the app saw it (load shedding). An outcome
# of its own, never an error: the client knows nothing was done and retries after Retry-After.
SHED = "shed"
# Every outcome a client may meet from this shop; anything else (a 500 included) is a broken invariant.
DEFINED_STATUSES = frozenset(
    {"200", "201", "304", "400", "401", "404", "409", "413", "422", "429", "503", SHED, "reset", "refused"}
)
# A checkout answer that leaves the client not knowing whether the order was placed: it must retry the same key.
IN_DOUBT_STATUSES = frozenset({"timeout", "reset", "refused", "500", "502", "503", "504"})


@dataclass
class Reply:
    kind: str
    status: str
    latency: float
    started: float
    code: str = ""
    retry_after: str = ""
    order_id: int | None = None


@dataclass
class Checkout:
    """One Idempotency-Key and every answer its requests got, the retries included."""

    key: str
    token: str
    product_id: int
    quantity: int
    replies: list[Reply] = field(default_factory=list)

    @property
    def in_doubt(self) -> bool:
        last = self.replies[-1]
        return last.status in IN_DOUBT_STATUSES or last.code == "request_in_progress"

    @property
    def order_ids(self) -> set[int]:
        return {reply.order_id for reply in self.replies if reply.status == "201"}


async def exchange(url: str, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, bytes, bytes]:
    """The status (or "reset"), the head's lower-cased bytes and the body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    fields = head.partition(b"\r\n")[0].split()
    if len(fields) < 2 or not fields[1].isdigit():
        return "reset", b"", b""
    # An answer cut short (its worker killed while sending it) is no answer: the client cannot know its order.
    headers = head.lower()
    if b"\r\ntransfer-encoding: chunked" in headers:
        body = dechunk(body)
        if body is None:
            return "reset", b"", b""
    elif match := re.search(rb"\r\ncontent-length: *(\d+)", headers):
        if len(body) < int(match[1]):
            return "reset", b"", b""
    return fields[1].decode(), headers, body


def dechunk(data: bytes) -> bytes | None:
    """A chunked body's bytes (gunicorn sends a response without Content-Length chunked); None if it was cut."""
    body = b""
    while True:
        size_line, found, data = data.partition(b"\r\n")
        if not found:
            return None
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return body
        if len(data) < size + 2:
            return None
        body, data = body + data[:size], data[size + 2 :]


async def call(
    url: str, kind: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[Reply, bytes]:
    started = time.monotonic()
    try:
        status, head, payload = await asyncio.wait_for(exchange(url, method, path, headers or {}, body), HANG_BOUND_S)
    except TimeoutError:
        status, head, payload = "timeout", b"", b""
    except ConnectionRefusedError:
        status, head, payload = "refused", b"", b""
    except OSError:
        status, head, payload = "reset", b"", b""
    reply = Reply(kind=kind, status=status, latency=time.monotonic() - started, started=started)
    if match := re.search(rb"\r\nretry-after: *([^\r]*)", head):
        reply.retry_after = match[1].decode()
    if status == "201" or (status.isdigit() and int(status) >= 400):
        try:
            document = json.loads(payload)
        except ValueError:
            document = {}
        if isinstance(document, dict):
            reply.code = str(document.get("code", ""))
            if status == "201" and isinstance(document.get("order_id"), int):
                reply.order_id = document["order_id"]
        if status == "503" and reply.code == "overloaded":
            reply.status = SHED
    return reply, payload


@dataclass
class Traffic:
    """Requests against one shop: what was asked, what came back, and every checkout by its Idempotency-Key."""

    url: str
    tokens: list[str]
    product_ids: list[int]
    replies: list[Reply] = field(default_factory=list)
    retries: list[Reply] = field(default_factory=list)
    checkouts: dict[str, Checkout] = field(default_factory=dict)

    async def get(self, kind: str, path: str) -> Reply:
        reply, _ = await call(self.url, kind, "GET", path)
        self.replies.append(reply)
        return reply

    async def checkout(self) -> Reply:
        checkout = Checkout(
            key=str(uuid.uuid4()),
            token=random.choice(self.tokens),
            product_id=random.choice(self.product_ids),
            quantity=random.randint(1, 3),
        )
        self.checkouts[checkout.key] = checkout
        reply = await self._send(checkout)
        self.replies.append(reply)
        return reply

    async def _send(self, checkout: Checkout) -> Reply:
        body = json.dumps({"product_id": checkout.product_id, "quantity": checkout.quantity}).encode()
        headers = {"X-Session-Token": checkout.token, "Idempotency-Key": checkout.key}
        reply, _ = await call(self.url, "checkout", "POST", "/api/checkout", headers=headers, body=body)
        checkout.replies.append(reply)
        return reply

    async def any_request(self, mix: dict[str, int]) -> Reply:
        kind = random.choices(list(mix), weights=list(mix.values()))[0]
        if kind == "checkout":
            return await self.checkout()
        product = random.choice(self.product_ids)
        paths = {"product": f"/api/products/{product}", "inventory": f"/api/inventory/{product}", "health": "/health"}
        return await self.get(kind, paths[kind])

    async def closed_loop(self, *, users: int, until: float, mix: dict[str, int]) -> None:
        """`users` clients, each sending its next request when the last one is answered, until `until`."""

        async def user():
            while time.monotonic() < until:
                await self.any_request(mix)

        await asyncio.gather(*(user() for _ in range(users)))

    async def open_loop(self, *, rate: float, until: float, mix: dict[str, int], limit: int) -> float:
        """Requests sent at a fixed `rate` per second whatever the answers do, at most `limit`, until `until`.

        Returns the worst lag of a send behind its schedule: a lag near the interval means the client, not the
        server, set the pace.
        """
        interval = 1 / rate
        start = time.monotonic()
        tasks, worst_lag = [], 0.0
        for n in range(limit):
            due = start + n * interval
            if due >= until:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, time.monotonic() - due)
            tasks.append(asyncio.ensure_future(self.any_request(mix)))
        await asyncio.gather(*tasks)
        return worst_lag

    async def health_probe(self, *, until: float, every: float = 0.25) -> None:
        """/health every `every` seconds, not waiting for the last answer: a probe like the ALB's."""
        tasks = []
        while time.monotonic() < until:
            tasks.append(asyncio.ensure_future(self.get("health", "/health")))
            await asyncio.sleep(every)
        await asyncio.gather(*tasks)

    async def retry(self, *, keys: list[str] | None = None, within: float, concurrency: int = 16) -> None:
        """Send each checkout again with its own Idempotency-Key: `keys` once, then every one still in doubt,
        a pass a second, until none is or `within` seconds have passed."""
        deadline = time.monotonic() + within
        gate = asyncio.Semaphore(concurrency)

        async def again(checkout: Checkout):
            async with gate:
                self.retries.append(await self._send(checkout))

        first = [self.checkouts[key] for key in keys] if keys is not None else []
        await asyncio.gather(*(again(checkout) for checkout in first))
        while time.monotonic() < deadline:
            doubtful = [checkout for checkout in self.checkouts.values() if checkout.in_doubt]
            if not doubtful:
                return
            await asyncio.gather(*(again(checkout) for checkout in doubtful))
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
