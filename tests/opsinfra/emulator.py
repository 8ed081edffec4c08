"""moto 5.2.5's CloudFormation, completed where the shop's templates need it; used by the tests (conftest) and by
`python -m tests.opsinfra.emulator`, which serves it on 127.0.0.1 to try the ops commands offline.

Each patch names the gap it fills. None changes what a template says: resources moto does not model get stand-ins.
"""

import argparse
import json
import logging
import signal

import pytest


def patch_moto(patcher: pytest.MonkeyPatch) -> None:
    _patch_moto_change_sets(patcher)
    _patch_moto_missing_types(patcher)
    _patch_moto_rds_references(patcher)
    _patch_moto_elbv2_attributes(patcher)
    _patch_moto_ssm_documents(patcher)
    _patch_moto_auto_scaling_updates(patcher)
    _patch_moto_rds_managed_master_password(patcher)


def _patch_moto_change_sets(patcher: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 executes a change set without re-reading the stack's template: the stack keeps no Outputs, its
    parameters stay those of the first change set, and a later identical update is not seen as empty. Finish the
    job the way CloudFormation does: template, parameters and outputs become the change set's."""
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        original(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.parameters = change_set.parameters
        stack.output_map = stack._create_output_map()

    patcher.setattr(CloudFormationBackend, "execute_change_set", execute_change_set)


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
            make = _distribution_class if resource_type == "AWS::CloudFront::Distribution" else _stand_in_class
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


def _stand_in_class(base, resource_type: str):
    class StandIn(base):
        # moto's model registry names the service after the defining module, also under `python -m`.
        __module__ = "tests.opsinfra.emulator"

        def __init__(self, physical_id: str, properties: dict):
            self.physical_id = physical_id
            self.properties = properties

        @staticmethod
        def cloudformation_type() -> str:
            return resource_type

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kw):
            return cls(resource_name, cloudformation_json.get("Properties", {}))

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
