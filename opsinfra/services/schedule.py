"""One-off sale windows: scheduled actions on the app's Auto Scaling group, made through the Auto Scaling API
(a date in a committed template would make the template undeployable once it passed)."""

from dataclasses import dataclass
from datetime import UTC, datetime

from opsinfra import aws
from opsinfra.errors import ScheduleError

PREFIX = "sale-"


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime
    capacity: int
    baseline_min: int
    baseline_desired: int


@dataclass(frozen=True)
class ScheduledAction:
    name: str
    start: datetime | None
    recurrence: str
    min_size: int | None
    max_size: int | None
    desired: int | None


def window_name(start: datetime) -> str:
    return f"{PREFIX}{start.astimezone(UTC):%Y%m%d-%H%M}"


def group_sizes(*, autoscaling, asg_name: str) -> dict:
    try:
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe Auto Scaling group {asg_name}", exc) from exc
    if not groups:
        raise ScheduleError(f"There is no Auto Scaling group {asg_name}.")
    return groups[0]


def schedule_add(
    *,
    region: str,
    asg_name: str,
    start: datetime,
    end: datetime,
    capacity: int,
    baseline_min: int | None = None,
    baseline_desired: int | None = None,
    now: datetime | None = None,
) -> Window:
    """Two scheduled actions: at `start` MinSize and desired go to `capacity` (so target tracking cannot scale in
    before the peak), at `end` both go back to the baseline (the preset's, else the group's current sizes)."""
    now = now or datetime.now(UTC)
    if start <= now:
        raise ScheduleError(f"The start {start:%Y-%m-%d %H:%M} UTC is in the past: choose a time after now.")
    if end <= start:
        raise ScheduleError(f"The end {end:%Y-%m-%d %H:%M} UTC is not after the start {start:%Y-%m-%d %H:%M} UTC.")
    if capacity < 1:
        raise ScheduleError(f"The capacity must be at least 1 instance, not {capacity}.")
    autoscaling = aws.client("autoscaling", region=region)
    group = group_sizes(autoscaling=autoscaling, asg_name=asg_name)
    if capacity > group["MaxSize"]:
        raise ScheduleError(
            f"A capacity of {capacity} is over the group's maximum of {group['MaxSize']}: raise asg_max in the "
            "preset and deploy the app stack first, or ask for less."
        )
    baseline_min = group["MinSize"] if baseline_min is None else baseline_min
    baseline_desired = group["DesiredCapacity"] if baseline_desired is None else baseline_desired
    window = Window(
        name=window_name(start),
        start=start,
        end=end,
        capacity=capacity,
        baseline_min=baseline_min,
        baseline_desired=max(baseline_min, baseline_desired),
    )
    actions = [
        (f"{window.name}-up", start, window.capacity, window.capacity),
        (f"{window.name}-down", end, window.baseline_min, window.baseline_desired),
    ]
    for name, when, min_size, desired in actions:
        try:
            autoscaling.put_scheduled_update_group_action(
                AutoScalingGroupName=asg_name,
                ScheduledActionName=name,
                StartTime=when,
                MinSize=min_size,
                DesiredCapacity=desired,
            )
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"schedule {name} on {asg_name}", exc) from exc
    return window


def schedule_list(*, region: str, asg_name: str) -> list[ScheduledAction]:
    autoscaling = aws.client("autoscaling", region=region)
    found: list[ScheduledAction] = []
    token = None
    while True:
        request = {"AutoScalingGroupName": asg_name}
        if token:
            request["NextToken"] = token
        try:
            page = autoscaling.describe_scheduled_actions(**request)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"list the scheduled actions of {asg_name}", exc) from exc
        found.extend(
            ScheduledAction(
                name=raw["ScheduledActionName"],
                start=raw.get("StartTime"),
                recurrence=raw.get("Recurrence", ""),
                min_size=raw.get("MinSize"),
                max_size=raw.get("MaxSize"),
                desired=raw.get("DesiredCapacity"),
            )
            for raw in page.get("ScheduledUpdateGroupActions", [])
        )
        token = page.get("NextToken")
        if not token:
            break
    return sorted(found, key=lambda action: (action.start or datetime.max.replace(tzinfo=UTC), action.name))


def schedule_remove(*, region: str, asg_name: str, name: str) -> list[str]:
    """Remove a sale window (both its actions) by the name schedule_peak gave it, or one action by its own name."""
    existing = {action.name for action in schedule_list(region=region, asg_name=asg_name)}
    doomed = sorted(existing & {name, f"{name}-up", f"{name}-down"})
    if not doomed:
        windows = sorted({action.rsplit("-", 1)[0] for action in existing if action.startswith(PREFIX)})
        raise ScheduleError(
            f"There is no sale window {name} on {asg_name} (scheduled: {', '.join(windows) or 'none'})."
        )
    autoscaling = aws.client("autoscaling", region=region)
    for action in doomed:
        try:
            autoscaling.delete_scheduled_action(AutoScalingGroupName=asg_name, ScheduledActionName=action)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"remove {action} from {asg_name}", exc) from exc
    return doomed
