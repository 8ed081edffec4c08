"""Deploying a stack: resolve the target, plan a change set, execute it, and recover stacks that are stuck."""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from opsinfra import aws
from opsinfra.errors import DeployFailed, OpsError, StackNotFound, StackStuck, TemplateRejected
from opsinfra.services import changesets, events, stacks, templates
from opsinfra.services.changesets import ChangeSet
from opsinfra.services.diff import StackDiff, stack_diff
from opsinfra.services.events import Outcome

EDGE_PARAMETERS = {"EdgeWebAclArn", "EdgeCertificateArn"}
EDGE_REGION = "us-east-1"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]


@dataclass(frozen=True)
class Target:
    """Which stack goes where: the stack kind, its environment preset, region and CloudFormation name."""

    stack: str
    env: str
    region: str
    stack_name: str
    settings: object  # opsinfra.stacks.StackSettings

    def command(self, *extra: str) -> str:
        parts = ["manage.py deploy_stack", f"--stack {self.stack}"]
        if self.stack != "bootstrap":
            parts.append(f"--env {self.env}")
        parts.append(f"--region {self.region}")
        return " ".join([*parts, *extra])


def stack_settings_load(*, stack: str, env: str, region: str | None):
    from opsinfra.stacks import stack_settings

    return stack_settings(stack=stack, env=env, region=region)


def target_resolve(*, stack: str, env: str, region: str | None = None, stack_name: str | None = None) -> Target:
    """The stack's settings from the presets; an unknown stack or env raises StackConfigError (an OpsError)."""
    settings = stack_settings_load(stack=stack, env=env, region=region)
    resolved_region = region or getattr(settings, "region", None) or aws.session_region()
    return Target(
        stack=stack,
        env=env,
        region=resolved_region,
        stack_name=stack_name or settings.stack_name,
        settings=settings,
    )


# --- stuck stacks -------------------------------------------------------------------------------------------------


def stack_preflight(*, cfn, target: Target) -> stacks.StackState | None:
    """The current stack, or StackStuck when no change set can run on it now (and what to do about it).

    ROLLBACK_COMPLETE and UPDATE_ROLLBACK_FAILED come back to the caller, which asks before it recovers them.
    """
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    if state is None or state.status in stacks.UPDATABLE | {"REVIEW_IN_PROGRESS"}:
        return state
    if state.status in {"ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"}:
        return state
    if state.in_progress:
        raise StackStuck(
            f"Stack {target.stack_name} is busy ({state.status}): wait for it to finish "
            f"(`manage.py stack_status --stack {target.stack} --env {target.env}`), then deploy again."
        )
    if state.status in {"ROLLBACK_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_FAILED"}:
        raise StackStuck(
            f"Stack {target.stack_name} is in {state.status} and cannot be updated: look at its events with "
            f"`manage.py stack_status --stack {target.stack} --env {target.env}`, remove what blocks the delete, "
            f"then `manage.py destroy_stack --stack {target.stack} --env {target.env}` and deploy again."
        )
    raise StackStuck(f"Stack {target.stack_name} is in {state.status}, which deploy_stack does not know how to update.")


def stack_delete_rolled_back(*, cfn, target: Target, on_event: Callable) -> None:
    """Delete a stack a failed first create left in ROLLBACK_COMPLETE (it holds no resources), and wait."""
    after_id = events.events_latest_id(cfn=cfn, stack_name=target.stack_name)
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    try:
        cfn.delete_stack(StackName=state.stack_id)
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"delete stack {target.stack_name}", exc) from exc
    outcome = events.stack_follow(
        cfn=cfn, stack_id=state.stack_id, stack_name=target.stack_name, after_id=after_id, total=0, on_event=on_event
    )
    if outcome.status != "DELETE_COMPLETE":
        raise DeployFailed(f"Deleting the rolled-back stack {target.stack_name} ended in {outcome.status}.")


