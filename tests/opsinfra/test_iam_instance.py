"""The instance roles against what the instance scripts call: the app stack's own user data, resolved from the
synthesized template, runs with stubbed commands that record every `aws` call and the secret ARNs each Python
process starts with; each becomes an IAM request evaluated against the role of the instance that makes it and the
boundary. Web instances (ComputeInstanceRole) boot and serve; the migration instance (ComputeMigrationInstanceRole)
boots, serves and runs `shop-migrate`, which deploy_app sends only to it."""

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest

from opsinfra.cfn import userdata
from opsinfra.iam import pipeline
from opsinfra.iam import roles as role_model
from opsinfra.iam.policy import Request, action_matches, evaluate, resource_matches, statements
from tests.opsinfra.test_userdata import INSTANCE_ID, STUBS

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "shop-app-production"
BUCKET = f"shop-artifacts-{ACCOUNT}-{REGION}"
SECRET_VARIABLES = ("APP_SECRET_ARN", "DB_SECRET_ARN", "DB_MASTER_SECRET_ARN", "DB_APP_SECRET_ARN")
# The Python a Django process runs reads these variables' secrets at start (shop/settings.py).
DJANGO_READS = ("APP_SECRET_ARN", "DB_SECRET_ARN")
# The instance role of each group, and what its instances run.
WEB_ROLE = "ComputeInstanceRole"
MIGRATION_ROLE = "ComputeMigrationInstanceRole"
# Grants of an instance role no recorded call needs, with the reason.
UNEXERCISED: dict[tuple[str, str], str] = {}


def _place(template: dict) -> role_model.Place:
    # A secret's Ref is its ARN, which ends in a random suffix: stand one in per secret.
    physical = {
        logical_id: f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{STACK}-{logical_id}-AbCdEf"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::Secret"
    }
    # The master password's secret is RDS's own (ManageMasterUserPassword), named rds!db-<instance resource id>.
    physical["DatabaseInstance.MasterUserSecret.SecretArn"] = (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0c5f8a2e-4b1d-4e7a-9f3c-2d6e8b1a7c4f-AbCdEf"
    )
    return role_model.Place(account=ACCOUNT, region=REGION, stack_name=STACK, physical=physical,
                            parameters={"ArtifactsBucketName": BUCKET})  # fmt: skip


@pytest.fixture(scope="module")
def app():
    template = pipeline.synthesized("app")
    place = _place(template)
    bootstrap = pipeline.synthesized("bootstrap")
    boundary = role_model.managed_policies(bootstrap, role_model.Place(account=ACCOUNT, region=REGION,
                                                                       stack_name="shop-bootstrap"))  # fmt: skip
    instance_roles = {logical_id: role for logical_id, role in
                      role_model.roles(template, place, known_policies=boundary).items()
                      if "ec2.amazonaws.com" in json.dumps(role.trust)}  # fmt: skip
    assert set(instance_roles) == {WEB_ROLE, MIGRATION_ROLE}
    resolver = role_model.Resolver(template, place)
    (script,) = {resolver.value(resource["Properties"]["LaunchTemplateData"]["UserData"])
                 for resource in template["Resources"].values()
                 if resource["Type"] == "AWS::EC2::LaunchTemplate"}  # fmt: skip
    documents = {
        logical_id: role_model.boundary_documents(role, boundary) for logical_id, role in instance_roles.items()
    }
    return instance_roles, documents, script


def _stubs(directory: Path) -> None:
    bodies = dict(STUBS)
    # Every Python the scripts start records the secret ARNs in its environment.
    recorded = " ".join(f"{name}=${{{name}:-}}" for name in SECRET_VARIABLES)
    bodies["python3.11"] = STUBS["python3.11"].replace('echo "venv-%s $*"', f'echo "venv-%s $* ENV {recorded}"')
    for name, body in bodies.items():
        stub = directory / name
        stub.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        stub.chmod(0o755)


def _bundle(path: Path) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for member in ("manage.py", "requirements/base.txt"):
            info = tarfile.TarInfo(member)
            archive.addfile(info, io.BytesIO(b""))


