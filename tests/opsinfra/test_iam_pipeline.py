"""The pipeline's commands, run as the workflows run them, on the emulator with the real templates: every AWS call
they make is recorded and evaluated against the synthesized policy of the role that runs it in production, and
every grant of those roles must be needed by a recorded call (docs/iam.md)."""

import json
import re
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from django.core.management import load_command_class

from opsinfra.iam import pipeline
from opsinfra.iam.policy import action_matches, resource_matches, statements
from opsinfra.iam.recorder import Invocation
from opsinfra.iam.roles import Place
from opsinfra.services import bundle
from tests.opsinfra.conftest import ACCOUNT, REGION, _deployed_physical_ids, run

COMMAND_ID = "0b6a2c4e-1f7d-4c1a-9d0e-4f2b8a6c3e11"
WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
# Grants the scenario below never needs, each with the path that does.
UNEXERCISED = {
    (pipeline.DEPLOY_ROLE, "cloudformation:CancelUpdateStack"): "deploy_stack --timeout cancels an update that "
    "runs too long (test_deploy_moto, stubbed)",
    (pipeline.DEPLOY_ROLE, "cloudformation:DeleteChangeSet"): "an empty or failed change set is deleted "
    "(test_deploy_moto)",
    (pipeline.DEPLOY_ROLE, "cloudformation:ListChangeSets"): "deploy_stack --delete-changeset and a change set "
    "left by an interrupted run",
    (pipeline.PREVIEW_ROLE, "cloudformation:ListChangeSets"): "a change set of the same name left by a cancelled "
    "preview run",
    (pipeline.DEPLOY_ROLE, "ssm:SendCommand"): "AWS-RunShellScript is sent to an app stack without a migration "
    "document (test_release_moto)",
    (pipeline.DEPLOY_ROLE, "imagebuilder:CancelImageCreation"): "a bake that times out (test_image_moto)",
    (pipeline.DEPLOY_ROLE, "imagebuilder:DeleteImage"): "a failed bake is removed (test_image_moto)",
    (pipeline.DEPLOY_ROLE, "imagebuilder:DeleteImageRecipe"): "a failed bake's recipe is removed (test_image_moto)",
    (pipeline.DEPLOY_ROLE, "cloudfront:GetInvalidation"): "moto completes an invalidation at once; the polling is "
    "test_purge_moto's (stubbed)",
}


def tiny_bundle(*, version, destination):
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / f"{version}.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    return path


def refresh_answers(stub, group: str):
    instance = {"InstanceId": "i-0aaa", "AvailabilityZone": "us-east-1a", "LifecycleState": "InService",
                "HealthStatus": "Healthy", "ProtectedFromScaleIn": False}  # fmt: skip
    stub.add_response(
        "describe_auto_scaling_groups",
        {"AutoScalingGroups": [{"AutoScalingGroupName": group, "MinSize": 2, "MaxSize": 20, "DesiredCapacity": 2,
                                "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"],
                                "HealthCheckType": "ELB", "CreatedTime": datetime(2026, 11, 1, tzinfo=UTC),
                                "Instances": [instance]}]},
    )  # fmt: skip
    stub.add_response("start_instance_refresh", {"InstanceRefreshId": "ir-1"})
    stub.add_response(
        "describe_instance_refreshes",
        {"InstanceRefreshes": [{"InstanceRefreshId": "ir-1", "Status": "Successful", "PercentageComplete": 100}]},
    )


def bake_answers(stub):
    """A bake that succeeds at the first poll."""
    recipe = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-recipe/shop-image-production/2026.1206.1"
    image = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/shop-image-production/2026.1206.1/1"
    stub.add_response("create_image_recipe", {"imageRecipeArn": recipe})
    stub.add_response("create_image", {"imageBuildVersionArn": image})
    stub.add_response("get_image", {"image": {"arn": image, "state": {"status": "BUILDING"}}})
    stub.add_response("list_workflow_executions", {"workflowExecutions": [{"workflowExecutionId": "wf-1"}]})
    stub.add_response("list_workflow_step_executions", {"steps": [{"name": "BuildImage", "status": "RUNNING"}]})
    amis = {"amis": [{"region": REGION, "image": "ami-0abcdef1234567890"}]}
    stub.add_response("get_image", {"image": {"arn": image, "state": {"status": "AVAILABLE"}, "outputResources": amis}})


