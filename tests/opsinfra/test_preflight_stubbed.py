"""The preflight checks on answers moto cannot give, through botocore's Stubber: drift, a subscription waiting for
its confirmation, a failed instance refresh, a certificate near its end, a full cache, CloudFront's own hits."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from opsinfra.services import deploy, preflight, probes
from opsinfra.services.stacks import StackState

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:shop-app-production-alerts"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0b1c"


@pytest.fixture
def live(aws_env):
    target = deploy.target_resolve(stack="app", env="production")
    state = StackState(
        name="shop-app-production",
        stack_id="arn:aws:cloudformation:us-east-1:123456789012:stack/shop-app-production/1",
        status="UPDATE_COMPLETE",
        outputs={"AlertsTopicArn": TOPIC, "AutoScalingGroupName": "shop-app-production-group", "DistributionId": "E1"},
    )
    resources = {"AWS::ElastiCache::ReplicationGroup": [("CacheReplicationGroup", "shop-app-production-redis")]}
    return preflight.Live(target=target, state=state, resources=resources, at=NOW, now=NOW, url="http://127.0.0.1:9")


def test_drift_lists_the_resources_that_differ(live, stub_client):
    cfn = stub_client("cloudformation")
    cfn.add_response("detect_stack_drift", {"StackDriftDetectionId": "d-1"}, {"StackName": "shop-app-production"})
    cfn.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": live.state.stack_id,
            "StackDriftDetectionId": "d-1",
            "StackDriftStatus": "DRIFTED",
            "DetectionStatus": "DETECTION_COMPLETE",
            "DriftedStackResourceCount": 1,
            "Timestamp": NOW,
        },
    )
    cfn.add_response(
        "describe_stack_resource_drifts",
        {
            "StackResourceDrifts": [
                {
                    "StackId": live.state.stack_id,
                    "LogicalResourceId": "ComputeAutoScalingGroup",
                    "ResourceType": "AWS::AutoScaling::AutoScalingGroup",
                    "StackResourceDriftStatus": "MODIFIED",
                    "Timestamp": NOW,
                }
            ]
        },
    )

    check = preflight.drift_check(live)

    assert check == preflight.Check(
        "drift", "fail", "1 resource(s) differ from the template: ComputeAutoScalingGroup (MODIFIED)."
    )
    cfn.assert_no_pending_responses()


def test_a_subscription_waiting_for_its_confirmation_fails(live, stub_client):
    sns = stub_client("sns")
    sns.add_response(
        "list_subscriptions_by_topic",
        {"Subscriptions": [{"SubscriptionArn": "PendingConfirmation", "Protocol": "email",
                            "Endpoint": "ops@example.com", "TopicArn": TOPIC, "Owner": "123456789012"}]},
        {"TopicArn": TOPIC},
    )  # fmt: skip

    check = preflight.subscription_check(live)

    assert check.status == "fail"
    assert check.detail.startswith("1 subscription(s) pending confirmation: click the link in the email")


def test_a_failed_instance_refresh_fails_the_release(live, stub_client):
    boto3.client("ssm").put_parameter(
        Name="/shop/production/release", Type="String", Value=json.dumps({"version": "v2", "bundle": "s3://b/v2"})
    )
    autoscaling = stub_client("autoscaling")
    autoscaling.add_response(
        "describe_instance_refreshes",
        {"InstanceRefreshes": [{"InstanceRefreshId": "r-1", "AutoScalingGroupName": "shop-app-production-group",
                                "Status": "RollbackSuccessful", "StatusReason": "health checks failed"}]},
        {"AutoScalingGroupName": "shop-app-production-group", "MaxRecords": 1},
    )  # fmt: skip

    check = preflight.release_check(live)

    assert check == preflight.Check(
        "release", "fail", "the last instance refresh (r-1) ended RollbackSuccessful: health checks failed."
    )


@pytest.mark.parametrize(
    ("days_left", "status", "detail"),
    [
        (90, "pass", "shop.example.com ISSUED, expires 2027-02-18."),
        (10, "warn", "shop.example.com ISSUED, expires 2026-11-30: within 30 days of 2026-11-20"),
        (-1, "fail", "shop.example.com ISSUED, not valid at 2026-11-20 12:00 UTC."),
    ],
)
def test_the_certificate_must_outlive_the_peak_by_a_month(live, stub_client, days_left, status, detail):
    cloudfront = stub_client("cloudfront")
    config = {
        "CallerReference": "shop",
        "Comment": "",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "alb", "DomainName": "alb.example.com"}]},
        "DefaultCacheBehavior": {"TargetOriginId": "alb", "ViewerProtocolPolicy": "redirect-to-https"},
        "ViewerCertificate": {"ACMCertificateArn": CERTIFICATE, "SSLSupportMethod": "sni-only"},
    }
    cloudfront.add_response("get_distribution_config", {"DistributionConfig": config}, {"Id": "E1"})
    acm = stub_client("acm")
    acm.add_response(
        "describe_certificate",
        {"Certificate": {"CertificateArn": CERTIFICATE, "DomainName": "shop.example.com", "Status": "ISSUED",
                         "NotAfter": NOW + timedelta(days=days_left)}},
        {"CertificateArn": CERTIFICATE},
    )  # fmt: skip

    check = preflight.certificate_check(live)

    assert (check.status, check.detail[: len(detail)]) == (status, detail)


@pytest.mark.parametrize(("fullest", "status"), [(35.0, "pass"), (65.0, "warn"), (85.0, "fail")])
def test_cache_memory_is_the_fullest_node_of_the_last_three_hours(live, stub_client, fullest, status):
    elasticache = stub_client("elasticache")
    elasticache.add_response(
        "describe_replication_groups",
        {"ReplicationGroups": [{"ReplicationGroupId": "shop-app-production-redis", "CacheNodeType": "cache.t3.micro",
                                "MemberClusters": ["shop-app-production-redis-001", "shop-app-production-redis-002"]}]},
        {"ReplicationGroupId": "shop-app-production-redis"},
    )  # fmt: skip
    cloudwatch = stub_client("cloudwatch")
    for maximum in (fullest - 20, fullest):
        cloudwatch.add_response("get_metric_statistics", {"Datapoints": [{"Timestamp": NOW, "Maximum": maximum}]})

    check = preflight.cache_memory_check(live)

    assert check.status == status
    assert check.detail.startswith(f"cache.t3.micro (0.5 GiB): the fullest node used {fullest:.0f} %")
    cloudwatch.assert_no_pending_responses()


class EdgeHandler(BaseHTTPRequestHandler):
    """CloudFront's answer: its own hit header over whatever the origin said when the edge filled."""

    def do_GET(self):
        body = b"[]"
        self.send_response(200)
        self.send_header("X-Cache", "Hit from cloudfront" if self.path == "/api/products" else "Miss from cloudfront")
        self.send_header("X-Cache-Status", "MISS")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_cloudfront_hit_counts_as_warm_and_its_miss_does_not():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EdgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        probe = probes.product_cache_probe(base_url=url, pages=2, products=5)
    finally:
        server.shutdown()
        server.server_close()

    assert [(answer.path, answer.cache, answer.warm) for answer in probe.answers] == [
        ("/api/products", "EDGE-HIT", True),
        ("/api/products?page=2", "MISS", False),
    ]
    assert [answer.path for answer in probe.cold] == ["/api/products?page=2"]


def test_no_answer_at_all_fails_the_product_cache(live):
    check = preflight.product_cache_check(live, pages=1, products=0)

    assert check.status == "fail"
    assert check.detail.startswith("/api/products at http://127.0.0.1:9: ")