def stack_continue_rollback(*, cfn, target: Target, on_event: Callable, skip: list[str] | None = None) -> None:
    """Resume a rollback that failed (UPDATE_ROLLBACK_FAILED) and wait until the stack is usable again."""
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    after_id = events.events_latest_id(cfn=cfn, stack_name=target.stack_name)
    request = {"StackName": state.stack_id}
    if skip:
        request["ResourcesToSkip"] = skip
    try:
        cfn.continue_update_rollback(**request)
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"continue the rollback of {target.stack_name}", exc) from exc
    outcome = events.stack_follow(
        cfn=cfn, stack_id=state.stack_id, stack_name=target.stack_name, after_id=after_id, total=0, on_event=on_event
    )
    if outcome.status != "UPDATE_ROLLBACK_COMPLETE":
        raise DeployFailed(
            f"The rollback of {target.stack_name} ended in {outcome.status} again: the failing events above name "
            "the resources CloudFormation cannot roll back; fix them by hand or skip them in the console."
        )


# --- planning -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    target: Target
    change_set_type: str  # CREATE or UPDATE
    change_set: ChangeSet | None  # None: the stack is up to date
    template_url: str | None
    template_size: int
    parameters: tuple[dict, ...] = ()
    diff: StackDiff | None = None  # what changes, from the deployed template to the change set's

    @property
    def up_to_date(self) -> bool:
        return self.change_set is None


def upstream_outputs(*, target: Target, template: templates.Template) -> dict[str, str]:
    """Outputs of the stacks this one builds on, by name: bootstrap for the app stack, edge outside us-east-1."""
    found: dict[str, str] = {}
    if target.stack == "bootstrap":
        return found
    wanted = set(template.parameters)
    if target.stack == "app" or wanted & _bootstrap_output_names():
        bootstrap = target_resolve(stack="bootstrap", env=target.env, region=target.region)
        state = stacks.stack_require(
            cfn=aws.client("cloudformation", region=target.region),
            name=bootstrap.stack_name,
            region=target.region,
            create_with=bootstrap.command(),
        )
        found.update(state.outputs)
    if target.stack == "app" and "AmiParameter" in wanted:
        from opsinfra.services.image import image_parameter_for_stack

        # A baked image once bake_image has written its parameter; else the template's public default.
        baked = image_parameter_for_stack(target=target)
        if baked:
            found["AmiParameter"] = baked
    if wanted & EDGE_PARAMETERS and target.region != EDGE_REGION:
        edge = target_resolve(stack="edge", env=target.env, region=EDGE_REGION)
        state = stacks.stack_require(
            cfn=aws.client("cloudformation", region=EDGE_REGION),
            name=edge.stack_name,
            region=EDGE_REGION,
            create_with=edge.command(),
        )
        found.update({key: value for key, value in state.outputs.items() if key in EDGE_PARAMETERS})
    return found


def _bootstrap_output_names() -> set[str]:
    return {"ArtifactsBucketName", "CloudFormationExecutionRoleArn", "DeployRoleArn", "PreviewRoleArn"}


def parameters_resolve(
    *,
    template: templates.Template,
    overrides: dict[str, str],
    upstream: dict[str, str],
    existing: stacks.StackState | None,
    change_set_type: str,
) -> list[dict]:
    """CreateChangeSet's Parameters.

    The command line, the upstream stacks' outputs and the presets are always passed, in that order of precedence.
    A preset value is a parameter's non-empty Default: synth writes the settings preset there, so a preset change
    reaches the stack and a one-off --parameter does not outlive its deploy. A parameter with an empty Default is
    given by neither: on an update it keeps its previous value (UsePreviousValue), on a create it takes the Default.
    """
    declared = template.parameters
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateRejected(
            f"--parameter {unknown[0]} is not a parameter of the {template.stack} template "
            f"(it has: {', '.join(sorted(declared)) or 'none'})."
        )
    presets = {name: spec["Default"] for name, spec in declared.items() if spec.get("Default") not in (None, "")}
    result = []
    for name in sorted(declared):
        for source in (overrides, upstream, presets):
            if name in source:
                value = source[name]
                if isinstance(value, list):
                    value = ",".join(str(item) for item in value)
                result.append({"ParameterKey": name, "ParameterValue": str(value)})
                break
        else:
            if change_set_type == "UPDATE" and existing is not None and name in existing.parameters:
                result.append({"ParameterKey": name, "UsePreviousValue": True})
    return result


