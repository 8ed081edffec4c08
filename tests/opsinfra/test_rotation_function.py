"""The rotation function's four steps against a PostgreSQL that checks passwords and Secrets Manager on moto's server.

The cluster and the moto server are tests/shop/test_secret_rotation.py's (a PostgreSQL 15 of the module's own, with
scram-sha-256; the shared development server trusts every login). Secrets Manager's part of a rotation, as RotateSecret
does it before it invokes the function, is done in moto's backend (moto's RotateSecret would invoke the function
through its Lambda, which runs functions in Docker): the new version id is registered with AWSPENDING and no value,
and rotation is turned on. The steps then run as Lambda runs them, one call per step.
"""

import io
import json
import subprocess
import sys
import time
import uuid
import zipfile

import boto3
import pg8000.native
import psycopg
import pytest

from opsinfra.rotation import bundle
from opsinfra.rotation import function as rotation
from tests.shop.test_secret_rotation import cluster, secrets_server  # noqa: F401 - fixtures

ACCOUNT = "123456789012"
REGION = "us-east-1"
MASTER = "rt_admin"
USER = "rt_app"
CLONE = "rt_app_clone"
FIRST_PASSWORD = "first-password"


def login(port: int, username: str, password: str) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=username, password=password, dbname="postgres",
                             connect_timeout=5):  # fmt: skip
            return True
    except psycopg.OperationalError as error:
        assert "password authentication failed" in str(error), error
        return False


def stages(client, arn: str) -> dict[str, list[str]]:
    return {version: sorted(labels) for version, labels in
            client.describe_secret(SecretId=arn)["VersionIdsToStages"].items()}  # fmt: skip


def value(client, arn: str, **version) -> dict:
    """The version's value; AWSCURRENT's by default (moto answers a request naming no stage with the version the
    secret was created or last put with, not the one AWSCURRENT has moved to)."""
    version = version or {"VersionStage": "AWSCURRENT"}
    return json.loads(client.get_secret_value(SecretId=arn, **version)["SecretString"])


def version_with(client, arn: str, label: str) -> str:
    (version,) = [version for version, labels in stages(client, arn).items() if label in labels]
    return version


