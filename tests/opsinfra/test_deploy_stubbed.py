"""What moto 5.2.5 cannot produce, through botocore's Stubber on the CloudFormation client: per-resource events,
failures and rollbacks, stuck stacks and their recovery, cancel on timeout, termination protection. Each test
asserts what the operator sees, and the Stubber fails any call the script did not expect (nothing else written)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY
from django.core.management.base import CommandError

from tests.opsinfra.conftest import REGION, run

STACK = "shop-bootstrap"
STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}/1"
CHANGE_SET_ID = f"arn:aws:cloudformation:{REGION}:123456789012:changeSet/shop-x/1"
T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


class Script:
    """The CloudFormation answers of one deploy, in the order the command asks."""

    def __init__(self, stubber):
        self.stubber = stubber
        self.history: list[dict] = []
        self.count = 0

    def event(self, logical_id, status, reason="", kind=None):
        kind = kind or ("AWS::CloudFormation::Stack" if logical_id == STACK else "AWS::S3::Bucket")
        raw = {
            "StackId": STACK_ID,
            "EventId": f"e{self.count}",
            "StackName": STACK,
            "LogicalResourceId": logical_id,
            "ResourceType": kind,
            "Timestamp": T0 + timedelta(seconds=self.count),
            "ResourceStatus": status,
        }
        if reason:
            raw["ResourceStatusReason"] = reason
        self.count += 1
        return raw

    def events(self, *new_events):
        """describe_stack_events answers newest first, the whole history so far."""
        self.history.extend(new_events)
        self.stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(self.history))})

    def stack(self, status, outputs=None, protection=False):
        raw = {
            "StackName": STACK,
            "StackId": STACK_ID,
            "CreationTime": T0,
            "StackStatus": status,
            "EnableTerminationProtection": protection,
            "Parameters": [],
        }
        if outputs is not None:
            raw["Outputs"] = [{"OutputKey": key, "OutputValue": value} for key, value in outputs.items()]
        self.stubber.add_response("describe_stacks", {"Stacks": [raw]})

    def stack_missing(self):
        self.stubber.add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {STACK} does not exist", http_status_code=400
        )

    def change_set(self, change_set_type, changes=("ArtifactsBucket", "CloudFormationExecutionRole")):
        self.stubber.add_response(
            "create_change_set",
            {"Id": CHANGE_SET_ID, "StackId": STACK_ID},
            {**_ANY_CHANGE_SET, "ChangeSetType": change_set_type},
        )
        self.stubber.add_response(
            "describe_change_set",
            {
                "ChangeSetId": CHANGE_SET_ID,
                "ChangeSetName": "shop-x",
                "StackId": STACK_ID,
                "StackName": STACK,
                "Status": "CREATE_COMPLETE",
                "ExecutionStatus": "AVAILABLE",
                "Changes": [
                    {
                        "Type": "Resource",
                        "ResourceChange": {
                            "Action": "Add" if change_set_type == "CREATE" else "Modify",
                            "LogicalResourceId": logical_id,
                            "ResourceType": "AWS::S3::Bucket" if "Bucket" in logical_id else "AWS::IAM::Role",
                            **({} if change_set_type == "CREATE" else {"Replacement": "True"}),
                        },
                    }
                    for logical_id in changes
                ],
            },
        )
        if change_set_type == "UPDATE":
            # What the deploy compares the new template with: the stack's, as CloudFormation holds it.
            self.stubber.add_response(
                "get_template",
                {"TemplateBody": json.dumps({"Resources": {}})},
                {"StackName": STACK_ID, "TemplateStage": "Original"},
            )

    def execute(self, disable_rollback=False):
        self.events()
        self.stubber.add_response(
            "execute_change_set",
            {},
            {
                "ChangeSetName": CHANGE_SET_ID,
                "StackName": STACK_ID,
                "ClientRequestToken": ANY,
                "DisableRollback": disable_rollback,
            },
        )

    def poll(self, status, *new_events):
        """One round of following: the new events appear, then the stack's status."""
        self.history.extend(new_events)
        self.events()
        self.stack(status)

    def final(self):
        self.events()


_ANY_CHANGE_SET = {
    "StackName": STACK,
    "ChangeSetName": ANY,
    "Parameters": ANY,
    "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    "Tags": ANY,
    "ClientToken": ANY,
    "Description": ANY,
    "TemplateBody": ANY,
}


@pytest.fixture
def script(aws_env, small_stacks, stub_client):
    stubber = stub_client("cloudformation")
    yield Script(stubber)
    stubber.assert_no_pending_responses()