def parameter_problem(*, name: str, spec: dict, value: str) -> str | None:
    """Why CloudFormation would refuse `value` for the parameter declared as `spec`, in one sentence; else None."""
    kind = spec.get("Type", "String")
    items = value.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else [value]
    because = f" ({spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else ""
    for item in items:
        allowed = [str(choice) for choice in spec.get("AllowedValues", [])]
        if allowed and item not in allowed:
            return f"{name}={value} is not allowed: it takes {' or '.join(allowed)}{because}."
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, item):
            return f"{name}={value} does not match the pattern {pattern}{because}."
        if kind in {"Number", "List<Number>"}:
            try:
                number = float(item)
            except ValueError:
                return f"{name}={value} is not a number."
            if "MinValue" in spec and number < float(spec["MinValue"]):
                return f"{name}={value} is under its minimum of {spec['MinValue']}{because}."
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                return f"{name}={value} is over its maximum of {spec['MaxValue']}{because}."
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"{name}={value} is shorter than {spec['MinLength']} characters{because}."
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"{name}={value} is longer than {spec['MaxLength']} characters{because}."
    return None


def deploy_prepare(*, target: Target, overrides: dict[str, str]) -> templates.Template:
    """Synthesize and lint the template and check the --parameter values against it: everything that can be refused
    before any AWS call (credentials included) is refused here."""
    template = templates.template_synthesize(stack=target.stack, stack_settings=target.settings)
    declared = template.parameters
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateRejected(
            f"--parameter {unknown[0]} is not a parameter of the {template.stack} template "
            f"(it has: {', '.join(sorted(declared)) or 'none'})."
        )
    for name, value in sorted(overrides.items()):
        problem = parameter_problem(name=name, spec=declared[name], value=value)
        if problem:
            raise TemplateRejected(f"--parameter {problem} Nothing was sent to AWS.")
    if target.stack == "loadgen":
        from opsinfra.services.loadgen import loadgen_check

        loadgen_check(overrides=overrides)
    templates.template_check(template=template, region=target.region)
    return template


