"""What the CloudFormation execution role must be allowed: the handler permissions (handlers.py) of every resource
type the app, edge and loadgen stacks use, less those the templates never exercise (NOT_NEEDED, each with its reason).

bootstrap.py builds the role's policy from `execution_actions`, and tests/opsinfra/test_iam_execution.py evaluates
every need of every resource of the synthesized templates against the policy the bootstrap template ends up with.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from opsinfra.iam import handlers
from opsinfra.iam.policy import UNKNOWN_RESOURCE, action_matches

# Handler permissions for features the templates do not use: (type or "*", action pattern) → why not needed.
NOT_NEEDED = {
    ("*", "managed-fleets:*"): "Auto Scaling managed fleets: the group is a plain launch-template group",
    ("*", "vpc-lattice:*"): "VPC Lattice: no service network or Lattice target groups",
    ("*", "vpce:AllowMultiRegion"): "cross-region VPC endpoints: the endpoints are in-region",
    ("*", "firehose:*"): "Firehose delivery (ElastiCache logs, WAF logs, log group transforms): logs go to CloudWatch",
    ("*", "cognito-idp:*"): "ALB Cognito authentication: the listeners forward or answer fixed responses",
    ("*", "docdb-elastic:*"): "secret attachments to DocumentDB: the secrets attach to RDS",
    ("*", "redshift:*"): "secret attachments to Redshift: the secrets attach to RDS",
    ("*", "redshift-serverless:*"): "secret attachments to Redshift Serverless: the secrets attach to RDS",
    ("*", "payments:*"): "WAF marketplace rule groups: only AWS managed rule groups",
    ("*", "iam:DescribeOrganization"): "WAF Firewall Manager: no organization-wide policies",
    ("AWS::EC2::FlowLog", "s3:*"): "flow logs go to CloudWatch Logs, not a bucket",
    ("AWS::WAFv2::LoggingConfiguration", "s3:*"): "WAF logs go to CloudWatch Logs, not a bucket",
    ("AWS::SSM::Document", "s3:*"): "the migration document has no attachments from S3",
    ("AWS::EC2::Instance", "ssm:*"): "SSM associations of an instance: the loadgen master has none",
    ("AWS::ImageBuilder::Component", "s3:*"): "the image components are inline (Data), not read from a Uri",
    ("AWS::ImageBuilder::Component", "kms:*"): "the image components use Image Builder's own key (no KmsKeyId)",
    ("AWS::ImageBuilder::InfrastructureConfiguration", "sns:*"): "no build notifications: bake_image follows it",
    ("AWS::ElastiCache::ReplicationGroup", "s3:*"): "the cache is not seeded from an S3 snapshot",
    ("*", "s3:REST.PUT.OBJECT"): "not an IAM action (the LogGroup schema lists an S3 API call)",
    # The S3 bucket schema lists S3 API operations that IAM authorizes under other names (S3's own table of actions).
    ("AWS::S3::Bucket", "s3:DeleteBucketAnalyticsConfiguration"): "not an IAM action: s3:PutAnalyticsConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketCors"): "not an IAM action: s3:PutBucketCORS",
    ("AWS::S3::Bucket", "s3:DeleteBucketEncryption"): "not an IAM action: s3:PutEncryptionConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketLifecycle"): "not an IAM action: s3:PutLifecycleConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketMetricsConfiguration"): "not an IAM action: s3:PutMetricsConfiguration",
    ("AWS::S3::Bucket", "s3:DeleteBucketReplication"): "not an IAM action: s3:PutReplicationConfiguration",
    ("AWS::S3::Bucket", "s3:PutBucketReplication"): "not an IAM action: s3:PutReplicationConfiguration",
    ("AWS::S3::Bucket", "s3:PutObjectLockConfiguration"): "not an IAM action: s3:PutBucketObjectLockConfiguration",
    ("*", "cloudfront:CreateDistributionWithTags"): "not an IAM action: authorized as CreateDistribution and "
    "TagResource, both listed",
    ("AWS::RDS::DBInstance", "iam:GetRole"): "enhanced monitoring and directory roles: neither is set",
    ("AWS::RDS::DBInstance", "iam:ListRoles"): "enhanced monitoring and directory roles: neither is set",
    ("AWS::SNS::Topic", "iam:GetRole"): "delivery status logging roles: not set",
    ("AWS::SNS::Subscription", "iam:GetRole"): "delivery status logging roles: not set",
    ("AWS::SecretsManager::Secret", "secretsmanager:ReplicateSecretToRegions"): "secrets are not replicated",
    ("AWS::SecretsManager::Secret", "secretsmanager:RemoveRegionsFromReplication"): "secrets are not replicated",
    ("AWS::Lambda::Function", "elasticfilesystem:*"): "no EFS file system is mounted in the function",
    ("AWS::Lambda::Function", "s3files:*"): "no S3 file system is mounted in the function",
    ("AWS::Lambda::Function", "kms:*"): "no KmsKeyArn: the environment is encrypted with Lambda's own key",
    ("AWS::Lambda::Function", "lambda:AssociateRuntimeAlias"): "not an IAM action (IAM's Lambda actions lack it, "
    "cfn-lint W3037)",
    ("AWS::Lambda::Function", "lambda:GetLayerVersion"): "no layers: pg8000 is in the function's bundle",
    ("AWS::Lambda::Function", "lambda:GetCodeSigningConfig"): "no CodeSigningConfigArn",
    ("AWS::Lambda::Function", "lambda:PutFunctionCodeSigningConfig"): "no CodeSigningConfigArn",
    ("AWS::Lambda::Function", "lambda:PassCapacityProvider"): "no capacity provider: the function runs on demand",
    ("AWS::Lambda::Function", "s3:GetObjectVersion"): "the code is named by key only (its SHA-256), no version",
    # The boundary is the point: CloudFormation must never take it off a role.
    ("AWS::IAM::Role", "iam:DeleteRolePermissionsBoundary"): "denied: every stack role keeps the boundary",
}
# iam:PassRole is needed where a property hands a stack role to a service, which the handler lists do not say.
PASSED_TO = {
    "AWS::IAM::InstanceProfile": None,  # adding a role to a profile passes nothing
    "AWS::EC2::LaunchTemplate": "ec2.amazonaws.com",
    "AWS::AutoScaling::AutoScalingGroup": "ec2.amazonaws.com",
    "AWS::EC2::Instance": "ec2.amazonaws.com",
    "AWS::RDS::DBProxy": "rds.amazonaws.com",
    "AWS::EC2::FlowLog": "vpc-flow-logs.amazonaws.com",
    # The builder instance's profile: Image Builder launches it as EC2 does.
    "AWS::ImageBuilder::InfrastructureConfiguration": "ec2.amazonaws.com",
    "AWS::Lambda::Function": "lambda.amazonaws.com",
}
# Services only one role of the stacks may be passed to: service → the role's logical id.
PASSED_ONLY = {"lambda.amazonaws.com": "DatabaseRotationRole"}
# Lambda actions name the function: the execution role holds them on the project's function names only.
FUNCTION_TYPES = {"AWS::Lambda::Function": "FunctionName", "AWS::Lambda::Permission": "FunctionName",
                  "AWS::SecretsManager::RotationSchedule": "RotationLambdaARN"}  # fmt: skip
IMAGE_BUILDER_ROLE = "imagebuilder.amazonaws.com/AWSServiceRoleForImageBuilder"
# IAM actions on a role that carry the role's permissions boundary in the request context (iam:PermissionsBoundary).
BOUNDARY_ACTIONS = (
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
)


@cache
def handlers_types() -> tuple[str, ...]:
    """The resource types of the app (both presets) and edge templates, whose handlers the role must serve."""
    return tuple(sorted(handlers.template_types()))


def not_needed(resource_type: str, action: str) -> str | None:
    for (scope, pattern), reason in NOT_NEEDED.items():
        if scope in {"*", resource_type} and action_matches(pattern, action):
            return reason
    return None


def execution_actions(types: Iterable[str]) -> set[str]:
    """The handler permissions of `types`, less NOT_NEEDED (iam:PassRole is added by need, see PASSED_TO)."""
    found = set()
    for resource_type in types:
        for actions in handlers.permissions(resource_type).values():
            found |= {action for action in actions if not not_needed(resource_type, action)}
    found.discard("iam:PassRole")
    return found


@dataclass(frozen=True)
class Need:
    """One permission CloudFormation needs, as the execution role, for one resource of a stack."""

    stack: str
    logical_id: str
    resource_type: str
    action: str
    resource: str
    context: dict

    def describe(self) -> str:
        return f"{self.stack} {self.logical_id} ({self.resource_type}): {self.action} on {self.resource}"


def _references(node) -> set[str]:
    """Logical ids a property value refers to (Ref, GetAtt, ${Name} in Sub)."""
    import re

    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                found |= _references(value[1] if isinstance(value, list) else None)
            else:
                found |= _references(value)
    return found


def _function_arn(resolver, value, place) -> str:
    """The function a Lambda property names: a function name, or an ARN (GetAtt Arn of the stack's function)."""
    resolved = resolver.value(value)
    if not isinstance(resolved, str) or resolved == UNKNOWN_RESOURCE:
        return UNKNOWN_RESOURCE
    if resolved.startswith("arn:"):
        return resolved
    return f"arn:{place.partition}:lambda:{place.region}:{place.account}:function:{resolved}"


def stack_needs(template: dict, place) -> list[Need]:
    """Every permission the execution role needs for the stack's resources, with resource ARNs where IAM scopes
    them (the stack's roles and instance profiles) and the request context IAM conditions read."""
    from opsinfra.iam.roles import Resolver

    resolver = Resolver(template, place)
    resources = template.get("Resources", {})
    profiles_roles = {
        logical_id: [ref for ref in _references(resource["Properties"].get("Roles", [])) if ref in resources]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::IAM::InstanceProfile"
    }
    needs = []
    region = {"aws:RequestedRegion": place.region, "aws:CalledVia": ["cloudformation.amazonaws.com"]}
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        for action in sorted(execution_actions([kind])):
            target, context = UNKNOWN_RESOURCE, dict(region)
            if kind == "AWS::IAM::Role" and action.startswith("iam:"):
                target = resolver.attribute(logical_id, "Arn")
                boundary = resolver.value(properties.get("PermissionsBoundary"))
                if action in BOUNDARY_ACTIONS and boundary:
                    context["iam:PermissionsBoundary"] = boundary
                if action in {"iam:AttachRolePolicy", "iam:DetachRolePolicy"}:
                    for arn in resolver.value(properties.get("ManagedPolicyArns", [])):
                        needs.append(Need(place.stack_name, logical_id, kind, action, target,
                                          {**context, "iam:PolicyARN": arn}))  # fmt: skip
                    continue
            elif kind == "AWS::IAM::InstanceProfile" and action.startswith("iam:"):
                target = resolver.attribute(logical_id, "Arn")
            elif kind in FUNCTION_TYPES and action.startswith("lambda:"):
                target = _function_arn(resolver, properties.get(FUNCTION_TYPES[kind]), place)
            elif kind.startswith("AWS::ImageBuilder::") and action == "iam:GetRole":
                # Image Builder's handlers look up its service-linked role.
                target = f"arn:{place.partition}:iam::{place.account}:role/aws-service-role/{IMAGE_BUILDER_ROLE}"
            elif action == "iam:GetInstanceProfile":
                profiles = sorted(ref for ref in _references(properties) if ref in profiles_roles)
                target = resolver.attribute(profiles[0], "Arn") if profiles else UNKNOWN_RESOURCE
            elif action == "iam:CreateServiceLinkedRole":
                target = f"arn:{place.partition}:iam::{place.account}:role/aws-service-role/{kind}"
            needs.append(Need(place.stack_name, logical_id, kind, action, target, context))
        image = resolver.value(properties.get("LaunchTemplateData", {}).get("ImageId"))
        if kind == "AWS::EC2::LaunchTemplate" and isinstance(image, str) and image.startswith("resolve:ssm:"):
            # EC2 checks an image parameter with the caller's credentials when a launch template names one.
            name = image.removeprefix("resolve:ssm:")
            owner = "" if name.startswith("/aws/service/") else place.account
            arn = f"arn:{place.partition}:ssm:{place.region}:{owner}:parameter{name}"
            needs.append(Need(place.stack_name, logical_id, kind, "ssm:GetParameters", arn, dict(region)))
        service = PASSED_TO.get(kind, "")
        if service:
            roles = set()
            for ref in _references(properties):
                if ref in profiles_roles:
                    roles |= set(profiles_roles[ref])
                elif ref in resources and resources[ref]["Type"] == "AWS::IAM::Role":
                    roles.add(ref)
            for role in sorted(roles):
                needs.append(Need(place.stack_name, logical_id, kind, "iam:PassRole", resolver.attribute(role, "Arn"),
                                  {**region, "iam:PassedToService": service}))  # fmt: skip
    return needs
