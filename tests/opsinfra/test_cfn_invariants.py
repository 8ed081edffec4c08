"""Our own checks for what cfn-lint misses (the stack specification's list), over every template shape."""

import json
import re
import string

import pytest

from tests.opsinfra.cfn_cache import VARIANTS, compact, resources, template, variant_id

STATEFUL = {
    "AWS::RDS::DBInstance",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::S3::Bucket",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
}
ALL_VARIANTS = pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)


def _walk(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _referenced(node, guarded=frozenset()):
    """(resource name, conditions of the Fn::If branches around the reference) for every Ref/GetAtt/Sub."""
    if isinstance(node, dict):
        if "Fn::If" in node:
            condition, yes, no = node["Fn::If"]
            yield from _referenced(yes, guarded | {condition})
            yield from _referenced(no, guarded | {f"!{condition}"})
            return
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value, guarded
            elif key == "Fn::GetAtt":
                yield (value[0] if isinstance(value, list) else value.split(".")[0]), guarded
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                for name in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z.]+)?\}", text):
                    yield name, guarded
                if isinstance(value, list):
                    yield from _referenced(value[1], guarded)
            else:
                yield from _referenced(value, guarded)
    elif isinstance(node, list):
        for value in node:
            yield from _referenced(value, guarded)


@ALL_VARIANTS
def test_cloudfront_scope_acl_only_in_us_east_1(variant):
    body = template(*variant)
    for acl in resources(body, "AWS::WAFv2::WebACL").values():
        if acl["Properties"]["Scope"] == "CLOUDFRONT":
            assert body["Metadata"]["Shop"]["Region"] == "us-east-1"


def test_cloudfront_parts_come_in_as_parameters_outside_us_east_1():
    body = template("app", region="eu-west-1", domain=True)
    assert resources(body, "AWS::WAFv2::WebACL") == {}
    assert {"EdgeWebAclArn", "EdgeCertificateArn"} <= set(body["Parameters"])
    assert not [name for name, _ in resources(body, "AWS::CloudWatch::Alarm").items() if "CloudFront" in name]


@ALL_VARIANTS
def test_web_acl_association_only_for_regional_acls(variant):
    body = template(*variant)
    for association in resources(body, "AWS::WAFv2::WebACLAssociation").values():
        acl_name = next(name for name, _ in _referenced(association["Properties"]["WebACLArn"]))
        assert body["Resources"][acl_name]["Properties"]["Scope"] == "REGIONAL"


@ALL_VARIANTS
def test_no_warm_pool_with_mixed_instances_policy(variant):
    body = template(*variant)
    for pool in resources(body, "AWS::AutoScaling::WarmPool").values():
        group = body["Resources"][pool["Properties"]["AutoScalingGroupName"]["Ref"]]
        assert "MixedInstancesPolicy" not in group["Properties"]


@ALL_VARIANTS
def test_warm_pool_size_does_not_depend_on_desired_capacity(variant):
    body = template(*variant)
    for pool in resources(body, "AWS::AutoScaling::WarmPool").values():
        group = body["Resources"][pool["Properties"]["AutoScalingGroupName"]["Ref"]]["Properties"]
        size, prepared = pool["Properties"]["MinSize"], pool["Properties"]["MaxGroupPreparedCapacity"]
        sizes = {max(size, prepared - desired) for desired in range(int(group["MinSize"]), int(group["MaxSize"]) + 1)}
        assert sizes == {size}


@ALL_VARIANTS
def test_redis_failover_has_at_least_two_nodes(variant):
    for group in resources(template(*variant), "AWS::ElastiCache::ReplicationGroup").values():
        properties = group["Properties"]
        if properties.get("AutomaticFailoverEnabled") or properties.get("MultiAZEnabled"):
            assert properties["NumCacheClusters"] >= 2


@ALL_VARIANTS
def test_auto_scaling_desired_within_min_and_max(variant):
    for group in resources(template(*variant), "AWS::AutoScaling::AutoScalingGroup").values():
        properties = group["Properties"]
        assert int(properties["MinSize"]) <= int(properties["DesiredCapacity"]) <= int(properties["MaxSize"])


@ALL_VARIANTS
def test_no_fn_cidr_and_azs_from_the_stack_region(variant):
    text = compact(*variant)
    assert "Fn::Cidr" not in text
    for path, node in _walk(template(*variant)):
        if isinstance(node, dict) and "Fn::GetAZs" in node:
            assert node["Fn::GetAZs"] == "", path


@ALL_VARIANTS
def test_conditional_resources_and_what_names_them_share_the_condition(variant):
    body = template(*variant)
    conditional = {name: r["Condition"] for name, r in body["Resources"].items() if "Condition" in r}
    users = [(f"output {name}", output) for name, output in body.get("Outputs", {}).items()]
    users += [(f"resource {name}", resource) for name, resource in body["Resources"].items()]
    for label, user in users:
        for name, guarded in _referenced({key: value for key, value in user.items() if key != "Condition"}):
            if name in conditional:
                condition = conditional[name]
                assert user.get("Condition") == condition or condition in guarded, (
                    f"{label} names {name} (condition {condition}) outside that condition"
                )


