"""A running gunicorn follows a rotated database password: the secret (Secrets Manager on moto's server) changes,
the role's password changes, and the app's next login is refused, then made with the secret's new credentials.

The shared PostgreSQL trusts every local login, so a password there proves nothing: each test starts a PostgreSQL
cluster of its own that checks passwords (scram-sha-256), on a free port, run as the postgres system user.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import boto3
import psycopg
import pytest
from django.conf import settings

from shop.postgres.base import HEALTH_CHECK_AFTER_IDLE
from tests.servers import stop

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER_PASSWORD = "cluster-superuser-password"
ROLE = "rotation_app"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A PostgreSQL 15 of this test module's own; yields a function that runs SQL on it as its superuser."""
    if not (PG_BIN / "initdb").exists() or os.geteuid() != 0:
        pytest.skip("needs PostgreSQL 15's server binaries and root (to run them as the postgres user)")
    root = Path(tempfile.mkdtemp(prefix="shop-rotation-"))
    (root / "password").write_text(SUPERUSER_PASSWORD)
    shutil.chown(root, "postgres")
    shutil.chown(root / "password", "postgres")
    port = free_port()

    def as_postgres(*command):
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    as_postgres(str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=scram-sha-256",
                f"--pwfile={root / 'password'}")  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-o", options, "-l", str(root / "log"), "-w", "start")

    def sql(statement: str, *params):
        url = f"postgresql://postgres:{SUPERUSER_PASSWORD}@127.0.0.1:{port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    sql.port = port
    try:
        yield sql
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def secrets_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def database_secret(cluster, secrets_server, monkeypatch):
    """The role with its first password, and its secret; returns a function that rotates both."""
    for name, value in {"AWS_ENDPOINT_URL": secrets_server, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    client = boto3.client("secretsmanager")
    cluster(f"DROP ROLE IF EXISTS {ROLE}_clone")
    cluster(f"DROP ROLE IF EXISTS {ROLE}")
    cluster(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'first-password'")
    name = f"shop-rotation-{time.monotonic_ns()}"
    arn = client.create_secret(Name=name, SecretString=json.dumps({"username": ROLE, "password": "first-password"}))
    return client, arn["ARN"]


@contextmanager
def gunicorn(*, cluster, secrets_server: str, secret_arn: str):
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PORT": str(port),
        # The user and password come from the secret, as on an instance.
        "DATABASE_URL": f"postgres://nobody@127.0.0.1:{cluster.port}/postgres",
        "DB_SECRET_ARN": secret_arn,
        "AWS_ENDPOINT_URL": secrets_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "test-only-not-a-secret",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "2",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while ready(port)[0] is None:
            assert process.poll() is None, "gunicorn exited"
            assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
            time.sleep(0.2)
        yield port
    finally:
        stop(process)


def ready(port: int) -> tuple[int | None, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None, {}


def drop_sessions(cluster, role: str) -> None:
    """What a failover or the proxy's idle timeout does: the app's open connection is gone, it must log in again.
    Then the connection idles past the backend's health-check threshold, so the next request checks it first."""
    cluster("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", role)
    time.sleep(HEALTH_CHECK_AFTER_IDLE + 0.2)


def logged_in_as(cluster) -> set[str]:
    return {row[0] for row in cluster("SELECT usename FROM pg_stat_activity WHERE usename LIKE %s", f"{ROLE}%")}


def test_running_server_logs_in_with_the_rotated_password(cluster, secrets_server, database_secret):
    client, arn = database_secret
    with gunicorn(cluster=cluster, secrets_server=secrets_server, secret_arn=arn) as port:
        assert ready(port) == (200, {"status": "ok", "checks": {"database": "ok", "cache": "ok (local memory)"}})

        # when: rotation (single user) writes the new password to the secret, then to the role
        client.put_secret_value(SecretId=arn, SecretString=json.dumps({"username": ROLE, "password": "second"}))
        cluster(f"ALTER ROLE {ROLE} PASSWORD 'second'")
        drop_sessions(cluster, ROLE)

        # then: the next login is refused, the secret read again, and the request served
        status, body = ready(port)
        assert (status, body["checks"]["database"]) == (200, "ok")
        assert logged_in_as(cluster) == {ROLE}


def test_running_server_follows_multi_user_rotation_to_the_clone_user(cluster, secrets_server, database_secret):
    client, arn = database_secret
    with gunicorn(cluster=cluster, secrets_server=secrets_server, secret_arn=arn) as port:
        assert ready(port)[0] == 200

        # when: the multi-user function switches the secret to the clone user; the next rotation changes the
        # password of the user it switched away from
        cluster(f"CREATE ROLE {ROLE}_clone LOGIN PASSWORD 'clone-password' IN ROLE {ROLE}")
        secret = {"username": f"{ROLE}_clone", "password": "clone-password"}
        client.put_secret_value(SecretId=arn, SecretString=json.dumps(secret))
        cluster(f"ALTER ROLE {ROLE} PASSWORD 'third'")
        drop_sessions(cluster, ROLE)

        assert ready(port)[0] == 200
        assert logged_in_as(cluster) == {f"{ROLE}_clone"}


def test_refused_login_with_an_unchanged_secret_fails_the_request_and_changes_nothing(
    cluster, secrets_server, database_secret
):
    client, arn = database_secret
    with gunicorn(cluster=cluster, secrets_server=secrets_server, secret_arn=arn) as port:
        assert ready(port)[0] == 200
        cluster(f"ALTER ROLE {ROLE} PASSWORD 'not-in-the-secret'")
        drop_sessions(cluster, ROLE)

        status, body = ready(port)

        assert (status, body["checks"]["database"]) == (503, "unavailable: OperationalError")
        assert logged_in_as(cluster) == set()
        # The app wrote nothing back: the secret is as it was.
        stored = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
        assert stored == {"username": ROLE, "password": "first-password"}

        # and once the secret holds the password, the server recovers by itself (reads are at most one per 5 s)
        client.put_secret_value(
            SecretId=arn, SecretString=json.dumps({"username": ROLE, "password": "not-in-the-secret"})
        )
        deadline = time.monotonic() + 60
        while ready(port)[0] != 200:
            assert time.monotonic() < deadline, "the server did not pick up the corrected secret within 60 s"
            time.sleep(1)
