"""bake_image: the bootstrap and image stacks, the bundle and the image parameters on moto; EC2 Image Builder (which
moto 5.2.5 does not model) through Stubber. Every command call is checked against the deploy role (iam_checked)."""

import json

import boto3
import pytest
from botocore.stub import ANY
from django.core.management.base import CommandError

from opsinfra.services import deploy, image
from tests.opsinfra.conftest import ACCOUNT, REGION, run

BUILDER = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}"
RECIPE = f"{BUILDER}:image-recipe/shop-image-staging/2026.1206.180000"
IMAGE = f"{BUILDER}:image/shop-image-staging/2026.1206.180000/1"
WORKFLOW = "wf-0123456789abcdef0"
AMI = "ami-0abcdef1234567890"


@pytest.fixture
def stacks(aws_env, outputs_dir):
    """The real bootstrap and image templates deployed on the emulator, and release v1's bundle uploaded."""
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "image", "--env", "staging", "--no-input", "--allow-wider-access")
    bucket = json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())["ArtifactsBucketName"]
    boto3.client("s3").put_object(Bucket=bucket, Key="releases/v1.tar.gz", Body=b"bundle")
    outputs = json.loads((outputs_dir / "outputs-shop-image-staging.json").read_text())
    return {"bucket": bucket, **outputs}


def _parameter(name: str) -> str | None:
    found = boto3.client("ssm").get_parameters(Names=[name])["Parameters"]
    return found[0]["Value"] if found else None


def _stub_build(builder, stacks, *, states: list[str], step: str, step_status: str, reason: str = ""):
    builder.add_response(
        "create_image_recipe",
        {"imageRecipeArn": RECIPE},
        {
            "name": "shop-image-staging",
            "semanticVersion": ANY,
            "description": "shop release v1",
            "parentImage": ANY,
            "components": [
                {"componentArn": stacks["SystemComponentArn"]},
                {
                    "componentArn": stacks["ReleaseComponentArn"],
                    "parameters": [
                        {"name": "Version", "value": ["v1"]},
                        {"name": "Bundle", "value": [f"s3://{stacks['bucket']}/releases/v1.tar.gz"]},
                    ],
                },
            ],
            "blockDeviceMappings": ANY,
            "clientToken": ANY,
        },
    )
    builder.add_response(
        "create_image",
        {"imageBuildVersionArn": IMAGE},
        {
            "imageRecipeArn": RECIPE,
            "infrastructureConfigurationArn": stacks["InfrastructureConfigurationArn"],
            "imageTestsConfiguration": {"imageTestsEnabled": False},
            "enhancedImageMetadataEnabled": True,
            "clientToken": ANY,
        },
    )
    for status in states:
        state = {"status": status, "reason": reason} if reason and status == "FAILED" else {"status": status}
        answer = {"image": {"arn": IMAGE, "state": state}}
        if status == "AVAILABLE":
            answer["image"]["outputResources"] = {"amis": [{"region": REGION, "image": AMI}]}
        builder.add_response("get_image", answer, {"imageBuildVersionArn": IMAGE})
        if status in {"PENDING", "AVAILABLE"}:
            continue
        builder.add_response(
            "list_workflow_executions",
            {"workflowExecutions": [{"workflowExecutionId": WORKFLOW, "status": "RUNNING"}]},
            {"imageBuildVersionArn": IMAGE},
        )
        builder.add_response(
            "list_workflow_step_executions",
            {"steps": [{"name": "LaunchBuildInstance", "status": "COMPLETED"}, {"name": step, "status": step_status}]},
            {"workflowExecutionId": WORKFLOW},
        )


def test_bake_image_builds_publishes_and_shows_progress(stacks, stub_client):
    builder = stub_client("imagebuilder")
    _stub_build(builder, stacks, states=["PENDING", "BUILDING", "AVAILABLE"], step="BuildImage", step_status="RUNNING")
    # when
    out, _ = run("bake_image", "--env", "staging", "--release", "v1")
    # then
    builder.assert_no_pending_responses()
    assert "  PENDING\n  BUILDING (BuildImage)\n  AVAILABLE\n" in out
    assert f"Image {AMI} holds release v1" in out and "/shop/staging/image now names it" in out
    assert _parameter("/shop/staging/image") == AMI
    described = boto3.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": ["/shop/staging/image"]}]
    )["Parameters"][0]
    assert described["DataType"] == "aws:ec2:image"
    record = json.loads(_parameter("/shop/staging/image-release"))
    assert record["image"] == AMI and record["release"] == "v1" and record["parent_image"].startswith("ami-")


def test_bake_image_failure_names_the_step_and_removes_the_build(stacks, stub_client):
    builder = stub_client("imagebuilder")
    _stub_build(
        builder,
        stacks,
        states=["BUILDING", "FAILED"],
        step="BuildImage",
        step_status="FAILED",
        reason="Component shop-image-staging-system step packages failed: dnf exited 1",
    )
    builder.add_client_error(
        "cancel_image_creation", "InvalidRequestException", "The image is not in a cancellable state.", 400
    )
    builder.add_response("delete_image", {"imageBuildVersionArn": IMAGE}, {"imageBuildVersionArn": IMAGE})
    builder.add_response("delete_image_recipe", {"imageRecipeArn": RECIPE}, {"imageRecipeArn": RECIPE})
    # when
    with pytest.raises(CommandError) as failed:
        run("bake_image", "--env", "staging", "--release", "v1")
    # then
    builder.assert_no_pending_responses()
    message = str(failed.value)
    assert "ended FAILED at step BuildImage" in message
    assert "step packages failed: dnf exited 1" in message and "Nothing is left running." in message
    assert _parameter("/shop/staging/image") is None and _parameter("/shop/staging/image-release") is None


