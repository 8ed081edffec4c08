"""opsinfra.aws: clients built in one place, boto3's own chain for credentials, profile and endpoint, and one
clear sentence when something is missing."""

import pytest

from opsinfra import aws
from opsinfra.errors import AwsConfigError


@pytest.fixture
def bare_env(monkeypatch, tmp_path, settings):
    """No credentials, region, profile or endpoint from this machine."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    # The instance metadata service is never asked: it is not on 127.0.0.1.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.OPSINFRA = {**settings.OPSINFRA, "AWS_REGION": ""}
    aws.reset()
    yield monkeypatch
    aws.reset()


def test_client_without_credentials_is_one_sentence(bare_env):
    bare_env.setenv("AWS_DEFAULT_REGION", "us-east-1")

    with pytest.raises(AwsConfigError, match=r"^No AWS credentials found: set AWS_PROFILE"):
        aws.client("cloudformation")


def test_client_without_region_is_one_sentence(bare_env):
    bare_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    bare_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    with pytest.raises(AwsConfigError, match=r"^No AWS region given: pass --region, or set AWS_REGION"):
        aws.client("cloudformation")


def test_client_with_unknown_profile_is_one_sentence(bare_env):
    bare_env.setenv("AWS_PROFILE", "nope")

    with pytest.raises(AwsConfigError, match=r"^AWS profile 'nope' is not in your AWS config files\.$"):
        aws.client("s3", region="us-east-1")


def test_client_reads_profile_region_and_endpoint_as_boto3_does(bare_env, tmp_path):
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[ops]\naws_access_key_id = a\naws_secret_access_key = b\n")
    bare_env.setenv("AWS_PROFILE", "ops")
    bare_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8419")

    client = aws.client("cloudformation")

    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:8419"
    assert client.meta.config.retries["mode"] == "adaptive"
    assert client.meta.config.retries["total_max_attempts"] == aws.MAX_ATTEMPTS


def test_client_region_from_aws_region_setting_and_explicit_region_wins(bare_env, settings):
    bare_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    bare_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.OPSINFRA = {**settings.OPSINFRA, "AWS_REGION": "eu-central-1"}

    assert aws.client("autoscaling").meta.region_name == "eu-central-1"
    assert aws.client("cloudformation", region="ap-southeast-2").meta.region_name == "ap-southeast-2"


def test_command_without_credentials_exits_with_the_sentence(bare_env):
    from django.core.management.base import CommandError

    from tests.opsinfra.conftest import run

    bare_env.setenv("AWS_DEFAULT_REGION", "us-east-1")

    with pytest.raises(CommandError, match=r"^No AWS credentials found"):
        run("purge_cdn", "--distribution-id", "E123")
