"""The loadgen stack: a locust master and an Auto Scaling group of workers in a small VPC of their own.

Nothing in it is reachable from the internet (private subnet, no public address, no ingress but the workers' to the
master's port), its size is bounded by a parameter with a hard cap, and it stops at StopAt whatever happens: a
scheduled action puts the worker group to 0 and every instance powers itself off (terminate on shutdown). Its
traffic leaves through one NAT gateway, whose Elastic IP deploy_stack puts on the app's allow lists
(opsinfra/services/loadgen.py).
"""

import ipaddress
import re
from pathlib import Path

from troposphere import Base64, GetAtt, GetAZs, Join, Output, Ref, Select, Sub, Tags, Template, autoscaling, ec2, iam

from opsinfra.cfn import userdata
from opsinfra.cfn.common import name_tags, parameter, service_trust
from opsinfra.cfn.compute import AL2023_AMI
from opsinfra.cfn.network import add_flow_logs
from opsinfra.stacks import StackSettings

VPC_CIDR = "10.64.0.0/16"  # apart from the app's 10.0.0.0/16, so the two could ever be peered
PUBLIC_CIDR = "10.64.1.0/24"
PRIVATE_CIDR = "10.64.11.0/24"
# The workers reach the master here: a fixed address needs no DNS record, no lookup and no permission.
MASTER_IP = "10.64.11.10"
MASTER_PORT = 5557  # locust's master bind port
MAX_WORKERS = 20  # the hard cap: WorkerCount cannot go above it, whatever is passed
MAX_PEAK_USERS = 20_000
# No instance lives longer than a day even if every other stop failed (Auto Scaling's smallest lifetime).
MAX_INSTANCE_LIFETIME_S = 86_400
INSTANCE_TYPES = ("c7i.large", "c7i.xlarge", "c7i.2xlarge")
STOP_AT_PATTERN = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)?$"
HOST_PATTERN = r"^(https://[A-Za-z0-9.-]+)?$"
TIME_SCALE_PATTERN = r"^\d+(\.\d+)?$"
LOADTESTS_KEY = "loadtests.tar.gz"


def results_prefix(stack_name: str) -> str:
    """Where the fleet's files live in the artifacts bucket: the locustfile it runs and the results it writes."""
    return f"loadgen/{stack_name}"


def locust_version() -> str:
    """The locust the repository pins for its own load tests (requirements/dev.in)."""
    text = (Path(__file__).resolve().parents[2] / "requirements" / "dev.in").read_text()
    return re.search(r"^locust==([\w.]+)$", text, re.MULTILINE).group(1)


def _parameters(t: Template) -> dict:
    return {
        "bucket": parameter(
            t, "ArtifactsBucketName", default="", description="The bootstrap stack's bucket (deploy_stack fills it)."
        ),
        "ami": parameter(
            t,
            "AmiId",
            Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
            default=AL2023_AMI,
            description="Load generator AMI: by default the latest Amazon Linux 2023 from its public SSM parameter.",
        ),
        "instance_type": parameter(
            t,
            "InstanceType",
            default=INSTANCE_TYPES[0],
            AllowedValues=list(INSTANCE_TYPES),
            description="Instance type of the master and the workers.",
        ),
        "workers": parameter(
            t,
            "WorkerCount",
            Type="Number",
            default="2",
            MinValue=1,
            MaxValue=MAX_WORKERS,
            description=f"Locust workers (1-{MAX_WORKERS}): the group's size and the number the master waits for.",
        ),
        "stop_at": parameter(
            t,
            "StopAt",
            default="",
            AllowedPattern=STOP_AT_PATTERN,
            ConstraintDescription="UTC, YYYY-MM-DDTHH:MM:SSZ",
            description="Hard stop (UTC, YYYY-MM-DDTHH:MM:SSZ): workers to 0, every instance off. deploy_stack "
            "requires it, in the future and within a day.",
        ),
        "host": parameter(
            t,
            "TargetHost",
            default="",
            AllowedPattern=HOST_PATTERN,
            ConstraintDescription="https://name, no port, no path",
            description="The site under test, e.g. https://staging.example.com (deploy_stack requires it).",
        ),
        "peak_users": parameter(
            t,
            "PeakUsers",
            Type="Number",
            default="500",
            MinValue=1,
            MaxValue=MAX_PEAK_USERS,
            description="Users at the peak of the Black Friday shape (loadtests --peak-users).",
        ),
        "time_scale": parameter(
            t,
            "TimeScale",
            default="1.0",
            AllowedPattern=TIME_SCALE_PATTERN,
            description="Multiplies every phase of the shape (1.0: 31 minutes; loadtests --time-scale).",
        ),
    }