@pytest.fixture(scope="module")
def instance_calls(app, tmp_path_factory) -> dict[str, list[str]]:
    """Per instance role, every line the stubs recorded: first boot, a boot with release v1 and the app's start
    on every instance; deploy_app's migration of v2 on the migration instance only."""
    _, _, script = app
    base = tmp_path_factory.mktemp("instance")
    (base / "stubs").mkdir()
    _stubs(base / "stubs")
    _bundle(base / "bundle.tar.gz")
    calls = base / "calls.log"
    env = {
        "PATH": f"{base / 'stubs'}:/usr/bin:/bin",
        "SHOP_ROOT": str(base / "root"),
        "CALLS": str(calls),
        "BUNDLE": str(base / "bundle.tar.gz"),
        "RELEASE_FILE": str(base / "release.json"),
        "HOME": str(base),
    }
    (base / "user-data.sh").write_text(script)
    root = base / "root"
    (base / "release.json").write_text(json.dumps({"version": "v1", "bundle": f"s3://{BUCKET}/releases/v1.tar.gz"}))
    for command in (
        ["bash", str(base / "user-data.sh")],
        ["bash", str(root / "usr/local/sbin/shop-release")],
        ["bash", str(root / "usr/local/sbin/shop-migrate"), "v2", f"s3://{BUCKET}/releases/v2.tar.gz"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        if command[1].endswith("shop-release"):
            booted = len(calls.read_text().splitlines())
    lines = calls.read_text().splitlines()
    migration = lines[booted:]
    lines = lines[:booted]
    # The app itself: systemd starts it with the unit's environment files.
    unit = (root / "etc/systemd/system/shop.service").read_text()
    environment = {}
    for file in re.findall(r"^EnvironmentFile=(\S+)", unit, re.MULTILINE):
        path = root / file.lstrip("/")
        if path.exists():
            environment.update(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    shown = " ".join(f"{name}={environment.get(name, '')}" for name in SECRET_VARIABLES)
    lines.append(f"venv-python -m gunicorn ENV {shown}")
    agent = json.loads((root / "opt/aws/amazon-cloudwatch-agent/etc/shop.json").read_text())
    for entry in agent["logs"]["logs_collected"]["files"]["collect_list"]:
        lines.append(f"cloudwatch-agent {entry['log_group_name']}")
    return {WEB_ROLE: lines, MIGRATION_ROLE: lines + migration}


def requests_of(lines: list[str]) -> list[tuple[str, Request]]:
    """(what made it, IAM request) for every recorded line that reaches AWS."""
    found = []
    db_role_reads = re.findall(r'read_secret\(os\.environ\["(\w+)"\]\)', userdata.read("shop-db-role.py"))
    for line in lines:
        words = line.split()
        if words[:1] == ["aws"]:
            service, command = words[1], words[2]
            options = dict(itertools.pairwise(words))
            if (service, command) == ("s3", "cp"):
                source = next(word for word in words if word.startswith("s3://"))
                found.append((line, Request("s3:GetObject", "arn:aws:s3:::" + source.removeprefix("s3://"))))
            elif (service, command) == ("ssm", "get-parameter"):
                arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{options['--name']}"
                found.append((line, Request("ssm:GetParameter", arn)))
            elif (service, command) == ("autoscaling", "complete-lifecycle-action"):
                arn = (f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:0:autoScalingGroupName/"
                       f"{options['--auto-scaling-group-name']}")  # fmt: skip
                found.append((line, Request("autoscaling:CompleteLifecycleAction", arn)))
            else:
                found.append((line, Request(f"{service}:{command}", "?")))
        elif words[:1] == ["venv-python"] and "ENV" in words:
            environment = dict(word.split("=", 1) for word in words[words.index("ENV") + 1 :])
            program = " ".join(words[1 : words.index("ENV")])
            if "shop-db-role" in program:
                reads = db_role_reads
            elif "manage.py" in program or "gunicorn" in program:
                reads = DJANGO_READS
            else:
                reads = ()
            for name in reads:
                if environment.get(name):
                    found.append((f"{program} ({name})", Request("secretsmanager:GetSecretValue", environment[name])))
        elif words[:1] == ["cloudwatch-agent"]:
            group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{words[1]}"
            for action in ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"):
                found.append((line, Request(action, f"{group}:log-stream:{INSTANCE_ID}")))
    return found


@pytest.mark.parametrize("instance_role", [WEB_ROLE, MIGRATION_ROLE])
def test_instance_scripts_calls_are_allowed_by_the_instance_role_and_its_boundary(app, instance_calls, instance_role):
    roles, boundaries, _ = app
    role, boundary = roles[instance_role], boundaries[instance_role]
    made = requests_of(instance_calls[instance_role])

    refused = []
    for source, request in made:
        decision = evaluate(request, identity=list(role.policies), boundary=boundary)
        if not decision.allowed:
            refused.append(f"{source}: {request.action} on {request.resource}: {decision.reason}")

    expected = {"ssm:GetParameter", "s3:GetObject", "autoscaling:CompleteLifecycleAction",
                "secretsmanager:GetSecretValue", "logs:PutLogEvents"}  # fmt: skip
    assert {request.action for _, request in made} >= expected
    assert refused == []


@pytest.mark.parametrize("instance_role", [WEB_ROLE, MIGRATION_ROLE])
def test_instance_role_grants_nothing_the_instance_does_not_call(app, instance_calls, instance_role):
    roles, _, _ = app
    role = roles[instance_role]
    made = [request for _, request in requests_of(instance_calls[instance_role])]

    unused = []
    for document in role.policies:
        for statement in statements(document):
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            for action in actions:
                for resource in resources:
                    used = any(action_matches(action, request.action) and resource_matches(resource, request.resource)
                               for request in made)  # fmt: skip
                    if not used and (action, resource) not in UNEXERCISED:
                        unused.append(f"{statement.get('Sid')}: {action} on {resource}")

    assert unused == []
