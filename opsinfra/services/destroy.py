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


@dataclass(frozen=True)
class Protected:
    """A resource whose own deletion protection stops the stack's deletion (DELETE_FAILED) until it is lifted."""

    logical_id: str
    resource_type: str
    physical_id: str

    def lift_command(self, region: str) -> str:
        if self.resource_type == "AWS::RDS::DBInstance":
            return (
                f"aws rds modify-db-instance --region {region} --db-instance-identifier {self.physical_id} "
                "--no-deletion-protection --apply-immediately"
            )
        return (
            f"aws elbv2 modify-load-balancer-attributes --region {region} --load-balancer-arn {self.physical_id} "
            "--attributes Key=deletion_protection.enabled,Value=false"
        )


def _has_deletion_protection(resource: dict) -> bool:
    properties = resource.get("Properties", {})
    if resource.get("Type") == "AWS::RDS::DBInstance":
        return str(properties.get("DeletionProtection", "")).lower() == "true"
    if resource.get("Type") == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        attributes = {a.get("Key"): a.get("Value") for a in properties.get("LoadBalancerAttributes", [])}
        return str(attributes.get("deletion_protection.enabled", "")).lower() == "true"
    return False


def stack_protected(*, cfn, stack_name: str, template: dict) -> list[Protected]:
    """The stack's resources with deletion protection on, as its template sets it."""
    protected = {name for name, resource in template.get("Resources", {}).items() if _has_deletion_protection(resource)}
    if not protected:
        return []
    try:
        resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"list the resources of {stack_name}", exc) from exc
    return [
        Protected(logical_id=r["LogicalResourceId"], resource_type=r["ResourceType"],
                  physical_id=r.get("PhysicalResourceId", ""))
        for r in sorted(resources, key=lambda r: r["LogicalResourceId"])
        if r["LogicalResourceId"] in protected
    ]  # fmt: skip


def _template(*, cfn, stack_name: str) -> dict:
    try:
        body = cfn.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read the template of {stack_name}", exc) from exc
    return body if isinstance(body, dict) else json.loads(body)


def _survivors(template: dict) -> list[Survivor]:
    """Resources whose DeletionPolicy keeps them (or a snapshot of them) after the stack is deleted."""
    return [
        Survivor(logical_id=name, resource_type=resource.get("Type", ""), policy=resource["DeletionPolicy"])
        for name, resource in sorted(template.get("Resources", {}).items())
        if resource.get("DeletionPolicy") in {"Retain", "RetainExceptOnCreate", "Snapshot"}
    ]


def destroy_check(
    *, target: Target, disable_termination_protection: bool
) -> tuple[stacks.StackState, list[Survivor], list[Protected]]:
    """The stack to delete, its survivors and its deletion-protected resources; refuses a missing stack, or one with
    termination protection unless told to lift it."""
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
    template = _template(cfn=cfn, stack_name=state.stack_id)
    return state, _survivors(template), stack_protected(cfn=cfn, stack_name=state.stack_id, template=template)


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
