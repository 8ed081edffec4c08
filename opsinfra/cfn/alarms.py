"""CloudWatch alarms: the reference's ten with its thresholds, plus the ones it lacked. Dimensions use the names
each namespace publishes (ALB full names, one CacheClusterId per Redis node, CloudFront Region=Global)."""

from dataclasses import dataclass

from troposphere import Template, cloudwatch

from opsinfra.capacity import db_max_connections
from opsinfra.stacks import StackSettings

GIB = 1024**3
MINUTE = 60
FIVE_MINUTES = 300


@dataclass(frozen=True)
class AlarmTargets:
    """The real names the app stack's metrics are published under."""

    load_balancer: object  # GetAtt LoadBalancerFullName: app/<name>/<id>
    target_group: object  # GetAtt TargetGroupFullName: targetgroup/<name>/<id>
    auto_scaling_group: object
    database_instance: object
    proxy_name: object
    cache_clusters: list  # one CacheClusterId per node: <group>-001, <group>-002


def _dimensions(**values) -> list[cloudwatch.MetricDimension]:
    return [cloudwatch.MetricDimension(Name=name, Value=value) for name, value in values.items()]


def _alarm(
    t: Template,
    title: str,
    *,
    topic,
    description: str,
    threshold: float,
    comparison: str,
    evaluation_periods: int,
    condition: str | None = None,
    **metric,
) -> cloudwatch.Alarm:
    alarm = cloudwatch.Alarm(
        title,
        AlarmDescription=description,
        Threshold=threshold,
        ComparisonOperator=comparison,
        EvaluationPeriods=evaluation_periods,
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
        OKActions=[topic],
        **metric,
    )
    if condition:
        alarm.Condition = condition
    return t.add_resource(alarm)


def _single(namespace: str, name: str, *, dimensions: dict, period: int, statistic: str) -> dict:
    spec = {"Namespace": namespace, "MetricName": name, "Dimensions": _dimensions(**dimensions), "Period": period}
    if statistic.startswith("p"):
        spec["ExtendedStatistic"] = statistic
    else:
        spec["Statistic"] = statistic
    return spec


def _math(expression: str, label: str, queries: dict[str, tuple], *, period: int, statistic: str) -> dict:
    """A metric-math alarm over several metrics: queries maps an id to (namespace, metric, dimensions)."""
    metrics = [
        cloudwatch.MetricDataQuery(
            Id=query_id,
            ReturnData=False,
            MetricStat=cloudwatch.MetricStat(
                Metric=cloudwatch.Metric(Namespace=namespace, MetricName=name, Dimensions=_dimensions(**dimensions)),
                Period=period,
                Stat=statistic,
            ),
        )
        for query_id, (namespace, name, dimensions) in queries.items()
    ]
    metrics.append(cloudwatch.MetricDataQuery(Id="result", Expression=expression, Label=label, ReturnData=True))
    return {"Metrics": metrics}


def _per_node(metric: str, clusters: list, prefix: str = "n") -> dict[str, tuple]:
    return {
        f"{prefix}{index}": ("AWS/ElastiCache", metric, {"CacheClusterId": cluster})
        for index, cluster in enumerate(clusters, start=1)
    }


