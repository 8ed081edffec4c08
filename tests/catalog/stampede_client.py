"""One of the processes of test_stampede: THREADS threads request one cold URL at the same moment.

    python -m tests.catalog.stampede_client THREADS PATH [--no-lock]

Prints `stampede ready` once Django is loaded and every thread has its database connection, waits for a line on
stdin, fires, then prints `stampede {json}`: each response (status, X-Cache-Status, body digest) and how many
statements on catalog_product this process sent, counted by a connection.execute_wrapper in every thread.
`--no-lock` disables the rebuild lock: the control run showing that the count sees every rebuild.
"""

import hashlib
import json
import os
import sys
import threading


def main() -> None:
    threads_count, path = int(sys.argv[1]), sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from catalog import cache

    if "--no-lock" in sys.argv:
        cache.RedisStore.try_lock = lambda self, version, key: ("no-lock", None)
        cache.RedisStore.unlock = lambda self, version, key, token: None

    counted = threading.Lock()
    statements = {"select": 0, "count": 0, "explain": 0}
    responses = []
    ready = threading.Barrier(threads_count + 1)
    go = threading.Event()

    def count(execute, sql, params, many, context):
        if '"catalog_product"' in sql:
            kind = "explain" if sql.startswith("EXPLAIN") else "count" if "COUNT(" in sql else "select"
            with counted:
                statements[kind] += 1
        return execute(sql, params, many, context)

    def request_once() -> None:
        client = Client(HTTP_HOST="127.0.0.1")
        client.get("/health/ready")  # opens this thread's database and Redis connections before the start
        ready.wait()
        go.wait()
        with connection.execute_wrapper(count):
            response = client.get(path)
        with counted:
            responses.append(
                {
                    "status": response.status_code,
                    "cache": response.get("X-Cache-Status"),
                    "digest": hashlib.sha256(response.content).hexdigest(),
                }
            )
        connection.close()

    threads = [threading.Thread(target=request_once) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    ready.wait()
    print("stampede ready", flush=True)
    sys.stdin.readline()
    go.set()
    for thread in threads:
        thread.join()
    print("stampede " + json.dumps({"responses": responses, "statements": statements}), flush=True)


if __name__ == "__main__":
    main()
