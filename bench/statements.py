"""SQL statements per request on the checkout path, counted in-process through the whole middleware stack.

Run by bench/run.py after a pass, against that pass's database:
    manage.py shell --command "from bench.statements import main; main()"
Prints one JSON line. Transaction COMMITs are not statements Django logs, so they are not in the counts.
"""

import json
import secrets

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Product


def counted(client: Client, path: str, body: dict, **headers) -> tuple[int, dict, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.post(path, data=json.dumps(body), content_type="application/json", **headers)
    return response.status_code, response.json(), [query["sql"] for query in queries.captured_queries]


def main() -> None:
    client = Client(HTTP_HOST="127.0.0.1")
    product_ids = list(Product.objects.order_by("id").values_list("id", flat=True)[:3])
    status, session, session_sql = counted(client, "/api/sessions", {})
    token = session["session_token"]
    one_line = {"session_token": token, "product_id": product_ids[0], "quantity": 1}
    key = secrets.token_hex(8)
    results = {"session_create": len(session_sql)}
    status, _, keyed_sql = counted(client, "/api/checkout", one_line, HTTP_IDEMPOTENCY_KEY=key)
    results["checkout_one_line_with_key"] = len(keyed_sql)
    _, _, replay_sql = counted(client, "/api/checkout", one_line, HTTP_IDEMPOTENCY_KEY=key)
    results["checkout_replay_of_key"] = len(replay_sql)
    _, _, plain_sql = counted(client, "/api/checkout", one_line)
    results["checkout_one_line_no_key"] = len(plain_sql)
    three_lines = {"session_token": token, "items": [{"product_id": pid, "quantity": 1} for pid in product_ids]}
    _, _, three_sql = counted(client, "/api/checkout", three_lines, HTTP_IDEMPOTENCY_KEY=secrets.token_hex(8))
    results["checkout_three_lines_with_key"] = len(three_sql)
    results["first_checkout_status"] = status
    results["statements_one_line_with_key"] = [sql[:160] for sql in keyed_sql]
    print(json.dumps(results))
