"""Deleting a stack, and what outlives it."""

import json
from collections.abc import Callable
from dataclasses import dataclass

from opsinfra import aws
from opsinfra.errors import StackNotFound, StackStuck
from opsinfra.services import events, stacks
from opsinfra.services.deploy import Target
from opsinfra.services.events import Outcome


@dataclass(frozen=True)
class Survivor:
    logical_id: str
    resource_type: str
    policy: str  # Retain or Snapshot

    def describe(self) -> str:
        if self.policy == "Snapshot":
            return f"{self.logical_id} ({self.resource_type}): a final snapshot is kept"
        return f"{self.logical_id} ({self.resource_type}): kept as it is, outside any stack"


def stack_survivors(*, cfn, stack_name: str) -> list[Survivor]:
    """Resources whose DeletionPolicy keeps them (or a snapshot of them) after the stack is deleted."""
    try:
        body = cfn.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read the template of {stack_name}", exc) from exc
    template = body if isinstance(body, dict) else json.loads(body)
    return [
        Survivor(logical_id=name, resource_type=resource.get("Type", ""), policy=resource["DeletionPolicy"])
        for name, resource in sorted(template.get("Resources", {}).items())
        if resource.get("DeletionPolicy") in {"Retain", "RetainExceptOnCreate", "Snapshot"}
    ]


def destroy_check(*, target: Target, disable_termination_protection: bool) -> tuple[stacks.StackState, list[Survivor]]:
    """The stack to delete and its survivors; refuses a missing stack, or a protected one unless told to lift it."""
    cfn = aws.client("cloudformation", region=target.region)
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    if state is None:
        raise StackNotFound(f"There is no stack {target.stack_name} in {target.region}.")
    if state.in_progress:
        raise StackStuck(f"Stack {target.stack_name} is busy ({state.status}): wait for it to finish first.")
    if state.termination_protection and not disable_termination_protection:
        raise StackStuck(
            f"Stack {target.stack_name} has termination protection on: pass --disable-termination-protection "
            "to turn it off and delete the stack."
        )
    return state, stack_survivors(cfn=cfn, stack_name=state.stack_id)


def stack_destroy(*, target: Target, state: stacks.StackState, on_event: Callable) -> Outcome:
    """Lift termination protection if it is on (the caller checked it was asked to), delete, follow to the end."""
    cfn = aws.client("cloudformation", region=target.region)
    if state.termination_protection:
        try:
            cfn.update_termination_protection(EnableTerminationProtection=False, StackName=state.stack_id)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"turn off termination protection of {target.stack_name}", exc) from exc
    after_id = events.events_latest_id(cfn=cfn, stack_name=state.stack_id)
    try:
        cfn.delete_stack(StackName=state.stack_id)
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"delete stack {target.stack_name}", exc) from exc
    return events.stack_follow(
        cfn=cfn, stack_id=state.stack_id, stack_name=target.stack_name, after_id=after_id, total=0, on_event=on_event
    )


def outputs_forget(*, target: Target, outputs_file: str | None = None) -> None:
    """A deleted stack's outputs file would send purge_cdn and deploy_app to resources that are gone."""
    stacks.outputs_path(stack_name=target.stack_name, path=outputs_file).unlink(missing_ok=True)
