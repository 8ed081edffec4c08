"""The simulated clients: shoppers (the night's mix, one session each) and bots (no think time, one shared
session), and what they share within one locust process: the catalogue they pick from and seeded tokens."""

import json
import random
import uuid
from itertools import accumulate
from pathlib import Path
from urllib.parse import urlencode

from gevent.lock import Semaphore
from locust import FastHttpUser, task

from loadtests import endpoints, outcomes

# A client that timed out sends its checkout again with the same Idempotency-Key; this share of shoppers'
# confirmed checkouts does so, and must get the same order back.
REPLAY_SHARE = 0.05
INVENTORY_BATCH_SIZE = 20
SHOPPER_THINK_SECONDS = (0.5, 2.5)
# A user that has done its --actions-per-user waits this long, i.e. until the run stops it.
IDLE_SECONDS = 24 * 3600


class CountedActions:
    """With `actions_per_user` set (--actions-per-user), each user does exactly that many actions back to back,
    then idles until the run ends: a fixed workload whose request count does not depend on timing. locust calls
    wait_time after every task, so its calls count the actions done."""

    actions_per_user = 0
    actions_done = 0

    def think_seconds(self) -> float:
        raise NotImplementedError

    def wait_time(self) -> float:
        if not self.actions_per_user:
            return self.think_seconds()
        self.actions_done += 1
        return 0 if self.actions_done < self.actions_per_user else IDLE_SECONDS


def parsed_body(response):
    try:
        return json.loads(response.text or "null")
    except (ValueError, TypeError):
        return None


def response_json(response) -> dict:
    body = parsed_body(response)
    return body if isinstance(body, dict) else {}


def fail(response, kind: str, message: str) -> None:
    response.request_meta["context"]["error_kind"] = kind
    response.failure(message)


