"""deploy_stack end to end against the moto server, with a small template standing in for opsinfra.cfn."""

import json

import boto3
import pytest
from django.core.management.base import CommandError

from tests.opsinfra.conftest import REGION, run


def cfn():
    return boto3.client("cloudformation", region_name=REGION)


def unexecuted_change_sets(stack_name: str) -> list[str]:
    """moto lists every change set of the account, executed ones included."""
    return [
        summary["ChangeSetName"]
        for summary in cfn().list_change_sets(StackName=stack_name)["Summaries"]
        if summary["StackName"] == stack_name and summary["ExecutionStatus"] != "EXECUTE_COMPLETE"
    ]


def stack_names() -> set[str]:
    return {stack["StackName"] for stack in cfn().describe_stacks()["Stacks"]}


@pytest.fixture
def bootstrapped(aws_env, small_stacks, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    return json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())


def test_deploy_bootstrap_then_app_creates_both_and_saves_outputs(aws_env, small_stacks, outputs_dir):
    out, _ = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    assert "Stack shop-bootstrap: CREATE_COMPLETE." in out
    bootstrap = json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())
    assert set(bootstrap) == {"ArtifactsBucketName", "CloudFormationExecutionRoleArn"}

    out, _ = run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input")

    assert "Add     AlertsTopic  AWS::SNS::Topic" in out
    stack = cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["RoleARN"] == bootstrap["CloudFormationExecutionRoleArn"]
    assert {tag["Key"]: tag["Value"] for tag in stack["Tags"]} == {
        "Environment": "staging",
        "Project": "shop",
        "Stack": "app",
    }
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["ArtifactsBucketName"] == bootstrap["ArtifactsBucketName"]
    app = json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())
    assert app["BucketSeen"] == bootstrap["ArtifactsBucketName"]
    assert app["InstanceTypeUsed"] == "t3.medium"


def test_deploy_outputs_file_is_written_where_asked_and_empty_object_without_outputs(
    aws_env, small_stacks, tmp_path, monkeypatch
):
    from opsinfra.services import templates

    monkeypatch.setattr(
        templates,
        "template_build",
        lambda **_: json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}),
    )
    target = tmp_path / "elsewhere" / "out.json"

    run("deploy_stack", "--stack", "edge", "--no-input", "--outputs-file", str(target))

    assert json.loads(target.read_text()) == {}


def test_deploy_update_with_changed_parameter_completes_and_rerun_is_up_to_date(bootstrapped, outputs_dir):
    def outputs():
        return json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())

    run("deploy_stack", "--no-input", "--parameter", "OidcProviderArn=arn:aws:iam::1:oidc-provider/x")

    out, _ = run("deploy_stack", "--no-input", "--parameter", "InstanceType=t3.large")

    assert "Stack shop-app-staging: UPDATE_COMPLETE." in out
    # Empty Default, given by nobody this time: keeps its previous value.
    assert outputs() == {**outputs(), "InstanceTypeUsed": "t3.large", "OidcSeen": "arn:aws:iam::1:oidc-provider/x"}
    out, _ = run("deploy_stack", "--no-input", "--parameter", "InstanceType=t3.large")
    assert "Stack shop-app-staging is up to date: nothing to deploy." in out
    with pytest.raises(CommandError, match="no changes and --fail-on-empty"):
        run("deploy_stack", "--no-input", "--parameter", "InstanceType=t3.large", "--fail-on-empty")
    assert unexecuted_change_sets("shop-app-staging") == []
    assert cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    # The preset (the Default synth wrote) is always passed: a one-off --parameter does not outlive its deploy.
    run("deploy_stack", "--no-input")
    assert outputs()["InstanceTypeUsed"] == "t3.medium"
    assert outputs()["OidcSeen"] == "arn:aws:iam::1:oidc-provider/x"


def test_deploy_unchanged_template_without_parameters_deletes_the_empty_change_set(aws_env, small_stacks):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    out, _ = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    assert "Stack shop-bootstrap is up to date" in out
    assert unexecuted_change_sets("shop-bootstrap") == []


