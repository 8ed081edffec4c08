"""The numbers users rely on, pinned: capacity, warm pool, pre-scale, WAF, caching, timeouts, alarms, OIDC."""

import runpy
from pathlib import Path

import pytest
from django.conf import settings

from opsinfra.cfn.edge import ALL_VIEWER_EXCEPT_HOST, CACHING_DISABLED
from tests.opsinfra.cfn_cache import resources, template

GUNICORN_CONF = Path(settings.BASE_DIR) / "shop" / "gunicorn.conf.py"


@pytest.fixture(scope="module")
def app():
    return template("app")


@pytest.fixture(scope="module")
def gunicorn():
    return runpy.run_path(str(GUNICORN_CONF))


def _props(body, name):
    return body["Resources"][name]["Properties"]


def test_auto_scaling_group_is_2_20_and_starts_at_its_minimum(app):
    group = _props(app, "ComputeAutoScalingGroup")
    assert (group["MinSize"], group["MaxSize"], group.get("DesiredCapacity")) == ("2", "20", None)
    assert group["HealthCheckType"] == "ELB"
    assert group["MetricsCollection"] == [{"Granularity": "1Minute"}]


def test_warm_pool_keeps_3_stopped_whatever_the_desired_capacity(app):
    pool = _props(app, "ComputeWarmPool")
    group = _props(app, "ComputeAutoScalingGroup")
    assert pool["PoolState"] == "Stopped"
    for desired in range(int(group["MinSize"]), int(group["MaxSize"]) + 1):
        # AWS: pool = max(MinSize, MaxGroupPreparedCapacity - desired)
        assert max(pool["MinSize"], pool["MaxGroupPreparedCapacity"] - desired) == 3, desired


def test_pre_scale_raises_min_size_with_desired_and_is_off_by_default(app):
    assert app["Parameters"]["PreScaleEnabled"]["Default"] == "false"
    assert app["Parameters"]["PreScaleTimeZone"]["Default"] == "UTC"
    actions = {name: r for name, r in resources(app, "AWS::AutoScaling::ScheduledAction").items()}
    up, down = actions["ComputePreScaleUp"], actions["ComputePreScaleDown"]
    assert up["Condition"] == down["Condition"] == "ComputePreScale"
    assert up["Properties"]["Recurrence"] == "45 19 * * *"
    assert (up["Properties"]["MinSize"], up["Properties"]["DesiredCapacity"]) == (10, 10)
    assert down["Properties"]["Recurrence"] == "0 23 * * *"
    assert (down["Properties"]["MinSize"], down["Properties"]["DesiredCapacity"]) == (2, 2)
    assert up["Properties"]["TimeZone"] == {"Ref": "PreScaleTimeZone"}


def test_scaling_tracks_1000_requests_per_target(app):
    config = _props(app, "ComputeRequestScaling")["TargetTrackingConfiguration"]
    assert config["TargetValue"] == 1000.0
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ALBRequestCountPerTarget"


def test_waf_rate_rule_2000_per_5_minutes_on_the_viewer_ip_with_allow_list(app):
    acl = _props(app, "SecurityWebAcl")
    assert acl["Scope"] == "CLOUDFRONT"
    rate = next(rule for rule in acl["Rules"] if "RateBasedStatement" in rule["Statement"])
    statement = rate["Statement"]["RateBasedStatement"]
    assert (statement["Limit"], statement["EvaluationWindowSec"], statement["AggregateKeyType"]) == (2000, 300, "IP")
    assert "ForwardedIPConfig" not in statement  # CLOUDFRONT scope sees the viewer's own address
    exempt = statement["ScopeDownStatement"]["NotStatement"]["Statement"]["IPSetReferenceStatement"]
    assert exempt["Arn"] == {"Fn::GetAtt": ["SecurityAllowList", "Arn"]}
    assert rate["Action"] == {"Block": {}}
    managed = {r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in acl["Rules"] if r is not rate}
    assert managed == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesSQLiRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    ip_set = _props(app, "SecurityAllowList")["Addresses"]
    assert ip_set == {"Fn::If": ["SecurityHasAllowList", {"Ref": "WafAllowList"}, []]}
    assert app["Resources"]["EdgeDistribution"]["Properties"]["DistributionConfig"]["WebACLId"] == {
        "Fn::GetAtt": ["SecurityWebAcl", "Arn"]
    }


def _behaviors(body):
    config = _props(body, "EdgeDistribution")["DistributionConfig"]
    return config, {b["PathPattern"]: b for b in config["CacheBehaviors"]}


def _policy(body, reference):
    return body["Resources"][reference["Ref"]]["Properties"]["CachePolicyConfig"]