class Catalogue:
    """Product ids and categories, read once per process from the first page of the product list.

    Shoppers favour a few hot products (weight 1/rank), as on a sale night; bots walk the whole list. Neither
    picks the doorbuster's product (`exclude`): its crowd is the doorbuster phase's own."""

    def __init__(self):
        self.exclude = 0
        self.ids: list[int] = []
        self.categories: list[str] = []
        self.pages = 1
        self._cumulative: list[float] = []

    def load(self, client) -> bool:
        if self.ids:
            return True
        with client.get("/api/products", name=endpoints.CATALOGUE, catch_response=True) as response:
            body = parsed_body(response) if response.status_code == 200 else None
            if not isinstance(body, list) or not body:
                if response.status_code == 200:
                    fail(response, outcomes.BAD_RESPONSE, "the product list is empty: seed the catalogue first")
                return False
        self.ids = [product["id"] for product in body]
        self.categories = sorted({product["category"] for product in body})
        total = int(response.headers.get("X-Total-Count") or len(self.ids))
        self.pages = max(1, -(-total // len(self.ids)))
        self._cumulative = list(accumulate(1 / rank for rank in range(1, len(self.ids) + 1)))
        return True

    def hot_product(self) -> int:
        return self._other_than_excluded(lambda: random.choices(self.ids, cum_weights=self._cumulative)[0])

    def any_product(self) -> int:
        return self._other_than_excluded(lambda: random.choice(self.ids))

    def _other_than_excluded(self, pick) -> int:
        product_id = pick()
        while product_id == self.exclude and len(self.ids) > 1:
            product_id = pick()
        return product_id


class DoorbusterSale:
    """The product on flash sale and its per-session limit, and whether the doorbuster phase runs, as this process
    knows them (set by the locustfile)."""

    def __init__(self):
        self.product_id = 0
        self.limit: int | None = None
        self.running = lambda: False


doorbuster = DoorbusterSale()


class TokenPool:
    """Pre-seeded session tokens (seed_products --sessions N), one per shopper until they run out."""

    def __init__(self):
        self.tokens: list[str] = []

    def load(self, path: str, *, share: int = 0, shares: int = 1) -> None:
        """The tokens of `path`; a worker of a local distributed run takes every `shares`-th one from `share`,
        so no two workers hand out the same session."""
        tokens = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()] if path else []
        self.tokens = tokens[share::shares]
        random.shuffle(self.tokens)

    def take(self) -> str | None:
        return self.tokens.pop() if self.tokens else None


catalogue = Catalogue()
token_pool = TokenPool()


def available_of(client, product_id: int) -> int | None:
    """What the product has `available` (on hand less other carts' holds, docs/carts.md): what a checkout may take.
    On-hand `quantity` would call a 409 wrong while carts hold the units."""
    with client.get(f"/api/inventory/{product_id}", name=endpoints.INVENTORY_VERIFY, catch_response=True) as response:
        available = response_json(response).get("available") if response.status_code == 200 else None
        return available if isinstance(available, int) else None


def create_session(client) -> str | None:
    with client.post("/api/sessions", json={}, name=endpoints.SESSION_CREATE, catch_response=True) as response:
        token = response_json(response).get("session_token") if response.status_code == 201 else None
        if response.status_code == 201 and not token:
            fail(response, outcomes.BAD_RESPONSE, "201 without a session_token")
        return token


class Shopper(CountedActions, FastHttpUser):
    """Browses (60 %: 30 % the list, 70 % a product page), looks up stock (20 %) and buys (20 %), with one
    session of its own and 0.5-2.5 s between actions."""

    def think_seconds(self) -> float:
        return random.uniform(*SHOPPER_THINK_SECONDS)

    def on_start(self):
        self.session_token = token_pool.take()
        catalogue.load(self.client)
        self.session()

    def session(self) -> str | None:
        if self.session_token is None:
            self.session_token = create_session(self.client)
        return self.session_token

    @task(18)
    def browse_list(self):
        if not catalogue.load(self.client):
            return
        query = {"page": random.randint(1, catalogue.pages)}
        if random.random() < 0.25:
            query = {"category": random.choice(catalogue.categories)}
        self.client.get(f"/api/products?{urlencode(query)}", name=endpoints.PRODUCT_LIST)

    @task(42)
    def view_product(self):
        if catalogue.load(self.client):
            self.client.get(f"/api/products/{catalogue.hot_product()}", name=endpoints.PRODUCT_PAGE)

    @task(20)
    def check_inventory(self):
        if not catalogue.load(self.client):
            return
        if random.random() < 0.25:
            ids = random.sample(catalogue.ids, min(INVENTORY_BATCH_SIZE, len(catalogue.ids)))
            self.client.get(f"/api/inventory?product_ids={','.join(map(str, ids))}", name=endpoints.INVENTORY_BATCH)
        else:
            self.client.get(f"/api/inventory/{catalogue.hot_product()}", name=endpoints.INVENTORY_ONE)

    @task(20)
    def checkout(self):
        if not catalogue.load(self.client) or self.session() is None:
            return
        product_id, quantity = catalogue.hot_product(), random.randint(1, 3)
        body = {"session_token": self.session_token, "product_id": product_id, "quantity": quantity}
        key = uuid.uuid4().hex
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": key},
            name=endpoints.CHECKOUT,
            catch_response=True,
            context={"checkout_role": "shopper"},
        ) as response:
            answer = response_json(response)
            available = None
            if response.status_code == 409 and answer.get("code") == "insufficient_stock":
                available = available_of(self.client, product_id)
            outcome = outcomes.checkout_outcome(
                status=response.status_code,
                code=answer.get("code"),
                product_ids=answer.get("product_ids") or [],
                product_id=product_id,
                quantity=quantity,
                available=available,
                reason=answer.get("reason"),
            )
            response.request_meta["context"]["checkout_outcome"] = outcome
            judge_shopper_checkout(response, outcome, answer, available)
        if outcome == outcomes.CREATED and answer.get("order_id") and random.random() < REPLAY_SHARE:
            self.replay(body, key, answer["order_id"])

    def replay(self, body: dict, key: str, order_id) -> None:
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": key},
            name=endpoints.CHECKOUT_REPLAY,
            catch_response=True,
        ) as response:
            if response.status_code == 429:
                fail(response, outcomes.THROTTLED, "429 for a shopper's replayed checkout")
            elif response.status_code == 201 or 400 <= response.status_code < 500:
                replayed = response_json(response).get("order_id")
                if response.status_code == 201 and replayed == order_id:
                    response.success()
                else:
                    fail(
                        response,
                        outcomes.REPLAY_MISMATCH,
                        f"replay answered {response.status_code} order {replayed}, first answer was order {order_id}",
                    )


