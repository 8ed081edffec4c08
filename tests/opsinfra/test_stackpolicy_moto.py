"""The app stack's stack policy, set by deploy_stack on the emulator (moto stores a policy; it does not enforce it,
so what the policy refuses is checked by evaluating it as CloudFormation does)."""

import json
import re

import boto3
import pytest
from django.core.management.base import CommandError

from opsinfra.errors import DeployFailed
from opsinfra.services import deploy, stackpolicy
from tests.opsinfra.conftest import run

APP = "shop-app-staging"


def policy_of(stack_name: str) -> dict | None:
    body = boto3.client("cloudformation").get_stack_policy(StackName=stack_name).get("StackPolicyBody")
    return json.loads(body) if body else None


def allows(policy: dict, action: str, logical_id: str) -> bool:
    """CloudFormation's rule: an explicit Deny wins, else an Allow is needed."""

    def matching(effect):
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if statement["Effect"] != effect:
                continue
            if any(re.fullmatch(a.replace("*", ".*"), action) for a in actions) and any(
                r == "*" or r == f"LogicalResourceId/{logical_id}" for r in resources
            ):
                yield statement

    return not any(matching("Deny")) and any(matching("Allow"))


@pytest.fixture
def app_created(aws_env, small_stacks, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--no-input", "--allow-wider-access")
    return small_stacks


@pytest.fixture
def policy_during_execution(monkeypatch) -> list:
    """The stack policy in force when each change set was executed."""
    seen = []
    original = deploy.deploy_execute

    def execute(**kwargs):
        seen.append(policy_of(APP))
        return original(**kwargs)

    monkeypatch.setattr(deploy, "deploy_execute", execute)
    return seen


def test_created_app_stack_refuses_replacing_or_deleting_the_database_and_the_cache(app_created):
    policy = policy_of(APP)

    assert policy == stackpolicy.PROTECTING
    for name in ("DatabaseInstance", "CacheReplicationGroup"):
        assert not allows(policy, "Update:Replace", name)
        assert not allows(policy, "Update:Delete", name)
        assert allows(policy, "Update:Modify", name)
    assert allows(policy, "Update:Replace", "ComputeLaunchTemplate")
    assert policy_of("shop-bootstrap") is None


def test_update_runs_under_the_protecting_policy(app_created, policy_during_execution):
    boto3.client("cloudformation").set_stack_policy(StackName=APP, StackPolicyBody=json.dumps(stackpolicy.LIFTED))
    app_created["topics"] = 2

    out, _ = run("deploy_stack", "--no-input", "--allow-wider-access")

    assert "UPDATE_COMPLETE" in out
    assert policy_during_execution == [stackpolicy.PROTECTING]
    assert policy_of(APP) == stackpolicy.PROTECTING


def test_lift_stack_policy_allows_replacement_for_that_update_only(app_created, policy_during_execution):
    app_created["topics"] = 2

    run("deploy_stack", "--no-input", "--allow-wider-access", "--lift-stack-policy")

    (during,) = policy_during_execution
    assert allows(during, "Update:Replace", "DatabaseInstance") and allows(during, "Update:Delete", "DatabaseInstance")
    assert policy_of(APP) == stackpolicy.PROTECTING


def test_lifted_policy_is_set_back_when_the_execution_fails(app_created, monkeypatch):
    def fail(**kwargs):
        assert policy_of(APP) == stackpolicy.LIFTED
        raise DeployFailed("the execution failed")

    monkeypatch.setattr(deploy, "deploy_execute", fail)
    app_created["topics"] = 2

    with pytest.raises(CommandError, match="the execution failed"):
        run("deploy_stack", "--no-input", "--allow-wider-access", "--lift-stack-policy")

    assert policy_of(APP) == stackpolicy.PROTECTING
    # Nothing was executed: the stack still has its one topic.
    resources = boto3.client("cloudformation").describe_stack_resources(StackName=APP)["StackResources"]
    assert [r["LogicalResourceId"] for r in resources if r["ResourceType"] == "AWS::SNS::Topic"] == ["AlertsTopic"]
