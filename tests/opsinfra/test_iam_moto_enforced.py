"""The pipeline's commands under moto's own IAM enforcement, with credentials of the synthesized roles.

Each test starts its own moto server (a subprocess: the count of unauthenticated requests,
INITIAL_NO_AUTH_ACTION_COUNT, is global to a process). Its first three requests make an administrator; from then
on every request is authorized. moto 5.2.5 checks resource ARNs only for S3, IAM, STS and SQS and ignores
conditions, so each role's policy is installed in its moto projection (docs/iam.md): statements keep their
actions, resources stay for S3/IAM/STS/SQS and become "*" elsewhere, conditions go.
"""

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from django.core.management.base import CommandError

from opsinfra import aws
from opsinfra.iam import pipeline
from opsinfra.iam import roles as role_model
from opsinfra.iam.policy import statements
from opsinfra.iam.roles import Place
from tests.opsinfra.conftest import ACCOUNT, REGION, run

ROOT = Path(__file__).resolve().parents[2]
# Services whose resource ARNs moto 5.2.5 compares with the policy; for the others it authorizes Resource "*".
RESOURCE_CHECKED = {"s3", "iam", "sts", "sqs"}
SETUP_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey


def projected(document: dict) -> dict:
    """What moto can enforce of a policy: actions everywhere, resources only where moto checks them."""
    kept = []
    for statement in statements(document):
        statement = {key: value for key, value in statement.items() if key != "Condition"}
        actions = statement.get("Action") or statement.get("NotAction")
        services = {action.split(":", 1)[0].lower() for action in ([actions] if isinstance(actions, str) else actions)}
        if not services <= RESOURCE_CHECKED:
            statement.pop("NotResource", None)
            statement["Resource"] = "*"
        kept.append(statement)
    return {"Version": "2012-10-17", "Statement": kept}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def enforced(monkeypatch, settings, tmp_path, clock):
    """A moto server of this test's own that enforces IAM after the administrator is made; yields its endpoint
    and the administrator's keys."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.opsinfra.emulator", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # Generous: the server imports moto first, and the machine may be busy.
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the enforcing moto server did not start on port {port}") from None
                time.sleep(0.2)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")  # fmt: skip
        iam.create_user(UserName="administrator")
        iam.put_user_policy(
            UserName="administrator",
            PolicyName="all",
            PolicyDocument=json.dumps({"Version": "2012-10-17",
                                       "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )  # fmt: skip
        key = iam.create_access_key(UserName="administrator")["AccessKey"]
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("AWS_REGION", REGION)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        settings.OPSINFRA = {**settings.OPSINFRA, "OUTPUTS_DIR": str(tmp_path / "shop-state"),
                             "POLL_SECONDS": (0, 0), "AWS_REGION": REGION}  # fmt: skip
        credentials = (key["AccessKeyId"], key["SecretAccessKey"], None)
        act_as(monkeypatch, credentials)
        yield endpoint, credentials
    finally:
        aws.reset()
        server.terminate()
        server.wait(timeout=30)


def client(service: str):
    """A client with the environment's credentials now (boto3's default session keeps the first ones it saw)."""
    return boto3.session.Session().client(service)


def act_as(monkeypatch, credentials) -> None:
    key, secret, token = credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    aws.reset()


def assume(monkeypatch, logical_id: str) -> None:
    """Give the role its synthesized policy (the bootstrap template's, resolved for this emulator) in moto's
    projection, as the administrator, then take the role's credentials."""
    cfn, iam = client("cloudformation"), client("iam")
    physical = {item["LogicalResourceId"]: item["PhysicalResourceId"]
                for item in cfn.describe_stack_resources(StackName="shop-bootstrap")["StackResources"]}  # fmt: skip
    place = Place(account=ACCOUNT, region=REGION, stack_name="shop-bootstrap", physical=physical)
    policies, _ = pipeline.pipeline_policies(pipeline.synthesized("bootstrap"), place)
    role = iam.get_role(RoleName=physical[logical_id])["Role"]
    for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
        iam.delete_role_policy(RoleName=role["RoleName"], PolicyName=name)
    for index, document in enumerate(policies[logical_id]):
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName=f"synthesized-{index}",
                            PolicyDocument=json.dumps(projected(document)))  # fmt: skip
    # Under enforcement moto answers the unsigned AssumeRoleWithWebIdentity with a 500, so the administrator
    # stands in for GitHub's OIDC provider in the trust policy and assumes the role.
    administrator = client("sts").get_caller_identity()["Arn"]
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": administrator}, "Action": "sts:AssumeRole"}]}  # fmt: skip
    iam.update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=json.dumps(trust))
    answer = client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="shop-github")["Credentials"]
    act_as(monkeypatch, (answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"]))


def test_projection_keeps_resources_only_where_moto_checks_them():
    document = {"Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/templates/*"},
        {"Effect": "Allow", "Action": ["cloudformation:CreateChangeSet"], "Resource": "arn:aws:cloudformation:*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x",
         "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}},
    ]}  # fmt: skip

    kept = projected(document)["Statement"]

    assert kept[0]["Resource"] == "arn:aws:s3:::b/templates/*"
    assert kept[1]["Resource"] == "*"
    assert kept[2] == {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"}


def test_enforced_deploy_role_deploys_the_app_and_purges(enforced, monkeypatch, tmp_path):
    _, administrator = enforced
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    assume(monkeypatch, pipeline.DEPLOY_ROLE)
    outputs = str(tmp_path / "outputs-app.json")

    run(
        "deploy_stack",
        "--stack",
        "app",
        "--env",
        "production",
        "--no-input",
        "--allow-wider-access",
        "--outputs-file",
        outputs,
    )
    out, _ = run("purge_cdn", "--env", "production", "--outputs-file", outputs)

    distribution = json.loads(Path(outputs).read_text())["DistributionId"]
    assert f"created on {distribution} for 1 path(s)" in out
    act_as(monkeypatch, administrator)
    stack = client("cloudformation").describe_stacks(StackName="shop-app-production")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_enforced_deploy_role_may_not_write_outside_its_prefixes(enforced, monkeypatch, settings):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    saved = Path(settings.OPSINFRA["OUTPUTS_DIR"]) / "outputs-shop-bootstrap.json"
    bucket = json.loads(saved.read_text())["ArtifactsBucketName"]
    assume(monkeypatch, pipeline.DEPLOY_ROLE)
    s3 = client("s3")

    s3.put_object(Bucket=bucket, Key="releases/v1.tar.gz", Body=b"bundle")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.put_object(Bucket=bucket, Key="elsewhere/v1.tar.gz", Body=b"bundle")

    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["releases/v1.tar.gz"]


def test_enforced_preview_role_creates_a_change_set_but_cannot_deploy(enforced, monkeypatch, tmp_path):
    _, administrator = enforced
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    assume(monkeypatch, pipeline.DEPLOY_ROLE)
    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--allow-wider-access")
    act_as(monkeypatch, administrator)
    assume(monkeypatch, pipeline.PREVIEW_ROLE)

    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--no-execute",
        "--changeset-name", "preview-pr-7-1", "--parameter", "AlertEmail=oncall@example.com")  # fmt: skip
    # Refused at its first write: the rotation function's bundle, which only the deploy role may put.
    with pytest.raises(CommandError, match=r"(?i)not authorized|AccessDenied|Access denied"):
        run("deploy_stack", "--stack", "app", "--env", "production", "--no-input",
            "--execute-changeset", "preview-pr-7-1")  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError, match=r"AccessDenied|not authorized"):
        client("cloudformation").execute_change_set(ChangeSetName="preview-pr-7-1", StackName="shop-app-production")
    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--delete-changeset", "preview-pr-7-1")

    act_as(monkeypatch, administrator)
    listed = client("cloudformation").list_change_sets(StackName="shop-app-production")["Summaries"]
    assert [item for item in listed if item["ChangeSetName"] == "preview-pr-7-1"] == []


