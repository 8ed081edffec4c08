"""The ops commands run end to end against moto's HTTP server on 127.0.0.1, started once per test session.

Every test gets a fresh emulator (reset over moto's API), fake credentials, AWS_ENDPOINT_URL pointing at the server
and an outputs directory of its own. What moto 5.2.5 cannot do is stubbed in the tests that need it, with botocore's
Stubber; where moto's CloudFormation is wrong or incomplete, tests/opsinfra/emulator.py patches it inside the
server (which runs in a thread of this process).
"""

import json
import logging
import os
import socket
from dataclasses import dataclass
from io import StringIO

import pytest
import requests
from botocore.stub import Stubber
from django.core.management import call_command

from opsinfra import aws
from opsinfra.iam import pipeline, recorder
from opsinfra.iam.roles import Place
from opsinfra.services import deploy, events, templates
from tests.opsinfra import emulator
from tests.workers import worker_ports

# The suite's ports for the moto server (SHOP_TEST_PORTS=FIRST-LAST moves them into a range of one's own); each
# pytest-xdist worker probes its own share of them.
_FIRST, _LAST = (int(port) for port in os.environ.get("SHOP_TEST_PORTS", "8401-8419").split("-"))
PORTS = range(_FIRST, _LAST + 1)
REGION = "us-east-1"
# moto's default account: the ARNs the commands see on the emulator.
ACCOUNT = "123456789012"
# Options every Django command has; they say nothing about what the command does.
COMMON_OPTIONS = {"stdout", "stderr", "verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color",
                  "skip_checks"}  # fmt: skip


def _free_port() -> int:
    ports = worker_ports(PORTS)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} for the moto server")


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    # The server logs each request at INFO; test output should show the commands' own lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    patcher = pytest.MonkeyPatch()
    emulator.patch_moto(patcher)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patcher.undo()


class NoWaitClock(events.Clock):
    """Polls without sleeping; time moves only when a test moves it."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1.0)


@pytest.fixture
def clock(monkeypatch):
    fake = NoWaitClock()
    monkeypatch.setattr(events, "clock", fake)
    monkeypatch.setattr("opsinfra.services.changesets.clock", fake)
    return fake


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS call the ops code makes through opsinfra.aws.client, as IAM authorizes it, with the command that
    made it (docs/iam.md). Test set-up calls (boto3 directly) are not recorded."""
    from django.core.management.base import BaseCommand

    recording = recorder.Recorder(account=ACCOUNT)
    real_client = aws.client

    def client(service, *, region=None):
        made = real_client(service, region=region)
        recording.attach(made)
        return made

    original_execute = BaseCommand.execute

    def execute(command, *args, **options):
        name = command.__module__.rsplit(".", 1)[-1]
        shown = tuple(sorted((key, _frozen(value)) for key, value in options.items() if key not in COMMON_OPTIONS))
        token = recorder.current_command.set(recorder.Invocation(name, shown))
        try:
            return original_execute(command, *args, **options)
        finally:
            recorder.current_command.reset(token)

    monkeypatch.setattr(aws, "client", client)
    monkeypatch.setattr(BaseCommand, "execute", execute)
    return recording


@pytest.fixture(scope="session")
def bootstrap_synthesized():
    return pipeline.synthesized("bootstrap")


def _deployed_physical_ids(endpoint: str, stack_name: str) -> dict[str, str]:
    import boto3

    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    try:
        listed = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    except cfn.exceptions.ClientError:
        return {}
    return {item["LogicalResourceId"]: item["PhysicalResourceId"] for item in listed}


@pytest.fixture
def iam_checked(request, aws_calls, bootstrap_synthesized, moto_server):
    """After the test: every call a command made must be allowed by the role that runs the command in production,
    as the synthesized bootstrap template defines it. Tests on the hand-made small templates are not production's
    calls and are not checked."""
    yield aws_calls
    if "small_stacks" in request.fixturenames:
        return
    physical = _deployed_physical_ids(moto_server, "shop-bootstrap")
    if "BootstrapExecutionRole" not in physical:
        physical = {}
    place = Place(account=ACCOUNT, region=REGION, stack_name="shop-bootstrap", physical=physical)
    policies, boundaries = pipeline.pipeline_policies(bootstrap_synthesized, place)
    refused = pipeline.refusals(aws_calls.calls, policies=policies, boundaries=boundaries)
    assert not refused, "calls the production role does not allow:\n" + "\n".join(map(str, refused))


@pytest.fixture
def aws_env(moto_server, monkeypatch, settings, tmp_path, clock, iam_checked):
    """A clean emulator and an environment that points every boto3 client at it."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    settings.OPSINFRA = {
        **settings.OPSINFRA,
        "OUTPUTS_DIR": str(tmp_path / "shop-state"),
        "POLL_SECONDS": (0, 0),
        "AWS_REGION": REGION,
    }
    aws.reset()
    yield moto_server
    aws.reset()


@pytest.fixture
def outputs_dir(aws_env, settings):
    from pathlib import Path

    return Path(settings.OPSINFRA["OUTPUTS_DIR"])


def run(*args, **options) -> tuple[str, str]:
    """call_command with captured stdout and stderr; returns both."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- a small stand-in for opsinfra.cfn, for the tests of the deploy mechanics -------------------------------------