def judge_shopper_checkout(response, outcome: str, answer: dict, available: int | None) -> None:
    status = response.status_code
    if outcome == outcomes.CREATED:
        if answer.get("order_id") is None:
            fail(response, outcomes.BAD_RESPONSE, "201 without an order_id")
        else:
            response.success()
    elif outcome in (outcomes.SOLD_OUT, outcomes.GATE_UNDERSELL, outcomes.UNVERIFIED_409):
        # An unverified 409 is no error of the checkout (the failed stock read is counted on its own), but it
        # is no success either: it lowers the checkout success share.
        response.success()
    elif outcome == outcomes.IN_STOCK_409:
        fail(response, outcomes.STOCK_MISMATCH, f"409 insufficient_stock while {available} are available")
    elif outcome == outcomes.RATE_LIMITED:
        fail(response, outcomes.THROTTLED, "429 for a shopper: only bots sharing a session should be limited")
    elif outcome == outcomes.OVERLOADED:
        fail(response, outcomes.SHED, "503 overloaded: shed by the front")
    elif outcome == outcomes.REJECTED:
        fail(response, outcomes.CLIENT_ERROR, f"{status} {answer.get('code')}: {answer.get('detail')}")
    # 5xx and no answer: locust's own verdict (a failure) stands, and the kind comes from the status/exception.


class BotSession:
    """The one session every bot of a process shares, so the per-session limit throttles them together."""

    token: str | None = None
    # Bots start together: without the lock each would create a session of its own.
    lock = Semaphore()

    @classmethod
    def get(cls, client) -> str | None:
        with cls.lock:
            if cls.token is None:
                cls.token = create_session(client)
        return cls.token


class Bot(CountedActions, FastHttpUser):
    """Scrapes product pages and hammers checkout with no think time; its 429s are expected."""

    fixed_count = 0

    def think_seconds(self) -> float:
        return 0

    def on_start(self):
        catalogue.load(self.client)

    @task
    def scrape(self):
        if catalogue.load(self.client):
            self.client.get(f"/api/products/{catalogue.any_product()}", name=endpoints.PRODUCT_PAGE)

    @task
    def hammer_checkout(self):
        if not catalogue.load(self.client):
            return
        token = BotSession.get(self.client)
        if token is None:
            return
        body = {"session_token": token, "product_id": catalogue.any_product(), "quantity": 1}
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name=endpoints.BOT_CHECKOUT,
            catch_response=True,
            context={"checkout_role": "bot"},
        ) as response:
            answer = response_json(response)
            outcome = outcomes.checkout_outcome(
                status=response.status_code,
                code=answer.get("code"),
                product_ids=answer.get("product_ids") or [],
                product_id=body["product_id"],
                quantity=1,
                available=None,
            )
            response.request_meta["context"]["checkout_outcome"] = outcome
            if outcome in (outcomes.CREATED, outcomes.RATE_LIMITED, outcomes.UNVERIFIED_409):
                response.success()
            elif outcome == outcomes.REJECTED:
                fail(response, outcomes.CLIENT_ERROR, f"{response.status_code} {answer.get('code')}")
            elif outcome == outcomes.OVERLOADED:
                fail(response, outcomes.SHED, "503 overloaded: shed by the front")


# Between two looks at the phase while the doorbuster is not on.
DOORBUSTER_IDLE_SECONDS = 0.2
CROWD_THINK_SECONDS = (0.2, 1.0)


