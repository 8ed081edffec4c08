"""Reading stacks and their outputs, and the outputs files the other commands read."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from opsinfra import aws
from opsinfra.errors import StackNotFound

# States from which a change set of type UPDATE can run (CREATE_FAILED/UPDATE_FAILED only exist with rollback off,
# and CloudFormation lets such a stack be updated again).
UPDATABLE = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
    "CREATE_FAILED",
    "UPDATE_FAILED",
}


@dataclass(frozen=True)
class StackState:
    name: str
    stack_id: str
    status: str
    reason: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    termination_protection: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    role_arn: str = ""

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status != "REVIEW_IN_PROGRESS"


def stack_get(*, cfn, name: str) -> StackState | None:
    """The stack called `name` (or with that id), or None when there is none (a deleted stack counts as none)."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) == "ValidationError" and "does not exist" in aws.error_message(exc):
            return None
        raise aws.call_failed(f"describe stack {name}", exc) from exc
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    raw = stacks[0]
    return StackState(
        name=raw["StackName"],
        stack_id=raw["StackId"],
        status=raw["StackStatus"],
        reason=raw.get("StackStatusReason", ""),
        outputs={item["OutputKey"]: item.get("OutputValue", "") for item in raw.get("Outputs") or []},
        parameters={item["ParameterKey"]: item.get("ParameterValue", "") for item in raw.get("Parameters") or []},
        termination_protection=bool(raw.get("EnableTerminationProtection")),
        tags={item["Key"]: item["Value"] for item in raw.get("Tags") or []},
        role_arn=raw.get("RoleARN", ""),
    )


def stack_require(*, cfn, name: str, region: str, create_with: str) -> StackState:
    """The stack `name`, or StackNotFound naming the command that creates it."""
    state = stack_get(cfn=cfn, name=name)
    if state is None or state.status in {"REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS"}:
        raise StackNotFound(f"The stack {name} does not exist in {region}: create it first with `{create_with}`.")
    return state


def outputs_path(*, stack_name: str, path: str | Path | None = None) -> Path:
    """Where the outputs of `stack_name` are kept: `path` if given, else <OUTPUTS_DIR>/outputs-<stack-name>.json."""
    if path:
        return Path(path)
    directory = Path(settings.OPSINFRA.get("OUTPUTS_DIR", ".shop"))
    if not directory.is_absolute():
        directory = Path(settings.BASE_DIR) / directory
    return directory / f"outputs-{stack_name}.json"


def outputs_write(*, outputs: dict[str, str], path: Path) -> Path:
    """Write the outputs as a JSON object ({} when there are none), atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    partial.replace(path)
    return path


def outputs_read(*, path: Path) -> dict[str, str] | None:
    """The outputs saved at `path`, or None when the file does not exist."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def output_find(*, cfn, stack_name: str, key: str, outputs_file: str | None = None) -> str:
    """One output of a stack: from its outputs file when that has it, else from the live stack."""
    saved = outputs_read(path=outputs_path(stack_name=stack_name, path=outputs_file)) or {}
    if saved.get(key):
        return saved[key]
    state = stack_get(cfn=cfn, name=stack_name)
    if state is None:
        raise StackNotFound(f"There is no stack {stack_name}: deploy it with deploy_stack first.")
    if not state.outputs.get(key):
        raise StackNotFound(f"Stack {stack_name} has no output {key}.")
    return state.outputs[key]