def test_deploy_streams_each_resource_with_progress_and_turns_on_protection(script, outputs_dir):
    s = script
    s.stack_missing()
    s.change_set("CREATE")
    s.history.append(s.event(STACK, "REVIEW_IN_PROGRESS"))
    s.execute()
    s.poll("CREATE_IN_PROGRESS", s.event(STACK, "CREATE_IN_PROGRESS"), s.event("ArtifactsBucket", "CREATE_IN_PROGRESS"))
    s.poll("CREATE_IN_PROGRESS", s.event("ArtifactsBucket", "CREATE_COMPLETE"))
    role = s.event("CloudFormationExecutionRole", "CREATE_COMPLETE", kind="AWS::IAM::Role")
    s.poll("CREATE_COMPLETE", role, s.event(STACK, "CREATE_COMPLETE"))
    s.final()
    s.stubber.add_response(
        "update_termination_protection",
        {"StackId": STACK_ID},
        {"EnableTerminationProtection": True, "StackName": STACK},
    )
    s.stack("CREATE_COMPLETE", outputs={"ArtifactsBucketName": "shop-artifacts"})

    out, _ = run(
        "deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access", "--termination-protection"
    )

    lines = out.splitlines()
    assert "[0/2] 01:00:02  ArtifactsBucket  CREATE_IN_PROGRESS" in lines
    assert "[1/2] 01:00:03  ArtifactsBucket  CREATE_COMPLETE" in lines
    assert "[2/2] 01:00:04  CloudFormationExecutionRole  CREATE_COMPLETE" in lines
    assert lines.index("[1/2] 01:00:03  ArtifactsBucket  CREATE_COMPLETE") < lines.index(
        "[2/2] 01:00:04  CloudFormationExecutionRole  CREATE_COMPLETE"
    )
    assert "Termination protection is on." in out
    assert json.loads((outputs_dir / f"outputs-{STACK}.json").read_text()) == {"ArtifactsBucketName": "shop-artifacts"}


def test_deploy_failure_shows_first_failing_events_final_status_and_next_step(script, outputs_dir):
    s = script
    s.stack_missing()
    s.change_set("CREATE")
    s.history.append(s.event(STACK, "REVIEW_IN_PROGRESS"))
    s.execute()
    s.poll("CREATE_IN_PROGRESS", s.event(STACK, "CREATE_IN_PROGRESS"))
    failed = s.event("ArtifactsBucket", "CREATE_FAILED", "API: s3:CreateBucket Access Denied")
    cancelled = s.event(
        "CloudFormationExecutionRole", "CREATE_FAILED", "Resource creation cancelled", kind="AWS::IAM::Role"
    )
    rolling = s.event(STACK, "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [ArtifactsBucket].")
    s.poll("ROLLBACK_IN_PROGRESS", failed, cancelled, rolling)
    s.poll("ROLLBACK_COMPLETE", s.event("ArtifactsBucket", "DELETE_COMPLETE"), s.event(STACK, "ROLLBACK_COMPLETE"))
    s.final()

    with pytest.raises(CommandError, match=f"^Deploy of {STACK} failed: the stack is ROLLBACK_COMPLETE.$"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")


def test_deploy_failure_report_lists_cause_before_cancellations(script, outputs_dir):
    from io import StringIO

    from django.core.management import call_command

    s = script
    s.stack_missing()
    s.change_set("CREATE")
    s.history.append(s.event(STACK, "REVIEW_IN_PROGRESS"))
    s.execute()
    creating = s.event(STACK, "CREATE_IN_PROGRESS")
    failed = s.event("ArtifactsBucket", "CREATE_FAILED", "API: s3:CreateBucket Access Denied")
    cancelled = s.event(
        "CloudFormationExecutionRole", "CREATE_FAILED", "Resource creation cancelled", kind="AWS::IAM::Role"
    )
    s.poll("ROLLBACK_COMPLETE", creating, failed, cancelled, s.event(STACK, "ROLLBACK_COMPLETE"))
    s.final()
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError):
        call_command(
            "deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access", stdout=out, stderr=err
        )

    report = err.getvalue()
    assert (
        "What failed first:\n  ArtifactsBucket (AWS::S3::Bucket): CREATE_FAILED: API: s3:CreateBucket Access Denied\n"
        in report
    )
    assert "Resource creation cancelled" not in report
    assert f"Final status of {STACK}: ROLLBACK_COMPLETE." in report
    assert "Next: The first create failed and was rolled back" in report
    assert "01:00:02  ArtifactsBucket  CREATE_FAILED  API: s3:CreateBucket Access Denied" in out.getvalue()
    assert not (outputs_dir / f"outputs-{STACK}.json").exists()


def test_deploy_rollback_complete_is_refused_without_a_terminal_to_confirm(script):
    script.stack("ROLLBACK_COMPLETE")

    with pytest.raises(
        CommandError,
        match=(
            "is in ROLLBACK_COMPLETE: run it again with a terminal to confirm, "
            f"or delete it with `manage.py destroy_stack --stack-name {STACK}"
        ),
    ):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")


def test_deploy_rollback_complete_declined_changes_nothing(script, terminal):
    script.stack("ROLLBACK_COMPLETE")
    terminal("n")

    with pytest.raises(CommandError, match="Nothing was changed"):
        run("deploy_stack", "--stack", "bootstrap")


