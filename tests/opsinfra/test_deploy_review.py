"""What deploy_stack shows before it executes, what it refuses before any AWS call, and what it prints where:
through call_command against the moto server, with the small stand-in templates of conftest."""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import django
import pytest
from django.core.management.base import CommandError

from opsinfra import aws
from tests.opsinfra.conftest import REGION, run

OPEN_INGRESS = {
    "AppOpenGroup": {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": "test",
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}],
        },
    }
}


def cfn():
    return boto3.client("cloudformation", region_name=REGION)


def stack_status(name: str) -> str | None:
    stacks = [stack for stack in cfn().describe_stacks()["Stacks"] if stack["StackName"] == name]
    return stacks[0]["StackStatus"] if stacks else None


def available_change_sets(name: str) -> list[str]:
    return [
        item["ChangeSetName"]
        for item in cfn().list_change_sets(StackName=name)["Summaries"]
        if item["StackName"] == name and item["ExecutionStatus"] == "AVAILABLE"
    ]


@pytest.fixture
def bootstrapped(aws_env, small_stacks, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--no-input")
    return small_stacks


# --- what changes -----------------------------------------------------------------------------------------------


def test_parameter_change_shows_old_and_new_value_and_the_property_it_resolves_into(bootstrapped):
    out, _ = run("deploy_stack", "--no-input", "--parameter", "InstanceType=t3.large")

    lines = out.splitlines()
    assert "  InstanceType  t3.medium → t3.large" in lines
    assert "  AlertsTopic (AWS::SNS::Topic)" in lines
    assert "    Properties.DisplayName: t3.medium → t3.large" in lines
    assert "Access (IAM and security groups):" not in lines
    assert "Stack shop-app-staging: UPDATE_COMPLETE." in out


def test_execute_changeset_shows_what_the_reviewed_change_set_changes(bootstrapped):
    out, _ = run("deploy_stack", "--no-execute", "--parameter", "InstanceType=t3.large")
    name = next(line.split()[2].rstrip(":") for line in out.splitlines() if line.startswith("Change set "))

    out, _ = run("deploy_stack", "--no-input", "--execute-changeset", name)

    assert "  InstanceType  t3.medium → t3.large" in out.splitlines()
    assert "Stack shop-app-staging: UPDATE_COMPLETE." in out


# --- wider access -----------------------------------------------------------------------------------------------


def test_wider_access_without_a_terminal_needs_the_flag_and_nothing_is_executed(aws_env, small_stacks, outputs_dir):
    with pytest.raises(CommandError, match=r"widens access \(1 IAM grant\).*--allow-wider-access: nothing was"):
        run("deploy_stack", "--stack", "bootstrap", "--no-input")

    assert stack_status("shop-bootstrap") in {None, "REVIEW_IN_PROGRESS"}
    assert available_change_sets("shop-bootstrap") == []
    assert not (outputs_dir / "outputs-shop-bootstrap.json").exists()


def test_wider_access_lists_the_grant_it_adds(aws_env, small_stacks, outputs_dir):
    out, err = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    assert (
        "  + CloudFormationExecutionRole IAM: trust: Allow sts:AssumeRole to Service cloudformation.amazonaws.com"
        "  [widens access]"
    ) in out.splitlines()
    assert "This change widens access (1 IAM grant)" in err
    assert stack_status("shop-bootstrap") == "CREATE_COMPLETE"


def test_security_group_rule_added_is_called_out_and_confirmed_at_a_terminal(bootstrapped, terminal):
    bootstrapped["extra_resources"] = OPEN_INGRESS
    terminal("no")

    out, _ = run("deploy_stack")

    assert "  + AppOpenGroup security group: ingress tcp port 443 from 0.0.0.0/0  [widens access]" in out
    assert "which widens access? [y/N]" in out
    assert "Not executed." in out
    assert "AppOpenGroup" not in {
        item["LogicalResourceId"]
        for item in cfn().describe_stack_resources(StackName="shop-app-staging")["StackResources"]
    }


def test_removing_a_rule_narrows_access_and_needs_no_flag(bootstrapped):
    bootstrapped["extra_resources"] = OPEN_INGRESS
    run("deploy_stack", "--no-input", "--allow-wider-access")
    bootstrapped["extra_resources"] = {}

    out, err = run("deploy_stack", "--no-input")

    assert "  - AppOpenGroup security group: ingress tcp port 443 from 0.0.0.0/0" in out.splitlines()
    assert "widens" not in err
    assert "Stack shop-app-staging: UPDATE_COMPLETE." in out


# --- refused before any AWS call ------------------------------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch, tmp_path, settings):
    """No credentials anywhere: any AWS call would fail with "No AWS credentials found"."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a call could not succeed
    settings.OPSINFRA = {**settings.OPSINFRA, "OUTPUTS_DIR": str(tmp_path / "state")}
    aws.reset()
    yield
    aws.reset()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["stack_status", "--events", "-1"], "--events -1: give how many"),
        (["schedule_peak", "--start", "yesterday", "--end", "tomorrow"], "'yesterday' is not a time"),
        (["schedule_peak", "--start", "2030-01-02T00:00", "--end", "2030-01-01T00:00"], "is not after the start"),
        (["schedule_peak", "--start", "2020-01-01T00:00", "--end", "2020-01-02T00:00"], "is in the past"),
        (
            ["schedule_peak", "--start", "2030-01-01T00:00", "--end", "2030-01-02T00:00", "--capacity", "0"],
            "at least 1",
        ),
        (["schedule_peak", "--list", "--start", "2030-01-01T00:00"], "needs both --start and --end"),
        (["purge_cdn", "api/products"], "start with '/'"),
        (["purge_cdn", "--timeout", "0"], "--timeout 0"),
        (["deploy_app", "--release", "../v1"], "may hold only letters"),
        (["deploy_app", "--release", "v1", "--timeout", "-5"], "--timeout -5"),
        (["destroy_stack", "--no-input"], "--no-input needs --stack-name"),
        (["deploy_stack", "--no-input", "--parameter", "NatGateways"], "is not KEY=VALUE"),
        (
            ["deploy_stack", "--no-input", "--parameter", "NatGateways=7"],
            "NatGateways=7 is not allowed: it takes 1 or 3",
        ),
        (["deploy_stack", "--no-input", "--parameter", "DatabaseEngineVersion=16.1"], "does not match the pattern"),
        (["deploy_stack", "--no-input", "--parameter", "Nope=1"], "Nope is not a parameter of the app template"),
        (["deploy_stack", "--no-execute", "--changeset-name", "pr 7; rm"], "is not a change set name"),
        (["deploy_stack", "--no-input", "--timeout", "0"], "--timeout 0"),
        (["deploy_stack", "--no-input", "--rollback-alarm", "my-alarm"], "is not a CloudWatch alarm ARN"),
        (["deploy_stack", "--no-input", "--execute-changeset", "x", "--parameter", "A=1"], "--parameter does not"),
        (["deploy_stack", "--no-execute", "--delete-changeset", "x"], "cannot be combined"),
    ],
)
def test_commands_refuse_their_own_bad_arguments_before_looking_for_credentials(no_credentials, arguments, message):
    with pytest.raises(CommandError) as refused:
        run(*arguments)

    assert message in str(refused.value)
    assert "credentials" not in str(refused.value)


# --- output -----------------------------------------------------------------------------------------------------


def test_library_info_logs_stay_off_the_terminal_by_default(aws_env, small_stacks, outputs_dir):
    out, err = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")

    assert "Stack shop-bootstrap: CREATE_COMPLETE." in out
    assert '{"time"' not in out
    assert "Found credentials" not in out + err
    assert "Run scan of template" not in out + err


def test_log_format_json_writes_library_records_as_json_on_stderr_only(aws_env, small_stacks, outputs_dir):
    out, err = run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access", "--log-format", "json")

    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert "botocore.credentials" in {record["logger"] for record in records}
    assert all(record["level"] == "INFO" for record in records if record["logger"].startswith("botocore"))
    assert '{"time"' not in out


def test_djangos_version_option_answers_for_deploy_app():
    done = subprocess.run(
        [sys.executable, "manage.py", "deploy_app", "--version"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == django.get_version()