@ALL_VARIANTS
def test_dashboard_body_is_valid_json_with_real_names(variant):
    body = template(*variant)
    for dashboard in resources(body, "AWS::CloudWatch::Dashboard").values():
        text, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        used = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", text))
        assert used - {"AWS::Region"} == set(variables)
        for value in variables.values():
            assert _referenced(value), "every dashboard name comes from a resource of the stack"
        filled = re.sub(r"\$\{[A-Za-z0-9:]+\}", "x", text)
        widgets = json.loads(filled)["widgets"]
        assert len(widgets) >= 8


def _effective_exclusions(generator: dict) -> set[str]:
    excluded = set(generator.get("ExcludeCharacters", ""))
    if generator.get("ExcludePunctuation"):
        excluded |= set(string.punctuation)
    if not generator.get("IncludeSpace"):
        excluded.add(" ")
    return excluded


@ALL_VARIANTS
def test_generated_passwords_exclude_characters_rds_and_elasticache_reject(variant):
    rejected = set('/@" ')
    for name, secret in resources(template(*variant), "AWS::SecretsManager::Secret").items():
        generator = secret["Properties"]["GenerateSecretString"]
        assert rejected <= _effective_exclusions(generator), name


@ALL_VARIANTS
def test_every_log_group_has_a_retention(variant):
    for name, group in resources(template(*variant), "AWS::Logs::LogGroup").items():
        assert group["Properties"]["RetentionInDays"] > 0, name


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v[0] != "bootstrap"], ids=variant_id)
def test_alerts_topic_key_lets_cloudwatch_publish(variant):
    body = template(*variant)
    (topic,) = resources(body, "AWS::SNS::Topic").values()
    key_name = topic["Properties"]["KmsMasterKeyId"]["Ref"]
    statements = body["Resources"][key_name]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    (policy,) = resources(body, "AWS::SNS::TopicPolicy").values()
    (publish,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"


@ALL_VARIANTS
def test_one_cloudfront_prefix_list_rule_per_security_group(variant):
    body = template(*variant)
    for name, group in resources(body, "AWS::EC2::SecurityGroup").items():
        rules = group["Properties"].get("SecurityGroupIngress", [])
        standalone = [
            r["Properties"]
            for r in resources(body, "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"].get("GroupId") in ({"Ref": name}, {"Fn::GetAtt": [name, "GroupId"]})
        ]
        assert sum("SourcePrefixListId" in rule for rule in rules + standalone) <= 1, name
        assert all(rule.get("FromPort") != 22 for rule in rules + standalone), f"{name} allows SSH"


@ALL_VARIANTS
def test_stateful_resources_state_their_policies(variant):
    for name, resource in template(*variant)["Resources"].items():
        if resource["Type"] in STATEFUL:
            assert resource.get("DeletionPolicy") and resource.get("UpdateReplacePolicy"), name


def test_database_and_cache_keep_a_snapshot():
    body = template("app")
    assert body["Resources"]["DatabaseInstance"]["DeletionPolicy"] == "Snapshot"
    assert body["Resources"]["CacheReplicationGroup"]["UpdateReplacePolicy"] == "Snapshot"
    assert body["Resources"]["DatabaseInstance"]["Properties"]["DeletionProtection"] is True


@ALL_VARIANTS
def test_every_parameter_has_a_default_and_every_output_a_description(variant):
    body = template(*variant)
    assert all("Default" in parameter for parameter in body.get("Parameters", {}).values())
    assert all(output.get("Description") for output in body.get("Outputs", {}).values())
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", name) for name in body["Resources"])


@ALL_VARIANTS
def test_template_metadata_names_stack_env_and_region(variant):
    stack, env, region, _ = variant
    shop = template(*variant)["Metadata"]["Shop"]
    assert shop == {"Stack": stack, "Env": env, "Region": region or "us-east-1"}


def test_stack_parameters_match_the_outputs_that_fill_them():
    bootstrap_outputs = set(template("bootstrap")["Outputs"])
    edge_outputs = set(template("edge", domain=True)["Outputs"])
    app = template("app", region="eu-west-1", domain=True)
    assert "ArtifactsBucketName" in set(app["Parameters"]) & bootstrap_outputs
    assert {"EdgeWebAclArn", "EdgeCertificateArn"} <= set(app["Parameters"]) & edge_outputs
    assert "DistributionId" in set(template("edge")["Parameters"]) & set(app["Outputs"])
    assert {"ArtifactsBucketName", "CloudFormationExecutionRoleArn", "DeployRoleArn", "PreviewRoleArn",
            "OidcProviderArn"} == bootstrap_outputs  # fmt: skip
    assert {"DistributionId", "DistributionDomainName", "AutoScalingGroupName", "LoadBalancerDnsName",
            "DatabaseProxyEndpoint", "AlertsTopicArn", "DashboardName", "ReleaseParameterName",
            "MigrationDocumentName"} <= set(app["Outputs"])  # fmt: skip
    assert "Fn::ImportValue" not in compact("app", region="eu-west-1", domain=True)


def test_large_templates_take_the_template_url_path():
    from opsinfra.services.templates import Template, template_needs_url
    from opsinfra.synth import COMMITTED, TEMPLATE_BODY_LIMIT

    for stack, env in COMMITTED:
        body = compact(stack, env)
        needs_url = template_needs_url(template=Template(stack=stack, body=body))
        assert needs_url == (len(body.encode()) > TEMPLATE_BODY_LIMIT)
