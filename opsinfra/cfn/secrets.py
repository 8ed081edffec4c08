"""Generated secrets: the application's own (Django key, metrics token, Redis AUTH token, origin-verify header)."""

from dataclasses import dataclass

from troposphere import Ref, Sub, Template, secretsmanager

from opsinfra.cfn.common import SECRETS_KEY_REASON, checkov_skip, stateful

# RDS rejects '/', '@', '"' and space in a master password; ElastiCache rejects the same in an AUTH token.
RDS_REJECTED = '/@" '
ELASTICACHE_REJECTED = '/@" '
# The passwords also end up quoted in SQL (CREATE ROLE ... PASSWORD '...') and in shell variables.
SQL_UNSAFE = "'\\`$"


@dataclass(frozen=True)
class Secrets:
    app: Ref
    cache_auth_token: Ref
    origin_verify: Ref


def resolve(secret: Ref, key: str | None = None) -> Sub:
    """A dynamic reference: CloudFormation reads the value at deploy time, and never shows it."""
    suffix = f":SecretString:{key}" if key else ":SecretString"
    return Sub(f"{{{{resolve:secretsmanager:${{{secret.data['Ref']}}}{suffix}}}}}")


def generated_token(t: Template, title: str, *, description: str, length: int = 64) -> Ref:
    """A random alphanumeric token: safe in a header, a URL and a Redis AUTH, whatever the service rejects."""
    secret = secretsmanager.Secret(
        title,
        Description=description,
        GenerateSecretString=secretsmanager.GenerateSecretString(
            PasswordLength=length,
            ExcludePunctuation=True,
            ExcludeCharacters=ELASTICACHE_REJECTED,
        ),
    )
    # Regenerated with a new stack: none of these values protects stored data.
    stateful(secret, "Delete")
    return Ref(t.add_resource(checkov_skip(secret, CKV_AWS_149=SECRETS_KEY_REASON)))


def add_secrets(t: Template) -> Secrets:
    cache_auth_token = generated_token(t, "SecretsCacheAuthToken", description="ElastiCache Redis AUTH token")
    origin_verify = generated_token(
        t, "SecretsOriginVerify", description="Header value CloudFront sends and the ALB requires", length=48
    )
    metrics_token = generated_token(t, "SecretsMetricsToken", description="Bearer token of /api/metrics", length=48)
    # CloudFormation generates one key per secret; the other values come from their own secrets by reference.
    template = Sub(
        '{"metrics_token":"${Metrics}","redis_auth_token":"${Redis}","origin_verify":"${Origin}"}',
        Metrics=resolve(metrics_token),
        Redis=resolve(cache_auth_token),
        Origin=resolve(origin_verify),
    )
    app = t.add_resource(
        secretsmanager.Secret(
            "SecretsApp",
            Description="The application's secrets, read once at start with boto3 (APP_SECRET_ARN)",
            GenerateSecretString=secretsmanager.GenerateSecretString(
                SecretStringTemplate=template,
                GenerateStringKey="django_secret_key",
                PasswordLength=64,
                ExcludePunctuation=True,
            ),
        )
    )
    checkov_skip(app, CKV_AWS_149=SECRETS_KEY_REASON)
    # Regenerated with a new stack: none of these values protects stored data.
    stateful(app, "Delete")
    return Secrets(app=Ref(app), cache_auth_token=cache_auth_token, origin_verify=origin_verify)