def add_app_alarms(t: Template, *, settings: StackSettings, names: AlarmTargets, topic) -> list[cloudwatch.Alarm]:
    alb = {"LoadBalancer": names.load_balancer}
    max_connections = db_max_connections(settings.db_instance_class)
    client_budget = settings.asg_max * settings.gunicorn_workers * settings.gunicorn_threads
    nodes = names.cache_clusters
    node_ids = ",".join(f"n{index}" for index in range(1, len(nodes) + 1))
    hits = " + ".join(f"h{index}" for index in range(1, len(nodes) + 1))
    misses = " + ".join(f"m{index}" for index in range(1, len(nodes) + 1))
    above, below, at_least = "GreaterThanThreshold", "LessThanThreshold", "GreaterThanOrEqualToThreshold"
    specs = [
        # The reference's ten.
        ("AlarmLoadBalancer5xx", "ALB-generated 5xx above 50 a minute", 50, above, 1,
         _single("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", dimensions=alb, period=MINUTE, statistic="Sum")),
        ("AlarmTarget5xx", "App 5xx above 50 a minute", 50, above, 1,
         _single("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", dimensions=alb, period=MINUTE, statistic="Sum")),
        ("AlarmTargetLatency", "Target response time p99 above 2 s for 2 minutes", 2, above, 2,
         _single("AWS/ApplicationELB", "TargetResponseTime", dimensions=alb, period=MINUTE, statistic="p99")),
        ("AlarmUnhealthyHosts", "Unhealthy targets for 2 minutes", 0, above, 2,
         _single("AWS/ApplicationELB", "UnHealthyHostCount",
                 dimensions={"TargetGroup": names.target_group, **alb}, period=MINUTE, statistic="Maximum")),
        ("AlarmInstanceCpu", "App instances' CPU above 80 % for 2 x 5 minutes", 80, above, 2,
         _single("AWS/EC2", "CPUUtilization", dimensions={"AutoScalingGroupName": names.auto_scaling_group},
                 period=FIVE_MINUTES, statistic="Average")),
        ("AlarmDatabaseCpu", "RDS CPU above 80 % for 3 x 5 minutes", 80, above, 3,
         _single("AWS/RDS", "CPUUtilization", dimensions={"DBInstanceIdentifier": names.database_instance},
                 period=FIVE_MINUTES, statistic="Average")),
        ("AlarmDatabaseConnections",
         f"RDS connections above 80 % of max_connections ({max_connections} on {settings.db_instance_class}) "
         "for 2 x 5 minutes",
         int(max_connections * 0.8), above, 2,
         _single("AWS/RDS", "DatabaseConnections", dimensions={"DBInstanceIdentifier": names.database_instance},
                 period=FIVE_MINUTES, statistic="Maximum")),
        ("AlarmDatabaseStorage", "RDS free storage below 5 GiB", 5 * GIB, below, 1,
         _single("AWS/RDS", "FreeStorageSpace", dimensions={"DBInstanceIdentifier": names.database_instance},
                 period=FIVE_MINUTES, statistic="Minimum")),
        ("AlarmCacheCpu", "Redis engine CPU above 65 % on any node for 3 x 5 minutes", 65, above, 3,
         _math(f"MAX([{node_ids}])", "Busiest node's engine CPU", _per_node("EngineCPUUtilization", nodes),
               period=FIVE_MINUTES, statistic="Average")),
        ("AlarmCacheHitRate", "Redis hit rate below 80 % for 3 x 5 minutes", 80, below, 3,
         _math(
             f"100 * ({hits}) / ({hits} + {misses})", "Hit rate (%)",
             {**_per_node("CacheHits", nodes, "h"), **_per_node("CacheMisses", nodes, "m")},
             period=FIVE_MINUTES, statistic="Sum",
         )),
        # Added: what the reference could not see.
        ("AlarmProxyBorrowLatency", "RDS Proxy connection borrow latency above 500 ms for 3 minutes", 500_000, above, 3,
         _single("AWS/RDS", "DatabaseConnectionsBorrowLatency", dimensions={"ProxyName": names.proxy_name},
                 period=MINUTE, statistic="Average")),
        ("AlarmProxyClientConnections",
         f"RDS Proxy client connections above 80 % of the app's budget ({client_budget} = {settings.asg_max} "
         f"instances x {settings.gunicorn_workers} workers x {settings.gunicorn_threads} threads)",
         int(client_budget * 0.8), above, 3,
         _single("AWS/RDS", "ClientConnections", dimensions={"ProxyName": names.proxy_name},
                 period=MINUTE, statistic="Maximum")),
        ("AlarmInstancesAtMax", f"Auto Scaling group at its maximum ({settings.asg_max}) for 5 minutes",
         settings.asg_max, at_least, 5,
         _single("AWS/AutoScaling", "GroupInServiceInstances",
                 dimensions={"AutoScalingGroupName": names.auto_scaling_group}, period=MINUTE, statistic="Maximum")),
        ("AlarmCacheMemory", "Redis memory above 80 % on any node for 3 x 5 minutes", 80, above, 3,
         _math(f"MAX([{node_ids}])", "Fullest node's memory", _per_node("DatabaseMemoryUsagePercentage", nodes),
               period=FIVE_MINUTES, statistic="Maximum")),
        ("AlarmCacheEvictions", "Redis evicted more than 100 keys in 5 minutes", 100, above, 1,
         _math(f"SUM([{node_ids}])", "Evictions", _per_node("Evictions", nodes),
               period=FIVE_MINUTES, statistic="Sum")),
    ]  # fmt: skip
    return [
        _alarm(t, title, topic=topic, description=text, threshold=threshold, comparison=comparison,
               evaluation_periods=periods, **metric)
        for title, text, threshold, comparison, periods, metric in specs
    ]  # fmt: skip


