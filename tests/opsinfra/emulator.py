"""moto 5.2.5's CloudFormation, completed where the shop's templates need it; used by the tests (conftest) and by
`python -m tests.opsinfra.emulator`, which serves it on 127.0.0.1 to try the ops commands offline.

Each patch names the gap it fills. None changes what a template says: resources moto does not model get stand-ins.
"""

import argparse
import json
import logging
import re
import signal

import pytest


def patch_moto(patcher: pytest.MonkeyPatch) -> None:
    _patch_moto_change_sets(patcher)
    _patch_moto_resource_json(patcher)
    _patch_moto_change_set_actions(patcher)
    _patch_moto_change_set_templates(patcher)
    _patch_moto_missing_types(patcher)
    _patch_moto_rds_references(patcher)
    _patch_moto_elbv2_attributes(patcher)
    _patch_moto_ssm_documents(patcher)
    _patch_moto_auto_scaling_updates(patcher)
    _patch_moto_rds_managed_master_password(patcher)
    _patch_moto_role_deletion(patcher)
    _patch_moto_instances_from_launch_templates(patcher)
    _patch_moto_network_deletion(patcher)
    _patch_moto_stack_resources(patcher)


def _patch_moto_change_sets(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 executes a change set without re-reading the stack's template: the stack keeps no Outputs, its
    parameters stay those of the first change set, and a later identical update is not seen as empty. Finish the
    job the way CloudFormation does: template, parameters and outputs become the change set's."""
    from moto.cloudformation.models import CloudFormationBackend, Stack

    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        original(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        # CloudFormation records every declared parameter, a defaulted one too, so that passing the same values
        # again is "no changes".
        stack.parameters = {
            name: change_set.parameters.get(name, spec.get("Default"))
            for name, spec in stack.template_dict.get("Parameters", {}).items()
            if name in change_set.parameters or spec.get("Default") is not None
        }
        stack.output_map = stack._create_output_map()

    patcher.setattr(CloudFormationBackend, "execute_change_set", execute_change_set)

    original_create = CloudFormationBackend.create_change_set

    def create_change_set(
        self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs
    ):
        # A CREATE for a stack still in REVIEW_IN_PROGRESS reuses it in CloudFormation; moto makes a second stack of
        # the same name, and DescribeStacks goes on answering the first.
        if change_set_type == "CREATE":
            for stack_id, stack in list(self.stacks.items()):
                if stack.name == stack_name and stack.status == "REVIEW_IN_PROGRESS":
                    del self.stacks[stack_id]
                    for key in [key for key, item in self.change_sets.items() if item.stack_id == stack_id]:
                        del self.change_sets[key]
        return original_create(
            self, stack_name, change_set_name, template, parameters, description, change_set_type, *args, **kwargs
        )

    patcher.setattr(CloudFormationBackend, "create_change_set", create_change_set)

    # UsePreviousValue reads stack_parameters, which moto fills with resolved values (a CommaDelimitedList as a
    # list, an SSM parameter as the value it names) that it cannot take back as input; CloudFormation reuses the
    # value as it was passed.
    def stack_parameters(stack):
        return {**stack.resource_map.resolved_parameters, **stack.parameters}

    def parameter_list(stack):
        hidden = set(stack.resource_map.no_echo_parameter_keys)
        return [
            {"ParameterKey": key, "ParameterValue": "****" if key in hidden else _as_given(value)}
            for key, value in stack_parameters(stack).items()
        ]

    patcher.setattr(Stack, "stack_parameters", property(stack_parameters))
    # DescribeStacks answers the parameters as they were passed too (an SSM-typed one as the name, not the AMI id).
    patcher.setattr(Stack, "parameter_list", property(parameter_list))


def _patch_moto_resource_json(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 adds `"Properties": {}` to the stack's own copy of a resource that has none (the app stack's
    internet gateway) when it creates it, so every later change set lists that resource as modified."""
    from moto.cloudformation import parsing

    original = parsing.parse_resource

    def parse_resource(resource_json, resources_map):
        if "Properties" not in resource_json:
            resource_json = {**resource_json, "Properties": {}}
        return original(resource_json, resources_map)

    patcher.setattr(parsing, "parse_resource", parse_resource)


def _patch_moto_change_set_actions(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 lists a change set's resources from the template alone: a parameter change shows no resource, and
    executing it updates every resource that names the parameter, also one whose Condition is false and which was
    never created (the update then fails). Decide as CloudFormation does: a resource is added or removed when it or
    its Condition comes or goes, and modified when its text or a parameter or condition it names changed."""
    from moto.cloudformation import models, parsing

    def diff(change_set):
        actions = _resource_actions(change_set.stack.resource_map, change_set.template_dict, change_set.parameters)
        return [
            models.Change(action=action, logical_resource_id=name, resource_type=resource_type)
            for action, names in actions.items()
            for name, resource_type in names.items()
        ]

    def update(resource_map, template, parameters=None):
        parameters = resource_map.input_parameters if parameters is None else parameters
        actions = _resource_actions(resource_map, template, parameters)

        def remove(name):
            resource = resource_map._parsed_resources.get(name)
            if resource is not None:
                resource_map._delete_resource(resource, resource_map._resource_json_map[name])
            resource_map._parsed_resources.pop(name, None)

        _retry(actions["Remove"], remove)
        resource_map._template = template
        resource_map.input_parameters = parameters
        resource_map.load_mapping()
        resource_map.load_parameters()
        resource_map.load_conditions()
        resource_map._resource_json_map = template["Resources"]
        for name in actions["Add"]:
            resource_map._parsed_resources.pop(name, None)  # a resource whose Condition was false is cached as None
        for name in actions["Add"]:
            resource_map[name]  # creates it, unless it was created already as another's dependency

        def modify(name):
            changed = parsing.parse_and_update_resource(
                name,
                resource_map._resource_json_map[name],
                resource_map,
                account_id=resource_map._account_id,
                region_name=resource_map._region_name,
            )
            resource_map._parsed_resources[name] = changed

        _retry(actions["Modify"], modify)

    patcher.setattr(models.ChangeSet, "diff", diff)
    patcher.setattr(parsing.ResourceMap, "update", update)


def _patch_moto_change_set_templates(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5's GetTemplate ignores ChangeSetName and answers the stack's template."""
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import ActionResult

    original = CloudFormationResponse.get_template

    def get_template(response):
        name = response._get_param("ChangeSetName")
        if not name:
            return original(response)
        change_set = response.cloudformation_backend.describe_change_set(name)
        return ActionResult({"TemplateBody": change_set.template})

    patcher.setattr(CloudFormationResponse, "get_template", get_template)


def _retry(names, action) -> None:
    """moto's way with dependencies: try each, then again those that failed, a few rounds."""
    pending = list(names)
    for _ in range(5):
        failed, error = [], None
        for name in pending:
            try:
                action(name)
            except Exception as exc:  # a dependency not ready yet: tried again next round
                failed.append(name)
                error = exc
        if not failed:
            return
        pending = failed
    raise error


def _resource_actions(resource_map, template: dict, parameters: dict) -> dict[str, dict[str, str]]:
    """{"Add"|"Modify"|"Remove": {logical id: type}} for moving the stack behind resource_map to template."""
    from moto.cloudformation.parsing import ResourceMap

    probe = ResourceMap(
        resource_map.stack_id,
        resource_map["AWS::StackName"],
        parameters,
        resource_map.tags,
        region_name=resource_map._region_name,
        account_id=resource_map._account_id,
        template=template,
        cross_stack_resources=resource_map.cross_stack_resources,
    )
    probe.load_mapping()
    probe.load_parameters()
    probe.load_conditions()
    old = resource_map._template.get("Resources", {}) if resource_map._template else {}
    new = template.get("Resources", {})
    old_conditions = getattr(resource_map, "lazy_condition_map", {})
    old_on = {name for name, body in old.items() if _condition(old_conditions, body)}
    new_on = {name for name, body in new.items() if _condition(probe.lazy_condition_map, body)}
    before, after = resource_map.resolved_parameters, probe.resolved_parameters
    changed = {
        name for name in set(before) | set(after) if _as_given(before.get(name)) != _as_given(after.get(name))
    } | {
        name
        for name in set(old_conditions) | set(probe.lazy_condition_map)
        if (name in old_conditions and old_conditions[name])
        != (name in probe.lazy_condition_map and probe.lazy_condition_map[name])
    }
    return {
        "Add": {name: new[name]["Type"] for name in sorted(new_on - old_on)},
        "Modify": {
            name: new[name]["Type"]
            for name in sorted(new_on & old_on)
            if new[name] != old[name] or _names(new[name]) & changed
        },
        "Remove": {name: old[name]["Type"] for name in sorted(old_on - new_on)},
    }


def _as_given(value) -> str:
    """A parameter value as passed: moto holds a CommaDelimitedList that was passed as a list."""
    return ",".join(str(item) for item in value) if isinstance(value, list) else value


def _condition(conditions, body: dict) -> bool:
    return "Condition" not in body or bool(conditions[body["Condition"]])


def _names(node) -> set[str]:
    """Parameters, conditions and resources a template fragment names (Ref, Fn::If, Fn::GetAtt, Fn::Sub)."""
    if isinstance(node, list):
        return set().union(*(_names(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::If" and isinstance(value, list) and value:
            found.add(value[0])
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
        elif key == "Fn::Sub":
            text = value[0] if isinstance(value, list) else value
            found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", str(text))}
        found |= _names(value)
    return found


# Resource types moto 5.2.5's CloudFormation cannot create, filled by stand-ins (see _patch_moto_missing_types).
STANDING_IN: set[str] = set()


def _patch_moto_missing_types(patcher: pytest.MonkeyPatch) -> None:
    """moto skips resource types it does not model (RDS Proxy, ElastiCache replication groups, WAF, alarms...), and
    then any Ref or GetAtt naming one fails the whole stack. A stand-in gives such a resource a physical id and an
    answer to every attribute, so the real templates deploy end to end; the types are recorded in STANDING_IN."""
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    original = parsing.resource_class_from_type
    stand_ins: dict[str, type] = {}

    def resource_class_from_type(resource_type):
        found = original(resource_type)
        if found is not None or resource_type in parsing.NULL_MODELS:
            return found
        if resource_type not in stand_ins:
            make = STAND_IN_MAKERS.get(resource_type, _stand_in_class)
            stand_ins[resource_type] = make(CloudFormationModel, resource_type)
        STANDING_IN.add(resource_type)
        return stand_ins[resource_type]

    patcher.setattr(parsing, "resource_class_from_type", resource_class_from_type)


def _patch_moto_rds_references(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5's DBParameterGroup has no physical_resource_id, so a Ref to it hands the DB instance the model
    object instead of its name and the create fails; a Ref to one answers its name, as in CloudFormation."""
    from moto.rds.models import DBParameterGroup

    patcher.setattr(DBParameterGroup, "physical_resource_id", property(lambda group: group.name), raising=False)


def _patch_moto_elbv2_attributes(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 answers no GetAtt on a target group and not LoadBalancerFullName or CanonicalHostedZoneID on a
    load balancer, which the alarms, the dashboard and the DNS records use; answer them as CloudFormation does."""
    from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup

    def target_group_attribute(group, name):
        return {
            "TargetGroupArn": group.arn,
            "TargetGroupName": group.name,
            "TargetGroupFullName": group.arn.split(":", 5)[-1],
            "LoadBalancerArns": list(getattr(group, "load_balancer_arns", [])),
        }[name]

    original = FakeLoadBalancer.get_cfn_attribute

    def load_balancer_attribute(balancer, name):
        if name == "LoadBalancerFullName":
            return balancer.arn.split(":loadbalancer/", 1)[-1]
        if name == "CanonicalHostedZoneID":
            return "Z35SXDOTRQ7X7K"  # the ALB zone of us-east-1
        if name == "SecurityGroups":
            return list(balancer.security_groups)
        return original(balancer, name)

    patcher.setattr(FakeTargetGroup, "get_cfn_attribute", target_group_attribute, raising=False)
    patcher.setattr(FakeLoadBalancer, "get_cfn_attribute", load_balancer_attribute)


def _patch_moto_ssm_documents(patcher: pytest.MonkeyPatch) -> None:
    """CloudFormation takes an SSM document's Content as an object and defaults DocumentFormat to JSON; moto 5.2.5
    wants a string and rejects a missing format."""
    from moto.ssm.models import Document

    original = Document.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = dict(cloudformation_json.get("Properties", {}))
        properties.setdefault("DocumentFormat", "JSON")
        if isinstance(properties.get("Content"), dict | list):
            properties["Content"] = json.dumps(properties["Content"])
        resource_json = {**cloudformation_json, "Properties": properties}
        return original(cls, resource_name, resource_json, account_id, region_name, **kwargs)

    patcher.setattr(Document, "create_from_cloudformation_json", classmethod(create))


GROUP_SIZES = ("MinSize", "MaxSize", "DesiredCapacity")


def _patch_moto_auto_scaling_updates(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 deletes and recreates an Auto Scaling group on every stack update, so it comes back at the
    template's sizes (MinSize when DesiredCapacity is absent), without its scheduled actions. CloudFormation updates
    the group in place: it sets DesiredCapacity only when the template names it, and under the
    AutoScalingScheduledAction update policy's IgnoreUnmodifiedGroupSizeProperties only the sizes the template
    changed since the last deploy."""
    from moto.autoscaling.models import FakeAutoScalingGroup, autoscaling_backends

    original_create = FakeAutoScalingGroup.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        group = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        group.template_sizes = _group_sizes(cloudformation_json["Properties"])
        return group

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        properties = cloudformation_json["Properties"]
        sizes = _group_sizes(properties)
        policy = cloudformation_json.get("UpdatePolicy", {}).get("AutoScalingScheduledAction", {})
        if str(policy.get("IgnoreUnmodifiedGroupSizeProperties", "")).lower() == "true":
            previous = getattr(original_resource, "template_sizes", {})
            changed = {name: size for name, size in sizes.items() if previous.get(name) != size}
        else:
            changed = sizes
        autoscaling_backends[account_id][region_name].update_auto_scaling_group(
            name=original_resource.name,
            availability_zones=[],
            desired_capacity=changed.get("DesiredCapacity"),
            max_size=changed.get("MaxSize"),
            min_size=changed.get("MinSize"),
            launch_config_name=None,
            launch_template=properties.get("LaunchTemplate", {}),
            vpc_zone_identifier=",".join(properties.get("VPCZoneIdentifier", [])) or None,
            health_check_period=properties.get("HealthCheckGracePeriod"),
            health_check_type=properties.get("HealthCheckType"),
        )
        original_resource.template_sizes = sizes
        return original_resource

    patcher.setattr(FakeAutoScalingGroup, "create_from_cloudformation_json", classmethod(create))
    patcher.setattr(FakeAutoScalingGroup, "update_from_cloudformation_json", classmethod(update))


def _group_sizes(properties: dict) -> dict[str, int]:
    return {name: int(properties[name]) for name in GROUP_SIZES if name in properties}


def _patch_moto_rds_managed_master_password(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5's CloudFormation ignores a DB instance's ManageMasterUserPassword and answers no GetAtt
    MasterUserSecret.SecretArn; its RDS API models both, so the template's instance gets RDS's secret as it would."""
    from moto.rds.models import DBInstance, MasterUserSecret

    original_create = DBInstance.create_from_cloudformation_json.__func__
    original_attribute = DBInstance.get_cfn_attribute

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        instance = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json.get("Properties", {})
        if str(properties.get("ManageMasterUserPassword", "")).lower() == "true":
            instance.manage_master_user_password = True
            instance.master_user_secret = MasterUserSecret(
                instance, properties.get("MasterUserSecret", {}).get("KmsKeyId")
            )
        return instance

    def attribute(instance, name):
        if name == "MasterUserSecret.SecretArn":
            return instance.master_user_secret.secret.arn
        return original_attribute(instance, name)

    patcher.setattr(DBInstance, "create_from_cloudformation_json", classmethod(create))
    patcher.setattr(DBInstance, "get_cfn_attribute", attribute)
    patcher.setattr(
        DBInstance,
        "has_cfn_attr",
        classmethod(lambda cls, name: name in ("Endpoint.Address", "Endpoint.Port", "MasterUserSecret.SecretArn")),
    )


def _patch_moto_role_deletion(patcher: pytest.MonkeyPatch) -> None:
    """CloudFormation deletes a stack's managed policies (which name their roles) before the roles, so a role is
    deleted detached; moto 5.2.5 may delete the role first and fails with "must detach all policies first" (the
    bootstrap stack's execution role). A role is detached from its managed policies before moto deletes it."""
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    original_delete = Role.delete_from_cloudformation_json.__func__

    def delete(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = iam_backends[account_id][get_partition(region_name)]
        for role in list(backend.roles.values()):
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    backend.detach_role_policy(arn, resource_name)
        original_delete(cls, resource_name, cloudformation_json, account_id, region_name)

    patcher.setattr(Role, "delete_from_cloudformation_json", classmethod(delete))


def _patch_moto_instances_from_launch_templates(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 makes an AWS::EC2::Instance from its own ImageId only and ignores LaunchTemplate; CloudFormation
    takes what the instance leaves out (image, type, profile, groups, user data) from the launch template's version."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import Instance

    original = Instance.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = dict(cloudformation_json.get("Properties", {}))
        spec = properties.get("LaunchTemplate")
        if spec:
            backend = ec2_backends[account_id][region_name]
            template = backend.get_launch_template(spec["LaunchTemplateId"])
            data = template.get_version(spec.get("Version") or template.latest_version_number).data
            for key in ("ImageId", "InstanceType", "UserData"):
                if key in data:
                    properties.setdefault(key, data[key])
        return original(cls, resource_name, {**cloudformation_json, "Properties": properties}, account_id,
                        region_name, **kwargs)  # fmt: skip

    patcher.setattr(Instance, "create_from_cloudformation_json", classmethod(create))


def _patch_moto_stack_resources(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 lists a resource whose Condition is false as None among a stack's resources, and
    DescribeStackResource then fails on it for any logical id; CloudFormation lists only what it created."""
    from moto.cloudformation.models import Stack

    patcher.setattr(
        Stack, "stack_resources", property(lambda stack: [item for item in stack.resource_map.values() if item])
    )


def _patch_moto_network_deletion(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 deletes a stack's VPC and subnets but leaves its route tables, NAT gateways, endpoints, internet
    gateways and Elastic IPs, and then refuses the VPC (it still has route tables): a stack that holds a VPC could
    never be destroyed. CloudFormation deletes each of them; so does moto with these, through its EC2 backend."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_ip_addresses import ElasticAddress
    from moto.ec2.models.internet_gateways import InternetGateway
    from moto.ec2.models.nat_gateways import NatGateway
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.vpcs import VPCEndPoint

    def route_table(table, account_id, region_name):
        table._associations.clear()  # the subnet associations go with the table
        ec2_backends[account_id][region_name].delete_route_table(table.id)

    def nat_gateway(gateway, account_id, region_name):
        ec2_backends[account_id][region_name].delete_nat_gateway(gateway.id)

    def endpoint(found, account_id, region_name):
        backend = ec2_backends[account_id][region_name]
        # A table deleted before the endpoint took the endpoint's route with it.
        found.route_table_ids = [table for table in found.route_table_ids if table in backend.route_tables]
        backend.delete_vpc_endpoints([found.id])

    def internet_gateway(gateway, account_id, region_name):
        backend = ec2_backends[account_id][region_name]
        if gateway.vpc:
            backend.detach_internet_gateway(gateway.id, gateway.vpc.id)
        backend.delete_internet_gateway(gateway.id)

    def address(found, account_id, region_name):
        ec2_backends[account_id][region_name].release_address(allocation_id=found.allocation_id)

    for model, delete in ((RouteTable, route_table), (NatGateway, nat_gateway), (VPCEndPoint, endpoint),
                          (InternetGateway, internet_gateway), (ElasticAddress, address)):  # fmt: skip
        patcher.setattr(model, "delete", delete, raising=False)


def _distribution_class(base, resource_type: str):
    """A CloudFront distribution moto's CloudFront API knows (so purge_cdn can invalidate on it), made from the
    template's origins; its id is the Ref, as in CloudFormation."""
    stand_in = _stand_in_class(base, resource_type)

    class Distribution(stand_in):
        __module__ = "tests.opsinfra.emulator"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
            from moto.cloudfront.models import cloudfront_backends

            config = cloudformation_json.get("Properties", {}).get("DistributionConfig", {})
            origins = [
                {
                    "Id": origin["Id"],
                    "DomainName": str(origin["DomainName"]),
                    "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only"},
                }
                for origin in config.get("Origins", [])
            ]
            behaviour = config.get("DefaultCacheBehavior", {})
            distribution, _, _ = cloudfront_backends[account_id]["aws"].create_distribution(
                {
                    "CallerReference": resource_name,
                    "Comment": str(config.get("Comment", "")),
                    "Enabled": True,
                    "Origins": {"Quantity": len(origins), "Items": origins},
                    "WebACLId": str(config.get("WebACLId", "")),
                    "DefaultCacheBehavior": {
                        "TargetOriginId": behaviour.get("TargetOriginId", origins[0]["Id"] if origins else ""),
                        "ViewerProtocolPolicy": behaviour.get("ViewerProtocolPolicy", "redirect-to-https"),
                    },
                },
                [],
            )
            resource = cls(distribution.distribution_id, cloudformation_json.get("Properties", {}))
            resource.domain_name = distribution.domain_name
            return resource

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "DomainName":
                return self.domain_name
            if attribute_name == "Id":
                return self.physical_id
            return super().get_cfn_attribute(attribute_name)

    Distribution.__name__ = Distribution.__qualname__ = "StandInCloudFrontDistribution"
    return Distribution


def _register_alarm(name: str, properties: dict, account_id: str, region_name: str) -> str:
    """In CloudWatch's API with its actions and description (a metric-math alarm without its queries)."""
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[account_id][region_name].put_metric_alarm(
        name=name,
        namespace=properties.get("Namespace"),
        metric_name=properties.get("MetricName"),
        comparison_operator=properties["ComparisonOperator"],
        evaluation_periods=int(properties["EvaluationPeriods"]),
        period=int(properties["Period"]) if "Period" in properties else None,
        threshold=float(properties["Threshold"]),
        statistic=properties.get("Statistic"),
        extended_statistic=properties.get("ExtendedStatistic"),
        description=properties.get("AlarmDescription", ""),
        dimensions=[{"Name": item["Name"], "Value": str(item["Value"])} for item in properties.get("Dimensions", [])],
        alarm_actions=[str(arn) for arn in properties.get("AlarmActions", [])],
        ok_actions=[str(arn) for arn in properties.get("OKActions", [])],
        treat_missing_data=properties.get("TreatMissingData"),
    )
    return name


def _register_subscription(name: str, properties: dict, account_id: str, region_name: str) -> str:
    """In SNS's API; moto confirms it at once (an email subscription waits for its link in AWS)."""
    from moto.sns.models import sns_backends

    backend = sns_backends[account_id][region_name]
    return backend.subscribe(properties["TopicArn"], properties["Endpoint"], properties["Protocol"]).arn


def _register_warm_pool(name: str, properties: dict, account_id: str, region_name: str) -> str:
    from moto.autoscaling.models import autoscaling_backends

    autoscaling_backends[account_id][region_name].put_warm_pool(
        group_name=properties["AutoScalingGroupName"],
        max_group_prepared_capacity=properties.get("MaxGroupPreparedCapacity"),
        min_size=properties.get("MinSize"),
        pool_state=properties.get("PoolState"),
        instance_reuse_policy=properties.get("InstanceReusePolicy"),
    )
    return name


def _register_replication_group(name: str, properties: dict, account_id: str, region_name: str) -> str:
    """In ElastiCache's API with the template's node type, node count, multi-AZ, failover and snapshot retention."""
    import inspect

    from moto.elasticache.models import elasticache_backends

    backend = elasticache_backends[account_id][region_name]
    arguments = dict.fromkeys(inspect.signature(backend.create_replication_group).parameters)
    group_id = properties.get("ReplicationGroupId", name)
    arguments.update(
        replication_group_id=group_id,
        replication_group_description=properties.get("ReplicationGroupDescription", ""),
        automatic_failover_enabled=str(properties.get("AutomaticFailoverEnabled", "")).lower() == "true",
        multi_az_enabled=str(properties.get("MultiAZEnabled", "")).lower() == "true",
        num_cache_clusters=int(properties.get("NumCacheClusters", 1)),
        # moto 5.2.5 makes the replicas from this alone when cluster mode is off, and ignores num_cache_clusters.
        replicas_per_node_group=int(properties.get("NumCacheClusters", 1)) - 1,
        cache_node_type=properties.get("CacheNodeType"),
        engine=properties.get("Engine", "redis"),
        engine_version=properties.get("EngineVersion"),
        port=int(properties.get("Port", 6379)),
        snapshot_retention_limit=int(properties.get("SnapshotRetentionLimit", 0)),
        transit_encryption_enabled=str(properties.get("TransitEncryptionEnabled", "")).lower() == "true",
        at_rest_encryption_enabled=str(properties.get("AtRestEncryptionEnabled", "")).lower() == "true",
        preferred_cache_cluster_azs=[],
        cache_security_group_names=[],
        security_group_ids=[],
        tags=[],
        snapshot_arns=[],
        user_group_ids=[],
        log_delivery_configurations=[],
        node_group_configuration=[],
    )
    backend.create_replication_group(**arguments)
    return group_id


def _register_budget(name: str, properties: dict, account_id: str, region_name: str) -> str:
    """In the Budgets API (global, in the partition's "aws" region) with its notifications and subscribers."""
    from moto.budgets.models import budgets_backends

    budget = json.loads(json.dumps(properties["Budget"], default=str))
    budget["BudgetLimit"]["Amount"] = str(budget["BudgetLimit"]["Amount"])
    budget.setdefault("BudgetName", name)
    budgets_backends[account_id]["aws"].create_budget(
        account_id=account_id,
        budget=budget,
        notifications=json.loads(json.dumps(properties.get("NotificationsWithSubscribers", []), default=str)),
    )
    return budget["BudgetName"]


# Stand-ins that also create their resource in moto's own API for the service, so the commands that read it (the
# preflight) find it there; each returns the physical id (a Ref), as CloudFormation would.
REGISTERED = {
    "AWS::CloudWatch::Alarm": _register_alarm,
    "AWS::SNS::Subscription": _register_subscription,
    "AWS::AutoScaling::WarmPool": _register_warm_pool,
    "AWS::ElastiCache::ReplicationGroup": _register_replication_group,
    "AWS::Budgets::Budget": _register_budget,
}


def _registered_class(base, resource_type: str):
    stand_in = _stand_in_class(base, resource_type)
    register = REGISTERED[resource_type]

    class Registered(stand_in):
        __module__ = "tests.opsinfra.emulator"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
            properties = cloudformation_json.get("Properties", {})
            return cls(register(resource_name, properties, account_id, region_name), properties)

    Registered.__name__ = Registered.__qualname__ = "Registered" + resource_type.replace("::", "")
    return Registered


def _ip_set_class(base, resource_type: str):
    """A WAF IP set moto's WAFv2 API knows (so deploy_stack --stack loadgen can add the fleet's addresses to it),
    with CloudFormation's physical id "name|id|scope"; deleted with its stack."""
    stand_in = _stand_in_class(base, resource_type)

    class IPSet(stand_in):
        __module__ = "tests.opsinfra.emulator"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
            from moto.wafv2.models import GLOBAL_REGION, wafv2_backends

            properties = cloudformation_json.get("Properties", {})
            scope = properties.get("Scope", "REGIONAL")
            backend = wafv2_backends[account_id][GLOBAL_REGION if scope == "CLOUDFRONT" else region_name]
            found = backend.create_ip_set(
                name=properties.get("Name", resource_name),
                scope=scope,
                description=properties.get("Description", ""),
                ip_address_version=properties.get("IPAddressVersion", "IPV4"),
                addresses=list(properties.get("Addresses", [])),
                tags=[],
            )
            resource = cls(f"{found.name}|{found.ip_set_id}|{scope}", properties)
            resource.arn, resource.backend = found.arn, backend
            return resource

        @classmethod
        def update_from_cloudformation_json(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        ):
            if original_resource is None:
                return cls.create_from_cloudformation_json(
                    new_resource_name, cloudformation_json, account_id, region_name
                )
            properties = cloudformation_json.get("Properties", {})
            found = original_resource.backend.ip_sets[original_resource.arn]
            found.update(properties.get("Description"), list(properties.get("Addresses", [])))
            original_resource.properties = properties
            return original_resource

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            from moto.wafv2.models import GLOBAL_REGION, wafv2_backends

            _name, ip_set_id, scope = resource_name.split("|")
            backend = wafv2_backends[account_id][GLOBAL_REGION if scope == "CLOUDFRONT" else region_name]
            for arn, found in list(backend.ip_sets.items()):
                if found.ip_set_id == ip_set_id:
                    backend.ip_sets.pop(arn)

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn":
                return self.arn
            if attribute_name == "Id":
                return self.physical_id.split("|")[1]
            return super().get_cfn_attribute(attribute_name)

    IPSet.__name__ = IPSet.__qualname__ = "StandInWAFv2IPSet"
    return IPSet


STAND_IN_MAKERS = {
    "AWS::CloudFront::Distribution": _distribution_class,
    "AWS::WAFv2::IPSet": _ip_set_class,
    **dict.fromkeys(REGISTERED, _registered_class),
}


IMAGE_BUILDER_ARNS = {
    "AWS::ImageBuilder::Component": "component",
    "AWS::ImageBuilder::InfrastructureConfiguration": "infrastructure-configuration",
}


def _stand_in_class(base, resource_type: str):
    class StandIn(base):
        # moto's model registry names the service after the defining module, also under `python -m`.
        __module__ = "tests.opsinfra.emulator"

        def __init__(self, physical_id: str, properties: dict, where: tuple[str, str] = ("", "")):
            self.physical_id = physical_id
            self.properties = properties
            self.account_id, self.region = where

        @staticmethod
        def cloudformation_type() -> str:
            return resource_type

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
            return cls(resource_name, cloudformation_json.get("Properties", {}), (account_id, region_name))

        @classmethod
        def update_from_cloudformation_json(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        ):
            if original_resource is None:
                # moto counts a resource whose Condition is false (never created) among an update's modified ones.
                return cls(new_resource_name, cloudformation_json.get("Properties", {}))
            original_resource.properties = cloudformation_json.get("Properties", {})
            return original_resource

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            return None

        @property
        def physical_resource_id(self) -> str:
            return self.physical_id

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return True

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn" and resource_type in IMAGE_BUILDER_ARNS:
                # Image Builder's own ARN form: the deploy role's grants are matched against it.
                name = self.properties.get("Name", self.physical_id).lower()
                version = f"/{self.properties['Version']}/1" if "Version" in self.properties else ""
                return (
                    f"arn:aws:imagebuilder:{self.region}:{self.account_id}:{IMAGE_BUILDER_ARNS[resource_type]}/"
                    f"{name}{version}"
                )
            return f"{self.physical_id}-{attribute_name.replace('.', '-').lower()}"

    StandIn.__name__ = StandIn.__qualname__ = "StandIn" + resource_type.replace("::", "")
    return StandIn


def main() -> None:
    parser = argparse.ArgumentParser(description="moto's server with the shop's CloudFormation patches.")
    parser.add_argument("--port", type=int, default=5000)
    port = parser.parse_args().port
    from moto.server import ThreadedMotoServer

    patch_moto(pytest.MonkeyPatch())
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"moto with the shop's patches on http://127.0.0.1:{port}; Ctrl-C stops it.")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
