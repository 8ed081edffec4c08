"""The loadgen stack's real template deployed and destroyed on the emulator, with what its deploy changes outside
it: the locustfile in the artifacts bucket, the fleet's NAT address on the app's RATELIMIT_ALLOW_IPS parameter and
on the WAF allow-list IP set (the edge stack's for a fleet outside us-east-1, the app stack's in us-east-1), and an
instance refresh that takes the list to the app instances. destroy_stack takes all of it back."""

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import ANY
from django.core.management.base import CommandError

from tests.opsinfra.conftest import run

REGION = "eu-west-1"
# Every IAM action deploy_stack and destroy_stack make for a fleet (outside CloudFormation's own).
OPERATOR_CALLS = {
    *{("deploy_stack", f"cloudformation:{name}") for name in ("CreateChangeSet", "DescribeChangeSet",
      "DescribeStackEvents", "DescribeStackResource", "DescribeStacks", "ExecuteChangeSet")},
    ("deploy_stack", "iam:PassRole"),
    ("deploy_stack", "s3:PutObject"),
    ("deploy_stack", "ssm:GetParameters"),  # CloudFormation resolving AmiId, as the caller
    *{("deploy_stack", f"ssm:{name}") for name in ("GetParameter", "PutParameter")},
    *{("deploy_stack", f"wafv2:{name}") for name in ("GetIPSet", "UpdateIPSet")},
    *{("destroy_stack", f"cloudformation:{name}") for name in ("DeleteStack", "DescribeStackEvents",
      "DescribeStackResource", "DescribeStacks", "GetTemplate")},
    ("destroy_stack", "ssm:DeleteParameter"),
    *{("destroy_stack", f"wafv2:{name}") for name in ("GetIPSet", "UpdateIPSet")},
}  # fmt: skip
OFFICE = "198.51.100.0/24"
HOST = "https://staging.example.com"


