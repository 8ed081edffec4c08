"""The loadgen instances: their user data, resolved from the synthesized template, runs as the master and as a worker
with stubbed commands that record every `aws` call; each becomes an IAM request evaluated against the fleet's role
(LoadgenInstanceRole) and the bootstrap boundary, and every grant of the role must serve one. The hard stop is the
first thing the script arranges."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsinfra.iam import pipeline
from opsinfra.iam import roles as role_model
from opsinfra.iam.policy import Request, action_matches, evaluate, resource_matches, statements
from opsinfra.services.loadgen import loadtests_archive

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "shop-loadgen-staging"
BUCKET = f"shop-artifacts-{ACCOUNT}-{REGION}"
ROLE = "LoadgenInstanceRole"
STOP_AT = "2030-11-27T23:00:00Z"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
STUBS = {
    "dnf": "",
    "systemd-run": "",
    "shutdown": "",
    "python3.11": """if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/bash\\necho "venv-pip $*" >> "$CALLS"\\n' > "$3/bin/pip"
  printf '#!/bin/bash\\necho "venv-locust $*" >> "$CALLS"\\n' > "$3/bin/locust"
  printf 'while (($#)); do [ "$1" = --results-dir ] && echo {} > "$2/summary.json"; shift; done\\n' >> "$3/bin/locust"
  chmod +x "$3/bin/pip" "$3/bin/locust"
fi""",
    # `s3 cp URL -` writes the load tests archive; `s3 cp --recursive DIR URL` records one upload per file.
    "aws": """case "$*" in
  *--recursive*) for last; do :; done
    src="${@: -2:1}"
    (cd "$src" && find . -type f | sort) | while read -r file; do echo "s3-put $last${file#./}" >> "$CALLS"; done;;
  "s3 cp"*) cat "$LOADTESTS";;
  *) exit 2;;
