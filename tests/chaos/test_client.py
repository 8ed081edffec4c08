"""The chaos client's outcomes: an answer cut short is a reset, a chunked body is read, a silent server times out."""

import asyncio
import socket
import threading

import pytest

from chaos import client
from chaos.client import call, dechunk


def test_dechunk_reads_whole_bodies_and_refuses_cut_ones():
    assert dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") == b"hello world"
    assert dechunk(b"5\r\nhel") is None
    assert dechunk(b"5\r\nhello\r\n") is None


@pytest.fixture
def raw_server():
    """A server that answers every connection with the bytes given, then closes (or stays silent for None)."""
    listener = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes | None] = []
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            answer = answers.pop(0)
            if answer is None:
                held.append(conn)
                continue
            conn.sendall(answer)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    listener.close()
    for conn in held:
        conn.close()


def ask(url: str):
    return asyncio.run(call(url, "checkout", "POST", "/api/checkout", body=b"{}"))[0]


def test_a_201_with_its_whole_body_carries_the_order_id(raw_server):
    url, answers = raw_server
    body = b'{"order_id": 42}'
    answers.append(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    reply = ask(url)

    assert (reply.status, reply.order_id) == ("201", 42)


def test_a_201_cut_short_is_a_reset(raw_server):
    url, answers = raw_server
    answers.append(b'HTTP/1.1 201 Created\r\nContent-Length: 40\r\n\r\n{"order_id": 4')
    answers.append(b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"order_id": 4')

    assert [ask(url).status, ask(url).status] == ["reset", "reset"]


def test_a_chunked_error_body_gives_its_code(raw_server):
    url, answers = raw_server
    body = b'{"code": "database_unavailable"}'
    answers.append(
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), body)
    )

    reply = ask(url)

    assert (reply.status, reply.code) == ("503", "database_unavailable")


def test_a_503_overloaded_is_shed_with_its_retry_after(raw_server):
    url, answers = raw_server
    shed = b'{"code": "overloaded", "detail": "The shop is at capacity; retry in a second."}'
    unavailable = b'{"code": "database_unavailable", "detail": "x"}'
    for body, retry_after in ((shed, b"1"), (unavailable, b"5")):
        answers.append(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (retry_after, len(body), body)
        )

    first, second = ask(url), ask(url)

    assert (first.status, first.code, first.retry_after) == ("shed", "overloaded", "1")
    assert (second.status, second.code, second.retry_after) == ("503", "database_unavailable", "5")


def test_a_silent_server_is_a_timeout_at_the_hang_bound(raw_server, monkeypatch):
    url, answers = raw_server
    answers.append(None)
    monkeypatch.setattr(client, "HANG_BOUND_S", 0.3)

    reply = ask(url)

    assert reply.status == "timeout"
    assert reply.latency >= 0.3