def stop_at(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def fleet(*extra: str, region: str = REGION, stop: str | None = None) -> tuple[str, str]:
    return run(
        "deploy_stack", "--stack", "loadgen", "--env", "staging", "--region", region, "--no-input",
        "--allow-wider-access", "--parameter", f"StopAt={stop or stop_at(hours=2)}", "--parameter",
        f"TargetHost={HOST}", *extra,
    )  # fmt: skip


def ip_set_addresses() -> set[str]:
    waf = boto3.client("wafv2", region_name="us-east-1")
    (summary,) = waf.list_ip_sets(Scope="CLOUDFRONT")["IPSets"]
    return set(waf.get_ip_set(Name=summary["Name"], Scope="CLOUDFRONT", Id=summary["Id"])["IPSet"]["Addresses"])


def allow_parameter(region: str = REGION) -> str | None:
    ssm = boto3.client("ssm", region_name=region)
    try:
        return ssm.get_parameter(Name="/shop/staging/ratelimit-allow-ips")["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def loadgen_vpcs(region: str = REGION) -> list[dict]:
    vpcs = boto3.client("ec2", region_name=region).describe_vpcs()["Vpcs"]
    return [vpc for vpc in vpcs if vpc["CidrBlock"] == "10.64.0.0/16"]


@pytest.fixture
def edge_with_office(aws_env):
    """A fleet outside us-east-1: its bootstrap stack there, and the edge stack (the web ACL) in us-east-1 with an
    office network already on the allow list."""
    run("deploy_stack", "--stack", "bootstrap", "--region", REGION, "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "edge", "--env", "staging", "--no-input", "--allow-wider-access",
        "--parameter", f"WafAllowList={OFFICE}")  # fmt: skip
    assert ip_set_addresses() == {OFFICE}


def test_fleet_deploy_allows_its_address_and_destroy_takes_everything_back(edge_with_office, outputs_dir, aws_calls):
    stop = stop_at(hours=3)

    out, _ = fleet("--parameter", "WorkerCount=3", stop=stop)

    outputs = json.loads((outputs_dir / "outputs-shop-loadgen-staging.json").read_text())
    address = f"{outputs['NatAddresses']}/32"
    # Both allow lists: the app's parameter, and the edge web ACL's IP set beside the office network.
    assert allow_parameter() == address
    assert ip_set_addresses() == {OFFICE, address}
    assert f"Fleet addresses {address} allowed:" in out
    assert "WAF rate rule: allow-list IP set of shop-edge-staging" in out
    assert "no app stack in this region to refresh" in out
    # The locustfile the instances unpack.
    bucket = f"shop-artifacts-123456789012-{REGION}"
    assert f"Load tests uploaded to s3://{bucket}/loadgen/shop-loadgen-staging/loadtests.tar.gz." in out
    body = (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=bucket, Key="loadgen/shop-loadgen-staging/loadtests.tar.gz")["Body"]
        .read()
    )
    names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
    assert "loadtests/locustfile.py" in names and "loadtests/shape.py" in names
    assert outputs["ResultsLocation"] == f"s3://{bucket}/loadgen/shop-loadgen-staging/results/"
    # Its own VPC; bounded; stops at StopAt; nothing public.
    (vpc,) = loadgen_vpcs()
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["WorkerGroupName"]])[
        "AutoScalingGroups"
    ]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 3, 3)
    (action,) = autoscaling.describe_scheduled_actions(AutoScalingGroupName=group["AutoScalingGroupName"])[
        "ScheduledUpdateGroupActions"
    ]
    assert action["StartTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == stop
    assert (action["MinSize"], action["MaxSize"], action["DesiredCapacity"]) == (0, 0, 0)
    ec2 = boto3.client("ec2", region_name=REGION)
    instances = [item for reservation in ec2.describe_instances()["Reservations"] for item in reservation["Instances"]]
    assert len(instances) == 4  # the master and three workers
    assert {item["VpcId"] for item in instances} == {vpc["VpcId"]}
    # Unreachable from the internet: every instance in the private subnet, whose only way out is the NAT gateway,
    # and no ingress but the workers' to the master's locust port.
    (subnet,) = {item["SubnetId"] for item in instances}
    physical = {
        item["LogicalResourceId"]: item.get("PhysicalResourceId")
        for item in boto3.client("cloudformation", region_name=REGION).describe_stack_resources(
            StackName="shop-loadgen-staging"
        )["StackResources"]
    }
    assert subnet == physical["LoadgenPrivateSubnet"]
    (table,) = ec2.describe_route_tables(RouteTableIds=[physical["LoadgenPrivateRouteTable"]])["RouteTables"]
    (default,) = [route for route in table["Routes"] if route.get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert default.get("NatGatewayId", "").startswith("nat-") and "GatewayId" not in default
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]
    ingress = {group["GroupId"]: group["IpPermissions"] for group in groups if group["GroupName"] != "default"}
    (master_group,) = [group for group, rules in ingress.items() if rules]
    (rule,) = ingress[master_group]
    assert (rule["FromPort"], rule["ToPort"], rule["IpRanges"]) == (5557, 5557, [])
    assert [pair["GroupId"] for pair in rule["UserIdGroupPairs"]] == [g for g in ingress if g != master_group]
    assert outputs["MasterPrivateIp"] == "10.64.11.10"
    assert [item["PrivateIpAddress"] for item in instances if item["InstanceId"] == outputs["MasterInstanceId"]] == [
        "10.64.11.10"
    ]

    # A second deploy with the same values changes nothing, on either list.
    out, _ = fleet("--parameter", "WorkerCount=3", stop=stop)
    assert "Stack shop-loadgen-staging is up to date: nothing to deploy." in out
    assert "the parameter already held this list, nothing to refresh" in out
    assert ip_set_addresses() == {OFFICE, address}
    assert allow_parameter() == address

    out, _ = run("destroy_stack", "--stack", "loadgen", "--env", "staging", "--region", REGION,
                 "--stack-name", "shop-loadgen-staging", "--no-input")  # fmt: skip

    assert "Stack shop-loadgen-staging deleted." in out
    assert f"Fleet addresses {address} no longer allowed:" in out
    assert allow_parameter() is None
    assert ip_set_addresses() == {OFFICE}
    assert loadgen_vpcs() == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["available"]}])["NatGateways"] == []
    states = {item["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for item in r["Instances"]}
    assert states == {"terminated"}
    assert autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"] == []
    # What the administrator's credentials must allow (docs/loadgen.md); CloudFormation itself acts as the
    # bootstrap execution role, which the deploy passes (test_iam_execution.py covers the loadgen resources).
    made = {(call.command.name, call.action) for call in aws_calls.calls
            if call.command and call.command.option("stack") == "loadgen"}  # fmt: skip
    assert made == OPERATOR_CALLS
    names = {
        stack["StackName"] for stack in boto3.client("cloudformation", region_name=REGION).describe_stacks()["Stacks"]
    }
    assert names == {"shop-bootstrap"}


def test_fleet_beside_the_app_in_us_east_1_uses_the_app_web_acl_and_refreshes_the_app(
    aws_env, outputs_dir, stub_client
):
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "app", "--env", "staging", "--no-input", "--allow-wider-access")
    group = json.loads((outputs_dir / "outputs-shop-app-staging.json").read_text())["AutoScalingGroupName"]
    # moto 5.2.5 has no instance refreshes: the two the fleet starts (deploy, destroy) are stubbed.
    refreshes = stub_client("autoscaling")
    for refresh_id in ("ir-allow", "ir-disallow"):
        refreshes.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": refresh_id},
            {"AutoScalingGroupName": group, "Strategy": "Rolling", "Preferences": ANY},
        )

    out, _ = fleet(region="us-east-1")

    address = json.loads((outputs_dir / "outputs-shop-loadgen-staging.json").read_text())["NatAddresses"] + "/32"
    assert allow_parameter("us-east-1") == address
    assert ip_set_addresses() == {address}
    assert "WAF rate rule: allow-list IP set of shop-app-staging" in out
    assert f"instance refresh ir-allow of {group} reads the new list" in out
    # The app's own VPC is not touched: the fleet has one of its own.
    assert len(loadgen_vpcs("us-east-1")) == 1

    out, _ = run("destroy_stack", "--stack", "loadgen", "--env", "staging", "--stack-name", "shop-loadgen-staging",
                 "--no-input")  # fmt: skip

    assert allow_parameter("us-east-1") is None
    assert ip_set_addresses() == set()
    assert f"instance refresh ir-disallow of {group}" in out
    refreshes.assert_no_pending_responses()
    assert loadgen_vpcs("us-east-1") == []


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ((f"TargetHost={HOST}",), "--parameter StopAt=YYYY-MM-DDTHH:MM:SSZ is required"),
        ((f"StopAt={stop_at(minutes=-5)}", f"TargetHost={HOST}"), "is less than 10 minutes ahead"),
        ((f"StopAt={stop_at(hours=30)}", f"TargetHost={HOST}"), "is more than 24 hours ahead"),
        (("StopAt=tomorrow", f"TargetHost={HOST}"), "does not match the pattern"),
        (("StopAt=2030-13-45T25:00:00Z", f"TargetHost={HOST}"), "is not a UTC time"),
        ((f"StopAt={stop_at(hours=2)}",), "--parameter TargetHost=https://… is required"),
        ((f"StopAt={stop_at(hours=2)}", f"TargetHost={HOST}", "WorkerCount=21"), "is over its maximum of 20"),
        ((f"StopAt={stop_at(hours=2)}", "TargetHost=http://staging.example.com"), "does not match the pattern"),
    ],
)
def test_fleet_deploy_refuses_a_missing_or_unbounded_stop_size_or_target_before_any_aws_call(
    parameters, message, monkeypatch, tmp_path
):
    # No credentials and no endpoint: anything that reached AWS would fail differently.
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    options = [item for parameter in parameters for item in ("--parameter", parameter)]

    with pytest.raises(CommandError, match=message) as refused:
        run("deploy_stack", "--stack", "loadgen", "--env", "staging", "--no-input", *options)

    assert "Nothing was sent to AWS." in str(refused.value)
