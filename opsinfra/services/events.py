"""Following a stack operation: new events as they come, a progress count, backoff, a deadline."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from opsinfra import aws

# Statuses where the stack operation is over, one way or the other.
TERMINAL = {
    "CREATE_COMPLETE",
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "UPDATE_COMPLETE",
    "UPDATE_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_ROLLBACK_FAILED",
    "DELETE_COMPLETE",
    "DELETE_FAILED",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}
# The resource events that say a resource is done for this operation.
RESOURCE_DONE = ("_COMPLETE", "_FAILED", "_SKIPPED")


class Clock:
    """Time as the waiting loops see it; tests swap it for one that does not sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def first_delay(self) -> float:
        return float(settings.OPSINFRA.get("POLL_SECONDS", (2, 15))[0])

    def next_delay(self, delay: float) -> float:
        """Back off by half each poll up to the ceiling: quick answers early, few calls on a 30-minute create."""
        ceiling = float(settings.OPSINFRA.get("POLL_SECONDS", (2, 15))[1])
        return min(ceiling, delay * 1.5)


clock = Clock()


@dataclass(frozen=True)
class StackEvent:
    id: str
    timestamp: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")

    @property
    def is_stack(self) -> bool:
        return self.resource_type == "AWS::CloudFormation::Stack"


@dataclass
class Progress:
    total: int
    done: set[str] = field(default_factory=set)

    def record(self, event: StackEvent) -> None:
        if not event.is_stack and event.status.endswith(RESOURCE_DONE):
            self.done.add(event.logical_id)

    @property
    def complete(self) -> int:
        return min(len(self.done), self.total) if self.total else len(self.done)


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    events: tuple[StackEvent, ...]
    timed_out: bool = False

    @property
    def failures(self) -> list[StackEvent]:
        """The events that explain the failure, oldest first, without the cancellations they caused."""
        failed = [event for event in self.events if event.failed and event.reason]
        causes = [event for event in failed if "cancelled" not in event.reason.lower()]
        return causes or failed


def _event(raw: dict) -> StackEvent:
    return StackEvent(
        id=raw["EventId"],
        timestamp=raw["Timestamp"],
        logical_id=raw.get("LogicalResourceId", ""),
        resource_type=raw.get("ResourceType", ""),
        status=raw.get("ResourceStatus", ""),
        reason=raw.get("ResourceStatusReason", ""),
    )


def events_latest_id(*, cfn, stack_name: str) -> str | None:
    """The id of the newest event so far: the mark after which an operation's own events start."""
    try:
        page = cfn.describe_stack_events(StackName=stack_name)
    except aws.aws_errors() as exc:
        if "does not exist" in aws.error_message(exc):
            return None
        raise aws.call_failed(f"read the events of {stack_name}", exc) from exc
    events = page.get("StackEvents", [])
    return events[0]["EventId"] if events else None


def events_since(*, cfn, stack_name: str, after_id: str | None, seen: set[str]) -> list[StackEvent]:
    """Events newer than `after_id` not in `seen`, oldest first. Pages are newest first, so stop at the mark."""
    fresh: list[StackEvent] = []
    token = None
    while True:
        request = {"StackName": stack_name}
        if token:
            request["NextToken"] = token
        try:
            page = cfn.describe_stack_events(**request)
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"read the events of {stack_name}", exc) from exc
        reached_mark = False
        for raw in page.get("StackEvents", []):
            if raw["EventId"] == after_id:
                reached_mark = True
                break
            if raw["EventId"] not in seen:
                fresh.append(_event(raw))
        token = page.get("NextToken")
        if reached_mark or not token:
            break
    fresh.reverse()
    return fresh


def stack_status(*, cfn, stack_id: str) -> tuple[str, str]:
    try:
        raw = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe stack {stack_id}", exc) from exc
    return raw["StackStatus"], raw.get("StackStatusReason", "")


def stack_follow(
    *,
    cfn,
    stack_id: str,
    stack_name: str,
    after_id: str | None,
    total: int,
    on_event: Callable[[StackEvent, Progress], None],
    timeout_s: float | None = None,
    on_timeout: Callable[[str], None] | None = None,
) -> Outcome:
    """Stream the operation's events to `on_event` until the stack reaches a terminal status.

    When `timeout_s` passes, `on_timeout(status)` runs once (an update is cancelled there) and following goes on
    until the stack settles, so the operator sees the rollback too; the Outcome then says it timed out.
    """
    progress = Progress(total=total)
    seen: set[str] = set()
    collected: list[StackEvent] = []
    started = clock.monotonic()
    timed_out = False
    delay = clock.first_delay()
    while True:
        for event in events_since(cfn=cfn, stack_name=stack_id, after_id=after_id, seen=seen):
            seen.add(event.id)
            collected.append(event)
            progress.record(event)
            on_event(event, progress)
        status, reason = stack_status(cfn=cfn, stack_id=stack_id)
        if status in TERMINAL:
            # Events written between the last read and the final status.
            for event in events_since(cfn=cfn, stack_name=stack_id, after_id=after_id, seen=seen):
                seen.add(event.id)
                collected.append(event)
                progress.record(event)
                on_event(event, progress)
            return Outcome(status=status, reason=reason, events=tuple(collected), timed_out=timed_out)
        if timeout_s is not None and not timed_out and clock.monotonic() - started > timeout_s:
            timed_out = True
            if on_timeout is None:
                return Outcome(status=status, reason=reason, events=tuple(collected), timed_out=True)
            on_timeout(status)
        clock.sleep(delay)
        delay = clock.next_delay(delay)
