"""deploy_app: the bundle and the release parameter on moto; migrations (SSM Run Command) and the instance refresh
through Stubber (moto 5.2.5 has no instance refresh and runs no commands); the real bundle, built once per session,
installs offline into a fresh virtualenv where `manage.py check --deploy` passes."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY
from django.core.management.base import CommandError

from opsinfra.services import bundle
from tests.opsinfra.conftest import run

ASG = "shop-app-staging-asg"
COMMAND_ID = "0b6a2c4e-1f7d-4c1a-9d0e-4f2b8a6c3e11"


@pytest.fixture(scope="session")
def release_bundle(tmp_path_factory) -> Path:
    """The real thing: project files and a Linux wheel of every pin, downloaded once (pip's cache helps)."""
    return bundle.bundle_build(version="session-test", destination=tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def bucket(aws_env, small_stacks, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    return json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())["ArtifactsBucketName"]


@pytest.fixture
def built(monkeypatch, release_bundle):
    """deploy_app builds by copying the session's bundle; the list records each build."""
    builds = []

    def build(*, version, destination):
        builds.append(version)
        destination.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(release_bundle, destination / f"{version}.tar.gz"))

    monkeypatch.setattr(bundle, "bundle_build", build)
    return builds


def release_parameter() -> dict:
    return json.loads(boto3.client("ssm").get_parameter(Name="/shop/staging/release")["Parameter"]["Value"])


def bundle_keys(bucket: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="releases/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_bundle_holds_project_and_a_wheel_of_every_pin(release_bundle, settings):
    with tarfile.open(release_bundle) as archive:
        names = archive.getnames()
        release = json.loads(archive.extractfile("RELEASE.json").read())
    pins = bundle.pinned_requirements(Path(settings.BASE_DIR) / "requirements/base.txt")
    wheels = [name for name in names if name.startswith("wheels/")]
    assert len(wheels) == len(pins)
    assert {"manage.py", "shop/settings.py", "requirements/base.txt"} <= set(names)
    assert not [name for name in names if name.startswith("tests/")]
    assert release["version"] == "session-test" and release["python"] == "3.11"


def test_bundle_installs_offline_and_passes_check_deploy(release_bundle, tmp_path):
    with tarfile.open(release_bundle) as archive:
        archive.extractall(tmp_path / "release", filter="data")
    release = tmp_path / "release"
    # Nothing from this machine's pip configuration (its extra indexes and find-links) may help the install.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "DJANGO_", "DATABASE_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, env=env)
    python = tmp_path / "venv" / "bin" / "python"
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            release / "wheels",
            "-r",
            release / "requirements/base.txt",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert install.returncode == 0, install.stderr

    env.update({"DJANGO_SECRET_KEY": "x" * 60 + "-offline-check-not-a-secret", "DJANGO_DEBUG": "0"})
    check = subprocess.run(
        [python, "manage.py", "check", "--deploy"], cwd=release, capture_output=True, text=True, env=env
    )

    # Warnings (HSTS, SSL redirect: TLS ends at CloudFront and the ALB) are printed but do not fail the check.
    assert check.returncode == 0, check.stderr
    assert "System check identified" in check.stdout + check.stderr


def test_deploy_app_first_release_uploads_bundle_and_writes_parameter(bucket, built):
    out, _ = run("deploy_app", "--release", "v1.0.0", "--no-refresh")

    assert built == ["v1.0.0"]
    assert bundle_keys(bucket) == ["releases/v1.0.0.tar.gz"]
    assert release_parameter() == {"version": "v1.0.0", "bundle": f"s3://{bucket}/releases/v1.0.0.tar.gz"}
    assert "No app stack yet: nothing to migrate." in out
    assert "Release parameter /shop/staging/release now names v1.0.0." in out


def test_deploy_app_earlier_version_rolls_back_without_rebuilding(bucket, built):
    run("deploy_app", "--release", "v1.0.0", "--no-refresh")
    run("deploy_app", "--release", "v1.1.0", "--no-refresh")

    out, _ = run("deploy_app", "--release", "v1.0.0", "--no-refresh")

    assert built == ["v1.0.0", "v1.1.0"]
    assert f"Bundle s3://{bucket}/releases/v1.0.0.tar.gz already exists: using it, not rebuilding." in out
    assert "now names v1.0.0 (was v1.1.0)" in out
    assert release_parameter()["version"] == "v1.0.0"


def test_deploy_app_without_bootstrap_names_the_command(aws_env, small_stacks, built):
    with pytest.raises(CommandError, match=r"create it first with `manage\.py deploy_stack --stack bootstrap"):
        run("deploy_app", "--release", "v1")

    assert built == []


def test_deploy_app_refuses_a_version_that_is_not_a_plain_name(bucket, built):
    with pytest.raises(CommandError, match="may hold only letters, digits"):
        run("deploy_app", "--release", "../v1")

    assert bundle_keys(bucket) == []


# --- migrations and the instance refresh, through Stubber ------------------------------------------------------


@pytest.fixture
def app_outputs(bucket, outputs_dir):
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps({"AutoScalingGroupName": ASG}))
    boto3.client("s3").put_object(Bucket=bucket, Key="releases/v2.tar.gz", Body=b"bundle")
    return bucket


def group_answer():
    instance = {
        "InstanceId": "i-0bbb",
        "AvailabilityZone": "us-east-1a",
        "LifecycleState": "InService",
        "HealthStatus": "Healthy",
        "ProtectedFromScaleIn": False,
    }
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": ASG,
                "MinSize": 2,
                "MaxSize": 20,
                "DesiredCapacity": 2,
                "DefaultCooldown": 300,
                "AvailabilityZones": ["us-east-1a"],
                "HealthCheckType": "ELB",
                "CreatedTime": datetime(2026, 11, 1, tzinfo=UTC),
                "Instances": [{**instance, "InstanceId": "i-0ccc"}, instance],
            }
        ]
    }


