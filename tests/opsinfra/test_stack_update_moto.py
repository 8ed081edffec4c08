"""A stack update inside a sale window, on the emulator: the real app template deployed, the window scheduled with
schedule_peak and opened, then an update that touches the Auto Scaling group.

moto does not run scheduled actions on a clock: the test applies the window's "up" action as Auto Scaling would.
The emulator updates the group in place as CloudFormation does (tests/opsinfra/emulator.py says how)."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.opsinfra.conftest import run

WINDOW_CAPACITY = 4  # the staging preset's asg_max


@pytest.fixture
def app_stack(aws_env, outputs_dir):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input", "--allow-wider-access")
    return json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())


def _group(name: str) -> dict:
    (group,) = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return group


def _open_sale_window(asg: str) -> str:
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    run("schedule_peak", "--start", start.isoformat(), "--end", (start + timedelta(hours=4)).isoformat(),
        "--capacity", str(WINDOW_CAPACITY))  # fmt: skip
    autoscaling = boto3.client("autoscaling")
    actions = autoscaling.describe_scheduled_actions(AutoScalingGroupName=asg)["ScheduledUpdateGroupActions"]
    (up,) = [action for action in actions if action["ScheduledActionName"].endswith("-up")]
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=asg, MinSize=up["MinSize"], DesiredCapacity=up["DesiredCapacity"]
    )
    return up["ScheduledActionName"]


def test_stack_update_inside_a_sale_window_keeps_the_windows_capacity(app_stack, settings):
    # given: the window is open
    asg = app_stack["AutoScalingGroupName"]
    assert (_group(asg)["MinSize"], _group(asg)["DesiredCapacity"]) == (2, 2)
    up = _open_sale_window(asg)
    assert (_group(asg)["MinSize"], _group(asg)["DesiredCapacity"]) == (WINDOW_CAPACITY, WINDOW_CAPACITY)

    # when: an update changes the group (a longer boot: its grace period and lifecycle hook)
    staging = settings.OPSINFRA["ENVIRONMENTS"]["staging"]
    settings.OPSINFRA = {
        **settings.OPSINFRA,
        "ENVIRONMENTS": {**settings.OPSINFRA["ENVIRONMENTS"], "staging": {**staging, "boot_seconds": 660}},
    }
    out, _ = run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input", "--allow-wider-access")

    # then: the group took the update and kept the window's sizes and actions
    assert any(line.split()[:2] == ["Modify", "ComputeAutoScalingGroup"] for line in out.splitlines())
    group = _group(asg)
    assert group["HealthCheckGracePeriod"] == 660
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (WINDOW_CAPACITY, WINDOW_CAPACITY, 4)
    actions = boto3.client("autoscaling").describe_scheduled_actions(AutoScalingGroupName=asg)
    assert up in {action["ScheduledActionName"] for action in actions["ScheduledUpdateGroupActions"]}


def test_stack_update_that_changes_a_size_applies_that_size_only(app_stack, settings):
    asg = app_stack["AutoScalingGroupName"]
    _open_sale_window(asg)
    staging = settings.OPSINFRA["ENVIRONMENTS"]["staging"]
    settings.OPSINFRA = {
        **settings.OPSINFRA,
        "ENVIRONMENTS": {**settings.OPSINFRA["ENVIRONMENTS"], "staging": {**staging, "asg_max": 6}},
    }

    run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input", "--allow-wider-access")

    group = _group(asg)
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (WINDOW_CAPACITY, WINDOW_CAPACITY, 6)
