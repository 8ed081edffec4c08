"""ElastiCache Redis 7: a primary and a replica in two AZs, encrypted, AUTH token from Secrets Manager."""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Sub, Template, elasticache

from opsinfra.cfn.common import log_group, stateful
from opsinfra.cfn.network import Network
from opsinfra.cfn.secrets import resolve
from opsinfra.cfn.security_groups import REDIS_PORT, SecurityGroups
from opsinfra.stacks import StackSettings

NODE_COUNT = 2  # primary + replica: automatic failover needs at least two


@dataclass(frozen=True)
class Cache:
    replication_group: Ref
    primary_endpoint: GetAtt
    # ElastiCache publishes its metrics per member cluster (CacheClusterId), never per replication group.
    member_cluster_ids: list[Sub]


def add_cache(
    t: Template, *, settings: StackSettings, network: Network, groups: SecurityGroups, auth_token: Ref
) -> Cache:
    subnets = t.add_resource(
        elasticache.SubnetGroup("CacheSubnetGroup", Description="Private subnets", SubnetIds=network.private_subnets)
    )
    slow_log = t.add_resource(log_group("CacheSlowLogGroup", retention_days=settings.log_retention_days))
    group_id = f"{settings.stack_name}-redis"
    group = t.add_resource(
        elasticache.ReplicationGroup(
            "CacheReplicationGroup",
            ReplicationGroupId=group_id,
            ReplicationGroupDescription="shop cache: product pages and rate-limit counters",
            Engine="redis",
            EngineVersion="7.1",
            CacheNodeType=settings.cache_node_type,
            NumCacheClusters=NODE_COUNT,
            AutomaticFailoverEnabled=True,
            MultiAZEnabled=True,
            AtRestEncryptionEnabled=True,
            TransitEncryptionEnabled=True,
            AuthToken=resolve(auth_token),
            Port=REDIS_PORT,
            SnapshotRetentionLimit=1,
            AutoMinorVersionUpgrade=True,
            CacheSubnetGroupName=Ref(subnets),
            SecurityGroupIds=[groups.cache],
            LogDeliveryConfigurations=[
                elasticache.LogDeliveryConfigurationRequest(
                    LogType="slow-log",
                    LogFormat="json",
                    DestinationType="cloudwatch-logs",
                    DestinationDetails=elasticache.DestinationDetails(
                        CloudWatchLogsDetails=elasticache.CloudWatchLogsDestinationDetails(LogGroup=Ref(slow_log))
                    ),
                )
            ],
        )
    )
    stateful(group, "Snapshot")
    return Cache(
        replication_group=Ref(group),
        primary_endpoint=GetAtt(group, "PrimaryEndPoint.Address"),
        member_cluster_ids=[Sub(f"${{{group.title}}}-{index:03d}") for index in range(1, NODE_COUNT + 1)],
    )