def test_deploy_large_template_goes_through_s3_template_url(bootstrapped, small_stacks, settings):
    settings.OPSINFRA = {**settings.OPSINFRA, "TEMPLATE_URL_THRESHOLD": 2_000}
    small_stacks["topics"] = 20

    out, _ = run("deploy_stack", "--no-input", verbosity=2)

    bucket = bootstrapped["ArtifactsBucketName"]
    keys = [item["Key"] for item in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("templates/shop-app-staging/")
    assert f"sent from https://{bucket}.s3.us-east-1.amazonaws.com/{keys[0]}" in out
    assert cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert out.count("Add     AlertsTopic") == 20


def test_deploy_large_bootstrap_template_is_refused_without_a_bucket(aws_env, small_stacks, settings):
    settings.OPSINFRA = {**settings.OPSINFRA, "TEMPLATE_URL_THRESHOLD": 100}

    with pytest.raises(CommandError, match="no artifacts bucket to stage it in"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    assert stack_names() == set()


def test_deploy_template_over_one_megabyte_is_refused(bootstrapped, small_stacks):
    small_stacks["padding"] = 1_100_000

    with pytest.raises(CommandError, match="over CloudFormation's limit of 1,048,576 bytes"):
        run("deploy_stack", "--no-input")

    assert stack_names() == {"shop-bootstrap"}


def test_deploy_no_execute_leaves_change_set_for_later(bootstrapped):
    out, _ = run("deploy_stack", "--no-execute")

    [name] = unexecuted_change_sets("shop-app-staging")
    assert f"--execute-changeset {name}" in out
    assert cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]["StackStatus"] == "REVIEW_IN_PROGRESS"

    out, _ = run("deploy_stack", "--no-input", "--execute-changeset", name)

    assert "CREATE_COMPLETE" in out
    assert cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_deploy_no_execute_on_update_leaves_the_stack_unchanged(bootstrapped, outputs_dir):
    run("deploy_stack", "--no-input")

    run("deploy_stack", "--no-execute", "--parameter", "InstanceType=t3.large")

    stack = cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["InstanceTypeUsed"] == "t3.medium"


@pytest.fixture
def change_set_requests(monkeypatch) -> list[dict]:
    """Every CreateChangeSet request deploy_stack sends, recorded on its way to the emulator."""
    from opsinfra.services import changesets

    requests = []
    create = changesets.changeset_create
    monkeypatch.setattr(
        changesets,
        "changeset_create",
        lambda *, cfn, request: requests.append(request) or create(cfn=cfn, request=request),
    )
    return requests


def test_deploy_preview_names_its_change_set_then_deletes_it(bootstrapped, change_set_requests):
    run("deploy_stack", "--no-input")
    # when: a pull request's preview
    out, _ = run(
        "deploy_stack", "--no-execute", "--changeset-name", "preview-pr-7-1", "--parameter", "InstanceType=t3.large"
    )
    # then: named as asked, and no role passed (the preview role may not pass one; the stack keeps its own)
    assert unexecuted_change_sets("shop-app-staging") == ["preview-pr-7-1"]
    assert "Change set preview-pr-7-1 was created and not executed" in out
    assert "RoleARN" not in change_set_requests[-1]
    # when: the workflow cleans up, twice (its cleanup step runs even after a failure)
    out, _ = run("deploy_stack", "--no-input", "--delete-changeset", "preview-pr-7-1")
    again, _ = run("deploy_stack", "--no-input", "--delete-changeset", "preview-pr-7-1")
    # then
    assert "Change set preview-pr-7-1 of shop-app-staging deleted." in out
    assert "does not exist: nothing to delete" in again
    assert unexecuted_change_sets("shop-app-staging") == []
    assert cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_deploy_first_create_passes_the_execution_role(bootstrapped, change_set_requests):
    run("deploy_stack", "--no-input")
    assert change_set_requests[0]["RoleARN"] == bootstrapped["CloudFormationExecutionRoleArn"]


def test_deploy_refuses_a_malformed_change_set_name_before_anything_is_created(bootstrapped):
    with pytest.raises(CommandError, match="is not a change set name"):
        run("deploy_stack", "--no-execute", "--changeset-name", "pr 7; rm")
    assert "shop-app-staging" not in stack_names()


def test_deploy_app_without_bootstrap_names_the_command_that_creates_it(aws_env, small_stacks, outputs_dir):
    with pytest.raises(CommandError, match=r"create it first with `manage.py deploy_stack --stack bootstrap"):
        run("deploy_stack", "--no-input")

    assert stack_names() == set()
    assert not outputs_dir.exists()


def test_deploy_refuses_a_template_synthesized_for_another_region(bootstrapped, small_stacks):
    small_stacks["template_region"] = "eu-west-1"

    with pytest.raises(CommandError, match="synthesized for eu-west-1, not us-east-1"):
        run("deploy_stack", "--no-input")

    assert stack_names() == {"shop-bootstrap"}


def test_deploy_refuses_a_template_with_lint_errors(bootstrapped, small_stacks):
    small_stacks["extra_resources"] = {"Broken": {"Type": "AWS::SNS::Topic", "Properties": {"NoSuchProperty": 1}}}

    with pytest.raises(CommandError, match=r"cfn-lint found 1 error\(s\) in the app template, the first: E3002"):
        run("deploy_stack", "--no-input")

    assert stack_names() == {"shop-bootstrap"}


def test_deploy_unknown_parameter_is_refused(bootstrapped):
    with pytest.raises(CommandError, match="--parameter Nope is not a parameter of the app template"):
        run("deploy_stack", "--no-input", "--parameter", "Nope=1")

    assert stack_names() == {"shop-bootstrap"}


def test_deploy_without_terminal_and_without_no_input_refuses_before_any_call(aws_env, small_stacks, monkeypatch):
    with pytest.raises(CommandError, match="no terminal to confirm on: pass --no-input"):
        run("deploy_stack", "--stack", "bootstrap")

    assert stack_names() == set()


def test_deploy_without_credentials_says_so_in_one_sentence(aws_env, small_stacks, monkeypatch):
    from opsinfra import aws

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws.reset()

    with pytest.raises(CommandError, match=r"^No AWS credentials found: set AWS_PROFILE"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")


def test_deploy_verbosity_2_shows_what_each_parameter_gets(bootstrapped):
    run("deploy_stack", "--no-input", "--parameter", "OidcProviderArn=arn:aws:iam::1:oidc-provider/x")

    out, _ = run("deploy_stack", "--no-execute", "--parameter", "InstanceType=t3.large", verbosity=2)

    assert f"  parameter ArtifactsBucketName = {bootstrapped['ArtifactsBucketName']}" in out
    assert "  parameter InstanceType = t3.large" in out
    assert "  parameter AlertEmail = ops@example.com" in out
    assert "  parameter OidcProviderArn = (previous value)" in out
    assert "Template: " in out and "bytes compact, sent inline." in out


def test_deploy_app_outside_us_east_1_takes_the_edge_stack_outputs(aws_env, small_stacks, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--region", "eu-west-1", "--no-input", "--allow-wider-access")
    with pytest.raises(CommandError, match=r"create it first with `manage\.py deploy_stack --stack edge --env staging"):
        run("deploy_stack", "--region", "eu-west-1", "--no-input")

    run("deploy_stack", "--stack", "edge", "--no-input")
    run("deploy_stack", "--region", "eu-west-1", "--no-input")

    edge = json.loads((outputs_dir / "outputs-shop-edge-staging.json").read_text())
    app = json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())
    assert app["EdgeSeen"] == edge["EdgeWebAclArn"]
    app_stack = boto3.client("cloudformation", region_name="eu-west-1").describe_stacks(StackName="shop-app-staging")
    assert app_stack["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
