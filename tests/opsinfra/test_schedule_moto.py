"""schedule_peak on moto, which implements scheduled actions."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from django.core.management.base import CommandError

from tests.opsinfra.conftest import run

ASG = "shop-app-staging-asg"


@pytest.fixture
def group(aws_env, outputs_dir):
    ec2 = boto3.client("ec2")
    ec2.create_launch_template(
        LaunchTemplateName="shop", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"}
    )
    boto3.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateName": "shop", "Version": "$Latest"},
        MinSize=2,
        MaxSize=20,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )
    outputs_dir.mkdir(parents=True)
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps({"AutoScalingGroupName": ASG}))
    return ASG


def actions() -> dict[str, dict]:
    listing = boto3.client("autoscaling").describe_scheduled_actions(AutoScalingGroupName=ASG)
    return {action["ScheduledActionName"]: action for action in listing["ScheduledUpdateGroupActions"]}


def later(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


def test_schedule_window_raises_min_and_desired_then_lowers_both(group):
    start, end = later(24), later(30)

    out, _ = run("schedule_peak", "--start", start.isoformat(), "--end", end.isoformat(), "--capacity", "10")

    name = f"sale-{start:%Y%m%d-%H%M}"
    assert f"Sale window {name} on {ASG}: 10 instances" in out
    scheduled = actions()
    assert set(scheduled) == {f"{name}-up", f"{name}-down"}
    up, down = scheduled[f"{name}-up"], scheduled[f"{name}-down"]
    assert (up["MinSize"], up["DesiredCapacity"], up["StartTime"]) == (10, 10, start)
    # Back to the staging preset (asg_min 2, asg_desired 2).
    assert (down["MinSize"], down["DesiredCapacity"], down["StartTime"]) == (2, 2, end)


def test_schedule_list_shows_windows_and_remove_cancels_one(group):
    start = later(48)
    run("schedule_peak", "--start", start.isoformat(), "--end", later(50).isoformat())
    name = f"sale-{start:%Y%m%d-%H%M}"

    out, _ = run("schedule_peak", "--list")
    assert f"{name}-up" in out and f"{name}-down" in out

    out, _ = run("schedule_peak", "--remove", name)
    assert f"Removed {name}-down, {name}-up from {ASG}." in out
    assert actions() == {}
    out, _ = run("schedule_peak", "--list")
    assert f"Nothing is scheduled on {ASG}." in out


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (-1, 2, "is in the past"),
        (3, 2, "is not after the start"),
        (3, 3, "is not after the start"),
    ],
)
def test_schedule_refuses_past_start_and_end_before_start(group, start, end, message):
    with pytest.raises(CommandError, match=message):
        run("schedule_peak", "--start", later(start).isoformat(), "--end", later(end).isoformat())

    assert actions() == {}


def test_schedule_refuses_capacity_over_the_group_maximum(group):
    with pytest.raises(CommandError, match="over the group's maximum of 20"):
        run("schedule_peak", "--start", later(2).isoformat(), "--end", later(3).isoformat(), "--capacity", "25")

    assert actions() == {}


def test_schedule_remove_unknown_window_names_what_exists(group):
    with pytest.raises(CommandError, match=r"There is no sale window sale-x on .* \(scheduled: none\)"):
        run("schedule_peak", "--remove", "sale-x")


def test_schedule_bad_time_is_one_sentence(group):
    with pytest.raises(CommandError, match="'tomorrow' is not a time like"):
        run("schedule_peak", "--start", "tomorrow", "--end", later(3).isoformat())
