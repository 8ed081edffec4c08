"""What the stack costs a month, from the dated price table opsinfra/data/prices.json. Plain numbers: no AWS calls.

The fixed part is priced: instances, their volumes, the database and its proxy, the cache, NAT gateways, public
addresses, the load balancer, interface endpoints, the web ACL and its rules, keys, secrets, alarms, dashboards.
What depends on traffic (data through NAT and CloudFront, requests through WAF and CloudFront, load balancer
capacity units, logs) is not: `usage_prices` lists its unit prices beside the total.
"""

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from opsinfra.errors import StackConfigError

PRICES_FILE = Path(__file__).parent / "data" / "prices.json"
ROOT_VOLUME_GIB = 20  # opsinfra/cfn/compute.py: every instance's gp3 root volume
DB_STORAGE_GIB = 20  # opsinfra/cfn/database.py: AllocatedStorage (it may grow to MaxAllocatedStorage)
# RDS Proxy bills the vCPUs of the instance behind it, at least 2.
DB_VCPUS = {"db.t3.xlarge": 4, "db.t3.2xlarge": 8, "db.m6g.xlarge": 4, "db.r6g.xlarge": 4}
PROXY_MIN_VCPUS = 2
USAGE_KEYS = ("nat_gateway_gb", "alb_lcu_hour", "waf_million_requests", "cloudfront_gb_out",
              "cloudfront_10k_https_requests")  # fmt: skip


class PricesMissing(StackConfigError):
    """The price table has no row for a region or a size the stack uses."""


@dataclass(frozen=True)
class StackShape:
    """What the stack runs, counted for pricing."""

    region: str
    instance_type: str
    instances: int
    warm_pool: int  # stopped instances: only their volumes cost
    db_instance_class: str
    db_multi_az: bool
    cache_node_type: str
    cache_nodes: int
    nat_gateways: int
    availability_zones: int
    interface_endpoints: int  # each has a network interface in every availability zone
    web_acls: int
    waf_rules: int
    kms_keys: int
    secrets: int
    alarm_metrics: int  # CloudWatch bills an alarm per metric it reads
    dashboards: int
    load_balancers: int = 1

    def at(self, instances: int) -> "StackShape":
        from dataclasses import replace

        return replace(self, instances=instances)


@dataclass(frozen=True)
class CostLine:
    item: str
    detail: str
    monthly: float
    estimated: bool


@cache
def price_table() -> dict:
    return json.loads(PRICES_FILE.read_text())


def region_prices(region: str) -> dict:
    regions = price_table()["regions"]
    if region not in regions:
        raise PricesMissing(
            f"No prices for {region} in {PRICES_FILE.name} (it has {', '.join(sorted(regions))}): add the region's "
            "row from the AWS price pages."
        )
    return regions[region]


def _size_price(prices: dict, key: str, size: str) -> float:
    try:
        return prices[key][size]
    except KeyError:
        raise PricesMissing(
            f"No {key} price for {size} in {PRICES_FILE.name}: add it from the AWS price pages."
        ) from None


