"""Which role runs which command in production, and the evaluation of recorded calls against that role."""

import re
from dataclasses import dataclass
from pathlib import Path

from opsinfra.iam.policy import Decision, Request, evaluate
from opsinfra.iam.recorder import Call, Invocation

# Logical ids in the bootstrap template.
DEPLOY_ROLE = "BootstrapDeployRole"
PREVIEW_ROLE = "BootstrapPreviewRole"
EXECUTION_ROLE = "BootstrapExecutionRole"
# The GitHub secret that names each role in .github/workflows.
WORKFLOW_SECRETS = {"AWS_DEPLOY_ROLE_ARN": DEPLOY_ROLE, "AWS_PREVIEW_ROLE_ARN": PREVIEW_ROLE}


def production_role(invocation: Invocation) -> str | None:
    """The bootstrap role that runs the command in production; None for what an administrator runs with their own
    credentials (the bootstrap and edge stacks, destroy_stack, stack_status, preflight)."""
    if invocation.name == "deploy_stack":
        if invocation.option("stack") != "app":
            return None
        # The pull-request preview creates a change set for review and deletes it; it never executes one.
        if invocation.option("no_execute") or invocation.option("delete_changeset"):
            return PREVIEW_ROLE
        return DEPLOY_ROLE
    if invocation.name in {"deploy_app", "bake_image", "purge_cdn", "schedule_peak"}:
        return DEPLOY_ROLE
    return None


@dataclass(frozen=True)
class WorkflowStep:
    workflow: str
    role: str
    command: str  # the manage.py command line, continuation lines joined


def workflow_steps(directory: Path) -> list[WorkflowStep]:
    """Every `manage.py` command line of the workflows, with the role the workflow assumed before it; an optional
    `${VAR:+--flag}` counts as given (the widest call the step can make)."""
    found = []
    for path in sorted(directory.glob("*.yml")):
        text = re.sub(r"\$\{\w+:\+([^}]*)\}", r"\1", path.read_text().replace("\\\n", " "))
        role = None
        for line in text.splitlines():
            secret = re.search(r"role-to-assume:\s*\$\{\{\s*secrets\.(\w+)\s*\}\}", line)
            if secret:
                role = WORKFLOW_SECRETS.get(secret.group(1), secret.group(1))
            command = re.search(r"manage\.py\s+(.*?)(\s*\|.*)?$", line)
            if command:
                found.append(WorkflowStep(path.name, role, " ".join(command.group(1).split())))
    return found


@dataclass(frozen=True)
class Refusal:
    call: Call
    role: str
    decision: Decision

    def __str__(self) -> str:
        where = f" [{self.decision.statement}]" if self.decision.statement else ""
        return f"{self.call.command}: {self.role} refuses {self.call.describe()}: {self.decision.reason}{where}"


def refusals(calls: list[Call], *, policies: dict[str, list[dict]], boundaries: dict | None = None) -> list[Refusal]:
    """The calls their production role does not allow; calls of commands no role runs are skipped."""
    found = []
    for call in calls:
        role = production_role(call.command) if call.command else None
        if role is None:
            continue
        decision = evaluate(
            Request(call.action, call.resource, call.context),
            identity=policies[role],
            boundary=(boundaries or {}).get(role),
        )
        if not decision.allowed:
            found.append(Refusal(call, role, decision))
    return found


def synthesized(stack: str, *, env: str = "production", region: str | None = None) -> dict:
    """The template opsinfra.cfn builds for the stack (the same code that writes templates_cfn/)."""
    import json

    from opsinfra.cfn import build_template, compact_json
    from opsinfra.stacks import stack_settings

    settings = stack_settings(stack=stack, env=env, region=region)
    return json.loads(compact_json(build_template(stack, settings)))


def pipeline_policies(bootstrap: dict, place) -> tuple[dict[str, list[dict]], dict[str, list[dict] | None]]:
    """Identity policies and boundaries of the bootstrap stack's roles, by logical id, resolved at `place`."""
    from opsinfra.iam import roles as role_model

    known = role_model.managed_policies(bootstrap, place)
    found = role_model.roles(bootstrap, place)
    policies = {logical_id: list(role.policies) for logical_id, role in found.items()}
    boundaries = {logical_id: role_model.boundary_documents(role, known) for logical_id, role in found.items()}
    return policies, boundaries
