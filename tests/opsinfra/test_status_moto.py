"""stack_status on moto; drift detection through Stubber (moto 5.2.5 has no DetectStackDrift)."""

import json
from datetime import UTC, datetime

import boto3
import pytest
from django.core.management.base import CommandError

from tests.opsinfra.conftest import REGION, run


@pytest.fixture
def app_stack(aws_env, small_stacks):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--no-input")


def test_status_shows_status_events_outputs_and_live_release(app_stack):
    release = {"version": "v1.2.0", "bundle": "s3://bucket/releases/v1.2.0.tar.gz"}
    boto3.client("ssm").put_parameter(Name="/shop/staging/release", Value=json.dumps(release), Type="String")

    out, _ = run("stack_status")

    assert "Stack shop-app-staging in us-east-1: CREATE_COMPLETE" in out
    assert "termination protection: off" in out
    assert "shop-app-staging  CREATE_COMPLETE" in out
    assert "InstanceTypeUsed  t3.medium" in out
    assert "Live release: v1.2.0 (s3://bucket/releases/v1.2.0.tar.gz), from /shop/staging/release." in out


def test_status_without_release_says_how_to_make_one(app_stack):
    out, _ = run("stack_status")

    assert "No release yet: /shop/staging/release is not set (run deploy_app)." in out


def test_status_of_a_missing_stack_is_one_sentence(aws_env, small_stacks):
    with pytest.raises(CommandError, match=r"^There is no stack shop-app-production in us-east-1\.$"):
        run("stack_status", "--env", "production")


def test_status_detect_drift_lists_drifted_resources(aws_env, small_stacks, stub_client):
    stubber = stub_client("cloudformation")
    stack_id = f"arn:aws:cloudformation:{REGION}:123456789012:stack/shop-bootstrap/1"
    when = datetime(2026, 11, 25, tzinfo=UTC)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "shop-bootstrap",
                    "StackId": stack_id,
                    "CreationTime": when,
                    "StackStatus": "UPDATE_COMPLETE",
                }
            ]
        },
    )
    stubber.add_response("describe_stack_events", {"StackEvents": []})
    stubber.add_response("detect_stack_drift", {"StackDriftDetectionId": "d1"}, {"StackName": "shop-bootstrap"})
    detection = {"StackId": stack_id, "StackDriftDetectionId": "d1", "Timestamp": when}
    stubber.add_response(
        "describe_stack_drift_detection_status", {**detection, "DetectionStatus": "DETECTION_IN_PROGRESS"}
    )
    stubber.add_response(
        "describe_stack_drift_detection_status",
        {
            **detection,
            "DetectionStatus": "DETECTION_COMPLETE",
            "StackDriftStatus": "DRIFTED",
            "DriftedStackResourceCount": 1,
        },
    )
    stubber.add_response(
        "describe_stack_resource_drifts",
        {
            "StackResourceDrifts": [
                {
                    "StackId": stack_id,
                    "LogicalResourceId": "ArtifactsBucket",
                    "ResourceType": "AWS::S3::Bucket",
                    "StackResourceDriftStatus": "MODIFIED",
                    "Timestamp": when,
                }
            ]
        },
        {"StackName": "shop-bootstrap", "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]},
    )

    out, _ = run("stack_status", "--stack", "bootstrap", "--detect-drift")

    assert "Drift: DRIFTED, 1 resource(s) differ." in out
    assert "ArtifactsBucket  AWS::S3::Bucket  MODIFIED" in out
    stubber.assert_no_pending_responses()