def stack_tags(*, target: Target, extra: dict[str, str]) -> list[dict]:
    project = getattr(target.settings, "project", "shop")
    tags = {"Project": project, "Environment": target.env, "Stack": target.stack, **extra}
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def deploy_plan(
    *,
    target: Target,
    existing: stacks.StackState | None,
    overrides: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    rollback_alarms: list[str] | None = None,
    change_set_name: str | None = None,
    template: templates.Template | None = None,
) -> Plan:
    """Create the change set for the template (deploy_prepare's, or synthesized and checked here) and wait until it
    is computed, then compare the deployed template with the new one.

    Nothing is executed. An empty change set (no changes) is deleted and the Plan says the stack is up to date.
    """
    name = changesets.changeset_name_check(change_set_name) if change_set_name else changesets.changeset_name()
    if template is None:
        template = deploy_prepare(target=target, overrides=overrides or {})
    upstream = upstream_outputs(target=target, template=template)
    change_set_type = "UPDATE" if existing is not None and existing.status != "REVIEW_IN_PROGRESS" else "CREATE"
    parameters = parameters_resolve(
        template=template,
        overrides=overrides or {},
        upstream=upstream,
        existing=existing,
        change_set_type=change_set_type,
    )
    request: dict = {
        "StackName": target.stack_name,
        "ChangeSetName": name,
        "ChangeSetType": change_set_type,
        "Parameters": parameters,
        "Capabilities": CAPABILITIES,
        "Tags": stack_tags(target=target, extra=tags or {}),
        "ClientToken": uuid.uuid4().hex,
        "Description": f"deploy_stack {target.stack} {target.env}",
    }
    template_url = None
    if templates.template_needs_url(template=template):
        bucket = upstream.get("ArtifactsBucketName")
        if not bucket:
            raise TemplateRejected(
                f"The {target.stack} template is {template.size:,} bytes, over the inline limit of "
                f"{templates.url_threshold():,}, and there is no artifacts bucket to stage it in."
            )
        template_url = templates.template_upload(
            template=template, bucket=bucket, stack_name=target.stack_name, region=target.region
        )
        request["TemplateURL"] = template_url
    else:
        request["TemplateBody"] = template.body
    role_arn = upstream.get("CloudFormationExecutionRoleArn")
    # Passing a role needs iam:PassRole; an update that names none runs under the stack's own role, so the preview
    # role (which may not pass roles) can still create change sets for review.
    if role_arn and (change_set_type == "CREATE" or existing.role_arn != role_arn):
        request["RoleARN"] = role_arn
    if rollback_alarms:
        request["RollbackConfiguration"] = {
            "RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"} for arn in rollback_alarms],
            "MonitoringTimeInMinutes": 10,
        }
    cfn = aws.client("cloudformation", region=target.region)
    change_set_id = changesets.changeset_create(cfn=cfn, request=request)
    change_set = None
    if change_set_id is not None:
        change_set = changesets.changeset_wait(cfn=cfn, change_set_id=change_set_id, stack_name=target.stack_name)
        if change_set.empty:
            changesets.changeset_delete(cfn=cfn, change_set_id=change_set.id, stack_name=target.stack_name)
            change_set = None
        elif change_set.status == "FAILED":
            changesets.changeset_delete(cfn=cfn, change_set_id=change_set.id, stack_name=target.stack_name)
            raise DeployFailed(f"CloudFormation rejected the change set for {target.stack_name}: {change_set.reason}")
    diff = None
    if change_set is not None:
        previous = existing.parameters if existing is not None else {}
        values = {
            item["ParameterKey"]: previous.get(item["ParameterKey"], "")
            if item.get("UsePreviousValue")
            else item["ParameterValue"]
            for item in parameters
        }
        diff = deploy_diff(
            cfn=cfn,
            target=target,
            change_set=change_set,
            change_set_type=change_set_type,
            existing=existing,
            new_template=template.data,
            new_parameters=values,
        )
    return Plan(
        target=target,
        change_set_type=change_set_type,
        change_set=change_set,
        template_url=template_url,
        template_size=template.size,
        parameters=tuple(parameters),
        diff=diff,
    )


def deploy_diff(
    *,
    cfn,
    target: Target,
    change_set: ChangeSet,
    change_set_type: str,
    existing: stacks.StackState | None,
    new_template: dict,
    new_parameters: dict[str, str],
) -> StackDiff:
    """The deployed template and parameters against the change set's (nothing deployed yet for a CREATE)."""
    updating = change_set_type == "UPDATE" and existing is not None
    old_template = changesets.template_read(cfn=cfn, stack_name=existing.stack_id) if updating else None
    stack_id = change_set.stack_id or (existing.stack_id if existing else "")
    arn = stack_id.split(":")
    context = {"AWS::Region": target.region, "AWS::StackName": target.stack_name}
    if len(arn) > 4 and arn[4]:
        context |= {"AWS::AccountId": arn[4], "AWS::StackId": stack_id}
    return stack_diff(
        old_template=old_template,
        old_parameters=existing.parameters if updating else {},
        new_template=new_template,
        new_parameters=new_parameters,
        context=context,
    )


def changeset_find(*, target: Target, name: str) -> Plan:
    """A change set created earlier (--no-execute), ready to execute, with what it changes; else OpsError saying
    why not."""
    cfn = aws.client("cloudformation", region=target.region)
    try:
        change_set = changesets.changeset_describe(cfn=cfn, change_set_id=name, stack_name=target.stack_name)
    except OpsError as exc:
        raise StackNotFound(f"Change set {name} of {target.stack_name} was not found in {target.region}.") from exc
    if change_set.status != "CREATE_COMPLETE" or change_set.execution_status != "AVAILABLE":
        raise StackStuck(
            f"Change set {name} cannot be executed (status {change_set.status}, execution "
            f"{change_set.execution_status}): create a new one with `{target.command()}`."
        )
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    change_set_type = "CREATE" if state is None or state.status == "REVIEW_IN_PROGRESS" else "UPDATE"
    diff = deploy_diff(
        cfn=cfn,
        target=target,
        change_set=change_set,
        change_set_type=change_set_type,
        existing=state,
        new_template=changesets.template_read(
            cfn=cfn, stack_name=change_set.stack_id or target.stack_name, change_set_name=change_set.id
        ),
        new_parameters=change_set.parameters,
    )
    return Plan(
        target=target,
        change_set_type=change_set_type,
        change_set=change_set,
        template_url=None,
        template_size=0,
        diff=diff,
    )


