"""Real gunicorn servers for tests: the shop on this test's database, each on a port nobody else can take."""

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from shop.nginx import health_answers


def server_env(**overrides: str) -> dict:
    """The environment of a gunicorn serving this test's database with DEBUG off; `overrides` on top."""
    database = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_DEBUG": "0",
        "GUNICORN_THREADS": "2",
        **overrides,
    }


@contextmanager
def gunicorn_servers(*envs: dict, log_dir: Path | None = None):
    """One gunicorn per env; yields their base URLs.

    The test binds each listening socket to a free port itself and hands it over (`--bind fd://N`), so no other
    test running at the same time can take the port between choosing and binding it. With `log_dir`, server i
    writes its output to gunicorn-i.log there.
    """
    processes, urls = [], []
    try:
        for number, env in enumerate(envs):
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen(128)
                fd = listener.fileno()
                output = open(log_dir / f"gunicorn-{number}.log", "wb") if log_dir else subprocess.DEVNULL
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py", "--bind", f"fd://{fd}"],
                        cwd=settings.BASE_DIR,
                        env=env,
                        pass_fds=[fd],
                        stdout=output,
                        stderr=subprocess.STDOUT if log_dir else subprocess.DEVNULL,
                    )
                )
                if log_dir:
                    output.close()
                urls.append(f"http://127.0.0.1:{listener.getsockname()[1]}")
        for url in urls:
            wait_until_up(url)
        yield urls
    finally:
        stop(*processes)


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    assert health_answers(url, timeout), f"gunicorn at {url} did not start within {timeout} s"


def stop(*processes: subprocess.Popen) -> None:
    """SIGTERM to all, then 10 s for each to exit before its SIGKILL."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