def stub_migration(ssm, autoscaling, status="Success", output=""):
    autoscaling.add_response("describe_auto_scaling_groups", group_answer(), {"AutoScalingGroupNames": [ASG]})
    ssm.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {
            "InstanceIds": ["i-0bbb"],
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {"commands": ANY},
            "Comment": "shop migrate v2",
            "TimeoutSeconds": 900,
        },
    )
    ssm.add_client_error("get_command_invocation", "InvocationDoesNotExist", "not yet")
    ssm.add_response("get_command_invocation", {"Status": "InProgress"})
    ssm.add_response(
        "get_command_invocation",
        {"Status": status, "StandardErrorContent": output},
        {"CommandId": COMMAND_ID, "InstanceId": "i-0bbb"},
    )


def stub_document_migration(ssm, *, instance_id: str) -> None:
    """The stack's migration document run for release v2 on `instance_id`, and its success."""
    ssm.add_response(
        "describe_document",
        {"Document": {"Name": "shop-app-staging-migrate", "Parameters": [{"Name": "Version", "Type": "String"}]}},
        {"Name": "shop-app-staging-migrate"},
    )
    ssm.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {
            "InstanceIds": [instance_id],
            "DocumentName": "shop-app-staging-migrate",
            "Parameters": {"Version": ["v2"]},
            "Comment": "shop migrate v2",
            "TimeoutSeconds": 900,
        },
    )
    ssm.add_response("get_command_invocation", {"Status": "Success"})


def stub_parameter_write(ssm, bucket, previous="v1"):
    old = json.dumps({"version": previous, "bundle": f"s3://{bucket}/releases/{previous}.tar.gz"})
    ssm.add_response("get_parameter", {"Parameter": {"Name": "/shop/staging/release", "Value": old}})
    new = json.dumps({"bundle": f"s3://{bucket}/releases/v2.tar.gz", "version": "v2"}, sort_keys=True)
    ssm.add_response(
        "put_parameter",
        {"Version": 2},
        {"Name": "/shop/staging/release", "Value": new, "Type": "String", "Overwrite": True},
    )
    return old


def stub_refresh(autoscaling, *statuses):
    autoscaling.add_response(
        "start_instance_refresh",
        {"InstanceRefreshId": "ir-1"},
        {
            "AutoScalingGroupName": ASG,
            "Strategy": "Rolling",
            "Preferences": {
                "MinHealthyPercentage": 100,
                "MaxHealthyPercentage": 200,
                "InstanceWarmup": 600,
                "SkipMatching": False,
                "AutoRollback": True,
                "ScaleInProtectedInstances": "Refresh",
                "StandbyInstances": "Terminate",
            },
        },
    )
    for status, percentage, reason in statuses:
        answer = {"InstanceRefreshId": "ir-1", "Status": status, "PercentageComplete": percentage}
        if reason:
            answer["StatusReason"] = reason
        autoscaling.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [answer]},
            {"AutoScalingGroupName": ASG, "InstanceRefreshIds": ["ir-1"]},
        )


def test_deploy_app_migrates_then_switches_and_follows_the_refresh(app_outputs, stub_client, built):
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    stub_migration(ssm, autoscaling)
    stub_parameter_write(ssm, app_outputs)
    stub_refresh(
        autoscaling,
        ("Pending", 0, ""),
        ("InProgress", 50, "Waiting for instances to warm up."),
        ("Successful", 100, ""),
    )

    out, _ = run("deploy_app", "--release", "v2", "--wait")

    assert built == []
    assert "Migrated with release v2 on i-0bbb." in out
    assert "now names v2 (was v1)" in out
    assert "Instance refresh ir-1 started on shop-app-staging-asg" in out
    assert "  InProgress: 50 % Waiting for instances to warm up." in out
    assert "Release v2 is live on every instance of shop-app-staging-asg." in out
    ssm.assert_no_pending_responses()
    autoscaling.assert_no_pending_responses()


