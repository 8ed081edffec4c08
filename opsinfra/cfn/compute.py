"""App instances: launch template with the rendered user data, the Auto Scaling group, its warm pool and scaling."""

from dataclasses import dataclass

from troposphere import Base64, Equals, GetAtt, Join, Ref, Sub, Tags, Template, autoscaling, ec2, iam, policies, ssm

from opsinfra.cfn import userdata
from opsinfra.cfn.common import flag_parameter, log_group, parameter, service_trust
from opsinfra.cfn.database import DATABASE_NAME, Database
from opsinfra.cfn.loadbalancer import LoadBalancer
from opsinfra.cfn.network import Network
from opsinfra.cfn.observability import app_metrics_namespace
from opsinfra.cfn.security_groups import SecurityGroups
from opsinfra.services.bundle import VERSION_PATTERN
from opsinfra.stacks import StackSettings

LIFECYCLE_HOOK = "shop-launch"
ALB_REQUESTS_PER_TARGET = 1000  # per instance per minute
PRESCALE_UP = "45 19 * * *"
PRESCALE_DOWN = "0 23 * * *"
AL2023_AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
AMI_PARAMETER_PATTERN = r"^/[A-Za-z0-9_.\-/]+$"
ROOT_VOLUME_GIB = 20
RELEASE_VERSION_PATTERN = VERSION_PATTERN.pattern
RELEASE_BUNDLE_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/releases/[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\.tar\.gz$"


@dataclass(frozen=True)
class Compute:
    group: Ref
    migration_group: Ref
    migration_document: Ref
    app_log_group: Ref  # the app's and nginx's lines (the shed metric filter reads nginx's)


@dataclass(frozen=True)
class AppWiring:
    """What the user data tells an instance: names and ARNs, never a secret value."""

    database: Database
    cache_endpoint: GetAtt
    app_secret: Ref
    allowed_hosts: object
    artifacts_bucket: object
    release_parameter: Ref
    allow_parameter: str = ""


def _instance_role(t: Template, title: str, *, wiring: AppWiring, log_groups: list, migrates: bool) -> iam.Role:
    """The web instances' role reads the app's own secrets only; the migration instance's also the master secret."""
    secrets = [wiring.app_secret, wiring.database.app_user_secret]
    if migrates:
        secrets.append(wiring.database.master_secret)
    statements = [
        {"Sid": "ReadOwnSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets},
        {
            "Sid": "ReadRelease",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": [
                Sub(
                    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Name}",
                    Name=wiring.release_parameter,
                ),
                # RATELIMIT_ALLOW_IPS: the loadgen fleet's addresses while it exists (docs/loadgen.md).
                Sub(
                    f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{wiring.allow_parameter}"
                ),
            ],
        },
        {
            "Sid": "ReadBundles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": Sub("arn:${AWS::Partition}:s3:::${Bucket}/releases/*", Bucket=wiring.artifacts_bucket),
        },
        {
            "Sid": "CompleteOwnLaunch",
            "Effect": "Allow",
            "Action": "autoscaling:CompleteLifecycleAction",
            # The group's generated name starts with the stack name; naming the group itself would be a cycle.
            "Resource": Sub(
                "arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
                "autoScalingGroupName/${AWS::StackName}-*"
            ),
        },
        {
            "Sid": "ShipLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [GetAtt(group, "Arn") for group in log_groups],
        },
    ]
    return t.add_resource(
        iam.Role(
            title,
            AssumeRolePolicyDocument=service_trust("ec2.amazonaws.com"),
            # Session Manager (no SSH) and the SSM command deploy_app sends to run migrations.
            ManagedPolicyArns=[Sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")],
            Policies=[iam.Policy(PolicyName="app", PolicyDocument={"Version": "2012-10-17", "Statement": statements})],
        )
    )


def user_data_values(*, settings: StackSettings, wiring: AppWiring, log_groups: dict) -> dict:
    return {
        "Region": Ref("AWS::Region"),
        "ReleaseParameter": wiring.release_parameter,
        "AllowParameter": wiring.allow_parameter,
        "LifecycleHook": LIFECYCLE_HOOK,
        "AppPort": str(settings.app_port),
        # Half the lifecycle hook's heartbeat waits for /health; the other half installs packages and the release.
        "BootTimeout": str(settings.boot_seconds // 2),
        "AllowedHosts": wiring.allowed_hosts,
        "AppSecretArn": wiring.app_secret,
        "DbSecretArn": wiring.database.app_user_secret,
        "DbMasterSecretArn": wiring.database.master_secret,
        "ProxyEndpoint": wiring.database.proxy_endpoint,
        "DatabaseName": DATABASE_NAME,
        "CacheEndpoint": wiring.cache_endpoint,
        "GunicornWorkers": str(settings.gunicorn_workers),
        "GunicornThreads": str(settings.gunicorn_threads),
        "AppLogGroup": Ref(log_groups["app"]),
        "ReleaseLogGroup": Ref(log_groups["release"]),
        # The app's EMF records (shop.metrics): CloudWatch extracts the metrics of this namespace from them.
        "MetricsLogGroup": Ref(log_groups["metrics"]),
        "MetricsNamespace": app_metrics_namespace(settings),
    }


def add_compute(
    t: Template,
    *,
    settings: StackSettings,
    network: Network,
    groups: SecurityGroups,
    load_balancer: LoadBalancer,
    wiring: AppWiring,
) -> Compute:
    ami = parameter(
        t,
        "AmiParameter",
        default=AL2023_AMI,
        AllowedPattern=AMI_PARAMETER_PATTERN,
        description="SSM parameter naming the app instances' AMI, resolved at each launch: the baked image's "
        "(bake_image writes it, deploy_stack passes it) or the public Amazon Linux 2023 one.",
    )
    log_groups = {
        kind: t.add_resource(
            log_group(
                f"Compute{kind.title()}LogGroup",
                LogGroupName=f"/{settings.project}/{settings.env}/{kind}",
                retention_days=settings.log_retention_days,
            )
        )
        for kind in ("app", "release", "metrics")
    }
    script = userdata.render_parts(user_data_values(settings=settings, wiring=wiring, log_groups=log_groups))
    launch = {}
    for kind, migrates in (("", False), ("Migration", True)):
        role = _instance_role(
            t, f"Compute{kind}InstanceRole", wiring=wiring, log_groups=list(log_groups.values()), migrates=migrates
        )
        profile = t.add_resource(iam.InstanceProfile(f"Compute{kind}InstanceProfile", Roles=[Ref(role)]))
        launch[kind] = _launch_template(
            t, f"Compute{kind}LaunchTemplate", settings=settings, ami=ami, profile=profile, groups=groups, script=script
        )
    boot_hook = autoscaling.LifecycleHookSpecification(
        LifecycleHookName=LIFECYCLE_HOOK,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=settings.boot_seconds,
        DefaultResult="ABANDON",
    )
    group = t.add_resource(
        autoscaling.AutoScalingGroup(
            "ComputeAutoScalingGroup",
            # A first boot installs packages through the NAT: no instance before the private routes exist.
            DependsOn=network.egress_routes,
            VPCZoneIdentifier=network.private_subnets,
            LaunchTemplate=_latest(launch[""]),
            MinSize=str(settings.asg_min),
            MaxSize=str(settings.asg_max),
            # No DesiredCapacity: a new group starts at MinSize, and an update leaves the running size alone (a
            # sale window's scheduled capacity, target tracking's) instead of putting it back to a number.
            TargetGroupARNs=[load_balancer.target_group],
            HealthCheckType="ELB",
            # Sized to the boot: Python, the agent and the release's wheels install before /health answers.
            HealthCheckGracePeriod=settings.boot_seconds,
            MetricsCollection=[autoscaling.MetricsCollection(Granularity="1Minute")],
            LifecycleHookSpecificationList=[boot_hook],
            UpdatePolicy=update_policy(settings),
        )
    )
    _add_warm_pool(t, settings=settings, group=group)
    _add_scaling(t, settings=settings, group=group, load_balancer=load_balancer)
    migration_group = t.add_resource(
        autoscaling.AutoScalingGroup(
            "ComputeMigrationGroup",
            DependsOn=network.egress_routes,
            VPCZoneIdentifier=network.private_subnets,
            LaunchTemplate=_latest(launch["Migration"]),
            # One instance outside the load balancer, the only one whose role reads the master secret: deploy_app
            # sends it the migration document. Scaled to 0 by hand between releases it costs nothing; a stack update
            # brings it back.
            MinSize="0",
            MaxSize="1",
            DesiredCapacity="1",
            HealthCheckType="EC2",
            LifecycleHookSpecificationList=[boot_hook],
            UpdatePolicy=policies.UpdatePolicy(
                AutoScalingRollingUpdate=policies.AutoScalingRollingUpdate(MaxBatchSize=1, MinInstancesInService=0)
            ),
        )
    )
    document = _add_migration_document(t, settings=settings)
    return Compute(
        group=Ref(group),
        migration_group=Ref(migration_group),
        migration_document=Ref(document),
        app_log_group=Ref(log_groups["app"]),
    )


def update_policy(settings: StackSettings) -> policies.UpdatePolicy:
    """How a stack update treats the web group.

    Its sizes are never reset (IgnoreUnmodifiedGroupSizeProperties): a sale window raises MinSize and desired
    through scheduled actions, and an update in the window must not put them back to the template's numbers.
    Instances are replaced one at a time, and never below MinSize in service: CloudFormation launches the new
    instance first when taking one out would go below it. Scheduled actions and alarms stay active, so a window
    that opens during an update still scales out.
    """
    return policies.UpdatePolicy(
        AutoScalingScheduledAction=policies.AutoScalingScheduledAction(IgnoreUnmodifiedGroupSizeProperties=True),
        AutoScalingRollingUpdate=policies.AutoScalingRollingUpdate(
            MaxBatchSize=1,
            MinInstancesInService=settings.asg_min,
            # The lifecycle hook holds a new instance out of service until /health answers; then the ALB needs
            # two healthy checks 15 s apart before it routes to it.
            PauseTime="PT1M",
            WaitOnResourceSignals=False,
            SuspendProcesses=["AZRebalance", "ReplaceUnhealthy"],
        ),
    )


def _latest(template) -> autoscaling.LaunchTemplateSpecification:
    return autoscaling.LaunchTemplateSpecification(
        LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
    )


def _launch_template(t: Template, title: str, *, settings: StackSettings, ami, profile, groups, script):
    return t.add_resource(
        ec2.LaunchTemplate(
            title,
            LaunchTemplateData=ec2.LaunchTemplateData(
                # EC2 resolves the parameter at every launch (scale-out, warm pool, instance refresh): a new bake
                # reaches the next launch without a stack update. Launching needs ssm:GetParameters on it.
                ImageId=Sub("resolve:ssm:${Name}", Name=Ref(ami)),
                InstanceType=settings.instance_type,
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[groups.app],
                # IMDSv2 only, one hop: a container or proxy on the instance cannot borrow its role.
                # Tags in the metadata: shop-release reads its Auto Scaling group's name there.
                MetadataOptions=ec2.MetadataOptions(
                    HttpEndpoint="enabled",
                    HttpTokens="required",
                    HttpPutResponseHopLimit=1,
                    InstanceMetadataTags="enabled",
                ),
                Monitoring=ec2.Monitoring(Enabled=True),
                BlockDeviceMappings=[
                    ec2.LaunchTemplateBlockDeviceMapping(
                        DeviceName="/dev/xvda",
                        Ebs=ec2.EBSBlockDevice(
                            VolumeType="gp3", VolumeSize=ROOT_VOLUME_GIB, Encrypted=True, DeleteOnTermination=True
                        ),
                    )
                ],
                UserData=Base64(Join("", script)),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType=kind, Tags=Tags(Name=Sub("${AWS::StackName}-app")))
                    for kind in ("instance", "volume")
                ],
            ),
        )
    )


