"""The real templates (opsinfra.cfn.build_template) deployed on moto: bootstrap, then the app stack, for both
presets. moto 5.2.5 does not model every resource type the app stack uses; conftest stands in for those (the list
is in STANDING_IN) rather than the template being weakened."""

import base64
import hashlib
import json
import re

import boto3
import pytest

from opsinfra.rotation.bundle import rotation_bundle
from opsinfra.services import deploy, templates
from opsinfra.services.diff import Resolver
from tests.opsinfra.conftest import run
from tests.opsinfra.emulator import STANDING_IN

APP_OUTPUTS = {
    "DistributionId",
    "DistributionDomainName",
    "AutoScalingGroupName",
    "LoadBalancerDnsName",
    "DatabaseProxyEndpoint",
    "AlertsTopicArn",
    "DashboardName",
    "ReleaseParameterName",
}
BOOTSTRAP_OUTPUTS = {"ArtifactsBucketName", "CloudFormationExecutionRoleArn", "DeployRoleArn", "PreviewRoleArn"}


def resources_of(stack: str, env: str) -> set[str]:
    """The resources a create makes: those whose Condition holds with the template's defaults."""
    target = deploy.target_resolve(stack=stack, env=env)
    template = templates.template_synthesize(stack=stack, stack_settings=target.settings)
    return set(Resolver(template.data, {}, {}).resources)


def change_set_rows(out: str) -> set[str]:
    """Logical ids of the printed change set table (second column of rows under the header rule)."""
    lines = out.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("action")) + 2
    rows = []
    for line in lines[start:]:
        parts = line.split()
        if len(parts) < 3 or parts[0] not in {"Add", "Modify", "Remove", "Import", "Dynamic"}:
            break
        rows.append(parts[1])
    return set(rows)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_deploy_real_bootstrap_then_app_stack(aws_env, outputs_dir, env):
    out, _ = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    assert change_set_rows(out) == resources_of("bootstrap", env)
    bootstrap = json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())
    assert BOOTSTRAP_OUTPUTS <= set(bootstrap)

    out, _ = run("deploy_stack", "--stack", "app", "--env", env, "--no-input", "--allow-wider-access")

    assert change_set_rows(out) == resources_of("app", env)
    name = f"shop-app-{env}"
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in stack["Parameters"]}
    assert parameters["ArtifactsBucketName"] == bootstrap["ArtifactsBucketName"]
    outputs = json.loads((outputs_dir / f"outputs-{name}.json").read_text())
    assert APP_OUTPUTS <= set(outputs)
    assert outputs["ReleaseParameterName"] == f"/shop/{env}/release"
    # moto's Lambda made the rotation function from the bundle deploy_stack put where RotationCodeKey names it.
    bundle = rotation_bundle()
    assert parameters["RotationCodeKey"] == bundle.key
    function = boto3.client("lambda").get_function(FunctionName=f"{name}-db-rotation")["Configuration"]
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(bundle.data).digest()).decode()
    assert "AWS::Lambda::Function" not in STANDING_IN
    # The distribution exists for CloudFront's API too, so purge_cdn finds it from the outputs file.
    out, _ = run("purge_cdn", "--env", env, "--wait")
    assert f"created on {outputs['DistributionId']} for 1 path(s)" in out
    # What moto could not create itself; the list only ever shrinks with moto upgrades.
    assert "AWS::RDS::DBProxy" in STANDING_IN


@pytest.mark.parametrize(
    ("stack", "env"),
    [("bootstrap", "production"), ("app", "staging"), ("app", "production"), ("edge", "production")],
)
def test_redeploy_without_a_change_is_up_to_date_for_every_stack(aws_env, outputs_dir, stack, env):
    if stack == "app":
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", stack, "--env", env, "--no-input", "--allow-wider-access")
    name = "shop-bootstrap" if stack == "bootstrap" else f"shop-{stack}-{env}"
    before = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]

    out, err = run("deploy_stack", "--stack", stack, "--env", env, "--no-input")

    assert out.splitlines()[-1] == f"Stack {name} is up to date: nothing to deploy."
    assert "Change set" not in out
    assert err == ""
    after = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert after["StackStatus"] == before["StackStatus"]
    assert after.get("LastUpdatedTime") == before.get("LastUpdatedTime")
    pending = boto3.client("cloudformation").list_change_sets(StackName=name)["Summaries"]
    assert [item for item in pending if item["ExecutionStatus"] == "AVAILABLE"] == []


def test_parameter_change_on_the_app_stack_shows_old_and_new_values_and_what_follows(aws_env, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "app", "--no-input", "--allow-wider-access")

    out, _ = run(
        "deploy_stack",
        "--stack",
        "app",
        "--no-input",
        "--parameter",
        "AlertEmail=ops@example.com",
        "--parameter",
        "NatGateways=3",
    )

    lines = out.splitlines()
    assert '  AlertEmail   "" → ops@example.com' in lines
    assert "  NatGateways  1 → 3" in lines
    assert not [line for line in lines if line.startswith("  AmiId")]  # the SSM name did not change
    assert change_set_rows(out) == {
        "ObservabilityAlertsEmail",
        "NetworkNatAddress2",
        "NetworkNatAddress3",
        "NetworkNatGateway2",
        "NetworkNatGateway3",
        "NetworkPrivateRoute2",
        "NetworkPrivateRoute3",
    }
    assert "    Properties.NatGatewayId: !Ref NetworkNatGateway1 → !Ref NetworkNatGateway2" in lines
    stack = boto3.client("cloudformation").describe_stacks(StackName="shop-app-staging")["Stacks"][0]
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in stack["Parameters"]}
    assert (parameters["AlertEmail"], parameters["NatGateways"]) == ("ops@example.com", "3")
    # and the same again is nothing to do
    out, _ = run(
        "deploy_stack",
        "--stack",
        "app",
        "--no-input",
        "--parameter",
        "AlertEmail=ops@example.com",
        "--parameter",
        "NatGateways=3",
    )
    assert out.splitlines()[-1] == "Stack shop-app-staging is up to date: nothing to deploy."


def test_a_change_set_naming_another_rotation_bundle_is_not_executed(aws_env, outputs_dir, monkeypatch):
    from django.core.management.base import CommandError

    from opsinfra.rotation import bundle as rotation_bundles

    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "app", "--no-input", "--allow-wider-access")
    out, _ = run("deploy_stack", "--stack", "app", "--no-input", "--no-execute", "--parameter", "NatGateways=3")
    name = re.search(r"Change set (\S+) was created and not executed", out).group(1)
    deployed = rotation_bundles.rotation_bundle().key
    # This checkout now builds other code than the change set was made with.
    other = rotation_bundles.Bundle(data=b"other", sha256=hashlib.sha256(b"other").hexdigest())
    monkeypatch.setattr(rotation_bundles, "rotation_bundle", lambda: other)

    with pytest.raises(CommandError, match="create the change set again from this checkout"):
        run("deploy_stack", "--stack", "app", "--no-input", "--execute-changeset", name)

    bucket = json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())["ArtifactsBucketName"]
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="lambda/")["Contents"]
    assert [item["Key"] for item in listed] == [deployed]
    stack = boto3.client("cloudformation").describe_stacks(StackName="shop-app-staging")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["NatGateways"] == "1"
