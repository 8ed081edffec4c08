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
    "AWS::SecretsManager::Secret",
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
    body = template(*variant)

    def size(value):  # a number, or a parameter's default
        return int(body["Parameters"][value["Ref"]]["Default"] if isinstance(value, dict) else value)

    for group in resources(body, "AWS::AutoScaling::AutoScalingGroup").values():
        properties = group["Properties"]
        desired = size(properties.get("DesiredCapacity", properties["MinSize"]))
        assert size(properties["MinSize"]) <= desired <= size(properties["MaxSize"])


@ALL_VARIANTS
def test_no_update_resets_the_web_groups_size_and_replacing_keeps_min_size_in_service(variant):
    for name, group in resources(template(*variant), "AWS::AutoScaling::AutoScalingGroup").items():
        properties = group["Properties"]
        if not properties.get("TargetGroupARNs"):
            continue
        # An update in a sale window would put desired back to the template's number.
        assert "DesiredCapacity" not in properties, name
        policy = group["UpdatePolicy"]
        assert policy["AutoScalingScheduledAction"]["IgnoreUnmodifiedGroupSizeProperties"] is True
        rolling = policy["AutoScalingRollingUpdate"]
        assert rolling["MaxBatchSize"] == 1
        assert int(properties["MinSize"]) == rolling["MinInstancesInService"] < int(properties["MaxSize"])
        assert not {"ScheduledActions", "AlarmNotification", "Launch"} & set(rolling.get("SuspendProcesses", []))


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


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v[0] in {"app", "edge"}], ids=variant_id)
def test_alerts_topic_key_lets_cloudwatch_and_the_budget_publish(variant):
    body = template(*variant)
    (topic,) = resources(body, "AWS::SNS::Topic").values()
    key_name = topic["Properties"]["KmsMasterKeyId"]["Ref"]
    statements = body["Resources"][key_name]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    (policy,) = resources(body, "AWS::SNS::TopicPolicy").values()
    publishers = {s["Principal"]["Service"]: s["Action"] for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    # The app stack's budget alerts the same topic (opsinfra/cfn/budget.py); the edge stack has no budget.
    services = (
        {"cloudwatch.amazonaws.com", "budgets.amazonaws.com"} if variant[0] == "app" else {"cloudwatch.amazonaws.com"}
    )
    assert publishers == dict.fromkeys(services, "sns:Publish")
    for service in services:
        (grant,) = [s for s in statements if s["Principal"] == {"Service": service}]
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grant["Action"])


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


# --- credentials ----------------------------------------------------------------------------------------------------

MASTER_SECRET = {"Fn::GetAtt": ["DatabaseInstance", "MasterUserSecret.SecretArn"]}
# What would let a principal become another one, or run something as one.
ESCALATING = {"sts:AssumeRole", "iam:PassRole", "ec2:RunInstances", "ssm:SendCommand", "lambda:InvokeFunction"}


def _statements(role: dict) -> list[dict]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, action: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), action) is not None


def _role_of_group(body: dict, group: dict) -> tuple[str, dict]:
    template_name = group["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
    data = body["Resources"][template_name]["Properties"]["LaunchTemplateData"]
    profile = body["Resources"][data["IamInstanceProfile"]["Arn"]["Fn::GetAtt"][0]]
    (role,) = profile["Properties"]["Roles"]
    return role["Ref"], body["Resources"][role["Ref"]]


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v[0] == "app"], ids=variant_id)
def test_no_credential_a_web_instance_can_obtain_reads_the_master_secret(variant):
    body = template(*variant)
    web = [
        g
        for g in resources(body, "AWS::AutoScaling::AutoScalingGroup").values()
        if g["Properties"].get("TargetGroupARNs")
    ]
    (group,) = web
    role_name, role = _role_of_group(body, group)
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    for statement in _statements(role):
        actions = _as_list(statement["Action"])
        assert not [a for a in actions for e in ESCALATING if _matches(a, e)], (role_name, actions)
        if any(_matches(a, "secretsmanager:GetSecretValue") for a in actions):
            assert "*" not in _as_list(statement["Resource"])
            assert MASTER_SECRET not in _as_list(statement["Resource"]), role_name
    # No role of the stack lets the web role, or anyone in the account, assume it: only AWS services.
    for name, other in resources(body, "AWS::IAM::Role").items():
        for trust in other["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            assert set(trust["Principal"]) == {"Service"}, name
    # The master secret is read by the proxy and the migration instance only.
    readers = {
        name
        for name, other in resources(body, "AWS::IAM::Role").items()
        for statement in _statements(other)
        if MASTER_SECRET in _as_list(statement["Resource"])
    }
    # The rotation function logs in as the master user to set the other user's password.
    assert readers == {"DatabaseProxyRole", "ComputeMigrationInstanceRole", "DatabaseRotationRole"}
    (migration,) = [g for g in resources(body, "AWS::AutoScaling::AutoScalingGroup").values() if g is not group]
    assert _role_of_group(body, migration)[0] == "ComputeMigrationInstanceRole"
    assert not migration["Properties"].get("TargetGroupARNs")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v[0] == "app"], ids=variant_id)