def monthly_cost(shape: StackShape) -> list[CostLine]:
    """One line per priced part of the stack, in USD a month (730 hours)."""
    prices = region_prices(shape.region)
    hours = price_table()["hours_per_month"]
    estimated = set(prices.get("estimated", ()))

    def line(item: str, detail: str, monthly: float, *keys: str) -> CostLine:
        return CostLine(item, detail, round(monthly, 2), bool(estimated & set(keys)))

    instance_hour = _size_price(prices, "ec2_instance_hour", shape.instance_type)
    db_hour = _size_price(prices, "rds_postgres_instance_hour", shape.db_instance_class)
    node_hour = _size_price(prices, "elasticache_node_hour", shape.cache_node_type)
    db_copies = 2 if shape.db_multi_az else 1
    volumes = shape.instances + shape.warm_pool
    proxy_vcpus = max(DB_VCPUS.get(shape.db_instance_class, 2), PROXY_MIN_VCPUS)
    # A NAT gateway's Elastic IP and each load balancer node's address are public IPv4 addresses.
    addresses = shape.nat_gateways + shape.load_balancers * shape.availability_zones
    lines = [
        line("instances", f"{shape.instances} x {shape.instance_type}", shape.instances * instance_hour * hours,
             shape.instance_type, "ec2_instance_hour"),
        line("instance volumes", f"{volumes} x {ROOT_VOLUME_GIB} GiB gp3 (warm pool {shape.warm_pool} included)",
             volumes * ROOT_VOLUME_GIB * prices["ebs_gp3_gb_month"], "ebs_gp3_gb_month"),
        line("database", f"{shape.db_instance_class}{' multi-AZ' if shape.db_multi_az else ''}",
             db_copies * db_hour * hours, shape.db_instance_class, "rds_postgres_instance_hour"),
        line("database storage", f"{db_copies} x {DB_STORAGE_GIB} GiB gp3",
             db_copies * DB_STORAGE_GIB * prices["rds_gp3_gb_month"], "rds_gp3_gb_month"),
        line("RDS Proxy", f"{proxy_vcpus} vCPUs", proxy_vcpus * prices["rds_proxy_vcpu_hour"] * hours,
             "rds_proxy_vcpu_hour"),
        line("cache", f"{shape.cache_nodes} x {shape.cache_node_type}", shape.cache_nodes * node_hour * hours,
             shape.cache_node_type, "elasticache_node_hour"),
        line("NAT gateways", str(shape.nat_gateways), shape.nat_gateways * prices["nat_gateway_hour"] * hours,
             "nat_gateway_hour"),
        line("public IPv4", f"{addresses} addresses", addresses * prices["public_ipv4_hour"] * hours,
             "public_ipv4_hour"),
        line("load balancer", f"{shape.load_balancers} ALB, capacity units not included",
             shape.load_balancers * prices["alb_hour"] * hours, "alb_hour"),
        line("interface endpoints", f"{shape.interface_endpoints} x {shape.availability_zones} AZs",
             shape.interface_endpoints * shape.availability_zones * prices["interface_endpoint_az_hour"] * hours,
             "interface_endpoint_az_hour"),
        line("WAF", f"{shape.web_acls} web ACL, {shape.waf_rules} rules, requests not included",
             shape.web_acls * prices["waf_web_acl_month"] + shape.waf_rules * prices["waf_rule_month"],
             "waf_web_acl_month", "waf_rule_month"),
        line("keys, secrets", f"{shape.kms_keys} KMS keys, {shape.secrets} secrets",
             shape.kms_keys * prices["kms_key_month"] + shape.secrets * prices["secret_month"],
             "kms_key_month", "secret_month"),
        line("alarms, dashboards", f"{shape.alarm_metrics} alarm metrics, {shape.dashboards} dashboards",
             shape.alarm_metrics * prices["alarm_metric_month"] + shape.dashboards * prices["dashboard_month"],
             "alarm_metric_month", "dashboard_month"),
    ]  # fmt: skip
    return [item for item in lines if item.monthly > 0]


def total(lines: list[CostLine]) -> float:
    return round(sum(item.monthly for item in lines), 2)


def usage_prices(region: str) -> dict[str, float]:
    """Unit prices of what depends on traffic, which monthly_cost leaves out."""
    prices = region_prices(region)
    return {key: prices[key] for key in USAGE_KEYS}


def budget_amount(lines: list[CostLine]) -> int:
    """The budget's monthly limit: the minimum-size month with half again for sale days, up to the next 10 USD."""
    return int(math.ceil(total(lines) * 1.5 / 10) * 10)


def stack_shape(resources: dict[str, dict], settings, **live) -> StackShape:
    """The shape of a synthesized template's resources (those whose Condition holds) for the preset's sizes; `live`
    overrides what the running stack says (instances, instance_type, db_instance_class, db_multi_az,
    cache_node_type)."""

    def of_type(name: str) -> list[dict]:
        return [body.get("Properties", {}) for body in resources.values() if body.get("Type") == name]

    subnets = len(of_type("AWS::EC2::Subnet"))
    alarm_metrics = sum(
        len([query for query in alarm.get("Metrics", []) if "MetricStat" in query]) or 1
        for alarm in of_type("AWS::CloudWatch::Alarm")
    )
    cache_groups = of_type("AWS::ElastiCache::ReplicationGroup")
    shape = {
        "region": settings.region,
        "instance_type": settings.instance_type,
        "instances": settings.asg_min,
        "warm_pool": sum(int(pool.get("MinSize", 0)) for pool in of_type("AWS::AutoScaling::WarmPool")),
        "db_instance_class": settings.db_instance_class,
        "db_multi_az": settings.db_multi_az,
        "cache_node_type": settings.cache_node_type,
        "cache_nodes": sum(int(group.get("NumCacheClusters", 1)) for group in cache_groups),
        "nat_gateways": len(of_type("AWS::EC2::NatGateway")),
        # Every availability zone has a public and a private subnet.
        "availability_zones": max(subnets // 2, 1),
        "interface_endpoints": len(
            [point for point in of_type("AWS::EC2::VPCEndpoint") if point.get("VpcEndpointType") == "Interface"]
        ),
        "web_acls": len(of_type("AWS::WAFv2::WebACL")),
        "waf_rules": sum(len(acl.get("Rules", [])) for acl in of_type("AWS::WAFv2::WebACL")),
        "kms_keys": len(of_type("AWS::KMS::Key")),
        "secrets": len(of_type("AWS::SecretsManager::Secret")),
        "alarm_metrics": alarm_metrics,
        "dashboards": len(of_type("AWS::CloudWatch::Dashboard")),
        "load_balancers": len(of_type("AWS::ElasticLoadBalancingV2::LoadBalancer")),
    }
    shape.update({key: value for key, value in live.items() if value is not None})
    return StackShape(**shape)
