"""Secrets Manager reads done once at start, so no secret sits in an instance's environment file."""

import json
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