def add_edge_alarms(
    t: Template, *, web_acl_name: str, distribution_id, topic, distribution_condition: str | None = None
) -> list[cloudwatch.Alarm]:
    """WAF and CloudFront alarms; both publish only in us-east-1 (no Region dimension for a CLOUDFRONT ACL)."""
    waf = _alarm(
        t,
        "AlarmWafBlocked",
        topic=topic,
        description="WAF blocked more than 1,000 requests a minute for 3 minutes (bot flood or a bad rule)",
        threshold=1000,
        comparison="GreaterThanThreshold",
        evaluation_periods=3,
        **_single("AWS/WAFV2", "BlockedRequests", dimensions={"WebACL": web_acl_name, "Rule": "ALL"},
                  period=MINUTE, statistic="Sum"),
    )  # fmt: skip
    cloudfront = _alarm(
        t,
        "AlarmCloudFront5xx",
        topic=topic,
        description="CloudFront 5xx error rate above 5 % for 3 minutes",
        threshold=5,
        comparison="GreaterThanThreshold",
        evaluation_periods=3,
        condition=distribution_condition,
        **_single("AWS/CloudFront", "5xxErrorRate", dimensions={"DistributionId": distribution_id, "Region": "Global"},
                  period=MINUTE, statistic="Average"),
    )  # fmt: skip
    return [waf, cloudfront]


def _app_metric(namespace: str, name: str, dimensions: dict) -> cloudwatch.Metric:
    metric = cloudwatch.Metric(Namespace=namespace, MetricName=name)
    if dimensions:
        metric.Dimensions = _dimensions(**dimensions)
    return metric


def _app_math(namespace: str, expression: str, label: str, queries: dict[str, tuple]) -> dict:
    """Metric math over the app's metrics, a minute a point: queries maps an id to (metric, dimensions)."""
    metrics = [
        cloudwatch.MetricDataQuery(
            Id=query_id,
            ReturnData=False,
            MetricStat=cloudwatch.MetricStat(
                Metric=_app_metric(namespace, name, dimensions), Period=MINUTE, Stat="Sum"
            ),
        )
        for query_id, (name, dimensions) in queries.items()
    ]
    metrics.append(cloudwatch.MetricDataQuery(Id="result", Expression=expression, Label=label, ReturnData=True))
    return {"Metrics": metrics}


def add_app_metric_alarms(t: Template, *, namespace: str, topic) -> list[cloudwatch.Alarm]:
    """Alarms on what the app knows (shop.metrics, written as EMF records) and on nginx's shed requests (a metric
    filter): each fires on the first minutes of a trend, before the ALB's 5xx and latency alarms would. Their
    runbook is docs/metrics.md."""
    checkout = {"Endpoint": "checkout"}
    below, above, at_least = "LessThanThreshold", "GreaterThanThreshold", "GreaterThanOrEqualToThreshold"
    specs = [
        ("AlarmAppCacheHitRate",
         "Product cache hit rate below 80 % for 5 minutes (at 100 product requests a minute or more): the database "
         "takes the reads (docs/metrics.md)", 80, below, 5, 5,
         _app_math(namespace, "IF(h + m + b >= 100, 100 * h / (h + m + b), 100)", "Product cache hit rate (%)",
                   {"h": ("ProductCacheHits", {}), "m": ("ProductCacheMisses", {}),
                    "b": ("ProductCacheBypasses", {})})),
        ("AlarmCheckoutErrorRate",
         "Checkout 5xx (503 included) above 2 % of checkouts in 2 of 3 minutes (at 20 checkouts a minute or more) "
         "(docs/metrics.md)", 2, above, 3, 2,
         _app_math(namespace, "IF(r >= 20, 100 * e / r, 0)", "Checkout 5xx (%)",
                   {"e": ("Errors5xx", checkout), "r": ("Requests", checkout)})),
        ("AlarmCheckoutLatency", "Checkout p99 above 1 s in 2 of 3 minutes, in the app (docs/metrics.md)",
         1000, above, 3, 2,
         {"MetricName": "Latency", "Namespace": namespace, "Dimensions": _dimensions(**checkout), "Period": MINUTE,
          "ExtendedStatistic": "p99"}),
        ("AlarmDatabaseCircuitOpen",
         "An app process stopped sending work to PostgreSQL (circuit open) (docs/metrics.md)",
         1, at_least, 1, 1,
         {"MetricName": "DatabaseCircuitOpen", "Namespace": namespace, "Period": MINUTE, "Statistic": "Maximum"}),
        ("AlarmRedisCircuitOpen", "An app process is skipping Redis (circuit open) (docs/metrics.md)",
         1, at_least, 1, 1,
         {"MetricName": "RedisCircuitOpen", "Namespace": namespace, "Period": MINUTE, "Statistic": "Maximum"}),
        ("AlarmLoadShed", "nginx shed more than 60 requests a minute for 3 minutes: the fleet is short of capacity "
         "(docs/metrics.md)", 60, above, 3, 3,
         {"MetricName": "ShedRequests", "Namespace": namespace, "Period": MINUTE, "Statistic": "Sum"}),
    ]  # fmt: skip
    return [
        _alarm(t, title, topic=topic, description=text, threshold=threshold, comparison=comparison,
               evaluation_periods=periods, DatapointsToAlarm=datapoints, **metric)
        for title, text, threshold, comparison, periods, datapoints, metric in specs
    ]  # fmt: skip