def test_deploy_rollback_complete_is_deleted_and_recreated_after_confirmation(script, terminal, outputs_dir):
    s = script
    terminal("y", "y")
    s.stack("ROLLBACK_COMPLETE")
    s.events(s.event(STACK, "ROLLBACK_COMPLETE"))
    s.stack("ROLLBACK_COMPLETE")
    s.stubber.add_response("delete_stack", {}, {"StackName": STACK_ID})
    s.poll("DELETE_COMPLETE", s.event(STACK, "DELETE_IN_PROGRESS"), s.event(STACK, "DELETE_COMPLETE"))
    s.final()
    s.history = []
    s.change_set("CREATE")
    s.history.append(s.event(STACK, "REVIEW_IN_PROGRESS"))
    s.execute()
    s.poll("CREATE_COMPLETE", s.event(STACK, "CREATE_IN_PROGRESS"), s.event(STACK, "CREATE_COMPLETE"))
    s.final()
    s.stack("CREATE_COMPLETE", outputs={})

    out, err = run("deploy_stack", "--stack", "bootstrap")

    assert "its first create failed and it holds nothing" in err
    assert f"Delete {STACK} and create it again? [y/N]" in out
    assert f"Deleted {STACK}; creating it again." in out
    assert f"Stack {STACK}: CREATE_COMPLETE." in out
    assert json.loads((outputs_dir / f"outputs-{STACK}.json").read_text()) == {}


def test_deploy_update_rollback_failed_offers_to_continue_the_rollback(script, terminal):
    s = script
    terminal("yes", "no")
    s.stack("UPDATE_ROLLBACK_FAILED")
    s.stack("UPDATE_ROLLBACK_FAILED")
    s.events(s.event(STACK, "UPDATE_ROLLBACK_FAILED", "ArtifactsBucket: cannot delete a non-empty bucket"))
    s.stubber.add_response("continue_update_rollback", {}, {"StackName": STACK_ID})
    s.poll("UPDATE_ROLLBACK_COMPLETE", s.event(STACK, "UPDATE_ROLLBACK_COMPLETE"))
    s.final()
    s.stack("UPDATE_ROLLBACK_COMPLETE")
    s.change_set("UPDATE")

    out, err = run("deploy_stack", "--stack", "bootstrap")

    assert "is in UPDATE_ROLLBACK_FAILED: a rollback could not finish" in err
    assert f"Continue the rollback of {STACK}? [y/N]" in out
    assert f"Rollback of {STACK} completed; deploying." in out
    assert "Modify  ArtifactsBucket" in out
    assert "Not executed. To execute it later:" in out


def test_deploy_update_rollback_failed_without_terminal_is_refused(script):
    script.stack("UPDATE_ROLLBACK_FAILED")

    with pytest.raises(CommandError, match="UPDATE_ROLLBACK_FAILED: run it again with a terminal"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "DELETE_FAILED", "ROLLBACK_FAILED"])
def test_deploy_other_stuck_states_are_explained(script, status):
    script.stack(status)

    with pytest.raises(CommandError, match=f"Stack {STACK} is (busy \\({status}\\)|in {status})"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")


def test_deploy_update_past_timeout_is_cancelled_and_rolls_back(script):
    s = script
    s.stack("UPDATE_COMPLETE")
    s.change_set("UPDATE")
    s.history.append(s.event(STACK, "UPDATE_COMPLETE"))
    s.execute()
    s.poll("UPDATE_IN_PROGRESS", s.event(STACK, "UPDATE_IN_PROGRESS"))
    s.poll("UPDATE_IN_PROGRESS")
    s.poll("UPDATE_IN_PROGRESS")
    s.stubber.add_response("cancel_update_stack", {}, {"StackName": STACK_ID})
    s.poll(
        "UPDATE_ROLLBACK_COMPLETE",
        s.event(STACK, "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated"),
        s.event(STACK, "UPDATE_ROLLBACK_COMPLETE"),
    )
    s.final()

    with pytest.raises(CommandError, match=f"^Deploy of {STACK} did not finish within 0.03 minutes.$"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access", "--timeout", "0.03")


def test_deploy_stateful_replacement_is_highlighted(script):
    s = script
    s.stack("UPDATE_COMPLETE")
    s.change_set("UPDATE")

    out, err = run("deploy_stack", "--stack", "bootstrap", "--no-execute")

    assert "Modify  ArtifactsBucket              AWS::S3::Bucket  True" in out
    assert "ArtifactsBucket holds data and would be replaced" in err
    assert "CloudFormationExecutionRole holds data" not in err


def test_deploy_create_past_timeout_is_not_cancelled_and_says_it_goes_on(script):
    s = script
    s.stack_missing()
    s.change_set("CREATE")
    s.history.append(s.event(STACK, "REVIEW_IN_PROGRESS"))
    s.execute(disable_rollback=True)
    s.poll("CREATE_IN_PROGRESS", s.event(STACK, "CREATE_IN_PROGRESS"))
    s.poll("CREATE_IN_PROGRESS")
    s.poll("CREATE_IN_PROGRESS")

    with pytest.raises(CommandError, match=r"did not finish within 0\.03 minutes"):
        run(
            "deploy_stack",
            "--stack",
            "bootstrap",
            "--no-input",
            "--allow-wider-access",
            "--timeout",
            "0.03",
            "--disable-rollback",
        )

    # No cancel_update_stack was stubbed: a create is never cancelled (Stubber fails any unexpected call).
