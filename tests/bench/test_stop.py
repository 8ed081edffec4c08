"""The bench stops every server it started, even one that ignores SIGINT and even when signalled meanwhile."""

import os
import signal
import subprocess
import sys
import time

from bench.run import Server, stop_all

# Prints "ready" once its SIGINT disposition is set, then sleeps: SIGINT ends it, unless told to ignore it.
SLEEPER = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def sleeper(tmp_path, mode: str) -> Server:
    server = Server(mode, "app", 0, {}, tmp_path / "log")
    server.process = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, mode], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert server.process.stdout.readline() == "ready\n"
    server.process.stdout.close()
    return server


def test_stop_all_ends_servers_that_exit_on_sigint_and_kills_those_that_do_not(tmp_path):
    polite, stubborn = sleeper(tmp_path, "exit"), sleeper(tmp_path, "ignore")

    started = time.monotonic()
    stop_all([polite, stubborn], grace=1.0)

    assert polite.process.returncode == -signal.SIGINT
    assert stubborn.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_a_signal_during_stop_all_is_acted_on_only_after_every_server_is_gone(tmp_path):
    stubborn = sleeper(tmp_path, "ignore")
    interrupt = stubborn.interrupt

    def interrupt_then_get_terminated():
        interrupt()
        os.kill(os.getpid(), signal.SIGTERM)  # as a SIGTERM or a second Ctrl-C arriving during the stop would

    stubborn.interrupt = interrupt_then_get_terminated
    seen_by_handler = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen_by_handler.append(stubborn.process.poll()))
    try:
        stop_all([stubborn], grace=0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)

    # The process's own SIGTERM handler ran once, and only when the server had been killed.
    assert seen_by_handler == [-signal.SIGKILL]
