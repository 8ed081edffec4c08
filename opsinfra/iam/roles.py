"""The roles a synthesized template defines, with their policies resolved the way CloudFormation resolves them in
one account and region: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, Fn::Select, Fn::Split and the conditions.

Physical ids come from a deployed stack when there is one (the emulator), else CloudFormation's naming is
assumed (<stack name>-<logical id>-<suffix>); an ARN that cannot be known resolves to UNKNOWN_RESOURCE.
"""

import json
import re
from dataclasses import dataclass, field

from opsinfra.iam.policy import UNKNOWN_RESOURCE

SUFFIX = "GENERATED"


@dataclass
class Place:
    """Where a template is resolved: account, region, stack name, parameter values and known physical ids."""

    account: str
    region: str
    stack_name: str
    partition: str = "aws"
    parameters: dict = field(default_factory=dict)
    # logical id → physical id (a deployed stack's resources); "LogicalId.Attribute" → an attribute's known value
    physical: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Role:
    logical_id: str
    name: str
    arn: str
    policies: tuple[dict, ...]  # inline and customer managed documents, resolved
    aws_managed: tuple[str, ...]  # ARNs of AWS managed policies (their text is not in the template)
    boundary_arn: str | None
    trust: dict


class Resolver:
    def __init__(self, template: dict, place: Place):
        self.template = template
        self.place = place
        self.resources = template.get("Resources", {})
        self.conditions = template.get("Conditions", {})

    # --- values ---------------------------------------------------------------------------------------------------

    def parameter(self, name: str):
        if name in self.place.parameters:
            return self.place.parameters[name]
        spec = self.template.get("Parameters", {}).get(name, {})
        default = spec.get("Default", "")
        if spec.get("Type") == "CommaDelimitedList" and isinstance(default, str):
            return [item for item in default.split(",") if item]
        return default

    def pseudo(self, name: str) -> str:
        place = self.place
        return {
            "AWS::AccountId": place.account,
            "AWS::Region": place.region,
            "AWS::Partition": place.partition,
            "AWS::StackName": place.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }[name]

    def physical_id(self, logical_id: str) -> str:
        if logical_id in self.place.physical:
            return self.place.physical[logical_id]
        properties = self.resources[logical_id].get("Properties", {})
        for key in (
            "RoleName",
            "ManagedPolicyName",
            "BucketName",
            "LogGroupName",
            "Name",
            "InstanceProfileName",
            "FunctionName",
        ):
            if key in properties:
                return self.value(properties[key])
        return f"{self.place.stack_name}-{logical_id}-{SUFFIX}"

    def ref(self, name: str):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        kind = self.resources[name]["Type"]
        physical = self.physical_id(name)
        if kind == "AWS::IAM::ManagedPolicy" and not physical.startswith("arn:"):
            return f"arn:{self.place.partition}:iam::{self.place.account}:policy/{physical}"
        if kind == "AWS::SecretsManager::Secret" and not physical.startswith("arn:"):
            return UNKNOWN_RESOURCE
        return physical

    def attribute(self, logical_id: str, attribute: str):
        if f"{logical_id}.{attribute}" in self.place.physical:
            return self.place.physical[f"{logical_id}.{attribute}"]
        kind = self.resources[logical_id]["Type"]
        physical = self.physical_id(logical_id)
        p, account, region = self.place.partition, self.place.account, self.place.region
        if attribute == "Arn":
            if kind == "AWS::IAM::Role":
                return f"arn:{p}:iam::{account}:role/{physical}"
            if kind == "AWS::IAM::InstanceProfile":
                return f"arn:{p}:iam::{account}:instance-profile/{physical}"
            if kind == "AWS::S3::Bucket":
                return f"arn:{p}:s3:::{physical}"
            if kind == "AWS::Logs::LogGroup":
                return f"arn:{p}:logs:{region}:{account}:log-group:{physical}:*"
            if kind == "AWS::Lambda::Function":
                return f"arn:{p}:lambda:{region}:{account}:function:{physical}"
        if kind == "AWS::IAM::Role" and attribute == "RoleId":
            return physical
        return UNKNOWN_RESOURCE

    def condition(self, name: str) -> bool:
        return bool(self.value(self.conditions[name]))

    def value(self, node):
        """The node with every intrinsic function resolved."""
        if isinstance(node, list):
            return [item for item in (self.value(entry) for entry in node) if item is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.value(entry) for key, entry in node.items()}
        return {key: entry for key, entry in resolved.items() if entry is not None}

    def _ref(self, argument):
        return self.ref(argument)

    def _get_att(self, argument):
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        return self.attribute(logical_id, self.value(attribute))

    def _sub(self, argument):
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.value(entry) for key, entry in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                found = values[name]
            elif "." in name and not name.startswith("AWS::"):
                found = self.attribute(*name.split(".", 1))
            else:
                found = self.ref(name)
            return ",".join(found) if isinstance(found, list) else str(found)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _join(self, argument):
        separator, items = argument
        values = self.value(items)
        return separator.join(str(item) for item in values)

    def _if(self, argument):
        name, when_true, when_false = argument
        return self.value(when_true if self.condition(name) else when_false)

    def _select(self, argument):
        index, items = argument
        return self.value(items)[int(self.value(index))]

    def _split(self, argument):
        separator, text = argument
        return str(self.value(text)).split(separator)

    def _equals(self, argument):
        left, right = (self.value(item) for item in argument)
        return left == right

    def _not(self, argument):
        return not self.value(argument[0])

    def _and(self, argument):
        return all(self.value(item) for item in argument)

    def _or(self, argument):
        return any(self.value(item) for item in argument)

    def _condition(self, argument):
        return self.condition(argument)

    def _base64(self, argument):
        return self.value(argument)

    _FUNCTIONS = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::If": _if,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Condition": _condition,
        "Fn::Base64": _base64,
    }


