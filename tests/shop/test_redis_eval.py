"""shop.redis.redis_eval: Lua scripts on a connection each thread keeps, against a redis-server of the test's own."""

import threading

import pytest
import redis

from shop import redis as shop_redis
from shop.redis import redis_eval
from tests.redis_process import RedisProcess

COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
FAIL = "return redis.error_reply('no such thing')"


@pytest.fixture
def server(redis_process):
    yield redis_process
    shop_redis._thread.connection = None
    shop_redis._thread.client = None


def test_a_script_redis_does_not_know_is_loaded_and_run(server):
    client = server.client()
    client.script_flush()

    assert redis_eval(client, COUNT, ["n"], [2]) == 2
    assert redis_eval(client, COUNT, ["n"], [3]) == 5
    assert client.get("n") == b"5"


def test_each_thread_keeps_one_connection_of_its_own(server):
    client = server.client()
    redis_eval(client, COUNT, ["n"], [1])
    first = shop_redis._thread.connection
    redis_eval(client, COUNT, ["n"], [1])
    seen = []
    thread = threading.Thread(target=lambda: seen.append((redis_eval(client, COUNT, ["n"], [1]), _connection())))
    thread.start()
    thread.join()

    assert shop_redis._thread.connection is first
    assert seen[0][0] == 3
    assert seen[0][1] is not first
    assert _script_runners(client) == 2  # this thread's connection and the other's, none from the pool


def test_an_error_the_script_returns_is_raised_and_the_connection_stays_in_step(server):
    client = server.client()
    redis_eval(client, COUNT, ["n"], [1])
    kept = shop_redis._thread.connection

    with pytest.raises(redis.ResponseError, match="no such thing"):
        redis_eval(client, FAIL, [], [])

    assert redis_eval(client, COUNT, ["n"], [1]) == 2
    assert shop_redis._thread.connection is kept


def test_a_redis_that_died_raises_and_the_next_call_after_its_return_connects_anew(server):
    client = server.client()
    assert redis_eval(client, COUNT, ["n"], [1]) == 1

    server.kill()
    with pytest.raises(redis.ConnectionError):
        redis_eval(client, COUNT, ["n"], [1])
    assert shop_redis._thread.connection is None

    server.start()  # empty: it knows neither the key nor the script
    assert redis_eval(client, COUNT, ["n"], [5]) == 5


def test_another_client_gets_a_connection_to_its_own_server(server):
    other = RedisProcess()
    other.start()
    try:
        assert redis_eval(server.client(), COUNT, ["n"], [1]) == 1
        assert redis_eval(other.client(), COUNT, ["n"], [7]) == 7
    finally:
        other.kill()

    assert server.client().get("n") == b"1"


def _connection():
    return shop_redis._thread.connection


def _script_runners(client) -> int:
    """Connections whose last command was a script's (the pool's own, running CLIENT LIST, is not)."""
    return sum(1 for entry in client.client_list() if entry["cmd"] in ("evalsha", "script|load"))