esac""",
}


@pytest.fixture(scope="module")
def fleet():
    template = pipeline.synthesized("loadgen", env="staging")
    place = role_model.Place(account=ACCOUNT, region=REGION, stack_name=STACK, physical={},
                             parameters={"ArtifactsBucketName": BUCKET, "StopAt": STOP_AT,
                                         "TargetHost": "https://staging.example.com"})  # fmt: skip
    bootstrap = pipeline.synthesized("bootstrap")
    known = role_model.managed_policies(bootstrap, role_model.Place(account=ACCOUNT, region=REGION,
                                                                    stack_name="shop-bootstrap"))  # fmt: skip
    instance_roles = {logical_id: role for logical_id, role in
                      role_model.roles(template, place, known_policies=known).items()
                      if "ec2.amazonaws.com" in json.dumps(role.trust)}  # fmt: skip
    assert set(instance_roles) == {ROLE}
    resolver = role_model.Resolver(template, place)
    scripts = {
        logical_id.removeprefix("Loadgen").removesuffix("LaunchTemplate").lower(): resolver.value(
            resource["Properties"]["LaunchTemplateData"]["UserData"]
        )
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::EC2::LaunchTemplate"
    }
    assert set(scripts) == {"master", "worker"}
    role = instance_roles[ROLE]
    return role, role_model.boundary_documents(role, known), scripts


@pytest.fixture(scope="module")
def boots(fleet, tmp_path_factory) -> dict[str, list[str]]:
    """What each kind of instance ran, from its first boot to its end."""
    _, _, scripts = fleet
    found = {}
    for kind, script in scripts.items():
        base = tmp_path_factory.mktemp(kind)
        (base / "stubs").mkdir()
        for name, body in STUBS.items():
            stub = base / "stubs" / name
            stub.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
            stub.chmod(0o755)
        (base / "loadtests.tar.gz").write_bytes(loadtests_archive())
        (base / "user-data.sh").write_text(script)
        env = {"PATH": f"{base / 'stubs'}:/usr/bin:/bin", "SHOP_ROOT": str(base / "root"), "HOME": str(base),
               "CALLS": str(base / "calls.log"), "LOADTESTS": str(base / "loadtests.tar.gz")}  # fmt: skip
        done = subprocess.run(["bash", str(base / "user-data.sh")], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (base / "root/opt/loadgen/tests/loadtests/locustfile.py").exists()
        found[kind] = (base / "calls.log").read_text().splitlines()
    return found


def requests_of(lines: list[str]) -> list[tuple[str, Request]]:
    found = []
    for line in lines:
        words = line.split()
        if words[:3] == ["aws", "s3", "cp"] and "--recursive" not in words:
            source = next(word for word in words if word.startswith("s3://"))
            found.append((line, Request("s3:GetObject", "arn:aws:s3:::" + source.removeprefix("s3://"))))
        elif words[:1] == ["s3-put"]:
            found.append((line, Request("s3:PutObject", "arn:aws:s3:::" + words[1].removeprefix("s3://"))))
        elif words[:1] == ["aws"] and "--recursive" not in words:
            found.append((line, Request(f"{words[1]}:{words[2]}", "?")))
    return found


def test_loadgen_user_data_syntax_and_shellcheck(fleet, tmp_path):
    _, _, scripts = fleet
    for kind, script in scripts.items():
        path = tmp_path / f"{kind}.sh"
        path.write_text(script)
        assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
        done = subprocess.run([str(SHELLCHECK), "--severity=style", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
        assert len(script.encode()) < 16 * 1024


def test_every_instance_arranges_its_hard_stop_before_anything_else(boots):
    for kind, lines in boots.items():
        assert lines[0] == (
            "systemd-run --unit loadgen-stop --on-calendar=2030-11-27 23:00:00 UTC /usr/sbin/shutdown -h now"
        ), kind


def test_master_runs_headless_uploads_its_results_then_shuts_down(boots):
    master, worker = boots["master"], boots["worker"]
    (run,) = [line for line in master if line.startswith("venv-locust")]
    assert "--master --headless --expect-workers 2 --host https://staging.example.com" in run
    assert "--peak-users 500 --time-scale 1.0" in run
    uploads = [line for line in master if line.startswith("s3-put")]
    prefix = f"s3-put s3://{BUCKET}/loadgen/{STACK}/results/"
    assert uploads and all(line.startswith(prefix) for line in uploads)
    assert {line.rsplit("/", 1)[1] for line in uploads} == {"exit-code", "summary.json"}
    assert master[-1] == "shutdown -h now"
    (work,) = [line for line in worker if line.startswith("venv-locust")]
    assert work == "venv-locust -f loadtests/locustfile.py --worker --master-host 10.64.11.10"
    assert not any(line.startswith("s3-put") for line in worker)
    # locust at the repository's pin, nothing else from outside AWS.
    (install,) = [line for line in master if line.startswith("venv-pip")]
    assert install.startswith("venv-pip install --quiet locust==")


def test_loadgen_calls_are_allowed_by_the_role_and_the_boundary_and_every_grant_is_used(fleet, boots):
    role, boundary, _ = fleet
    made = requests_of(boots["master"] + boots["worker"])

    refused = [
        f"{source}: {request.action} on {request.resource}: {decision.reason}"
        for source, request in made
        if not (decision := evaluate(request, identity=list(role.policies), boundary=boundary)).allowed
    ]
    unused = []
    for document in role.policies:
        for statement in statements(document):
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            for action, resource in itertools.product(actions, resources):
                if not any(action_matches(action, r.action) and resource_matches(resource, r.resource)
                           for _, r in made):  # fmt: skip
                    unused.append(f"{statement.get('Sid')}: {action} on {resource}")

    assert {request.action for _, request in made} == {"s3:GetObject", "s3:PutObject"}
    assert refused == []
    assert unused == []


def test_loadgen_role_cannot_write_outside_its_results_or_read_releases(fleet):
    role, boundary, _ = fleet
    for action, key in (
        ("s3:PutObject", f"loadgen/{STACK}/loadtests.tar.gz"),
        ("s3:PutObject", "releases/v1.tar.gz"),
        ("s3:PutObject", "loadgen/shop-loadgen-production/results/x"),
        ("s3:GetObject", "releases/v1.tar.gz"),
        ("s3:GetObject", f"loadgen/{STACK}/results/x/summary.json"),
    ):
        request = Request(action, f"arn:aws:s3:::{BUCKET}/{key}")
        assert not evaluate(request, identity=list(role.policies), boundary=boundary).allowed, (action, key)