def test_deploy_app_failed_migration_switches_nothing(app_outputs, stub_client, built):
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    stub_migration(ssm, autoscaling, status="Failed", output="django.db.utils.ProgrammingError: boom")

    with pytest.raises(CommandError, match=r"Migrations of v2 ended Failed on i-0bbb .* nothing was switched"):
        run("deploy_app", "--release", "v2")

    # No put_parameter or start_instance_refresh was stubbed: had either been called, Stubber would have failed.
    ssm.assert_no_pending_responses()


def test_deploy_app_failed_refresh_restores_the_previous_release(app_outputs, stub_client, built):
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    stub_migration(ssm, autoscaling)
    old = stub_parameter_write(ssm, app_outputs)
    stub_refresh(
        autoscaling, ("InProgress", 30, ""), ("RollbackSuccessful", 0, "Health checks failed on new instances.")
    )
    ssm.add_response(
        "put_parameter",
        {"Version": 3},
        {
            "Name": "/shop/staging/release",
            "Value": json.dumps(json.loads(old), sort_keys=True),
            "Type": "String",
            "Overwrite": True,
        },
    )

    with pytest.raises(CommandError, match=r"ended RollbackSuccessful: Health checks failed on new instances\."):
        run("deploy_app", "--release", "v2", "--wait")

    ssm.assert_no_pending_responses()


def test_deploy_app_no_refresh_migrates_and_switches_only(app_outputs, stub_client, built):
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    stub_migration(ssm, autoscaling)
    stub_parameter_write(ssm, app_outputs)

    out, _ = run("deploy_app", "--release", "v2", "--no-refresh")

    assert "No instance refresh" in out
    autoscaling.assert_no_pending_responses()


def test_deploy_app_runs_the_stacks_migration_document_with_the_parameters_it_declares(
    app_outputs, outputs_dir, stub_client, built
):
    outputs = {"AutoScalingGroupName": ASG, "MigrationDocumentName": "shop-app-staging-migrate"}
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps(outputs))
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    autoscaling.add_response("describe_auto_scaling_groups", group_answer(), {"AutoScalingGroupNames": [ASG]})
    stub_document_migration(ssm, instance_id="i-0bbb")
    stub_parameter_write(ssm, app_outputs)

    out, _ = run("deploy_app", "--release", "v2", "--no-refresh")

    assert "Migrated with release v2 on i-0bbb." in out
    ssm.assert_no_pending_responses()


def test_deploy_app_migrates_on_the_migration_group_when_the_stack_has_one(
    app_outputs, outputs_dir, stub_client, built
):
    migration_group = "shop-app-staging-ComputeMigrationGroup-1"
    outputs = {
        "AutoScalingGroupName": ASG,
        "MigrationGroupName": migration_group,
        "MigrationDocumentName": "shop-app-staging-migrate",
    }
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps(outputs))
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    answer = group_answer()
    answer["AutoScalingGroups"][0] |= {"AutoScalingGroupName": migration_group, "MinSize": 0, "MaxSize": 1}
    answer["AutoScalingGroups"][0]["Instances"] = answer["AutoScalingGroups"][0]["Instances"][:1]
    autoscaling.add_response("describe_auto_scaling_groups", answer, {"AutoScalingGroupNames": [migration_group]})
    stub_document_migration(ssm, instance_id="i-0ccc")
    stub_parameter_write(ssm, app_outputs)

    out, _ = run("deploy_app", "--release", "v2", "--no-refresh")

    assert "Migrated with release v2 on i-0ccc." in out
    ssm.assert_no_pending_responses()
    autoscaling.assert_no_pending_responses()


def test_deploy_app_warns_when_the_migration_document_cannot_take_the_release(
    app_outputs, outputs_dir, stub_client, built
):
    outputs = {"AutoScalingGroupName": ASG, "MigrationDocumentName": "shop-app-staging-migrate"}
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps(outputs))
    ssm, autoscaling = stub_client("ssm"), stub_client("autoscaling")
    autoscaling.add_response("describe_auto_scaling_groups", group_answer(), {"AutoScalingGroupNames": [ASG]})
    ssm.add_response("describe_document", {"Document": {"Name": "shop-app-staging-migrate", "Parameters": []}})
    ssm.add_response(
        "send_command",
        {"Command": {"CommandId": COMMAND_ID}},
        {
            "InstanceIds": ["i-0bbb"],
            "DocumentName": "shop-app-staging-migrate",
            "Comment": "shop migrate v2",
            "TimeoutSeconds": 900,
        },
    )
    ssm.add_response("get_command_invocation", {"Status": "Success"})
    stub_parameter_write(ssm, app_outputs)

    out, err = run("deploy_app", "--release", "v2", "--no-refresh")

    assert "takes no Version or Bundle parameter: it migrated the release installed on i-0bbb" in err
    assert "Migrated with release v2" not in out
    ssm.assert_no_pending_responses()
