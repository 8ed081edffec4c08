"""boto3 sessions and clients, built in one place.

boto3's own chain decides credentials, the profile (AWS_PROFILE) and the endpoint (AWS_ENDPOINT_URL, which is how the
tests and an operator's offline try point every client at a local emulator). This module adds the retry policy,
AWS_REGION as the SDKs and the AWS CLI v2 read it, and one clear sentence instead of a traceback when something is
missing.
"""

from functools import cache

from django.conf import settings

from opsinfra.errors import AwsCallError, AwsConfigError

# Waiting on CloudFormation and CloudFront means many Describe calls: "adaptive" also throttles the client itself
# when AWS starts answering ThrottlingException, which keeps a long event stream from burning its retries.
RETRY_MODE = "adaptive"
MAX_ATTEMPTS = 8


def _boto3():
    import boto3  # imported here: app code paths never load the ops toolkit's AWS side

    return boto3


@cache
def _session(region: str | None):
    from botocore.exceptions import ProfileNotFound

    try:
        session = _boto3().session.Session(region_name=region or settings.OPSINFRA.get("AWS_REGION") or None)
    except ProfileNotFound as exc:
        raise AwsConfigError(f"AWS profile {exc.kwargs.get('profile')!r} is not in your AWS config files.") from None
    if session.get_credentials() is None:
        raise AwsConfigError(
            "No AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
            "or run `aws configure`."
        )
    if not session.region_name:
        raise AwsConfigError("No AWS region given: pass --region, or set AWS_REGION or a region in your AWS profile.")
    return session


def session_region(region: str | None = None) -> str:
    """The region clients built for `region` talk to (the explicit one, else the environment's or profile's)."""
    return _session(region).region_name


def client(service: str, *, region: str | None = None):
    """A boto3 client with the toolkit's retry policy; raises AwsConfigError when credentials or region are missing."""
    from botocore.config import Config

    config = Config(retries={"mode": RETRY_MODE, "total_max_attempts": MAX_ATTEMPTS}, user_agent_appid="shop-opsinfra")
    return _session(region).client(service, config=config)


def reset() -> None:
    """Forget cached sessions (after the environment changed, e.g. between tests)."""
    _session.cache_clear()


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def error_message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Message", "") or str(exc)


def call_failed(action: str, exc: Exception) -> AwsCallError:
    """One sentence for a refused AWS call: what we tried and what AWS said."""
    from botocore.exceptions import NoCredentialsError, NoRegionError
    from botocore.parsers import ResponseParserError

    if isinstance(exc, NoCredentialsError):
        return AwsConfigError("No AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.")
    if isinstance(exc, NoRegionError):
        return AwsConfigError("No AWS region given: pass --region, or set AWS_REGION.")
    if isinstance(exc, ResponseParserError):
        return AwsCallError(f"Could not {action}: the endpoint's answer is not an AWS response (an internal error?).")
    reason = error_message(exc).rstrip(".")
    return AwsCallError(f"Could not {action}: {reason}.")


def aws_errors():
    """The exception classes a boto3 call raises for a refused or failed call."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    # An endpoint answering garbage (a broken emulator, a proxy's error page) raises ResponseParserError.
    return (BotoCoreError, ClientError, ResponseParserError)
