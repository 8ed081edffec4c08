"""A TCP proxy to put a fault between the shop and PostgreSQL, run as its own process.

    python -m chaos.proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:5432 [--latency-ms 200] [--reset-chance 0.05]

It prints `listening <port>` once it accepts connections, then forwards bytes both ways. The fault it was started
with stays off until SIGUSR1 and goes off again on SIGUSR2:

- latency: every chunk forwarded, in either direction, waits `--latency-ms` first;
- resets: every chunk forwarded has `--reset-chance` of ending its connection with a TCP RST on both sides, and the
  connections open when the fault starts are reset at once.

Freezing is not a mode: the caller sends SIGSTOP, so the listening socket keeps accepting connections (the kernel
completes the handshake) and nothing ever answers, which is what a hung database or RDS Proxy looks like. Killing
it (SIGKILL) is a refused database: open connections are closed and new ones refused.
"""

import argparse
import random
import select
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 65536


class Pair:
    """A client connection and its upstream connection, served by one thread, so a reset never races a recv."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.reset_requested = False

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.server if sock is self.client else self.client

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.server)


class Proxy:
    def __init__(self, *, listen: tuple[str, int], upstream: tuple[str, int], latency_ms: int, reset_chance: float):
        self.upstream = upstream
        self.latency_s = latency_ms / 1000
        self.reset_chance = reset_chance
        self.fault_on = False
        self.pairs: set[Pair] = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server(listen, backlog=512)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start_fault(self) -> None:
        self.fault_on = True
        if self.reset_chance:
            with self.lock:
                for pair in self.pairs:
                    pair.reset_requested = True

    def stop_fault(self) -> None:
        self.fault_on = False

    def serve_forever(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _reset(client)
            return
        pair = Pair(client, server)
        with self.lock:
            self.pairs.add(pair)
        try:
            self.pump(pair)
        finally:
            with self.lock:
                self.pairs.discard(pair)

    def pump(self, pair: Pair) -> None:
        open_ends = {pair.client, pair.server}
        try:
            while open_ends:
                # A short select timeout: a reset asked for by start_fault is acted on within 0.1 s.
                readable, _, _ = select.select(list(open_ends), [], [], 0.1)
                if pair.reset_requested:
                    pair.reset()
                    return
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        open_ends.discard(sock)
                        pair.peer(sock).shutdown(socket.SHUT_WR)
                        continue
                    if self.fault_on and self.latency_s:
                        time.sleep(self.latency_s)
                    if self.fault_on and self.reset_chance and random.random() < self.reset_chance:
                        pair.reset()
                        return
                    pair.peer(sock).sendall(data)
        except OSError:
            pair.reset()
            return
        pair.client.close()
        pair.server.close()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--upstream", type=_address, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--reset-chance", type=float, default=0.0)
    args = parser.parse_args(argv)
    proxy = Proxy(
        listen=args.listen, upstream=args.upstream, latency_ms=args.latency_ms, reset_chance=args.reset_chance
    )
    signal.signal(signal.SIGUSR1, lambda *_: proxy.start_fault())
    signal.signal(signal.SIGUSR2, lambda *_: proxy.stop_fault())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening {proxy.port}", flush=True)
    proxy.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