# --- executing ------------------------------------------------------------------------------------------------------


def deploy_execute(
    *,
    target: Target,
    change_set: ChangeSet,
    change_set_type: str,
    on_event: Callable,
    on_cancel: Callable[[str], None] | None = None,
    disable_rollback: bool = False,
    timeout_minutes: float | None = None,
) -> Outcome:
    """Execute the change set and follow it to the end. Past the timeout an update is cancelled (and rolls back);
    a create cannot be cancelled and goes on in CloudFormation."""
    cfn = aws.client("cloudformation", region=target.region)
    after_id = events.events_latest_id(cfn=cfn, stack_name=change_set.stack_id or target.stack_name)
    try:
        cfn.execute_change_set(
            ChangeSetName=change_set.id,
            StackName=change_set.stack_id or target.stack_name,
            ClientRequestToken=uuid.uuid4().hex,
            DisableRollback=disable_rollback,
        )
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"execute change set {change_set.name}", exc) from exc

    def cancel(status: str) -> None:
        if on_cancel:
            on_cancel(status)
        try:
            cfn.cancel_update_stack(StackName=change_set.stack_id or target.stack_name)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"cancel the update of {target.stack_name}", exc) from exc

    stack_id = change_set.stack_id or target.stack_name
    return events.stack_follow(
        cfn=cfn,
        stack_id=stack_id,
        stack_name=target.stack_name,
        after_id=after_id,
        total=len(change_set.changes),
        on_event=on_event,
        timeout_s=timeout_minutes * 60 if timeout_minutes else None,
        on_timeout=cancel if change_set_type == "UPDATE" else None,
    )


def deploy_finish(*, target: Target, outputs_file: str | None, termination_protection: bool) -> tuple[dict, object]:
    """After a successful deploy: turn termination protection on if asked, save the outputs file, return both."""
    cfn = aws.client("cloudformation", region=target.region)
    if termination_protection:
        try:
            cfn.update_termination_protection(EnableTerminationProtection=True, StackName=target.stack_name)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"turn on termination protection for {target.stack_name}", exc) from exc
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    outputs = state.outputs if state else {}
    path = stacks.outputs_write(
        outputs=outputs, path=stacks.outputs_path(stack_name=target.stack_name, path=outputs_file)
    )
    return outputs, path


def next_step(*, target: Target, status: str) -> str:
    """What the operator does after an operation ended in `status`."""
    status_command = f"manage.py stack_status --stack {target.stack} --env {target.env}"
    if status == "ROLLBACK_COMPLETE":
        return (
            "The first create failed and was rolled back; the stack holds nothing and cannot be updated. Fix the "
            f"cause above, then run `{target.command()}` again: it offers to delete and recreate the stack."
        )
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return f"The stack is back where it was before this deploy. Fix the cause above and run `{target.command()}`."
    if status == "UPDATE_ROLLBACK_FAILED":
        return (
            f"The rollback itself failed. Run `{target.command()}` again to continue the rollback, after fixing "
            "what the events above name."
        )
    if status in {"CREATE_FAILED", "UPDATE_FAILED"}:
        return (
            "Rollback was disabled, so the resources that worked are still there. Fix the cause and run the deploy "
            f"again, or remove the stack with `manage.py destroy_stack --stack {target.stack} --env {target.env}`."
        )
    if status == "ROLLBACK_FAILED":
        return f"Resources are left over: see `{status_command}`, remove them, then destroy the stack."
    if status.endswith("_IN_PROGRESS"):
        return f"CloudFormation goes on without us: follow it with `{status_command}`."
    return f"See `{status_command}`."
