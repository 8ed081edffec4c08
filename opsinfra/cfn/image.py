"""The image stack: EC2 Image Builder's parts for a baked app image (docs/image.md).

The stack holds what does not change per release: the builder instances' role, profile and infrastructure
configuration, the system component (OS packages, service user, scripts and units, the same files the user data
writes) and the release component, which installs one release's wheels given its Version and Bundle. bake_image
makes a recipe per release from the two components and builds it (opsinfra/services/image.py).
"""

import hashlib
import json
from dataclasses import dataclass

from troposphere import Equals, GetAtt, If, Not, NoValue, Output, Ref, Sub, Template, iam, imagebuilder

from opsinfra.cfn import userdata
from opsinfra.cfn.common import log_group, parameter, service_trust
from opsinfra.stacks import StackSettings

# The same packages the user data installs on the public image (user-data.sh).
OS_PACKAGES = ("python3.11", "python3.11-pip", "amazon-cloudwatch-agent", "nginx")
# Files of opsinfra/cfn/userdata the image carries: the scripts and units, none of the stack's values.
IMAGE_FILES = {
    "shop-release.sh": ("/usr/local/sbin/shop-release", "0755"),
    "shop-migrate.sh": ("/usr/local/sbin/shop-migrate", "0755"),
    "shop-db-role.py": ("/usr/local/sbin/shop-db-role", "0755"),
    "shop.service": ("/etc/systemd/system/shop.service", "0644"),
    "shop-release.service": ("/etc/systemd/system/shop-release.service", "0644"),
    "shop-nginx.service": ("/etc/systemd/system/shop-nginx.service", "0644"),
    "logrotate.conf": ("/etc/logrotate.d/shop", "0644"),
}
# Image Builder writes a build's log to /aws/imagebuilder/<recipe name>; bake_image names recipes <stack name>.
LOG_GROUP_PREFIX = "/aws/imagebuilder/"
IMDS_REGION = (
    'token=$(curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token)\n'
    'export AWS_REGION=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" '
    "http://169.254.169.254/latest/meta-data/placement/region)\n"
)


@dataclass(frozen=True)
class ImageParts:
    system_component: GetAtt
    release_component: GetAtt
    infrastructure: GetAtt


def component_version(document: str) -> str:
    """Image Builder versions are immutable: a changed document gets a new patch number, derived from its text."""
    return f"1.0.{int(hashlib.sha256(document.encode()).hexdigest()[:7], 16)}"


def _document(name: str, description: str, steps: list[dict], *, parameters: list[dict] | None = None) -> str:
    """An AWSTOE component document (YAML is a superset of JSON: the JSON text is a valid document)."""
    document: dict = {"name": name, "description": description, "schemaVersion": 1.0}
    if parameters:
        document["parameters"] = parameters
    document["phases"] = [{"name": "build", "steps": steps}]
    return json.dumps(document, indent=1, sort_keys=False)


def _bash(name: str, *commands: str) -> dict:
    return {"name": name, "action": "ExecuteBash", "inputs": {"commands": list(commands)}}


def system_document() -> str:
    """OS packages, the service user, directories, scripts and units: what every instance needs, no configuration."""
    steps = [
        _bash("packages", f"dnf install -y {' '.join(OS_PACKAGES)}"),
        _bash(
            "service-user",
            "id shop >/dev/null 2>&1 || useradd --system --home-dir /opt/shop --no-create-home "
            "--shell /sbin/nologin shop",
            "install -d -m 0755 /etc/shop /opt/shop /opt/shop/releases /opt/aws/amazon-cloudwatch-agent/etc",
            "install -d -m 0755 -o shop -g shop /var/log/shop",
        ),
    ]
    writes = []
    for name, (path, mode) in IMAGE_FILES.items():
        writes.append(f"cat > {path} <<'SHOP_EOF'\n{userdata.read(name).rstrip()}\nSHOP_EOF\nchmod {mode} {path}")
    steps.append(
        # Not enabled here: the user data enables shop-release.service once /etc/shop holds the stack's
        # configuration, so the image's first boot does not run it before its environment files exist.
        _bash("scripts-and-units", *writes, "systemctl daemon-reload")
    )
    return _document("shop-system", "shop: OS packages, service user, scripts and units", steps)


def release_document() -> str:
    """One release installed beside nothing: shop-release's own install (wheels, collectstatic, bytecode)."""
    steps = [
        _bash(
            "release",
            IMDS_REGION + "/usr/local/sbin/shop-release install '{{ Version }}' '{{ Bundle }}'",
            "test -f '/opt/shop/releases/{{ Version }}/.installed'",
        )
    ]
    parameters = [
        {"Version": {"type": "string", "description": "Release name (shop-release refuses anything but a name)"}},
        {"Bundle": {"type": "string", "description": "s3:// URL of the release bundle"}},
    ]
    return _document("shop-release", "shop: one release's wheels installed", steps, parameters=parameters)