@dataclass(frozen=True)
class SmallSettings:
    project: str
    env: str
    region: str
    stack: str
    stack_name: str


def small_template(stack: str, settings: SmallSettings, *, topics: int = 1, padding: int = 0) -> str:
    """A hand-made template with the contract's shape: Shop metadata, defaults on every parameter, and for the app
    stack the bootstrap outputs as parameters."""
    from troposphere import GetAtt, Output, Parameter, Ref, Template, iam, s3, sns

    t = Template(Description=f"shop {stack} (test)" + " " * padding)
    t.set_metadata({"Shop": {"Stack": stack, "Env": settings.env, "Region": settings.region}})
    if stack == "bootstrap":
        bucket = t.add_resource(s3.Bucket("ArtifactsBucket"))
        role = t.add_resource(
            iam.Role(
                "CloudFormationExecutionRole",
                AssumeRolePolicyDocument={
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudformation.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
            )
        )
        t.add_output(Output("ArtifactsBucketName", Value=Ref(bucket), Description="bucket"))
        t.add_output(Output("CloudFormationExecutionRoleArn", Value=GetAtt(role, "Arn"), Description="role"))
    elif stack == "edge":
        acl = t.add_resource(sns.Topic("EdgeStandIn"))
        t.add_output(Output("EdgeWebAclArn", Value=Ref(acl), Description="web ACL"))
        t.add_output(Output("EdgeCertificateArn", Value=Ref(acl), Description="certificate"))
    else:
        if settings.region != "us-east-1":
            t.add_parameter(Parameter("EdgeWebAclArn", Type="String", Default=""))
            t.add_output(Output("EdgeSeen", Value=Ref("EdgeWebAclArn"), Description="echo"))
        t.add_parameter(Parameter("ArtifactsBucketName", Type="String", Default=""))
        t.add_parameter(Parameter("CloudFormationExecutionRoleArn", Type="String", Default=""))
        t.add_parameter(Parameter("AlertEmail", Type="String", Default="ops@example.com"))
        t.add_parameter(Parameter("InstanceType", Type="String", Default="t3.medium"))
        t.add_parameter(Parameter("OidcProviderArn", Type="String", Default=""))
        first = None
        for index in range(topics):
            topic = t.add_resource(sns.Topic(f"AlertsTopic{index or ''}", DisplayName=Ref("InstanceType")))
            first = first or topic
        t.add_output(Output("AlertsTopicArn", Value=Ref(first), Description="alerts"))
        t.add_output(Output("InstanceTypeUsed", Value=Ref("InstanceType"), Description="echo"))
        t.add_output(Output("BucketSeen", Value=Ref("ArtifactsBucketName"), Description="echo"))
        t.add_output(Output("OidcSeen", Value=Ref("OidcProviderArn"), Description="echo"))
    return json.dumps(t.to_dict(), separators=(",", ":"), sort_keys=True)


@pytest.fixture
def small_stacks(monkeypatch):
    """Use the small template in place of opsinfra.cfn; returns a dict the test may change (topics, padding,
    region written into the template, extra resources)."""
    knobs = {"topics": 1, "padding": 0, "template_region": None, "extra_resources": {}}

    def load(*, stack, env, region):
        region = region or REGION
        name = "shop-bootstrap" if stack == "bootstrap" else f"shop-{stack}-{env}"
        return SmallSettings(project="shop", env=env, region=region, stack=stack, stack_name=name)

    def build(*, stack, stack_settings):
        region = knobs["template_region"] or stack_settings.region
        shown = SmallSettings(**{**stack_settings.__dict__, "region": region})
        body = small_template(stack, shown, topics=knobs["topics"], padding=knobs["padding"])
        if knobs["extra_resources"] and stack != "bootstrap":
            data = json.loads(body)
            data["Resources"].update(knobs["extra_resources"])
            body = json.dumps(data, separators=(",", ":"), sort_keys=True)
        return body

    monkeypatch.setattr(deploy, "stack_settings_load", load)
    monkeypatch.setattr(templates, "template_build", build)
    return knobs


@pytest.fixture
def stub_client(monkeypatch, aws_env):
    """stub_client("cloudformation") → a Stubber whose client every aws.client("cloudformation") call returns;
    other services still go to the emulator."""
    real_client = aws.client
    stubbed: dict[str, object] = {}

    def client(service, *, region=None):
        if service in stubbed:
            return stubbed[service]
        return real_client(service, region=region)

    def make(service: str) -> Stubber:
        boto_client = real_client(service, region=REGION)
        stubber = Stubber(boto_client)
        stubber.activate()
        stubbed[service] = boto_client
        return stubber

    monkeypatch.setattr(aws, "client", client)
    return make


class FakeTerminal:
    """stdin as an operator at a terminal: isatty() is true, answers come from a script."""

    def __init__(self, answers):
        self.lines = [f"{answer}\n" for answer in answers]

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""


@pytest.fixture
def terminal(monkeypatch):
    """terminal("yes", "shop-app-staging") → the next prompts get these answers, in order."""

    def answer(*answers):
        fake = FakeTerminal(answers)
        monkeypatch.setattr("sys.stdin", fake)
        return fake

    return answer
