"""Security groups, least access: CloudFront → ALB → app → proxy → database, app → Redis. No SSH anywhere."""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Template, ec2

from opsinfra.cfn.common import parameter
from opsinfra.cfn.network import VPC_CIDR, Network
from opsinfra.stacks import StackSettings

POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
# An egress rule that matches nothing: listing it replaces the allow-all egress EC2 adds to every new group.
NO_EGRESS = ec2.SecurityGroupRule(
    IpProtocol="-1", CidrIp="127.0.0.1/32", Description="No outbound traffic (replaces the default allow-all)"
)


@dataclass(frozen=True)
class SecurityGroups:
    load_balancer: GetAtt
    app: GetAtt
    proxy: GetAtt
    database: GetAtt
    cache: GetAtt
    endpoints: GetAtt


def _tcp(port: int, description: str, **source) -> ec2.SecurityGroupRule:
    return ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=port, ToPort=port, Description=description, **source)


def _group(t: Template, title: str, *, network: Network, description: str, ingress, egress) -> GetAtt:
    group = t.add_resource(
        ec2.SecurityGroup(
            title,
            GroupDescription=description,
            VpcId=network.vpc,
            SecurityGroupIngress=ingress,
            SecurityGroupEgress=egress,
        )
    )
    return GetAtt(group, "GroupId")


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
        egress=[_tcp(settings.app_port, "App instances", CidrIp=VPC_CIDR)],
    )
    app = _group(
        t,
        "NetworkAppSecurityGroup",
        network=network,
        description="App instances: the app port from the ALB only",
        ingress=[_tcp(settings.app_port, "ALB", SourceSecurityGroupId=load_balancer)],
        egress=[
            _tcp(HTTPS_PORT, "AWS APIs, S3 and package repositories over HTTPS", CidrIp="0.0.0.0/0"),
            _tcp(POSTGRES_PORT, "RDS Proxy", CidrIp=VPC_CIDR),
            _tcp(REDIS_PORT, "ElastiCache Redis", CidrIp=VPC_CIDR),
        ],
    )
    proxy = _group(
        t,
        "NetworkProxySecurityGroup",
        network=network,
        description="RDS Proxy: PostgreSQL from the app instances",
        ingress=[_tcp(POSTGRES_PORT, "App instances", SourceSecurityGroupId=app)],
        egress=[_tcp(POSTGRES_PORT, "RDS PostgreSQL", CidrIp=VPC_CIDR)],
    )
    database = _group(
        t,
        "NetworkDatabaseSecurityGroup",
        network=network,
        description="RDS PostgreSQL: from the proxy only",
        ingress=[_tcp(POSTGRES_PORT, "RDS Proxy", SourceSecurityGroupId=proxy)],
        egress=[NO_EGRESS],
    )
    cache = _group(
        t,
        "NetworkCacheSecurityGroup",
        network=network,
        description="ElastiCache Redis: from the app instances",
        ingress=[_tcp(REDIS_PORT, "App instances", SourceSecurityGroupId=app)],
        egress=[NO_EGRESS],
    )
    endpoints = _group(
        t,
        "NetworkEndpointSecurityGroup",
        network=network,
        description="Interface endpoints: HTTPS from the app instances",
        ingress=[_tcp(HTTPS_PORT, "App instances", SourceSecurityGroupId=app)],
        egress=[NO_EGRESS],
    )
    return SecurityGroups(
        load_balancer=load_balancer, app=app, proxy=proxy, database=database, cache=cache, endpoints=endpoints
    )
