"""A TCP proxy to run as its own process: `python -m tests.shop.tcp_proxy HOST PORT` listens on a free port of
127.0.0.1, prints it, and forwards every connection to HOST:PORT.

Frozen with SIGSTOP it is a hung dependency as a frozen server or RDS Proxy is one: connections stay open (and new
ones complete, in the kernel's backlog), but no byte goes through and no error comes. SIGCONT lets it go on.
"""

import selectors
import socket
import sys


def serve(target: tuple[str, int]) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    peers: dict[socket.socket, socket.socket] = {}

    def drop(sock: socket.socket) -> None:
        other = peers.pop(sock, None)
        for each in (sock, other):
            if each is not None:
                peers.pop(each, None)
                try:
                    selector.unregister(each)
                except (KeyError, ValueError):
                    pass
                each.close()

    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            if sock is listener:
                client, _ = listener.accept()
                try:
                    upstream = socket.create_connection(target, timeout=5)
                except OSError:
                    client.close()
                    continue
                for each in (client, upstream):
                    each.setblocking(True)
                    selector.register(each, selectors.EVENT_READ)
                peers[client], peers[upstream] = upstream, client
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(sock)
                continue
            try:
                peers[sock].sendall(data)
            except (OSError, KeyError):
                drop(sock)


if __name__ == "__main__":
    serve((sys.argv[1], int(sys.argv[2])))
