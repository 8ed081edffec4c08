"""The reference's ten alarms with its thresholds, the added ones, and dimensions their namespaces publish."""

import pytest

from tests.opsinfra.cfn_cache import resources, template

GIB = 1024**3
# title: (metric, threshold, comparison, evaluation periods, period)
REFERENCE_TEN = {
    "AlarmLoadBalancer5xx": ("HTTPCode_ELB_5XX_Count", 50, "GreaterThanThreshold", 1, 60),
    "AlarmTarget5xx": ("HTTPCode_Target_5XX_Count", 50, "GreaterThanThreshold", 1, 60),
    "AlarmTargetLatency": ("TargetResponseTime", 2, "GreaterThanThreshold", 2, 60),
    "AlarmUnhealthyHosts": ("UnHealthyHostCount", 0, "GreaterThanThreshold", 2, 60),
    "AlarmInstanceCpu": ("CPUUtilization", 80, "GreaterThanThreshold", 2, 300),
    "AlarmDatabaseCpu": ("CPUUtilization", 80, "GreaterThanThreshold", 3, 300),
    # 80 % of db.t3.medium's max_connections (about 405), not a bare 80.
    "AlarmDatabaseConnections": ("DatabaseConnections", 324, "GreaterThanThreshold", 2, 300),
    "AlarmDatabaseStorage": ("FreeStorageSpace", 5 * GIB, "LessThanThreshold", 1, 300),
    "AlarmCacheCpu": ("EngineCPUUtilization", 65, "GreaterThanThreshold", 3, 300),
    "AlarmCacheHitRate": ("CacheHits", 80, "LessThanThreshold", 3, 300),
}
ADDED = {
    "AlarmProxyBorrowLatency": "DatabaseConnectionsBorrowLatency",
    "AlarmProxyClientConnections": "ClientConnections",
    "AlarmInstancesAtMax": "GroupInServiceInstances",
    "AlarmWafBlocked": "BlockedRequests",
    "AlarmCloudFront5xx": "5xxErrorRate",
    "AlarmCacheMemory": "DatabaseMemoryUsagePercentage",
    "AlarmCacheEvictions": "Evictions",
}


@pytest.fixture(scope="module")
def alarms():
    return resources(template("app"), "AWS::CloudWatch::Alarm")


def _metrics(alarm: dict) -> list[dict]:
    """Every metric an alarm reads: its own, or those of its metric-math queries."""
    properties = alarm["Properties"]
    if "Metrics" in properties:
        return [
            {**query["MetricStat"]["Metric"], "Period": query["MetricStat"]["Period"]}
            for query in properties["Metrics"]
            if "MetricStat" in query
        ]
    return [properties]


def _dimensions(metric: dict) -> dict:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


@pytest.mark.parametrize("title", REFERENCE_TEN)
def test_reference_alarm_thresholds(alarms, title):
    metric_name, threshold, comparison, periods, period = REFERENCE_TEN[title]
    properties = alarms[title]["Properties"]
    assert properties["Threshold"] == threshold
    assert properties["ComparisonOperator"] == comparison
    assert properties["EvaluationPeriods"] == periods
    metrics = _metrics(alarms[title])
    assert metric_name in {m["MetricName"] for m in metrics}
    assert {m["Period"] for m in metrics} == {period}


def test_latency_alarm_reads_p99(alarms):
    assert alarms["AlarmTargetLatency"]["Properties"]["ExtendedStatistic"] == "p99"


def test_cache_hit_rate_is_metric_math_over_hits_and_misses(alarms):
    queries = alarms["AlarmCacheHitRate"]["Properties"]["Metrics"]
    (expression,) = [q["Expression"] for q in queries if "Expression" in q]
    assert expression == "100 * (h1 + h2) / (h1 + h2 + m1 + m2)"


@pytest.mark.parametrize("title", ADDED)
def test_added_alarms_exist(alarms, title):
    assert ADDED[title] in {m["MetricName"] for m in _metrics(alarms[title])}


def test_every_alarm_notifies_the_alerts_topic(alarms):
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "ObservabilityAlertsTopic"}]


def test_alarm_dimensions_use_the_names_each_namespace_publishes(alarms):
    for title, alarm in alarms.items():
        for metric in _metrics(alarm):
            namespace, dimensions = metric["Namespace"], _dimensions(metric)
            if namespace == "AWS/ApplicationELB":
                assert dimensions["LoadBalancer"] == {"Fn::GetAtt": ["LoadBalancer", "LoadBalancerFullName"]}
                if "TargetGroup" in dimensions:
                    assert dimensions["TargetGroup"] == {
                        "Fn::GetAtt": ["LoadBalancerTargetGroup", "TargetGroupFullName"]
                    }
            elif namespace == "AWS/ElastiCache":
                # Per member cluster: metrics on the ReplicationGroupId get no data.
                assert set(dimensions) == {"CacheClusterId"}, title
                assert dimensions["CacheClusterId"]["Fn::Sub"] in (
                    "${CacheReplicationGroup}-001",
                    "${CacheReplicationGroup}-002",
                )
            elif namespace == "AWS/CloudFront":
                assert dimensions == {"DistributionId": {"Ref": "EdgeDistribution"}, "Region": "Global"}
            elif namespace == "AWS/WAFV2":
                acl = template("app")["Resources"]["SecurityWebAcl"]["Properties"]
                assert dimensions == {"WebACL": acl["Name"], "Rule": "ALL"}
                assert acl["VisibilityConfig"]["MetricName"] == acl["Name"]
            elif namespace == "AWS/RDS":
                assert dimensions in (
                    {"DBInstanceIdentifier": {"Ref": "DatabaseInstance"}},
                    {"ProxyName": {"Ref": "DatabaseProxy"}},
                )
            elif namespace in ("AWS/EC2", "AWS/AutoScaling"):
                assert dimensions == {"AutoScalingGroupName": {"Ref": "ComputeAutoScalingGroup"}}, title
            else:  # the app's own metrics: tests/opsinfra/test_cfn_app_metrics.py
                assert not namespace.startswith("AWS/"), title


def test_edge_stack_alarms_in_us_east_1_wait_for_the_distribution():
    edge = template("edge")
    alarms = resources(edge, "AWS::CloudWatch::Alarm")
    assert alarms["AlarmCloudFront5xx"]["Condition"] == "EdgeHasDistribution"
    assert "Condition" not in alarms["AlarmWafBlocked"]
    assert edge["Metadata"]["Shop"]["Region"] == "us-east-1"
