"""Security groups, least access: CloudFront → ALB → app → proxy → database, app → Redis, rotation → database.
No SSH anywhere, and no rule between two of the stack's parts names an address range: each names the other group.
Rules that point both ways are separate resources, or the groups would depend on each other."""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Template, ec2

from opsinfra.cfn.common import parameter
from opsinfra.cfn.network import Network
from opsinfra.stacks import StackSettings

POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
# An egress rule that matches nothing: listing it replaces the allow-all egress EC2 adds to every new group.
NO_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="-1", CidrIp="127.0.0.1/32", Description="No outbound traffic (replaces the default allow-all)"
)
# AWS APIs (through the NAT where no interface endpoint exists) and package repositories have no group to name.
HTTPS_OUT = ec2.SecurityGroupRule(
    IpProtocol="tcp",
    FromPort=HTTPS_PORT,
    ToPort=HTTPS_PORT,
    CidrIp="0.0.0.0/0",
    Description="AWS APIs, S3 and package repositories over HTTPS",
)


@dataclass(frozen=True)
class SecurityGroups:
    load_balancer: GetAtt
    app: GetAtt
    proxy: GetAtt
    database: GetAtt
    cache: GetAtt
    endpoints: GetAtt
    rotation: GetAtt


def _tcp(port: int, description: str, **source) -> ec2.SecurityGroupRule:
    return ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port, Description=description, **source)


def _group(t: Template, title: str, *, network: Network, description: str, ingress=(), egress) -> GetAtt:
    group = t.add_resource(
        ec2.SecurityGroup(
            title,
            GroupDescription=description,
            VpcId=network.vpc,
            SecurityGroupIngress=list(ingress),
            SecurityGroupEgress=egress,
        )
    )
    return GetAtt(group, "GroupId")


def _link(t: Template, name: str, *, source: GetAtt, target: GetAtt, port: int, description: str) -> None:
    """Traffic from one group to another on one port: the source's egress rule and the target's ingress rule."""
    t.add_resource(
        ec2.SecurityGroupEgress(
            f"Network{name}Egress",
            GroupId=source,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            DestinationSecurityGroupId=target,
            Description=description,
        )
    )
    t.add_resource(
        ec2.SecurityGroupIngress(
            f"Network{name}Ingress",
            GroupId=target,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            SourceSecurityGroupId=source,
            Description=description,
        )
    )


def add_security_groups(t: Template, *, network: Network, settings: StackSettings, origin_port: int) -> SecurityGroups:
    prefix_list = parameter(
        t,
        "CloudFrontPrefixListId",
        default=settings.cloudfront_prefix_list_id,
        description="CloudFront origin-facing managed prefix list of this region (only CloudFront reaches the ALB).",
    )
    load_balancer = _group(
        t,
        "NetworkLoadBalancerSecurityGroup",
        network=network,
        description="ALB: the origin port from CloudFront only",
        # One prefix-list rule only: each reference counts about 55 rules against the quota of 60 per group.
        ingress=[_tcp(origin_port, "CloudFront origin-facing servers", SourcePrefixListId=Ref(prefix_list))],
        egress=[NO_EGRESS],
    )
    app = _group(
        t,
        "NetworkAppSecurityGroup",
        network=network,
        description="App instances: the app port from the ALB only",
        egress=[HTTPS_OUT],
    )
    proxy = _group(
        t, "NetworkProxySecurityGroup", network=network, description="RDS Proxy: from the app", egress=[NO_EGRESS]
    )
    database = _group(
        t,
        "NetworkDatabaseSecurityGroup",
        network=network,
        description="RDS PostgreSQL: from the proxy and the rotation function only",
        egress=[NO_EGRESS],
    )
    cache = _group(
        t,
        "NetworkCacheSecurityGroup",
        network=network,
        description="ElastiCache Redis: from the app",
        egress=[NO_EGRESS],
    )
    rotation = _group(
        t,
        "NetworkRotationSecurityGroup",
        network=network,
        description="Database secret rotation function: PostgreSQL and Secrets Manager",
        egress=[HTTPS_OUT],
    )
    endpoints = _group(
        t,
        "NetworkEndpointSecurityGroup",
        network=network,
        description="Interface endpoints: HTTPS from the app and the rotation function",
        ingress=[
            _tcp(HTTPS_PORT, "App instances", SourceSecurityGroupId=app),
            _tcp(HTTPS_PORT, "Database secret rotation", SourceSecurityGroupId=rotation),
        ],
        egress=[NO_EGRESS],
    )
    for name, source, target, port, description in (
        ("LoadBalancerToApp", load_balancer, app, settings.app_port, "ALB to the app instances"),
        ("AppToProxy", app, proxy, POSTGRES_PORT, "App instances to RDS Proxy"),
        ("AppToCache", app, cache, REDIS_PORT, "App instances to ElastiCache Redis"),
        ("ProxyToDatabase", proxy, database, POSTGRES_PORT, "RDS Proxy to RDS PostgreSQL"),
        ("RotationToDatabase", rotation, database, POSTGRES_PORT, "Secret rotation to RDS PostgreSQL"),
    ):
        _link(t, name, source=source, target=target, port=port, description=description)
    return SecurityGroups(
        load_balancer=load_balancer,
        app=app,
        proxy=proxy,
        database=database,
        cache=cache,
        endpoints=endpoints,
        rotation=rotation,
    )