def _builder_role(t: Template, *, settings: StackSettings, bucket, log_group_arn) -> iam.Role:
    statements = [
        {
            "Sid": "ReadComponents",
            "Effect": "Allow",
            "Action": "imagebuilder:GetComponent",
            "Resource": Sub(
                "arn:${AWS::Partition}:imagebuilder:${AWS::Region}:${AWS::AccountId}:component/"
                f"{settings.stack_name}-*"
            ),
        },
        {
            "Sid": "ReadBundles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": Sub("arn:${AWS::Partition}:s3:::${Bucket}/releases/*", Bucket=bucket),
        },
        {
            "Sid": "ShipBuildLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": log_group_arn,
        },
    ]
    return t.add_resource(
        iam.Role(
            "ImageBuilderRole",
            AssumeRolePolicyDocument=service_trust("ec2.amazonaws.com"),
            # Image Builder runs the components through Systems Manager on the builder instance.
            ManagedPolicyArns=[Sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")],
            Policies=[iam.Policy(PolicyName="bake", PolicyDocument={"Version": "2012-10-17", "Statement": statements})],
        )
    )


def add_image_builder(t: Template, *, settings: StackSettings, bucket) -> ImageParts:
    subnet = parameter(
        t,
        "BuilderSubnetId",
        default="",
        description="Subnet of the builder instance (the app stack's private subnet); empty: the default VPC.",
    )
    group = parameter(
        t,
        "BuilderSecurityGroupId",
        default="",
        description="Security group of the builder instance, with egress to S3 and the package repositories.",
    )
    t.add_condition("ImageSubnetGiven", Not(Equals(Ref(subnet), "")))
    t.add_condition("ImageGroupGiven", Not(Equals(Ref(group), "")))
    logs = t.add_resource(
        log_group(
            "ImageBuildLogGroup",
            LogGroupName=f"{LOG_GROUP_PREFIX}{settings.stack_name}",
            retention_days=settings.log_retention_days,
        )
    )
    role = _builder_role(t, settings=settings, bucket=bucket, log_group_arn=GetAtt(logs, "Arn"))
    profile = t.add_resource(iam.InstanceProfile("ImageBuilderInstanceProfile", Roles=[Ref(role)]))
    components = {}
    for kind, document in (("System", system_document()), ("Release", release_document())):
        component = t.add_resource(
            imagebuilder.Component(
                f"Image{kind}Component",
                Name=f"{settings.stack_name}-{kind.lower()}",
                Platform="Linux",
                Version=component_version(document),
                Description=json.loads(document)["description"],
                Data=document,
                SupportedOsVersions=["Amazon Linux 2023"],
            )
        )
        components[kind] = component
    infrastructure = t.add_resource(
        imagebuilder.InfrastructureConfiguration(
            "ImageInfrastructure",
            Name=settings.stack_name,
            Description="shop: the instance that bakes an app image",
            InstanceProfileName=Ref(profile),
            InstanceTypes=[settings.instance_type],
            SubnetId=If("ImageSubnetGiven", Ref(subnet), NoValue),
            SecurityGroupIds=If("ImageGroupGiven", [Ref(group)], NoValue),
            # A failed build leaves nothing running: the builder instance goes with it.
            TerminateInstanceOnFailure=True,
            InstanceMetadataOptions=imagebuilder.InstanceMetadataOptions(
                HttpTokens="required", HttpPutResponseHopLimit=1
            ),
        )
    )
    return ImageParts(
        system_component=GetAtt(components["System"], "Arn"),
        release_component=GetAtt(components["Release"], "Arn"),
        infrastructure=GetAtt(infrastructure, "Arn"),
    )


def build_image(t: Template, settings: StackSettings) -> None:
    bucket = parameter(
        t,
        "ArtifactsBucketName",
        default="",
        description="The bootstrap stack's ArtifactsBucketName; empty: the bucket it names by convention.",
    )
    t.add_condition("ImageArtifactsBucketGiven", Not(Equals(Ref(bucket), "")))
    bucket_name = If(
        "ImageArtifactsBucketGiven",
        Ref(bucket),
        Sub(f"{settings.project}-artifacts-${{AWS::AccountId}}-${{AWS::Region}}"),
    )
    parts = add_image_builder(t, settings=settings, bucket=bucket_name)
    for name, value, description in (
        ("SystemComponentArn", parts.system_component, "Image Builder component: OS packages, user, units"),
        ("ReleaseComponentArn", parts.release_component, "Image Builder component: one release's wheels"),
        ("InfrastructureConfigurationArn", parts.infrastructure, "Where and how the builder instance runs"),
    ):
        t.add_output(Output(name, Value=value, Description=description))