def warm_pool_max_prepared(settings: StackSettings) -> int:
    """MaxGroupPreparedCapacity that keeps the pool at warm_pool_size for every desired capacity >= asg_min.

    AWS sizes the pool as max(MinSize, MaxGroupPreparedCapacity - desired), and an unset value means the group's
    max: the reference kept 20 - 2 = 18 stopped instances instead of 3.
    """
    return settings.asg_min + settings.warm_pool_size


def _add_warm_pool(t: Template, *, settings: StackSettings, group) -> None:
    t.add_resource(
        autoscaling.WarmPool(
            "ComputeWarmPool",
            AutoScalingGroupName=Ref(group),
            MinSize=settings.warm_pool_size,
            MaxGroupPreparedCapacity=warm_pool_max_prepared(settings),
            PoolState="Stopped",
            InstanceReusePolicy=autoscaling.InstanceReusePolicy(ReuseOnScaleIn=True),
        )
    )


def _add_scaling(t: Template, *, settings: StackSettings, group, load_balancer: LoadBalancer) -> None:
    t.add_resource(
        autoscaling.ScalingPolicy(
            "ComputeRequestScaling",
            AutoScalingGroupName=Ref(group),
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration=autoscaling.TargetTrackingConfiguration(
                TargetValue=float(ALB_REQUESTS_PER_TARGET),
                PredefinedMetricSpecification=autoscaling.PredefinedMetricSpecification(
                    PredefinedMetricType="ALBRequestCountPerTarget",
                    ResourceLabel=Join("/", [load_balancer.full_name, load_balancer.target_group_full_name]),
                ),
            ),
        )
    )
    enabled = flag_parameter(
        t,
        "PreScaleEnabled",
        default=False,
        description="Recurring evening pre-scale (MinSize and desired 10 at 19:45, back at 23:00); sale days "
        "are scheduled with manage.py schedule_peak instead.",
    )
    timezone = parameter(
        t,
        "PreScaleTimeZone",
        default="UTC",
        description="IANA time zone of the pre-scale times, e.g. America/New_York.",
    )
    t.add_condition("ComputePreScale", Equals(Ref(enabled), "true"))
    # MinSize rises with desired: raising desired alone lets target tracking scale in before the peak.
    for title, recurrence, size in (
        ("ComputePreScaleUp", PRESCALE_UP, settings.prescale_capacity),
        ("ComputePreScaleDown", PRESCALE_DOWN, settings.asg_min),
    ):
        t.add_resource(
            autoscaling.ScheduledAction(
                title,
                Condition="ComputePreScale",
                AutoScalingGroupName=Ref(group),
                Recurrence=recurrence,
                TimeZone=Ref(timezone),
                MinSize=size,
                DesiredCapacity=size,
            )
        )


def _add_migration_document(t: Template, *, settings: StackSettings):
    """The only command deploy_app may send: migrations, then the app role, on one instance."""
    return t.add_resource(
        ssm.Document(
            "ComputeMigrationDocument",
            Name=f"{settings.stack_name}-migrate",
            DocumentType="Command",
            UpdateMethod="NewVersion",
            Content={
                "schemaVersion": "2.2",
                "description": "Install a release beside the running one, run its migrations, update the app's role.",
                # SSM substitutes parameters into the shell text: the patterns keep them to plain names.
                "parameters": {
                    "Version": {"type": "String", "allowedPattern": RELEASE_VERSION_PATTERN},
                    "Bundle": {"type": "String", "allowedPattern": RELEASE_BUNDLE_PATTERN},
                },
                "mainSteps": [
                    {
                        "action": "aws:runShellScript",
                        "name": "migrate",
                        "inputs": {
                            "runCommand": ["/usr/local/sbin/shop-migrate '{{ Version }}' '{{ Bundle }}'"],
                            "timeoutSeconds": "900",
                        },
                    }
                ],
            },
        )
    )
