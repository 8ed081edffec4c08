"""One CloudWatch dashboard, built from the stack's real resource names (the reference's was a hand-edited file)."""

import json

from troposphere import Ref, Sub, Template, cloudwatch

from opsinfra.cfn.alarms import AlarmTargets

WIDTH = 12
HEIGHT = 6


def _widget(title: str, metrics: list, *, x: int, y: int, region: str = "${AWS::Region}", stat: str = "Sum"):
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {"title": title, "region": region, "stat": stat, "period": 60, "metrics": metrics},
    }


def app_metrics_widgets(namespace: str, *, y: int) -> list[dict]:
    """What the app counts itself (shop.metrics) and nginx's shed requests (a metric filter), docs/metrics.md."""
    checkout = ["Endpoint", "checkout"]
    hidden = {"visible": False}
    return [
        _widget(
            "App requests per endpoint",
            [[{"expression": f"SEARCH('{{{namespace},Endpoint}} MetricName=\"Requests\"', 'Sum', 60)", "id": "e1"}]],
            x=0,
            y=y,
        ),
        _widget(
            "Checkout outcomes (201, 409 by cause, 422, 429, 503, ...)",
            [[{"expression": f"SEARCH('{{{namespace},Outcome}} MetricName=\"Checkouts\"', 'Sum', 60)", "id": "e1"}]],
            x=WIDTH,
            y=y,
        ),
        _widget(
            "Product cache: hit rate (%) and BYPASS",
            [
                [{"expression": "100 * h / (h + m + b)", "label": "Hit rate (%)", "id": "rate"}],
                [namespace, "ProductCacheHits", {**hidden, "id": "h"}],
                [namespace, "ProductCacheMisses", {**hidden, "id": "m"}],
                [namespace, "ProductCacheBypasses", {"id": "b", "yAxis": "right"}],
            ],
            x=0,
            y=y + HEIGHT,
        ),
        _widget(
            "Checkout latency in the app (ms)",
            [
                [namespace, "Latency", *checkout, {"stat": "p50"}],
                [namespace, "Latency", *checkout, {"stat": "p99"}],
            ],
            x=WIDTH,
            y=y + HEIGHT,
            stat="p99",
        ),
        _widget(
            "Checkout 5xx, 503 and 429",
            [
                [namespace, "Errors5xx", *checkout],
                [namespace, "Unavailable503", *checkout],
                [namespace, "RateLimited429", *checkout],
            ],
            x=0,
            y=y + 2 * HEIGHT,
        ),
        _widget(
            "Circuits open (processes) and shed requests",
            [
                [namespace, "DatabaseCircuitOpen", {"stat": "Maximum"}],
                [namespace, "RedisCircuitOpen", {"stat": "Maximum"}],
                [namespace, "ShedRequests", {"yAxis": "right"}],
            ],
            x=WIDTH,
            y=y + 2 * HEIGHT,
        ),
    ]


def dashboard_body(*, cache_nodes: int, app_namespace: str | None = None) -> str:
    """The body with ${Name} placeholders for Fn::Sub; valid JSON once they are filled."""
    alb = ["LoadBalancer", "${LoadBalancer}"]
    cache = [
        ["AWS/ElastiCache", metric, "CacheClusterId", f"${{CacheNode{index}}}"]
        for metric in ("EngineCPUUtilization",)
        for index in range(1, cache_nodes + 1)
    ]
    hits = [
        ["AWS/ElastiCache", metric, "CacheClusterId", f"${{CacheNode{index}}}"]
        for metric in ("CacheHits", "CacheMisses")
        for index in range(1, cache_nodes + 1)
    ]
    widgets = [
        _widget(
            "Requests and errors (ALB)",
            [
                ["AWS/ApplicationELB", "RequestCount", *alb],
                ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *alb],
                ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *alb],
            ],
            x=0,
            y=0,
        ),
        _widget(
            "Response time p99 (s)",
            [["AWS/ApplicationELB", "TargetResponseTime", *alb]],
            x=WIDTH,
            y=0,
            stat="p99",
        ),
        _widget(
            "Instances in service",
            [["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", "${AutoScalingGroup}"]],
            x=0,
            y=HEIGHT,
            stat="Maximum",
        ),
        _widget(
            "Instance CPU (%)",
            [["AWS/EC2", "CPUUtilization", "AutoScalingGroupName", "${AutoScalingGroup}"]],
            x=WIDTH,
            y=HEIGHT,
            stat="Average",
        ),
        _widget(
            "Database: connections and CPU",
            [
                ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", "${Database}"],
                ["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", "${Database}", {"yAxis": "right"}],
            ],
            x=0,
            y=2 * HEIGHT,
            stat="Maximum",
        ),
        _widget(
            "RDS Proxy: client connections and borrow latency (µs)",
            [
                ["AWS/RDS", "ClientConnections", "ProxyName", "${Proxy}"],
                ["AWS/RDS", "DatabaseConnectionsBorrowLatency", "ProxyName", "${Proxy}", {"yAxis": "right"}],
            ],
            x=WIDTH,
            y=2 * HEIGHT,
            stat="Maximum",
        ),
        _widget("Redis engine CPU per node (%)", cache, x=0, y=3 * HEIGHT, stat="Average"),
        _widget("Redis hits and misses per node", hits, x=WIDTH, y=3 * HEIGHT),
        _widget(
            "CloudFront requests and 5xx rate",
            [
                ["AWS/CloudFront", "Requests", "DistributionId", "${Distribution}", "Region", "Global"],
                [
                    "AWS/CloudFront",
                    "5xxErrorRate",
                    "DistributionId",
                    "${Distribution}",
                    "Region",
                    "Global",
                    {"stat": "Average", "yAxis": "right"},
                ],
            ],
            x=0,
            y=4 * HEIGHT,
            # CloudFront publishes its metrics only in us-east-1.
            region="us-east-1",
        ),
    ]
    if app_namespace:
        widgets += app_metrics_widgets(app_namespace, y=5 * HEIGHT)
    return json.dumps({"widgets": widgets}, sort_keys=True, separators=(",", ":"))


def add_dashboard(
    t: Template, *, names: AlarmTargets, distribution: Ref, name: str, app_namespace: str | None = None
) -> Ref:
    variables = {
        "LoadBalancer": names.load_balancer,
        "AutoScalingGroup": names.auto_scaling_group,
        "Database": names.database_instance,
        "Proxy": names.proxy_name,
        "Distribution": distribution,
        **{f"CacheNode{index}": cluster for index, cluster in enumerate(names.cache_clusters, start=1)},
    }
    dashboard = t.add_resource(
        cloudwatch.Dashboard(
            "ObservabilityDashboard",
            DashboardName=name,
            DashboardBody=Sub(
                dashboard_body(cache_nodes=len(names.cache_clusters), app_namespace=app_namespace), **variables
            ),
        )
    )
    return Ref(dashboard)