def _network(t: Template, settings: StackSettings) -> dict:
    """One AZ: a public subnet holding only the NAT gateway, a private subnet holding every instance."""
    vpc = t.add_resource(
        ec2.VPC(
            "LoadgenVpc",
            CidrBlock=VPC_CIDR,
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=name_tags(Sub("${AWS::StackName}")),
        )
    )
    gateway = t.add_resource(ec2.InternetGateway("LoadgenInternetGateway"))
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment("LoadgenGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway))
    )
    zone = Select(0, GetAZs(""))
    public = t.add_resource(
        ec2.Subnet("LoadgenPublicSubnet", VpcId=Ref(vpc), CidrBlock=PUBLIC_CIDR, AvailabilityZone=zone,
                   MapPublicIpOnLaunch=False,
                   Tags=name_tags(Sub("${AWS::StackName}-public")))
    )  # fmt: skip
    private = t.add_resource(
        ec2.Subnet("LoadgenPrivateSubnet", VpcId=Ref(vpc), CidrBlock=PRIVATE_CIDR, AvailabilityZone=zone,
                   MapPublicIpOnLaunch=False,
                   Tags=name_tags(Sub("${AWS::StackName}-private")))
    )  # fmt: skip
    public_table = t.add_resource(ec2.RouteTable("LoadgenPublicRouteTable", VpcId=Ref(vpc)))
    t.add_resource(
        ec2.Route("LoadgenPublicRoute", DependsOn=attachment.title, RouteTableId=Ref(public_table),
                  DestinationCidrBlock="0.0.0.0/0", GatewayId=Ref(gateway))
    )  # fmt: skip
    t.add_resource(
        ec2.SubnetRouteTableAssociation("LoadgenPublicSubnetRouteTable", SubnetId=Ref(public),
                                        RouteTableId=Ref(public_table))
    )  # fmt: skip
    address = t.add_resource(
        ec2.EIP("LoadgenNatAddress", Domain="vpc", DependsOn=attachment.title,
                Tags=name_tags(Sub("${AWS::StackName}-nat")))
    )  # fmt: skip
    nat = t.add_resource(
        ec2.NatGateway("LoadgenNatGateway", AllocationId=GetAtt(address, "AllocationId"), SubnetId=Ref(public))
    )
    private_table = t.add_resource(ec2.RouteTable("LoadgenPrivateRouteTable", VpcId=Ref(vpc)))
    route = t.add_resource(
        ec2.Route("LoadgenPrivateRoute", RouteTableId=Ref(private_table), DestinationCidrBlock="0.0.0.0/0",
                  NatGatewayId=Ref(nat))
    )  # fmt: skip
    t.add_resource(
        ec2.SubnetRouteTableAssociation("LoadgenPrivateSubnetRouteTable", SubnetId=Ref(private),
                                        RouteTableId=Ref(private_table))
    )  # fmt: skip
    # The locustfile and the results go to S3 without the NAT.
    t.add_resource(
        ec2.VPCEndpoint("LoadgenS3Endpoint", VpcId=Ref(vpc), ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
                        VpcEndpointType="Gateway", RouteTableIds=[Ref(private_table)])
    )  # fmt: skip
    add_flow_logs(t, vpc=vpc, settings=settings)
    return {"vpc": vpc, "private": private, "address": address, "route": route}