@pytest.fixture
def pipeline_run(aws_env, aws_calls, outputs_dir, monkeypatch, stub_client, tmp_path, settings):
    """Bootstrap (an administrator), then the deploy workflow, the preview workflow and the operator commands."""
    outputs = str(tmp_path / "outputs-app.json")
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    # deploy.yml, run by hand with allow-wider-access ticked: the first deploy creates roles and security groups
    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--allow-wider-access",
        "--outputs-file", outputs)  # fmt: skip
    group = json.loads(Path(outputs).read_text())["AutoScalingGroupName"]
    # What an operator runs with the deploy role, on the groups and distribution the stack made.
    run("purge_cdn", "--env", "production", "--outputs-file", outputs, "--wait")
    start = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    run("schedule_peak", "--env", "production", "--outputs-file", outputs, "--start", start.isoformat(),
        "--end", (start + timedelta(hours=6)).isoformat(), "--capacity", "3")  # fmt: skip
    run("schedule_peak", "--env", "production", "--outputs-file", outputs, "--list")
    run("schedule_peak", "--env", "production", "--outputs-file", outputs, "--remove", f"sale-{start:%Y%m%d-%H%M}")
    # moto 5.2.5 runs no SSM command and has no instance refresh: those answers are stubbed.
    monkeypatch.setattr(bundle, "bundle_build", tiny_bundle)
    # The image stack (an administrator), then bake_image (the deploy role); moto has no Image Builder.
    run("deploy_stack", "--stack", "image", "--env", "production", "--no-input", "--allow-wider-access")
    bake_answers(stub_client("imagebuilder"))
    run("bake_image", "--env", "production", "--release", "v1")
    ssm = stub_client("ssm")
    ssm.add_response("describe_document", {"Document": {"Name": "d", "Parameters": [{"Name": "Version"},
                                                                                   {"Name": "Bundle"}]}})  # fmt: skip
    ssm.add_response("send_command", {"Command": {"CommandId": COMMAND_ID}})
    ssm.add_response("get_command_invocation", {"Status": "Success"})
    ssm.add_client_error("get_parameter", "ParameterNotFound")
    ssm.add_response("put_parameter", {"Version": 1})
    refresh_answers(stub_client("autoscaling"), group)
    run("deploy_app", "--env", "production", "--wait", "--outputs-file", outputs, "--release", "v1")
    # deploy_stack looks for the baked image's parameter (the preview, then the update).
    for _ in range(2):
        ssm.add_response("get_parameters", {"Parameters": [{"Name": "/shop/production/image", "Value": "ami-1"}]})
    # A pull request that changes the app stack (the alert address): preview.yml shows the diff
    # against the deployed template, then the push of its merge runs deploy.yml, an update under the stack policy.
    production = settings.OPSINFRA["ENVIRONMENTS"]["production"]
    changed = {**production, "alert_email": "ops@example.com"}
    settings.OPSINFRA = {**settings.OPSINFRA,
                         "ENVIRONMENTS": {**settings.OPSINFRA["ENVIRONMENTS"], "production": changed}}  # fmt: skip
    previewed, _ = run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--no-execute",
                    "--changeset-name", "preview-pr-7-1")  # fmt: skip
    assert re.search(r'AlertEmail +"" → ops@example.com', previewed), previewed
    # The first deploy after the first bake points the launch templates at the baked image's parameter.
    assert re.search(r"AmiParameter +/aws/service/ami-amazon-linux-latest/\S+ → /shop/production/image", previewed)
    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--delete-changeset", "preview-pr-7-1")
    updated, _ = run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--outputs-file", outputs)
    assert "UPDATE_COMPLETE" in updated, updated
    return outputs, group


def _place() -> Place:
    physical = _deployed_physical_ids(boto3.client("cloudformation").meta.endpoint_url, "shop-bootstrap")
    return Place(account=ACCOUNT, region=REGION, stack_name="shop-bootstrap", physical=physical)


def test_workflow_commands_run_as_the_role_the_workflow_assumes():
    steps = pipeline.workflow_steps(WORKFLOWS)

    assert steps, "no manage.py step found in .github/workflows"
    for step in steps:
        name, *args = step.command.replace('"', "").split()
        command = load_command_class("opsinfra", name)
        options = vars(command.create_parser("manage.py", name).parse_args(args))

        assert pipeline.production_role(Invocation(name, tuple(options.items()))) == step.role, step


def test_pipeline_calls_are_all_allowed_and_every_grant_is_used(pipeline_run, aws_calls, bootstrap_synthesized):
    outputs, _ = pipeline_run
    distribution = json.loads(Path(outputs).read_text())["DistributionId"]

    policies, boundaries = pipeline.pipeline_policies(bootstrap_synthesized, _place())
    refused = pipeline.refusals(aws_calls.calls, policies=policies, boundaries=boundaries)

    assert [str(refusal) for refusal in refused] == []
    by_role: dict[str, list] = {}
    for call in aws_calls.calls:
        role = pipeline.production_role(call.command) if call.command else None
        if role:
            by_role.setdefault(role, []).append(call)
    assert {call.action for call in by_role[pipeline.PREVIEW_ROLE]} >= {
        "cloudformation:CreateChangeSet",
        "s3:PutObject",
        "ssm:GetParameters",
    }
    assert f"arn:aws:cloudfront::{ACCOUNT}:distribution/{distribution}" in {c.resource for c in by_role[
        pipeline.DEPLOY_ROLE]}  # fmt: skip
    unused = []
    for role in (pipeline.DEPLOY_ROLE, pipeline.PREVIEW_ROLE):
        for document in policies[role]:
            for statement in statements(document):
                if statement.get("Effect") != "Allow":
                    continue
                for pattern in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
                    for resource in statement["Resource"] if isinstance(statement["Resource"], list) else [
                            statement["Resource"]]:  # fmt: skip
                        used = any(action_matches(pattern, call.action) and resource_matches(resource, call.resource)
                                   for call in by_role[role])  # fmt: skip
                        if not used and (role, pattern) not in UNEXERCISED:
                            unused.append(f"{role} {statement.get('Sid')}: {pattern} on {resource}")
    assert unused == [], "\n".join(unused)
