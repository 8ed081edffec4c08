"""The app database secret's rotation function: PostgreSQL, alternating users (Secrets Manager's four steps).

Lambda runs this file as `rotation.py` (opsinfra/rotation/bundle.py zips it with pg8000); it imports nothing of the
project. The secret names one of two roles, `shop_app` and `shop_app_clone`; each rotation gives the role it does
not name a new password and then switches the secret to it, so the credentials every client holds keep working
until the next rotation, a month later. The RDS master secret (the secret's `masterarn`) sets the password.

- createSecret: the pending version (the other user, a new password) unless the token already has one.
- setSecret: that user's password in PostgreSQL, as the master user (creates the user when missing, a member of the
  base user, which holds the privileges); nothing happens when the pending credentials already log in.
- testSecret: a login with the pending credentials and a query.
- finishSecret: AWSCURRENT moves to the token's version (Secrets Manager marks the old one AWSPREVIOUS) and the
  token's AWSPENDING label goes.

Every step may run again (Secrets Manager retries a failed step) and changes nothing the second time.
Environment: EXCLUDE_CHARACTERS (password characters never generated), DB_TLS (`verify`, the default: TLS with the
certificate checked against DB_CA_FILE or the system store; `off` only for a local test server).
"""

import json
import logging
import os
import ssl

import boto3
import pg8000.native

logger = logging.getLogger()
logger.setLevel(logging.INFO)

CLONE_SUFFIX = "_clone"
PASSWORD_LENGTH = 32
CONNECT_TIMEOUT = 5
DEFAULT_EXCLUDED = "/@\"' \\`$"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationError(Exception):
    """A step cannot go on; Secrets Manager records the failure and retries the rotation later."""


def lambda_handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    client = boto3.client("secretsmanager")
    rotate(client, arn=arn, token=token, step=step)


def rotate(client, *, arn: str, token: str, step: str) -> None:
    if step not in STEPS:
        raise RotationError(f"Unknown step {step!r}")
    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"Rotation is not enabled on {arn}")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError(f"Version {token} of {arn} has no stage for rotation")
    if "AWSCURRENT" in stages[token]:
        logger.info("%s: version %s is already AWSCURRENT", step, token)
        return
    if "AWSPENDING" not in stages[token]:
        raise RotationError(f"Version {token} of {arn} is not AWSPENDING")
    {"createSecret": create_secret, "setSecret": set_secret, "testSecret": test_secret,
     "finishSecret": finish_secret}[step](client, arn=arn, token=token)  # fmt: skip


def create_secret(client, *, arn: str, token: str) -> None:
    current = secret_dict(client, arn, stage="AWSCURRENT")
    try:
        secret_dict(client, arn, stage="AWSPENDING", version=token)
        logger.info("createSecret: version %s exists", token)
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    excluded = os.environ.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDED)
    password = client.get_random_password(PasswordLength=PASSWORD_LENGTH, ExcludeCharacters=excluded)["RandomPassword"]
    pending = {**current, "username": other_user(current["username"]), "password": password}
    client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )
    logger.info("createSecret: version %s names %s", token, pending["username"])


def set_secret(client, *, arn: str, token: str) -> None:
    current = secret_dict(client, arn, stage="AWSCURRENT")
    pending = secret_dict(client, arn, stage="AWSPENDING", version=token)
    if pending["username"] != other_user(current["username"]):
        raise RotationError(f"The pending user {pending['username']} is not the other user of {current['username']}")
    if (pending["host"], pending.get("port")) != (current["host"], current.get("port")):
        raise RotationError("The pending version names another database server than the current one")
    if _can_log_in(pending):
        logger.info("setSecret: %s already logs in with the pending password", pending["username"])
        return
    master = {**current, **_master_login(client, current["masterarn"])}
    base = base_user(pending["username"])
    user = pending["username"]
    connection = connect(master)
    try:
        exists = connection.run("SELECT 1 FROM pg_roles WHERE rolname = :name", name=user)
        if not exists:
            _create_like(connection, user=user, base=base)
        connection.run(f"ALTER ROLE {pg8000.native.identifier(user)} WITH LOGIN PASSWORD "
                       f"{pg8000.native.literal(pending['password'])}")  # fmt: skip
    finally:
        connection.close()
    logger.info("setSecret: %s has the pending password", user)


def _create_like(connection, *, user: str, base: str) -> None:
    """The user as shop-db-role makes it: a member of the base user, which holds the privileges, with the base user's
    settings (timezone, statement_timeout: role settings are not inherited through membership)."""
    name = pg8000.native.identifier(user)
    connection.run(f"CREATE ROLE {name} LOGIN IN ROLE {pg8000.native.identifier(base)}")
    rows = connection.run(
        "SELECT unnest(setconfig) FROM pg_db_role_setting JOIN pg_roles ON pg_roles.oid = setrole "
        "WHERE rolname = :base AND setdatabase = 0",
        base=base,
    )
    for (setting,) in rows:
        key, value = setting.split("=", 1)
        connection.run(f"ALTER ROLE {name} SET {pg8000.native.identifier(key)} = {pg8000.native.literal(value)}")


def test_secret(client, *, arn: str, token: str) -> None:
    pending = secret_dict(client, arn, stage="AWSPENDING", version=token)
    connection = connect(pending)
    try:
        connection.run("SELECT now()")
    finally:
        connection.close()
    logger.info("testSecret: %s logs in", pending["username"])


def finish_secret(client, *, arn: str, token: str) -> None:
    stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next(version for version, labels in stages.items() if "AWSCURRENT" in labels)
    if current != token:
        client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
    if "AWSPENDING" in stages.get(token, []):
        client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    logger.info("finishSecret: version %s is AWSCURRENT", token)


def other_user(username: str) -> str:
    """The user a rotation switches to: the clone of the base user, or the base user of the clone."""
    return username.removesuffix(CLONE_SUFFIX) if username.endswith(CLONE_SUFFIX) else username + CLONE_SUFFIX


def base_user(username: str) -> str:
    return username.removesuffix(CLONE_SUFFIX)


def secret_dict(client, arn: str, *, stage: str, version: str | None = None) -> dict:
    request = {"SecretId": arn, "VersionStage": stage}
    if version:
        request["VersionId"] = version
    value = json.loads(client.get_secret_value(**request)["SecretString"])
    missing = [key for key in ("engine", "host", "username", "password", "masterarn") if key not in value]
    if missing:
        raise RotationError(f"The {stage} version of the secret lacks {', '.join(missing)}")
    if value["engine"] != "postgres":
        raise RotationError(f"The secret's engine is {value['engine']}, not postgres")
    return value


def _master_login(client, master_arn: str) -> dict:
    """The RDS-managed master secret holds the username and password only; the server is the app secret's."""
    value = json.loads(client.get_secret_value(SecretId=master_arn, VersionStage="AWSCURRENT")["SecretString"])
    return {"username": value["username"], "password": value["password"]}


def connect(secret: dict) -> pg8000.native.Connection:
    return pg8000.native.Connection(
        user=secret["username"],
        password=secret["password"],
        host=secret["host"],
        port=int(secret.get("port", 5432)),
        database=secret.get("dbname", "postgres"),
        ssl_context=_tls(),
        timeout=CONNECT_TIMEOUT,
        application_name="shop-secret-rotation",
    )


def _can_log_in(secret: dict) -> bool:
    try:
        connect(secret).close()
    except pg8000.native.DatabaseError:
        return False
    return True


def _tls():
    if os.environ.get("DB_TLS", "verify") == "off":
        return None
    return ssl.create_default_context(cafile=os.environ.get("DB_CA_FILE") or None)