def _security_groups(t: Template, *, vpc) -> dict:
    """No ingress from anywhere but worker → master on the locust port; out: HTTPS only (the site under test, S3,
    SSM, the package repositories)."""
    web_out = [
        ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="0.0.0.0/0",
                              Description="The site under test, AWS APIs and packages, over HTTPS")
    ]  # fmt: skip
    groups = {
        kind: t.add_resource(
            ec2.SecurityGroup(
                f"Loadgen{kind.title()}SecurityGroup",
                GroupDescription=f"Locust {kind}: no ingress from outside the fleet",
                VpcId=Ref(vpc),
                SecurityGroupEgress=web_out,
            )
        )
        for kind in ("master", "worker")
    }
    master, worker = GetAtt(groups["master"], "GroupId"), GetAtt(groups["worker"], "GroupId")
    t.add_resource(
        ec2.SecurityGroupIngress("LoadgenMasterFromWorkers", GroupId=master, SourceSecurityGroupId=worker,
                                 IpProtocol="tcp", FromPort=MASTER_PORT, ToPort=MASTER_PORT,
                                 Description="Locust workers to their master")
    )  # fmt: skip
    t.add_resource(
        ec2.SecurityGroupEgress("LoadgenWorkersToMaster", GroupId=worker, DestinationSecurityGroupId=master,
                                IpProtocol="tcp", FromPort=MASTER_PORT, ToPort=MASTER_PORT,
                                Description="Locust workers to their master")
    )  # fmt: skip
    return {"master": master, "worker": worker}


def _instance_role(t: Template, *, bucket) -> iam.Role:
    """Reads the locustfile bundle and writes results, under the stack's own prefix of the artifacts bucket."""
    prefix = Sub(f"arn:${{AWS::Partition}}:s3:::${{Bucket}}/{results_prefix('${AWS::StackName}')}", Bucket=bucket)
    statements = [
        {"Sid": "ReadLoadtests", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": Join("", [prefix, f"/{LOADTESTS_KEY}"])},
        {"Sid": "WriteResults", "Effect": "Allow", "Action": "s3:PutObject",
         "Resource": Join("", [prefix, "/results/*"])},
    ]  # fmt: skip
    return t.add_resource(
        iam.Role(
            "LoadgenInstanceRole",
            AssumeRolePolicyDocument=service_trust("ec2.amazonaws.com"),
            # Session Manager is the only way onto an instance: no SSH, no key pair, no open port.
            ManagedPolicyArns=[Sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")],
            Policies=[iam.Policy(PolicyName="loadgen", PolicyDocument={"Version": "2012-10-17",
                                                                       "Statement": statements})],
        )
    )  # fmt: skip


def user_data_values(*, role: str, params: dict) -> dict:
    return {
        "Region": Ref("AWS::Region"),
        "Role": role,
        "StopAt": Ref(params["stop_at"]),
        "Bucket": Ref(params["bucket"]),
        "Prefix": Sub(results_prefix("${AWS::StackName}")),
        "MasterIp": MASTER_IP,
        "Workers": Ref(params["workers"]),
        "TargetHost": Ref(params["host"]),
        "PeakUsers": Ref(params["peak_users"]),
        "TimeScale": Ref(params["time_scale"]),
        "LocustVersion": locust_version(),
    }


def _launch_template(t: Template, role: str, *, params: dict, profile, group) -> ec2.LaunchTemplate:
    script = userdata.render_parts(user_data_values(role=role, params=params), entrypoint="loadgen.sh")
    return t.add_resource(
        ec2.LaunchTemplate(
            f"Loadgen{role.title()}LaunchTemplate",
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=Ref(params["ami"]),
                InstanceType=Ref(params["instance_type"]),
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[group],
                # The hard stop is a shutdown: it must end the instance, not leave it stopped.
                InstanceInitiatedShutdownBehavior="terminate",
                MetadataOptions=ec2.MetadataOptions(HttpEndpoint="enabled", HttpTokens="required",
                                                    HttpPutResponseHopLimit=1),
                Monitoring=ec2.Monitoring(Enabled=True),
                EbsOptimized=True,
                BlockDeviceMappings=[
                    ec2.LaunchTemplateBlockDeviceMapping(
                        DeviceName="/dev/xvda",
                        Ebs=ec2.EBSBlockDevice(VolumeType="gp3", VolumeSize=8, Encrypted=True,
                                               DeleteOnTermination=True),
                    )
                ],
                UserData=Base64(Join("", script)),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType=kind, Tags=Tags(Name=Sub(f"${{AWS::StackName}}-{role}")))
                    for kind in ("instance", "volume")
                ],
            ),
        )
    )  # fmt: skip


