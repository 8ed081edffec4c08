"""destroy_stack on a small stack in moto (moto cannot delete the full one); termination protection through
Stubber, since moto 5.2.5 has no UpdateTerminationProtection."""

import json
from datetime import UTC, datetime

import boto3
import pytest
from django.core.management.base import CommandError

from tests.opsinfra.conftest import REGION, run


def stack_names() -> set[str]:
    return {stack["StackName"] for stack in boto3.client("cloudformation").describe_stacks()["Stacks"]}


@pytest.fixture
def app_stack(aws_env, small_stacks, outputs_dir):
    small_stacks["extra_resources"] = {"Keep": {"Type": "AWS::SNS::Topic", "DeletionPolicy": "Retain"}}
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--no-input", "--allow-wider-access")
    return outputs_dir / "outputs-shop-app-staging.json"


def test_destroy_after_typing_the_name_deletes_and_says_what_survives(app_stack, terminal):
    terminal("shop-app-staging")

    out, _ = run("destroy_stack")

    assert "Keep (AWS::SNS::Topic): kept as it is, outside any stack" in out
    assert "Stack shop-app-staging deleted." in out
    assert stack_names() == {"shop-bootstrap"}
    assert not app_stack.exists()


def test_destroy_with_a_wrong_name_deletes_nothing(app_stack, terminal):
    terminal("shop-app-production")

    with pytest.raises(CommandError, match=r"The name did not match: nothing was deleted\."):
        run("destroy_stack")

    assert stack_names() == {"shop-bootstrap", "shop-app-staging"}
    assert app_stack.exists()


def test_destroy_no_input_needs_the_stack_name(app_stack):
    with pytest.raises(CommandError, match="--no-input needs --stack-name NAME"):
        run("destroy_stack", "--no-input")

    out, _ = run("destroy_stack", "--no-input", "--stack-name", "shop-app-staging")

    assert "Stack shop-app-staging deleted." in out
    assert stack_names() == {"shop-bootstrap"}


def test_destroy_without_terminal_refuses(app_stack):
    with pytest.raises(CommandError, match="no terminal to confirm on"):
        run("destroy_stack")

    assert "shop-app-staging" in stack_names()


def test_destroy_unknown_stack_is_one_sentence(aws_env, small_stacks):
    with pytest.raises(CommandError, match=r"^There is no stack shop-nothing in us-east-1\.$"):
        run("destroy_stack", "--no-input", "--stack-name", "shop-nothing")


def test_destroy_refuses_a_protected_stack(aws_env, small_stacks):
    cfn = boto3.client("cloudformation")
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    cfn.create_stack(StackName="shop-app-staging", TemplateBody=body, EnableTerminationProtection=True)

    with pytest.raises(CommandError, match="termination protection on: pass --disable-termination-protection"):
        run("destroy_stack", "--no-input", "--stack-name", "shop-app-staging")

    assert stack_names() == {"shop-app-staging"}


def test_destroy_lifts_termination_protection_when_told(aws_env, small_stacks, stub_client):
    stubber = stub_client("cloudformation")
    stack_id = f"arn:aws:cloudformation:{REGION}:123456789012:stack/shop-app-staging/1"
    described = {
        "StackName": "shop-app-staging",
        "StackId": stack_id,
        "CreationTime": datetime(2026, 11, 25, tzinfo=UTC),
        "StackStatus": "CREATE_COMPLETE",
        "EnableTerminationProtection": True,
    }
    template = {"Resources": {"Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot"}}}

    def event(event_id, status, logical_id="shop-app-staging", kind="AWS::CloudFormation::Stack"):
        return {
            "StackId": stack_id,
            "EventId": event_id,
            "StackName": "shop-app-staging",
            "LogicalResourceId": logical_id,
            "ResourceType": kind,
            "Timestamp": datetime(2026, 11, 25, tzinfo=UTC),
            "ResourceStatus": status,
        }

    stubber.add_response("describe_stacks", {"Stacks": [described]})
    stubber.add_response("get_template", {"TemplateBody": json.dumps(template)})
    stubber.add_response(
        "update_termination_protection",
        {"StackId": stack_id},
        {"EnableTerminationProtection": False, "StackName": stack_id},
    )
    stubber.add_response("describe_stack_events", {"StackEvents": [event("e0", "CREATE_COMPLETE")]})
    stubber.add_response("delete_stack", {}, {"StackName": stack_id})
    deleting = [event("e2", "DELETE_COMPLETE", "Db", "AWS::RDS::DBInstance"), event("e1", "DELETE_IN_PROGRESS")]
    stubber.add_response("describe_stack_events", {"StackEvents": [*deleting, event("e0", "CREATE_COMPLETE")]})
    stubber.add_response("describe_stacks", {"Stacks": [{**described, "StackStatus": "DELETE_COMPLETE"}]})
    stubber.add_response("describe_stack_events", {"StackEvents": [*deleting, event("e0", "CREATE_COMPLETE")]})

    out, _ = run("destroy_stack", "--no-input", "--stack-name", "shop-app-staging", "--disable-termination-protection")

    assert "Db (AWS::RDS::DBInstance): a final snapshot is kept" in out
    assert "Db  DELETE_COMPLETE" in out
    assert "Stack shop-app-staging deleted." in out
    stubber.assert_no_pending_responses()


@pytest.fixture
def protected_stack(aws_env, small_stacks, outputs_dir):
    small_stacks["extra_resources"] = {
        "DatabaseInstance": {
            "Type": "AWS::RDS::DBInstance",
            "DeletionPolicy": "Snapshot",
            "Properties": {
                "DBInstanceIdentifier": "shop-app-staging-postgres",
                "Engine": "postgres",
                "DBInstanceClass": "db.t3.small",
                "AllocatedStorage": "20",
                "MasterUsername": "shop_admin",
                "MasterUserPassword": "not-a-real-password",
                "DeletionProtection": True,
            },
        }
    }
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--no-input", "--allow-wider-access")


def test_destroy_names_the_deletion_protected_database_and_the_command_that_lifts_it(protected_stack):
    out, _ = run("destroy_stack", "--no-input", "--stack-name", "shop-app-staging")

    assert "DatabaseInstance (AWS::RDS::DBInstance): a final snapshot is kept" in out
    assert "Deletion protection keeps these: the deletion stops at them (DELETE_FAILED" in out
    assert "  DatabaseInstance (AWS::RDS::DBInstance shop-app-staging-postgres):" in out
    assert (
        f"    aws rds modify-db-instance --region {REGION} --db-instance-identifier shop-app-staging-postgres "
        "--no-deletion-protection --apply-immediately"
    ) in out
    # moto deletes a protected instance with its stack; CloudFormation stops with DELETE_FAILED at it.
    assert stack_names() == {"shop-bootstrap"}


def test_destroy_says_nothing_of_deletion_protection_when_nothing_has_it(app_stack):
    out, _ = run("destroy_stack", "--no-input", "--stack-name", "shop-app-staging")

    assert "Deletion protection" not in out
