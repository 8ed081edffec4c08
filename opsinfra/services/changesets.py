"""Change sets: create one, wait until CloudFormation has computed it, read it whole, delete it."""

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsinfra import aws
from opsinfra.errors import DeployFailed, OpsError
from opsinfra.services.events import clock

# Replacing one of these loses data (a new database, an empty cache or bucket, a new secret value).
STATEFUL_TYPES = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
}
# How AWS and the emulator say an update would change nothing.
NO_CHANGES = ("didn't contain changes", "no updates are to be performed")
CHANGE_SET_TIMEOUT_S = 600


@dataclass(frozen=True)
class ResourceChange:
    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""  # True / Conditional / False; CloudFormation gives none for Add and Remove

    @property
    def stateful_replacement(self) -> bool:
        return self.resource_type in STATEFUL_TYPES and self.replacement in {"True", "Conditional"}


@dataclass(frozen=True)
class ChangeSet:
    id: str
    name: str
    stack_id: str
    stack_name: str
    status: str
    execution_status: str
    reason: str
    changes: tuple[ResourceChange, ...]
    parameters: dict[str, str] = field(default_factory=dict)  # as CloudFormation resolved them for this change set

    @property
    def empty(self) -> bool:
        return self.status == "FAILED" and is_no_changes(self.reason)


def is_no_changes(message: str) -> bool:
    return any(marker in (message or "").lower() for marker in NO_CHANGES)


NAME_PATTERN = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")


def changeset_name_check(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise OpsError(f"{name!r} is not a change set name: a letter, then up to 127 letters, digits and hyphens.")
    return name


def changeset_name() -> str:
    """Unique, starts with a letter (CloudFormation's rule), and sorts by time in the console."""
    return f"shop-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def changeset_create(*, cfn, request: dict) -> str | None:
    """Create the change set described by `request` (CreateChangeSet's arguments); None when the emulator already
    said there is nothing to change."""
    try:
        return cfn.create_change_set(**request)["Id"]
    except aws.aws_errors() as exc:
        if is_no_changes(aws.error_message(exc)):
            return None
        raise aws.call_failed(f"create a change set for {request['StackName']}", exc) from exc


def changeset_wait(*, cfn, change_set_id: str, stack_name: str) -> ChangeSet:
    """Poll until the change set is computed (CREATE_COMPLETE) or FAILED, with backoff; read all its pages."""
    deadline = clock.monotonic() + CHANGE_SET_TIMEOUT_S
    delay = clock.first_delay()
    while True:
        change_set = changeset_describe(cfn=cfn, change_set_id=change_set_id, stack_name=stack_name)
        if change_set.status in {"CREATE_COMPLETE", "FAILED"}:
            return change_set
        if clock.monotonic() > deadline:
            raise DeployFailed(
                f"CloudFormation did not finish computing change set {change_set.name} within "
                f"{CHANGE_SET_TIMEOUT_S // 60} minutes (status {change_set.status})."
            )
        clock.sleep(delay)
        delay = clock.next_delay(delay)


def changeset_describe(*, cfn, change_set_id: str, stack_name: str) -> ChangeSet:
    pages: list[dict] = []
    token = None
    while True:
        request = {"ChangeSetName": change_set_id, "StackName": stack_name}
        if token:
            request["NextToken"] = token
        try:
            page = cfn.describe_change_set(**request)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"describe change set {change_set_id}", exc) from exc
        pages.append(page)
        token = page.get("NextToken")
        if not token:
            break
    first = pages[0]
    changes = tuple(
        ResourceChange(
            action=item["ResourceChange"].get("Action", ""),
            logical_id=item["ResourceChange"].get("LogicalResourceId", ""),
            resource_type=item["ResourceChange"].get("ResourceType", ""),
            replacement=item["ResourceChange"].get("Replacement", ""),
        )
        for page in pages
        for item in page.get("Changes", [])
        if item.get("Type", "Resource") == "Resource"
    )
    return ChangeSet(
        id=first.get("ChangeSetId", change_set_id),
        name=first.get("ChangeSetName", change_set_id),
        stack_id=first.get("StackId", ""),
        stack_name=first.get("StackName", stack_name),
        status=first.get("Status", ""),
        execution_status=first.get("ExecutionStatus", ""),
        reason=first.get("StatusReason", ""),
        changes=changes,
        parameters={item["ParameterKey"]: item.get("ParameterValue", "") for item in first.get("Parameters") or []},
    )


def template_read(*, cfn, stack_name: str, change_set_name: str | None = None) -> dict:
    """The template a stack runs (or a change set would run), as CloudFormation holds it."""
    request = {"StackName": stack_name, "TemplateStage": "Original"}
    if change_set_name:
        request["ChangeSetName"] = change_set_name
    try:
        body = cfn.get_template(**request)["TemplateBody"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read the template of {change_set_name or stack_name}", exc) from exc
    if isinstance(body, dict):  # botocore hands a JSON template over already parsed
        return body
    try:
        return json.loads(body)
    except ValueError:
        from cfnlint.decode.cfn_yaml import loads  # a template deployed as YAML, with its short forms

        return loads(body)


def changeset_delete(*, cfn, change_set_id: str, stack_name: str) -> None:
    try:
        cfn.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"delete change set {change_set_id}", exc) from exc


def changeset_discard(*, cfn, name: str, stack_name: str) -> bool:
    """Delete a change set that was only for review; False when there is none of that name (already gone)."""
    try:
        cfn.describe_change_set(ChangeSetName=name, StackName=stack_name)
    except aws.aws_errors() as exc:
        if aws.error_code(exc) in {"ChangeSetNotFound", "ChangeSetNotFoundException", "ValidationError"}:
            return False
        raise aws.call_failed(f"describe change set {name}", exc) from exc
    changeset_delete(cfn=cfn, change_set_id=name, stack_name=stack_name)
    return True


def changeset_rows(change_set: ChangeSet) -> list[tuple[str, str, str, str]]:
    """Table rows: action, logical id, type, replacement; sorted so a reviewer finds a resource by name."""
    return [
        (change.action, change.logical_id, change.resource_type, change.replacement or "-")
        for change in sorted(change_set.changes, key=lambda change: (change.action, change.logical_id))
    ]
