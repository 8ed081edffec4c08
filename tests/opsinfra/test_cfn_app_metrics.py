"""Every alarm of every committed template watches a metric something emits: an AWS service metric under the
dimension names its namespace publishes, or one of the app's own metrics exactly as shop.metrics writes it (its
namespace, name and dimensions) or as the stack's log metric filter publishes it. An alarm on a metric nobody
writes never fires; CloudWatch accepts it all the same."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from catalog.exceptions import InsufficientStock
from shop.metrics import CHECKOUT_409_CAUSES, Aggregator
from tests.shop.emf_rules import metrics_of, record_errors

TEMPLATES = sorted((Path(settings.BASE_DIR) / "templates_cfn").glob("*.json"))

# (namespace, metric) -> the dimension-name sets CloudWatch publishes it under (each service's metrics page).
AWS_METRICS = {
    ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"): [{"LoadBalancer"}, {"LoadBalancer", "AvailabilityZone"}],
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): [{"LoadBalancer"}, {"LoadBalancer", "TargetGroup"}],
    ("AWS/ApplicationELB", "TargetResponseTime"): [{"LoadBalancer"}, {"LoadBalancer", "TargetGroup"}],
    ("AWS/ApplicationELB", "UnHealthyHostCount"): [{"LoadBalancer", "TargetGroup"}],
    ("AWS/EC2", "CPUUtilization"): [{"AutoScalingGroupName"}, {"InstanceId"}],
    ("AWS/AutoScaling", "GroupInServiceInstances"): [{"AutoScalingGroupName"}],
    ("AWS/RDS", "CPUUtilization"): [{"DBInstanceIdentifier"}],
    ("AWS/RDS", "DatabaseConnections"): [{"DBInstanceIdentifier"}],
    ("AWS/RDS", "FreeStorageSpace"): [{"DBInstanceIdentifier"}],
    ("AWS/RDS", "DatabaseConnectionsBorrowLatency"): [{"ProxyName"}],
    ("AWS/RDS", "ClientConnections"): [{"ProxyName"}],
    **{
        ("AWS/ElastiCache", name): [{"CacheClusterId"}, {"CacheClusterId", "CacheNodeId"}]
        for name in ("EngineCPUUtilization", "CacheHits", "CacheMisses", "DatabaseMemoryUsagePercentage", "Evictions")
    },
    # A CLOUDFRONT web ACL publishes in us-east-1 without a Region dimension; a regional one with it.
    ("AWS/WAFV2", "BlockedRequests"): [{"WebACL", "Rule"}, {"WebACL", "Rule", "Region"}],
    ("AWS/CloudFront", "5xxErrorRate"): [{"DistributionId", "Region"}],
}


def _alarm_metrics(alarm: dict) -> list[dict]:
    properties = alarm["Properties"]
    if "Metrics" in properties:
        return [query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query]
    return [properties]


def _dimensions(metric: dict) -> dict:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def _app_namespace(template: dict) -> str | None:
    """The METRICS_NAMESPACE the template's user data gives the app (None: the template runs no app)."""
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::EC2::LaunchTemplate":
            continue
        found = re.search(r"METRICS_NAMESPACE=([^\\\n\"]+)", json.dumps(resource["Properties"]["LaunchTemplateData"]))
        if found:  # an app instance (the loadgen fleet's launch templates run no app)
            return found.group(1)
    return None


class _Answer:
    def __init__(self, data):
        self.data = data


def emitted_by_the_app(namespace: str) -> set[tuple]:
    """What shop.metrics writes under `namespace`: every endpoint class, every checkout outcome, both circuits."""
    aggregator = Aggregator()
    aggregator.configure(path="", namespace=namespace, interval=60)
    paths = ["/api/products", "/api/products/1", "/api/checkout", "/api/cart/checkout", "/api/cart", "/api/sessions",
             "/api/orders/1", "/api/inventory/1", "/api/schema/", "/health", "/static/a.css", "/"]  # fmt: skip
    for path in paths:
        for status in (200, 201, 400, 401, 404, 409, 422, 429, 500, 503):
            aggregator.request(path=path, status=status, duration_ms=5.0, cache="HIT")
    for cause in CHECKOUT_409_CAUSES:
        gate = cause in ("sold_out", "sale_not_started")
        body = InsufficientStock(product_ids=[1], reason=cause).body() if gate else {"code": cause}
        aggregator.request(path="/api/checkout", status=409, duration_ms=5.0, cache="", response=_Answer(body))
    for cache in ("MISS", "BYPASS"):
        aggregator.request(path="/api/products", status=200, duration_ms=5.0, cache=cache)
    for circuit in ("database", "redis"):
        aggregator.circuit_opened(circuit)
    emitted = set()
    for record in aggregator.records():
        line = json.dumps(record)
        assert record_errors(line) == []
        emitted |= {(ns, name, tuple(sorted(dims.items()))) for ns, name, dims in metrics_of(line)}
    return emitted


def published_by_metric_filters(template: dict) -> set[tuple]:
    found = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Logs::MetricFilter":
            for transformation in resource["Properties"]["MetricTransformations"]:
                dims = tuple(sorted((transformation.get("Dimensions") or {}).items()))
                found.add((transformation["MetricNamespace"], transformation["MetricName"], dims))
    return found


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_every_alarm_watches_a_metric_something_emits(path):
    template = json.loads(path.read_text())
    namespace = _app_namespace(template)
    app_metrics = (emitted_by_the_app(namespace) if namespace else set()) | published_by_metric_filters(template)
    alarms = {title: r for title, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    checked = 0
    for title, alarm in alarms.items():
        for metric in _alarm_metrics(alarm):
            name, dimensions = metric["MetricName"], _dimensions(metric)
            if metric["Namespace"].startswith("AWS/"):
                allowed = AWS_METRICS.get((metric["Namespace"], name))
                assert allowed is not None, f"{title}: no AWS service publishes {metric['Namespace']} {name}"
                assert set(dimensions) in allowed, f"{title}: {name} is not published under {sorted(dimensions)}"
            else:
                watched = (metric["Namespace"], name, tuple(sorted(dimensions.items())))
                assert watched in app_metrics, f"{title}: nothing writes {watched}"
            checked += 1
    assert checked >= len(alarms)


def test_the_app_alarms_are_in_the_app_templates():
    for name in ("app-production.json", "app-staging.json"):
        template = json.loads((Path(settings.BASE_DIR) / "templates_cfn" / name).read_text())
        namespace = _app_namespace(template)
        app_alarms = {
            title
            for title, r in template["Resources"].items()
            if r["Type"] == "AWS::CloudWatch::Alarm" and any(m["Namespace"] == namespace for m in _alarm_metrics(r))
        }
        assert app_alarms == {
            "AlarmAppCacheHitRate",
            "AlarmCheckoutErrorRate",
            "AlarmCheckoutLatency",
            "AlarmDatabaseCircuitOpen",
            "AlarmRedisCircuitOpen",
            "AlarmLoadShed",
        }
        assert namespace == template["Resources"]["ObservabilityDashboard"]["Properties"]["DashboardName"]


def test_a_misspelt_app_metric_is_caught():
    emitted = emitted_by_the_app("shop-app-production")
    assert ("shop-app-production", "Latency", (("Endpoint", "checkout"),)) in emitted
    assert ("shop-app-production", "Latency", (("Endpoint", "check-out"),)) not in emitted
    assert ("shop-app-production", "ProductCacheHit", ()) not in emitted
    assert ("shop-app-production", "Checkouts", (("Outcome", "409_sold_out"),)) in emitted
