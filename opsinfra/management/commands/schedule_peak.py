from datetime import UTC, datetime

from django.core.management.base import CommandError

from opsinfra import aws
from opsinfra.errors import OpsError
from opsinfra.management.base import OpsCommand
from opsinfra.management.output import table
from opsinfra.services import deploy, schedule, stacks


def utc_time(value: str) -> datetime:
    """ISO 8601; a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a time like 2026-11-27T06:00 or 2026-11-27T06:00+01:00.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Command(OpsCommand):
    help = (
        "Schedule a one-off sale window on the app's Auto Scaling group: MinSize and desired capacity raised at "
        "--start, lowered back at --end. --list shows what is scheduled; --remove NAME cancels a window."
    )

    def add_arguments(self, parser):
        parser.add_argument("--start", help="When the capacity must be there (ISO 8601; UTC unless an offset).")
        parser.add_argument("--end", help="When the sale is over.")
        parser.add_argument("--capacity", type=int, default=10, help="Instances during the window (default 10).")
        parser.add_argument("--list", action="store_true", dest="show_list", help="Show the scheduled actions.")
        parser.add_argument("--remove", metavar="NAME", help="Remove a window, e.g. sale-20261127-0600.")
        parser.add_argument("--env", default="staging", help="Settings preset: production or staging.")
        parser.add_argument("--asg-name", help="Default: AutoScalingGroupName from the app stack's outputs.")
        parser.add_argument("--outputs-file", metavar="PATH", help="Default .shop/outputs-<stack-name>.json.")

    def handle(self, *args, start, end, capacity, show_list, remove, env, asg_name, outputs_file, **options):
        if not (show_list or remove) and not (start and end):
            raise CommandError("Give --start and --end for a new window, or --list, or --remove NAME.")
        if bool(start) != bool(end):
            raise CommandError("A window needs both --start and --end.")
        if start and remove:
            raise CommandError("--remove cancels a window and --start adds one: give one of them.")
        if start:
            start, end = utc_time(start), utc_time(end)
            if end <= start:
                raise CommandError(
                    f"The end {end:%Y-%m-%d %H:%M} UTC is not after the start {start:%Y-%m-%d %H:%M} UTC."
                )
            if start <= datetime.now(UTC):
                raise CommandError(f"The start {start:%Y-%m-%d %H:%M} UTC is in the past: choose a time after now.")
            if capacity < 1:
                raise CommandError(f"--capacity {capacity}: a window holds at least 1 instance.")
        try:
            target = deploy.target_resolve(stack="app", env=env)
            if not asg_name:
                asg_name = stacks.output_find(
                    cfn=aws.client("cloudformation", region=target.region),
                    stack_name=target.stack_name,
                    key="AutoScalingGroupName",
                    outputs_file=outputs_file,
                )
            if remove:
                removed = schedule.schedule_remove(region=target.region, asg_name=asg_name, name=remove)
                self.stdout.write(self.style.SUCCESS(f"Removed {', '.join(removed)} from {asg_name}."))
            elif start:
                window = schedule.schedule_add(
                    region=target.region,
                    asg_name=asg_name,
                    start=start,
                    end=end,
                    capacity=capacity,
                    baseline_min=getattr(target.settings, "asg_min", None),
                    baseline_desired=getattr(target.settings, "asg_desired", None),
                )
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Sale window {window.name} on {asg_name}: {window.capacity} instances (MinSize and desired) "
                        f"from {window.start:%Y-%m-%d %H:%M} UTC, back to min {window.baseline_min} / desired "
                        f"{window.baseline_desired} at {window.end:%Y-%m-%d %H:%M} UTC."
                    )
                )
            if show_list:
                self.show(target.region, asg_name)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc

    def show(self, region, asg_name):
        actions = schedule.schedule_list(region=region, asg_name=asg_name)
        if not actions:
            self.stdout.write(f"Nothing is scheduled on {asg_name}.")
            return
        rows = [
            (
                action.name,
                f"{action.start:%Y-%m-%d %H:%M} UTC" if action.start and not action.recurrence else "-",
                action.recurrence or "-",
                "-" if action.min_size is None else str(action.min_size),
                "-" if action.desired is None else str(action.desired),
                "-" if action.max_size is None else str(action.max_size),
            )
            for action in actions
        ]
        for line in table(["action", "start", "recurrence", "min", "desired", "max"], rows):
            self.stdout.write(line)