def managed_policies(template: dict, place: Place) -> dict[str, dict]:
    """ARN → resolved document of every AWS::IAM::ManagedPolicy in the template."""
    resolver = Resolver(template, place)
    return {
        resolver.ref(logical_id): resolver.value(resource["Properties"]["PolicyDocument"])
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
    }


def roles(template: dict, place: Place, *, known_policies: dict[str, dict] | None = None) -> dict[str, Role]:
    """Every AWS::IAM::Role of the template by logical id, policies resolved. `known_policies` (ARN → document)
    supplies customer managed policies of other stacks, e.g. the bootstrap stack's permissions boundary."""
    resolver = Resolver(template, place)
    catalogue = {**(known_policies or {}), **managed_policies(template, place)}
    attached: dict[str, list[str]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            for role in resource["Properties"].get("Roles", []):
                attached.setdefault(resolver.value(role), []).append(resolver.ref(logical_id))
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        properties = resolver.value(resource.get("Properties", {}))
        name = resolver.physical_id(logical_id)
        policies = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        aws_managed = []
        for arn in [*properties.get("ManagedPolicyArns", []), *attached.get(name, [])]:
            if arn in catalogue:
                policies.append(catalogue[arn])
            else:
                aws_managed.append(arn)
        found[logical_id] = Role(
            logical_id=logical_id,
            name=name,
            arn=resolver.attribute(logical_id, "Arn"),
            policies=tuple(policies),
            aws_managed=tuple(aws_managed),
            boundary_arn=properties.get("PermissionsBoundary"),
            trust=properties.get("AssumeRolePolicyDocument", {}),
        )
    return found


def boundary_documents(role: Role, known_policies: dict[str, dict]) -> list[dict] | None:
    """The role's permissions boundary as documents, None when it has none; KeyError when it names a policy that
    is in no template."""
    if role.boundary_arn is None:
        return None
    return [known_policies[role.boundary_arn]]


def load(path) -> dict:
    with open(path) as handle:
        return json.load(handle)
