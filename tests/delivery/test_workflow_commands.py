"""The commands the workflows run exist, and the roles they assume trust exactly these workflows."""

import re
import shlex
from pathlib import Path

import pytest

from tests.delivery.conftest import jobs


def manage_py_invocations(workflows) -> list[tuple[str, list[str]]]:
    """manage.py's arguments in every run step; an optional ${VAR:+--flag} counts as given."""
    calls = []
    for name, job in jobs(workflows):
        for step in job.get("steps", []):
            script = re.sub(r"\$\{\w+:\+([^}]*)\}", r"\1", step.get("run", "").replace("\\\n", " "))
            for line in script.splitlines():
                if "manage.py" in line:
                    words = shlex.split(line.split("|")[0])
                    calls.append((name, words[words.index("manage.py") + 1 :]))
    return calls


def test_every_manage_py_command_in_the_workflows_exists_and_accepts_its_options(workflows):
    from django.core.management import get_commands, load_command_class

    calls = manage_py_invocations(workflows)
    assert {words[0] for _, words in calls} >= {"deploy_stack", "deploy_app"}
    assert [
        "deploy_stack",
        "--stack",
        "app",
        "--env",
        "production",
        "--no-input",
        "--outputs-file",
        ".shop/outputs-app.json",
        "--allow-wider-access",
    ] in [words for _, words in calls]
    commands = get_commands()
    for job, (command, *arguments) in calls:
        assert command in commands, f"{job}: manage.py {command} does not exist"
        parser = load_command_class(commands[command], command).create_parser("manage.py", command)
        parser.parse_args(arguments)  # raises CommandError on an unknown or malformed option


@pytest.fixture(scope="module")
def bootstrap() -> dict:
    from opsinfra.cfn import build_template, template_dict
    from opsinfra.stacks import stack_settings

    return template_dict(build_template("bootstrap", stack_settings(stack="bootstrap", env="production")))


def _github_subject(role: dict) -> str:
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    subject = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    pattern, _ = subject["Fn::Sub"]
    return pattern.replace("${Repository}", "OWNER/REPO")


def _actions(role: dict) -> set[str]:
    return {
        action
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }


def _role_secret(job: dict) -> str:
    (step,) = [step for step in job["steps"] if step.get("uses", "").startswith("aws-actions/")]
    return step["with"]["role-to-assume"]


def test_deploy_role_trusts_exactly_the_deploy_job(workflows, bootstrap):
    role = bootstrap["Resources"]["BootstrapDeployRole"]
    job = workflows["deploy"]["jobs"]["deploy"]
    assert _github_subject(role) == f"repo:OWNER/REPO:environment:{job['environment']}"
    assert _role_secret(job) == "${{ secrets.AWS_DEPLOY_ROLE_ARN }}"
    assert {"cloudformation:ExecuteChangeSet", "iam:PassRole", "autoscaling:StartInstanceRefresh"} <= _actions(role)
    assert "DeployRoleArn" in bootstrap["Outputs"]


def test_preview_role_trusts_pull_requests_and_cannot_execute(workflows, bootstrap):
    role = bootstrap["Resources"]["BootstrapPreviewRole"]
    job = workflows["preview"]["jobs"]["changeset"]
    assert _github_subject(role) == "repo:OWNER/REPO:pull_request"
    assert list(workflows["preview"]["on"]) == ["pull_request"]
    assert _role_secret(job) == "${{ secrets.AWS_PREVIEW_ROLE_ARN }}"
    actions = _actions(role)
    assert {"cloudformation:CreateChangeSet", "cloudformation:DeleteChangeSet"} <= actions
    assert not {"cloudformation:ExecuteChangeSet", "iam:PassRole"} & actions
    assert "PreviewRoleArn" in bootstrap["Outputs"]


def test_delivery_docs_name_the_secrets_the_workflows_read():
    readme = (Path(__file__).resolve().parents[2] / "docs" / "delivery.md").read_text()
    for name in ("AWS_DEPLOY_ROLE_ARN", "AWS_PREVIEW_ROLE_ARN", "GitHubRepository", "DeployRoleArn", "PreviewRoleArn"):
        assert name in readme