def test_master_password_is_rds_managed_and_the_app_secret_rotates_multi_user(variant):
    body = template(*variant)
    database = body["Resources"]["DatabaseInstance"]["Properties"]
    assert database["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in database
    assert "Transform" not in body
    (schedule,) = resources(body, "AWS::SecretsManager::RotationSchedule").values()
    assert schedule["Properties"]["SecretId"] == {"Ref": "DatabaseAppSecret"}
    assert schedule["Properties"]["RotationLambdaARN"] == {"Fn::GetAtt": ["DatabaseRotationFunction", "Arn"]}
    assert "HostedRotationLambda" not in schedule["Properties"]
    assert schedule["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
    assert set(schedule["DependsOn"]) == {"DatabaseAppSecretAttachment", "DatabaseRotationPermission"}
    function = body["Resources"]["DatabaseRotationFunction"]["Properties"]
    assert function["Handler"] == "rotation.lambda_handler" and function["Runtime"].startswith("python3")
    assert function["Code"]["S3Key"] == {"Ref": "RotationCodeKey"}
    assert re.fullmatch(body["Parameters"]["RotationCodeKey"]["AllowedPattern"],
                        body["Parameters"]["RotationCodeKey"]["Default"])  # fmt: skip
    # Only Secrets Manager invokes it, for this secret only.
    permission = body["Resources"]["DatabaseRotationPermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceArn"] == {"Ref": "DatabaseAppSecret"}
    # Its role writes the app secret only and reads the master secret; the boundary covers it (test_iam_execution).
    role = body["Resources"]["DatabaseRotationRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    writes = [s for s in _statements(role) if "secretsmanager:PutSecretValue" in _as_list(s["Action"])]
    assert [s["Resource"] for s in writes] == [{"Ref": "DatabaseAppSecret"}]
    # The function reads masterarn and host from the secret it rotates.
    shape, values = body["Resources"]["DatabaseAppSecret"]["Properties"]["GenerateSecretString"][
        "SecretStringTemplate"
    ]["Fn::Sub"]
    assert json.loads(shape.replace("${Master}", "x"))["masterarn"] == "x" and values["Master"] == MASTER_SECRET
    (attachment,) = resources(body, "AWS::SecretsManager::SecretTargetAttachment").values()
    assert attachment["Properties"]["SecretId"] == {"Ref": "DatabaseAppSecret"}
    # It runs in the private subnets and reaches PostgreSQL directly, from its own group.
    rotation_group = {"Fn::GetAtt": ["NetworkRotationSecurityGroup", "GroupId"]}
    assert function["VpcConfig"]["SecurityGroupIds"] == [rotation_group]
    assert function["VpcConfig"]["SubnetIds"] == [{"Ref": f"NetworkPrivateSubnet{n}"} for n in (1, 2, 3)]
    ingress = [r["Properties"] for r in resources(body, "AWS::EC2::SecurityGroupIngress").values()]
    database_group = {"Fn::GetAtt": ["NetworkDatabaseSecurityGroup", "GroupId"]}
    sources = {
        (r["SourceSecurityGroupId"]["Fn::GetAtt"][0], r["FromPort"]) for r in ingress if r["GroupId"] == database_group
    }
    assert sources == {("NetworkRotationSecurityGroup", 5432), ("NetworkProxySecurityGroup", 5432)}


@ALL_VARIANTS
def test_every_secret_states_its_policies_and_the_database_secret_is_kept(variant):
    body = template(*variant)
    for name, secret in resources(body, "AWS::SecretsManager::Secret").items():
        assert secret["DeletionPolicy"] == secret["UpdateReplacePolicy"], name
        if name == "DatabaseAppSecret":
            assert secret["DeletionPolicy"] == "Retain"


# --- logs, cache keys, the origin -----------------------------------------------------------------------------------


@ALL_VARIANTS
def test_waf_logs_redact_cookies_authorization_and_the_session_token(variant):
    for logging in resources(template(*variant), "AWS::WAFv2::LoggingConfiguration").values():
        redacted = {field["SingleHeader"]["Name"] for field in logging["Properties"]["RedactedFields"]}
        assert redacted == {"cookie", "authorization", "x-session-token"}


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v[0] == "app"], ids=variant_id)
def test_products_cache_key_holds_only_the_parameters_the_api_reads(variant):
    body = template(*variant)
    config = body["Resources"]["EdgeProductsCachePolicy"]["Properties"]["CachePolicyConfig"]
    query = config["ParametersInCacheKeyAndForwardedToOrigin"]["QueryStringsConfig"]
    assert query["QueryStringBehavior"] == "whitelist"
    assert sorted(query["QueryStrings"]) == ["category", "page", "page_size", "q"]


def _attributes(body: dict) -> dict:
    return {a["Key"]: a["Value"] for a in body["Resources"]["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]}


@pytest.mark.parametrize("region", [None, "eu-west-1"])
def test_production_origin_keeps_access_logs_and_cannot_be_deleted(region):
    from opsinfra.cfn.loadbalancer import ELB_LOG_ACCOUNTS

    body = template("app", region=region)
    attributes = _attributes(body)
    assert attributes["deletion_protection.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": "LoadBalancerLogsBucket"}
    bucket = body["Resources"]["LoadBalancerLogsBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}  # fmt: skip
    statements = body["Resources"]["LoadBalancerLogsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    account = ELB_LOG_ACCOUNTS[region or "us-east-1"]
    assert allow["Principal"] == {"AWS": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::{account}:root"}}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == {"Fn::Sub": "${LoadBalancerLogsBucket.Arn}/alb/AWSLogs/${AWS::AccountId}/*"}
    staging = _attributes(template("app", "staging"))
    assert "access_logs.s3.enabled" not in staging and "deletion_protection.enabled" not in staging


def test_every_region_with_a_prefix_list_has_an_elb_log_account():
    from opsinfra.cfn.loadbalancer import ELB_LOG_ACCOUNTS
    from opsinfra.stacks import CLOUDFRONT_PREFIX_LISTS

    assert set(ELB_LOG_ACCOUNTS) == set(CLOUDFRONT_PREFIX_LISTS)


def _holds(assertion, parameters: dict) -> bool:
    """Evaluate a rule assertion made of Fn::Not, Fn::Equals and Ref, as CloudFormation does."""
    if "Fn::Not" in assertion:
        return not _holds(assertion["Fn::Not"][0], parameters)
    left, right = (parameters[v["Ref"]] if isinstance(v, dict) else v for v in assertion["Fn::Equals"])
    return left == right


@pytest.mark.parametrize("domain", [False, True])
def test_production_outside_us_east_1_refuses_a_deploy_without_a_web_acl(domain):
    body = template("app", region="eu-west-1", domain=domain)
    (assertion,) = body["Rules"]["AppProductionHasWaf"]["Assertions"]
    assert not _holds(assertion["Assert"], {"EdgeWebAclArn": ""})
    assert _holds(assertion["Assert"], {"EdgeWebAclArn": "arn:aws:wafv2:us-east-1:1:global/webacl/x/1"})
    assert "Rules" not in template("app", "staging", region="eu-west-1")


@ALL_VARIANTS
def test_flow_logs_keep_rejected_traffic_only(variant):
    for flow in resources(template(*variant), "AWS::EC2::FlowLog").values():
        assert flow["Properties"]["TrafficType"] == "REJECT"


@ALL_VARIANTS
def test_egress_names_security_groups_except_https_to_aws_and_package_repositories(variant):
    body = template(*variant)
    rules = [rule for group in resources(body, "AWS::EC2::SecurityGroup").values()
             for rule in group["Properties"].get("SecurityGroupEgress", [])]  # fmt: skip
    rules += [r["Properties"] for r in resources(body, "AWS::EC2::SecurityGroupEgress").values()]
    for rule in rules:
        if "DestinationSecurityGroupId" in rule:
            continue
        nothing = rule.get("CidrIp") == "127.0.0.1/32"
        https_out = (rule.get("FromPort"), rule.get("ToPort"), rule.get("CidrIp")) == (443, 443, "0.0.0.0/0")
        assert nothing or https_out, rule