def test_enforced_loadgen_role_reads_its_tests_and_writes_only_its_results(enforced, monkeypatch, settings):
    # An administrator deploys the fleet (docs/loadgen.md); its instances then act as the role CloudFormation made.
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    stop = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run("deploy_stack", "--stack", "loadgen", "--env", "staging", "--no-input", "--allow-wider-access",
        "--parameter", f"StopAt={stop}", "--parameter", "TargetHost=https://staging.example.com")  # fmt: skip
    saved = Path(settings.OPSINFRA["OUTPUTS_DIR"]) / "outputs-shop-bootstrap.json"
    bucket = json.loads(saved.read_text())["ArtifactsBucketName"]
    client("s3").put_object(Bucket=bucket, Key="releases/v1.tar.gz", Body=b"bundle")
    iam = client("iam")
    physical = {item["LogicalResourceId"]: item["PhysicalResourceId"] for item in
                client("cloudformation").describe_stack_resources(StackName="shop-loadgen-staging")["StackResources"]
                if item.get("PhysicalResourceId")}  # fmt: skip
    role = iam.get_role(RoleName=physical["LoadgenInstanceRole"])["Role"]
    # moto 5.2.5 keeps an inline policy CloudFormation put in a form its enforcement cannot read: the role gets the
    # synthesized template's policy, resolved for this stack, as the other roles here do.
    place = Place(account=ACCOUNT, region=REGION, stack_name="shop-loadgen-staging", physical=physical,
                  parameters={"ArtifactsBucketName": bucket})  # fmt: skip
    synthesized = role_model.roles(pipeline.synthesized("loadgen", env="staging"), place)["LoadgenInstanceRole"]
    for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
        iam.delete_role_policy(RoleName=role["RoleName"], PolicyName=name)
    for index, document in enumerate(synthesized.policies):
        assert {item["Action"] for item in statements(document)} == {"s3:GetObject", "s3:PutObject"}
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName=f"synthesized-{index}",
                            PolicyDocument=json.dumps(projected(document)))  # fmt: skip
    # EC2 cannot assume it here: the administrator stands in for the instance.
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": client("sts").get_caller_identity()["Arn"]}}]}  # fmt: skip
    iam.update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=json.dumps(trust))
    answer = client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="loadgen-master")["Credentials"]
    act_as(monkeypatch, (answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"]))
    s3 = client("s3")
    prefix = "loadgen/shop-loadgen-staging"

    assert s3.get_object(Bucket=bucket, Key=f"{prefix}/loadtests.tar.gz")["Body"].read()[:2] == b"\x1f\x8b"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/results/20301127T2000Z/summary.json", Body=b"{}")
    for key in (f"{prefix}/loadtests.tar.gz", "releases/v2.tar.gz", "loadgen/shop-loadgen-production/results/x"):
        with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.get_object(Bucket=bucket, Key="releases/v1.tar.gz")
