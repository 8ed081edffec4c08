"""Secrets Manager reads done once at start, so no secret sits in an instance's environment file; the database
secret again when the database refuses its password (rotation changed it)."""

import json
import threading
import time
from functools import cache

from django.core.exceptions import ImproperlyConfigured

APP_SECRET_KEYS = ("django_secret_key", "metrics_token", "redis_auth_token", "origin_verify")


@cache
def read_json_secret(arn: str) -> dict:
    import boto3  # imported here: local runs without AWS never load it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        raw = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        raise ImproperlyConfigured(f"cannot read secret {arn}: {exc}") from exc
    try:
        value = json.loads(raw)
    except ValueError:
        raise ImproperlyConfigured(f"secret {arn} is not a JSON object") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"secret {arn} is not a JSON object")
    return value


def database_credentials(arn: str) -> tuple[str, str]:
    """User name and password only: host and port stay those of DATABASE_URL (the proxy)."""
    secret = read_json_secret(arn)
    try:
        return secret["username"], secret["password"]
    except KeyError as exc:
        raise ImproperlyConfigured(f"secret {arn} has no {exc.args[0]!r}") from None


def app_secrets(arn: str) -> dict[str, str]:
    secret = read_json_secret(arn)
    return {key: str(secret.get(key, "")) for key in APP_SECRET_KEYS}


# SQLSTATE of a refused login: invalid_password, invalid_authorization_specification.
AUTHENTICATION_FAILED = {"28P01", "28000"}
# While logins keep failing, each process reads the secret at most once in this many seconds.
REREAD_INTERVAL = 5.0
_reread_lock = threading.Lock()
_last_reread = [float("-inf")]


def _authentication_failed(error: Exception) -> bool:
    state = getattr(error, "sqlstate", None) or getattr(getattr(error, "diag", None), "sqlstate", None)
    # libpq reports a refused login at connect time, often without a SQLSTATE; its message is stable.
    return state in AUTHENTICATION_FAILED or "password authentication failed" in str(error)


def database_credentials_reread(settings_dict: dict, refused: dict, error: Exception) -> bool:
    """After the database refused a login with the `refused` connection parameters: read the database secret again
    (DB_SECRET_ARN) and, when it names other credentials, put them in settings_dict and return True, so the caller
    connects once more.

    Rotation writes the new password (multi-user: the other user) to the secret, then the old one stops working;
    a process that read the secret at start holds the old one. Every connection of the process shares settings_dict.
    """
    from django.conf import settings

    arn = getattr(settings, "DB_SECRET_ARN", "")
    if not arn or not _authentication_failed(error):
        return False
    with _reread_lock:
        if time.monotonic() - _last_reread[0] >= REREAD_INTERVAL:
            _last_reread[0] = time.monotonic()
            read_json_secret.cache_clear()
        try:
            user, password = database_credentials(arn)
        except ImproperlyConfigured:
            return False
        if (user, password) == (refused.get("user"), refused.get("password")):
            return False
        settings_dict["USER"], settings_dict["PASSWORD"] = user, password
        return True