def test_bake_image_timeout_cancels_the_build(stacks, stub_client, clock):
    builder = stub_client("imagebuilder")
    _stub_build(builder, stacks, states=["BUILDING", "BUILDING"], step="BuildImage", step_status="RUNNING")
    builder.add_response("cancel_image_creation", {"imageBuildVersionArn": IMAGE}, {"imageBuildVersionArn": IMAGE})
    builder.add_response("delete_image", {"imageBuildVersionArn": IMAGE}, {"imageBuildVersionArn": IMAGE})
    builder.add_response("delete_image_recipe", {"imageRecipeArn": RECIPE}, {"imageRecipeArn": RECIPE})
    # when: the test clock moves a second per poll, past a timeout of 0.01 minutes after the second
    with pytest.raises(CommandError, match=r"still BUILDING at step BuildImage after .* Nothing is left running"):
        run("bake_image", "--env", "staging", "--release", "v1", "--timeout", "0.01")
    # then
    builder.assert_no_pending_responses()
    assert _parameter("/shop/staging/image") is None


def test_bake_image_without_the_image_stack_says_how_to_create_it(aws_env, stub_client):
    builder = stub_client("imagebuilder")
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    with pytest.raises(CommandError, match=r"shop-image-staging does not exist .*deploy_stack --stack image"):
        run("bake_image", "--env", "staging", "--release", "v1")
    builder.assert_no_pending_responses()
    assert _parameter("/shop/staging/image") is None


def test_bake_image_refuses_a_release_name_that_is_a_path(stacks, stub_client):
    builder = stub_client("imagebuilder")
    with pytest.raises(CommandError):
        run("bake_image", "--env", "staging", "--release", "../etc")
    builder.assert_no_pending_responses()
    assert _parameter("/shop/staging/image") is None


def test_app_stack_gets_the_image_parameter_only_once_a_bake_wrote_it(aws_env):
    target = deploy.target_resolve(stack="app", env="staging")
    assert image.image_parameter_for_stack(target=target) is None
    boto3.client("ssm").put_parameter(Name="/shop/staging/image", Value=AMI, Type="String")
    assert image.image_parameter_for_stack(target=target) == "/shop/staging/image"


def test_image_age_check_warns_until_the_image_holds_the_live_release(aws_env):
    ssm = boto3.client("ssm")
    target = deploy.target_resolve(stack="app", env="staging")
    release = {"version": "v2", "bundle": "s3://b/releases/v2.tar.gz"}
    ssm.put_parameter(Name="/shop/staging/release", Value=json.dumps(release), Type="String")
    # no bake yet
    age = image.image_age_check(target=target)
    assert age.release == "v2" and age.image is None
    assert "No baked image for staging" in age.warning and "bake_image --env staging --release v2" in age.warning
    # a bake of an older release, written before the release was set
    record = {"image": AMI, "release": "v1", "parent_image": "ami-1", "baked_at": "2020-01-01T00:00:00+00:00"}
    ssm.put_parameter(Name="/shop/staging/image-release", Value=json.dumps(record), Type="String")
    age = image.image_age_check(target=target)
    assert age.image_release == "v1"
    assert f"The baked image {AMI} holds release v1, baked 2020-01-01T00:00:00+00:00 before" in age.warning
    # the image holds the live release
    ssm.put_parameter(
        Name="/shop/staging/image-release", Value=json.dumps({**record, "release": "v2"}), Type="String", Overwrite=True
    )
    assert image.image_age_check(target=target).warning is None


def _release_parameter() -> dict | None:
    value = _parameter("/shop/staging/release")
    return json.loads(value) if value else None


def test_deploy_app_bake_bakes_before_it_switches(stacks, stub_client):
    builder = stub_client("imagebuilder")
    _stub_build(builder, stacks, states=["BUILDING", "AVAILABLE"], step="BuildImage", step_status="RUNNING")
    # when
    out, _ = run("deploy_app", "--env", "staging", "--release", "v1", "--bake")
    # then
    builder.assert_no_pending_responses()
    assert out.index("  AVAILABLE") < out.index("Release parameter /shop/staging/release now names v1")
    assert _parameter("/shop/staging/image") == AMI
    assert _release_parameter()["version"] == "v1"


def test_deploy_app_bake_failure_switches_nothing(stacks, stub_client):
    builder = stub_client("imagebuilder")
    _stub_build(builder, stacks, states=["FAILED"], step="BuildImage", step_status="FAILED", reason="dnf exited 1")
    builder.add_response("cancel_image_creation", {"imageBuildVersionArn": IMAGE}, {"imageBuildVersionArn": IMAGE})
    builder.add_response("delete_image", {"imageBuildVersionArn": IMAGE}, {"imageBuildVersionArn": IMAGE})
    builder.add_response("delete_image_recipe", {"imageRecipeArn": RECIPE}, {"imageRecipeArn": RECIPE})
    # when
    with pytest.raises(CommandError, match=r"ended FAILED at step BuildImage: dnf exited 1\. Nothing is left running"):
        run("deploy_app", "--env", "staging", "--release", "v1", "--bake")
    # then
    builder.assert_no_pending_responses()
    assert _release_parameter() is None and _parameter("/shop/staging/image") is None