def test_cloudfront_caches_products_300_s_static_long_and_never_the_live_paths(app):
    config, behaviors = _behaviors(app)
    products = _policy(app, behaviors["/api/products*"]["CachePolicyId"])
    assert (products["DefaultTTL"], products["MaxTTL"]) == (300, 300)
    assert products["ParametersInCacheKeyAndForwardedToOrigin"]["QueryStringsConfig"] == {
        "QueryStringBehavior": "whitelist",
        "QueryStrings": ["category", "q", "page", "page_size"],
    }
    assert behaviors["/api/products*"]["AllowedMethods"] == ["GET", "HEAD"]
    static = _policy(app, behaviors["/static/*"]["CachePolicyId"])
    assert static["DefaultTTL"] >= 365 * 24 * 3600
    for path in ("/api/inventory*", "/api/checkout*", "/api/sessions*", "/api/orders*"):
        assert behaviors[path]["CachePolicyId"] == CACHING_DISABLED
        assert behaviors[path]["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == CACHING_DISABLED
    assert "ForwardedValues" not in str(config)
    for behavior in [*behaviors.values(), config["DefaultCacheBehavior"]]:
        assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert (config["PriceClass"], config["HttpVersion"], config["IPV6Enabled"]) == ("PriceClass_100", "http2and3", True)


def test_no_cache_key_splits_on_x_cache(app):
    for policy in resources(app, "AWS::CloudFront::CachePolicy").values():
        headers = policy["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        assert "x-cache" not in str(headers).lower()


def test_origin_is_https_to_a_name_the_certificate_covers_with_a_domain():
    config, _ = _behaviors(template("app", domain=True))
    (origin,) = config["Origins"]
    assert origin["DomainName"] == "origin.shop.example.com"
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.2_2021"
    assert origin["OriginCustomHeaders"][0]["HeaderName"] == "X-Origin-Verify"


def test_timeout_chain_each_layer_gives_up_before_the_one_in_front(app, gunicorn):
    borrow = _props(app, "DatabaseProxyTargetGroup")["ConnectionPoolConfigurationInfo"]["ConnectionBorrowTimeout"]
    (origin,) = _props(app, "EdgeDistribution")["DistributionConfig"]["Origins"]
    origin_read = origin["CustomOriginConfig"]["OriginReadTimeout"]
    attributes = {a["Key"]: a["Value"] for a in _props(app, "LoadBalancer")["LoadBalancerAttributes"]}
    alb_idle = int(attributes["idle_timeout.timeout_seconds"])
    assert (borrow, gunicorn["timeout"], origin_read, alb_idle) == (2, 20, 30, 60)
    # a borrow, then a statement, inside the app's deadline; connecting and that deadline inside the worker timeout
    deadline, statement = settings.DB_DEADLINE_MS / 1000, settings.DB_STATEMENT_TIMEOUT_MS / 1000
    assert borrow + statement < deadline
    assert settings.DATABASES["default"].get("OPTIONS", {}).get("connect_timeout", 3) + deadline < gunicorn["timeout"]
    assert gunicorn["timeout"] < origin_read < alb_idle < gunicorn["keepalive"]
    target_group = {a["Key"]: a["Value"] for a in _props(app, "LoadBalancerTargetGroup")["TargetGroupAttributes"]}
    assert gunicorn["graceful_timeout"] >= int(target_group["deregistration_delay.timeout_seconds"]) == 30


def test_target_group_health_check(app):
    group = _props(app, "LoadBalancerTargetGroup")
    assert (group["HealthCheckPath"], group["HealthCheckIntervalSeconds"], group["HealthCheckTimeoutSeconds"]) == (
        "/health",
        15,
        5,
    )
    assert (group["HealthyThresholdCount"], group["UnhealthyThresholdCount"]) == (2, 3)


def test_proxy_settings(app):
    proxy = _props(app, "DatabaseProxy")
    assert (proxy["EngineFamily"], proxy["RequireTLS"], proxy["IdleClientTimeout"]) == ("POSTGRESQL", True, 1800)
    pool = _props(app, "DatabaseProxyTargetGroup")["ConnectionPoolConfigurationInfo"]
    assert (pool["MaxConnectionsPercent"], pool["MaxIdleConnectionsPercent"]) == (100, 50)


def test_database_multi_az_in_production_single_az_in_staging(app):
    assert _props(app, "DatabaseInstance")["MultiAZ"] is True
    staging = template("app", "staging")
    assert _props(staging, "DatabaseInstance")["MultiAZ"] is False
    assert staging["Parameters"]["NatGateways"]["Default"] == "1"
    assert app["Parameters"]["NatGateways"]["Default"] == "3"


def test_launch_template_imdsv2_encrypted_gp3_no_key_pair(app):
    data = _props(app, "ComputeLaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    (volume,) = data["BlockDeviceMappings"]
    assert (volume["Ebs"]["VolumeType"], volume["Ebs"]["Encrypted"]) == ("gp3", True)
    assert data["Monitoring"] == {"Enabled": True}
    assert "KeyName" not in data


def test_migration_document_takes_the_release_to_migrate(app):
    import re

    document = _props(app, "ComputeMigrationDocument")["Content"]
    parameters = document["parameters"]
    assert set(parameters) == {"Version", "Bundle"}
    (step,) = document["mainSteps"]
    assert step["inputs"]["runCommand"] == ["/usr/local/sbin/shop-migrate '{{ Version }}' '{{ Bundle }}'"]
    # SSM pastes the values into the shell text: the patterns must refuse quotes, spaces and paths.
    version, bundle = (re.compile(parameters[name]["allowedPattern"]) for name in ("Version", "Bundle"))
    assert version.match("v1.2.3+build.4") and bundle.match("s3://shop-artifacts-1/releases/v1.2.3.tar.gz")
    for bad in ("v1'; rm -rf /", "../etc", "v1 v2"):
        assert not version.match(bad)
    assert not bundle.match("s3://bucket/releases/x.tar.gz' ; id")
