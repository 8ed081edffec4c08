"""deploy_stack end to end against the moto server, with a small template standing in for opsinfra.cfn."""

import json

import boto3

from tests.opsinfra.conftest import REGION, run


def cfn():
    return boto3.client("cloudformation", region_name=REGION)


def test_deploy_bootstrap_then_app_creates_both_and_saves_outputs(aws_env, small_stacks, outputs_dir):
    out, _ = run("deploy_stack", "--stack", "bootstrap", "--no-input")
    assert "Stack shop-bootstrap: CREATE_COMPLETE." in out
    bootstrap = json.loads((outputs_dir / "outputs-shop-bootstrap.json").read_text())
    assert set(bootstrap) == {"ArtifactsBucketName", "CloudFormationExecutionRoleArn"}

    out, _ = run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input")

    assert "Add     AlertsTopic" in out
    stack = cfn().describe_stacks(StackName="shop-app-staging")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["ArtifactsBucketName"] == bootstrap["ArtifactsBucketName"]
    app = json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())
    assert app["BucketSeen"] == bootstrap["ArtifactsBucketName"]
    assert app["InstanceTypeUsed"] == "t3.medium"