def build_loadgen(t: Template, settings: StackSettings) -> None:
    params = _parameters(t)
    network = _network(t, settings)
    groups = _security_groups(t, vpc=network["vpc"])
    role = _instance_role(t, bucket=Ref(params["bucket"]))
    profile = t.add_resource(iam.InstanceProfile("LoadgenInstanceProfile", Roles=[Ref(role)]))
    launch = {
        kind: _launch_template(t, kind, params=params, profile=profile, group=groups[kind])
        for kind in ("master", "worker")
    }
    if ipaddress.ip_address(MASTER_IP) not in ipaddress.ip_network(PRIVATE_CIDR):
        raise ValueError(f"the master's address {MASTER_IP} is outside the private subnet {PRIVATE_CIDR}")
    master = t.add_resource(
        ec2.Instance(
            "LoadgenMaster",
            # Its first boot installs locust through the NAT.
            DependsOn=network["route"].title,
            LaunchTemplate=ec2.LaunchTemplateSpecification(
                LaunchTemplateId=Ref(launch["master"]), Version=GetAtt(launch["master"], "LatestVersionNumber")
            ),
            SubnetId=Ref(network["private"]),
            PrivateIpAddress=MASTER_IP,
        )
    )
    group = t.add_resource(
        autoscaling.AutoScalingGroup(
            "LoadgenWorkerGroup",
            DependsOn=[network["route"].title, master.title],
            VPCZoneIdentifier=[Ref(network["private"])],
            LaunchTemplate=autoscaling.LaunchTemplateSpecification(
                LaunchTemplateId=Ref(launch["worker"]), Version=GetAtt(launch["worker"], "LatestVersionNumber")
            ),
            MinSize="0",
            MaxSize=Ref(params["workers"]),
            DesiredCapacity=Ref(params["workers"]),
            MaxInstanceLifetime=MAX_INSTANCE_LIFETIME_S,
            HealthCheckType="EC2",
        )
    )
    t.add_resource(
        autoscaling.ScheduledAction(
            "LoadgenStop",
            AutoScalingGroupName=Ref(group),
            StartTime=Ref(params["stop_at"]),
            MinSize=0,
            MaxSize=0,
            DesiredCapacity=0,
        )
    )
    outputs = {
        "NatAddresses": (Ref(network["address"]), "The fleet's public addresses (comma-separated): the allow lists"),
        "MasterPrivateIp": (GetAtt(master, "PrivateIp"), "The master, reached with Session Manager only"),
        "MasterInstanceId": (Ref(master), "aws ssm start-session --target <id>"),
        "WorkerGroupName": (Ref(group), "The workers' Auto Scaling group"),
        "StopAt": (Ref(params["stop_at"]), "The hard stop (UTC)"),
        "ResultsLocation": (
            Sub(f"s3://${{Bucket}}/{results_prefix('${AWS::StackName}')}/results/", Bucket=Ref(params["bucket"])),
            "Where the master uploads locust's CSV, HTML report and summary",
        ),
    }
    for name, (value, description) in outputs.items():
        t.add_output(Output(name, Value=value, Description=description))