def rotation_start(arn: str) -> str:
    """What RotateSecret does before it invokes the function: a new version id with AWSPENDING, no value yet."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[ACCOUNT][REGION].secrets[arn]
    token = str(uuid.uuid4())
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.rotation_requested = secret.rotation_enabled = True
    secret.rotation_lambda_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:shop-app-test-db-rotation"
    return token


def step(client, arn: str, token: str, name: str) -> None:
    rotation.rotate(client, arn=arn, token=token, step=name)


@pytest.fixture
def app_secret(cluster, secrets_server, monkeypatch):  # noqa: F811 - the imported fixtures
    """rt_app with its first password, a master user like RDS's (CREATEROLE, not a superuser), and their secrets."""
    for name, setting in {"AWS_ENDPOINT_URL": secrets_server, "AWS_ACCESS_KEY_ID": "testing",
                          "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                          "DB_TLS": "off"}.items():  # fmt: skip
        monkeypatch.setenv(name, setting)
    for role in (CLONE, USER, MASTER):
        cluster(f"DROP ROLE IF EXISTS {role}")
    cluster(f"CREATE ROLE {MASTER} LOGIN CREATEROLE PASSWORD 'master-password'")
    cluster(f"CREATE ROLE {USER} LOGIN PASSWORD '{FIRST_PASSWORD}'")
    cluster(f"ALTER ROLE {USER} SET statement_timeout = '5s'")
    cluster(f"ALTER ROLE {USER} SET timezone = 'UTC'")
    client = boto3.client("secretsmanager")
    suffix = time.monotonic_ns()
    master = client.create_secret(
        Name=f"rt-master-{suffix}", SecretString=json.dumps({"username": MASTER, "password": "master-password"})
    )
    shape = {"username": USER, "password": FIRST_PASSWORD, "engine": "postgres", "host": "127.0.0.1",
             "port": cluster.port, "dbname": "postgres", "masterarn": master["ARN"]}  # fmt: skip
    secret = client.create_secret(Name=f"rt-app-{suffix}", SecretString=json.dumps(shape))
    return client, secret["ARN"], cluster


def test_each_rotation_alternates_the_user_and_the_credentials_in_use_keep_working(app_secret):
    client, arn, sql = app_secret
    first_version = version_with(client, arn, "AWSCURRENT")

    token = rotation_start(arn)
    step(client, arn, token, "createSecret")
    pending = value(client, arn, VersionId=token, VersionStage="AWSPENDING")
    assert pending["username"] == CLONE and pending["password"] != FIRST_PASSWORD
    assert {key: pending[key] for key in ("host", "port", "dbname", "masterarn")} == {
        key: value(client, arn)[key] for key in ("host", "port", "dbname", "masterarn")
    }
    assert version_with(client, arn, "AWSCURRENT") == first_version
    assert not sql("SELECT 1 FROM pg_roles WHERE rolname = %s", CLONE)

    step(client, arn, token, "setSecret")
    assert login(sql.port, CLONE, pending["password"])
    assert login(sql.port, USER, FIRST_PASSWORD), "the current credentials stop working before finishSecret"
    # The clone holds the base user's privileges through membership, and its own copy of the role's settings.
    assert sql("SELECT pg_has_role(%s, %s, 'MEMBER')", CLONE, USER) == [(True,)]
    settings = "SELECT setconfig FROM pg_db_role_setting JOIN pg_roles ON pg_roles.oid = setrole WHERE rolname = %s"
    assert (
        sorted(sql(settings, CLONE)[0][0])
        == sorted(sql(settings, USER)[0][0])
        == ["TimeZone=UTC", "statement_timeout=5s"]
    )

    step(client, arn, token, "testSecret")
    assert version_with(client, arn, "AWSCURRENT") == first_version

    step(client, arn, token, "finishSecret")
    assert stages(client, arn) == {first_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert value(client, arn) == pending
    # Clients that have not re-read the secret yet still log in: multi-user changes the other user only.
    assert login(sql.port, USER, FIRST_PASSWORD)

    second = rotation_start(arn)
    for name in rotation.STEPS:
        step(client, arn, second, name)
    back = value(client, arn)
    assert back["username"] == USER and back["password"] not in {FIRST_PASSWORD, pending["password"]}
    assert stages(client, arn)[second] == ["AWSCURRENT"] and stages(client, arn)[token] == ["AWSPREVIOUS"]
    assert login(sql.port, USER, back["password"]) and not login(sql.port, USER, FIRST_PASSWORD)
    assert login(sql.port, CLONE, pending["password"]), "the previous credentials stop working at the switch"


def test_every_step_run_again_changes_nothing(app_secret):
    client, arn, sql = app_secret
    token = rotation_start(arn)

    step(client, arn, token, "createSecret")
    pending = value(client, arn, VersionId=token, VersionStage="AWSPENDING")
    after_create = stages(client, arn)
    step(client, arn, token, "createSecret")
    assert value(client, arn, VersionId=token, VersionStage="AWSPENDING") == pending
    assert stages(client, arn) == after_create

    step(client, arn, token, "setSecret")
    # scram-sha-256 salts each password anew: an unchanged verifier means no second ALTER ROLE.
    verifier = sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", CLONE)
    step(client, arn, token, "setSecret")
    assert sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", CLONE) == verifier

    step(client, arn, token, "testSecret")
    step(client, arn, token, "testSecret")
    step(client, arn, token, "finishSecret")
    finished = stages(client, arn)
    step(client, arn, token, "finishSecret")
    assert stages(client, arn) == finished and finished[token] == ["AWSCURRENT"]
    assert value(client, arn) == pending


def test_a_failed_test_step_leaves_the_current_version_and_its_login_alone(app_secret):
    client, arn, sql = app_secret
    current = version_with(client, arn, "AWSCURRENT")
    token = rotation_start(arn)
    step(client, arn, token, "createSecret")

    # setSecret never ran (or failed): the pending password is not the database's.
    with pytest.raises(pg8000.native.DatabaseError, match="password authentication failed"):
        step(client, arn, token, "testSecret")

    assert version_with(client, arn, "AWSCURRENT") == current
    assert value(client, arn)["username"] == USER
    assert login(sql.port, USER, FIRST_PASSWORD)
    # Secrets Manager retries the rotation from the step that failed: it completes.
    for name in ("setSecret", "testSecret", "finishSecret"):
        step(client, arn, token, name)
    assert version_with(client, arn, "AWSCURRENT") == token


def test_a_version_that_is_not_pending_is_refused_and_nothing_is_written(app_secret):
    client, arn, _ = app_secret
    before = stages(client, arn)
    rotation_start(arn)
    before_steps = stages(client, arn)

    with pytest.raises(rotation.RotationError, match="has no stage for rotation"):
        step(client, arn, str(uuid.uuid4()), "createSecret")
    with pytest.raises(rotation.RotationError, match="Unknown step"):
        step(client, arn, version_with(client, arn, "AWSPENDING"), "dropSecret")

    assert stages(client, arn) == before_steps and len(before_steps) == len(before) + 1


def test_the_lambda_bundle_is_reproducible_and_rotates_with_only_its_own_packages(app_secret, tmp_path):
    """The zip deploy_stack uploads, unpacked as Lambda does (/var/task first on sys.path), runs a whole rotation in
    a process of its own through lambda_handler, with pg8000 and what it imports taken from the zip."""
    client, arn, sql = app_secret
    built = bundle.rotation_bundle()
    bundle.rotation_bundle.cache_clear()
    assert bundle.rotation_bundle() == built
    assert built.key == f"lambda/db-rotation/{built.sha256}.zip"
    zipfile.ZipFile(io.BytesIO(built.data)).extractall(tmp_path)
    token = rotation_start(arn)
    script = f"""
import json, sys
sys.path.insert(0, {str(tmp_path)!r})
import rotation, pg8000, scramp, asn1crypto, dateutil
for module in (rotation, pg8000, scramp, asn1crypto, dateutil):
    assert module.__file__.startswith({str(tmp_path)!r}), module.__file__
for step in {list(rotation.STEPS)!r}:
    rotation.lambda_handler({{"SecretId": {arn!r}, "ClientRequestToken": {token!r}, "Step": step}}, None)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]
    assert version_with(client, arn, "AWSCURRENT") == token
    assert login(sql.port, CLONE, value(client, arn)["password"])
