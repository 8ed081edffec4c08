"""A stack at a glance: status, last events, outputs, the live release, and drift when asked."""

import json
from dataclasses import dataclass

from opsinfra import aws
from opsinfra.errors import DeployFailed, StackNotFound
from opsinfra.services import events, stacks
from opsinfra.services.deploy import Target
from opsinfra.services.events import StackEvent

DRIFT_TIMEOUT_S = 300


@dataclass(frozen=True)
class Drift:
    status: str  # DRIFTED, IN_SYNC, UNKNOWN
    drifted_resources: int
    resources: tuple[tuple[str, str, str], ...]  # logical id, type, MODIFIED / DELETED


@dataclass(frozen=True)
class StackReport:
    state: stacks.StackState
    events: tuple[StackEvent, ...]
    release: dict | None
    release_parameter: str


def release_parameter_name(target: Target) -> str:
    name = getattr(target.settings, "release_parameter_name", None)
    return name or f"/{getattr(target.settings, 'project', 'shop')}/{target.env}/release"


def release_read(*, target: Target) -> dict | None:
    """The live release ({"version", "bundle"}) from the SSM parameter, or None when none was written yet."""
    ssm = aws.client("ssm", region=target.region)
    try:
        raw = ssm.get_parameter(Name=release_parameter_name(target))["Parameter"]["Value"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) == "ParameterNotFound":
            return None
        raise aws.call_failed(f"read {release_parameter_name(target)}", exc) from exc
    try:
        value = json.loads(raw)
    except ValueError:
        return {"version": raw, "bundle": ""}
    return value if isinstance(value, dict) else {"version": str(value), "bundle": ""}


def stack_report(*, target: Target, last_events: int = 10) -> StackReport:
    cfn = aws.client("cloudformation", region=target.region)
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    if state is None:
        raise StackNotFound(f"There is no stack {target.stack_name} in {target.region}.")
    recent = events.events_since(cfn=cfn, stack_name=state.stack_id, after_id=None, seen=set())[-last_events:]
    release = release_read(target=target) if target.stack == "app" else None
    return StackReport(
        state=state, events=tuple(recent), release=release, release_parameter=release_parameter_name(target)
    )


def stack_drift(*, target: Target) -> Drift:
    """Run drift detection, wait for it, and list the resources that differ from the template."""
    cfn = aws.client("cloudformation", region=target.region)
    try:
        detection_id = cfn.detect_stack_drift(StackName=target.stack_name)["StackDriftDetectionId"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"start drift detection on {target.stack_name}", exc) from exc
    deadline = events.clock.monotonic() + DRIFT_TIMEOUT_S
    delay = events.clock.first_delay()
    while True:
        try:
            detection = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"read drift detection {detection_id}", exc) from exc
        if detection["DetectionStatus"] != "DETECTION_IN_PROGRESS":
            break
        if events.clock.monotonic() > deadline:
            raise DeployFailed(f"Drift detection on {target.stack_name} did not finish within 5 minutes.")
        events.clock.sleep(delay)
        delay = events.clock.next_delay(delay)
    if detection["DetectionStatus"] == "DETECTION_FAILED" and not detection.get("StackDriftStatus"):
        raise DeployFailed(f"Drift detection on {target.stack_name} failed: {detection.get('DetectionStatusReason')}")
    try:
        drifts = cfn.describe_stack_resource_drifts(
            StackName=target.stack_name, StackResourceDriftStatusFilters=["MODIFIED", "DELETED"]
        )["StackResourceDrifts"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"list the drifted resources of {target.stack_name}", exc) from exc
    return Drift(
        status=detection.get("StackDriftStatus", "UNKNOWN"),
        drifted_resources=detection.get("DriftedStackResourceCount", len(drifts)),
        resources=tuple(
            (drift["LogicalResourceId"], drift["ResourceType"], drift["StackResourceDriftStatus"]) for drift in drifts
        ),
    )