class DoorbusterAttempts:
    """One attempt on the doorbuster's product (one unit, a fresh Idempotency-Key) and its verdict; the user's
    own session is created at its first attempt, so the crowd's sessions do not weigh on the earlier phases."""

    role = ""
    request_name = ""
    verifies = False
    session_token: str | None = None
    bought = 0

    def ready(self) -> bool:
        if not doorbuster.product_id or not doorbuster.running():
            return False
        if self.session_token is None:
            self.session_token = create_session(self.client)
        return self.session_token is not None

    def attempt(self) -> str:
        product_id = doorbuster.product_id
        body = {"session_token": self.session_token, "product_id": product_id, "quantity": 1}
        with self.client.post(
            "/api/checkout",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name=self.request_name,
            catch_response=True,
            context={"checkout_role": self.role},
        ) as response:
            answer = response_json(response)
            available = None
            refused = response.status_code == 409 and answer.get("code") == "insufficient_stock"
            if self.verifies and refused and answer.get("reason") != "sale_not_started":
                available = available_of(self.client, product_id)
            outcome = outcomes.doorbuster_outcome(
                status=response.status_code,
                code=answer.get("code"),
                reason=answer.get("reason"),
                product_ids=answer.get("product_ids") or [],
                product_id=product_id,
                available=available,
                bought_before=self.bought,
                limit=doorbuster.limit,
            )
            response.request_meta["context"]["checkout_outcome"] = outcome
            if outcome in (outcomes.CREATED, outcomes.OVER_LIMIT):
                self.bought += 1
            self.judge(response, outcome, answer, available)
        return outcome

    def judge(self, response, outcome: str, answer: dict, available: int | None) -> None:
        if outcome in DOORBUSTER_RIGHT or (outcome == outcomes.RATE_LIMITED and self.role == "doorbuster_bot"):
            response.success()
        elif outcome == outcomes.OVER_LIMIT:
            fail(response, outcomes.LIMIT_BROKEN, f"201 for unit {self.bought} past the limit of {doorbuster.limit}")
        elif outcome == outcomes.IN_STOCK_409:
            fail(response, outcomes.STOCK_MISMATCH, f"409 {answer.get('code')} while {available} are available")
        elif outcome == outcomes.RATE_LIMITED:
            fail(response, outcomes.THROTTLED, "429 for one of the crowd: its session bought at most once")
        elif outcome == outcomes.OVERLOADED:
            fail(response, outcomes.SHED, "503 overloaded: shed by the front")
        elif outcome == outcomes.REJECTED:
            fail(response, outcomes.CLIENT_ERROR, f"{response.status_code} {answer.get('code')}")


# Answers that are right for a doorbuster attempt: a sale within the limit, sold out (or the gate's moment of
# undersell), the limit refusing a unit past it, the sale not started yet (counted), a 409 a bot does not verify.
DOORBUSTER_RIGHT = frozenset(
    {
        outcomes.CREATED,
        outcomes.SOLD_OUT,
        outcomes.GATE_UNDERSELL,
        outcomes.UNVERIFIED_409,
        outcomes.LIMIT_REFUSED,
        outcomes.NOT_STARTED,
    }
)


class DoorbusterShopper(DoorbusterAttempts, FastHttpUser):
    """One of the doorbuster's crowd: idle until the doorbuster phase, then tries to buy one unit of the product on
    sale every 0.2-1 s with a session of its own, until it has it or finds the product sold out. A 409 is read back
    against `available`, as a shopper's is."""

    fixed_count = 0
    role = "doorbuster"
    request_name = endpoints.DOORBUSTER_CHECKOUT
    verifies = True
    done = False

    def wait_time(self) -> float:
        return random.uniform(*CROWD_THINK_SECONDS) if doorbuster.running() else DOORBUSTER_IDLE_SECONDS

    @task
    def race(self):
        if not self.done and self.ready():
            self.done = self.attempt() in (outcomes.CREATED, outcomes.SOLD_OUT)


class DoorbusterBot(DoorbusterAttempts, FastHttpUser):
    """A bot at the doorbuster: its own session, no think time, and it keeps buying past the product's
    per-session limit, which must refuse it (409 limit_exceeded); its 429s are expected."""

    fixed_count = 0
    role = "doorbuster_bot"
    request_name = endpoints.DOORBUSTER_BOT_CHECKOUT

    def wait_time(self) -> float:
        return 0 if doorbuster.running() else DOORBUSTER_IDLE_SECONDS

    @task
    def race(self):
        if self.ready():
            self.attempt()
