"""What a deploy changes, read from the two templates before it runs: parameters old → new, the properties of each
resource that change (resolved where the values are known), and the IAM statements and security-group rules that
come or go. Pure: it never calls AWS.

A value is resolved when it depends only on parameters, pseudo parameters (region, account, stack name),
conditions and mappings; what only exists once CloudFormation creates it (a Ref to a resource, a GetAtt) stays as
the template says it, so both sides of a change read alike.
"""

import json
import re
from dataclasses import dataclass, field

SHOWN_CHARS = 160  # of one value; a user-data script or a dashboard body is shown by its start
NO_VALUE = object()  # AWS::NoValue: the property is left out
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class ParameterChange:
    name: str
    old: str | None  # None: the parameter is new (or the stack is)
    new: str | None  # None: the new template drops it


@dataclass(frozen=True)
class PropertyChange:
    path: str  # Properties.Tags[1].Value
    old: object
    new: object


@dataclass(frozen=True)
class AccessChange:
    logical_id: str
    kind: str  # "IAM" or "security group"
    added: bool
    text: str
    widens: bool


@dataclass(frozen=True)
class StackDiff:
    parameters: tuple[ParameterChange, ...] = ()
    properties: dict[str, tuple[PropertyChange, ...]] = field(default_factory=dict)
    access: tuple[AccessChange, ...] = ()

    @property
    def widens(self) -> bool:
        return any(change.widens for change in self.access)

    def widening_summary(self) -> str:
        """ "2 IAM statements and 1 security-group rule added" for the confirmation and the refusal."""
        counts: dict[str, int] = {}
        for change in self.access:
            if change.widens:
                noun = "IAM grant" if change.kind == "IAM" else "security-group rule"
                counts[noun] = counts.get(noun, 0) + 1
        return " and ".join(f"{count} {noun}{'s' if count > 1 else ''}" for noun, count in counts.items())


def stack_diff(
    *,
    old_template: dict | None,
    old_parameters: dict[str, str],
    new_template: dict,
    new_parameters: dict[str, str],
    context: dict[str, str],
) -> StackDiff:
    """The change from the deployed template and parameters (None, {} for a new stack) to the new ones."""
    old = Resolver(old_template or {}, old_parameters, context)
    new = Resolver(new_template, new_parameters, context)
    parameters = tuple(
        ParameterChange(name=name, old=old.shown_parameter(name), new=new.shown_parameter(name))
        for name in sorted(set(old.parameters) | set(new.parameters))
        if old.shown_parameter(name) != new.shown_parameter(name)
    )
    properties: dict[str, tuple[PropertyChange, ...]] = {}
    for logical_id in sorted(set(old.resources) & set(new.resources)):
        changes = tuple(_changes("", old.resource(logical_id), new.resource(logical_id)))
        if changes:
            properties[logical_id] = changes
    access = []
    for logical_id in sorted(set(old.resources) | set(new.resources)):
        before = _access_entries(old, logical_id)
        after = _access_entries(new, logical_id)
        for kind, text, widens_when_added in sorted(after - before):
            access.append(AccessChange(logical_id, kind, True, text, widens_when_added))
        for kind, text, widens_when_added in sorted(before - after):
            access.append(AccessChange(logical_id, kind, False, text, not widens_when_added and kind == "IAM"))
    return StackDiff(parameters=parameters, properties=properties, access=tuple(access))


def shown(value: object) -> str:
    """One value as a reviewer reads it: strings bare, structures as compact JSON, long ones cut."""
    if value is None:
        return "(none)"
    value = _short_forms(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


class Resolver:
    """One template with its parameter values: resolves what can be known before CloudFormation runs it."""

    def __init__(self, template: dict, parameters: dict[str, str], context: dict[str, str]):
        self.template = template
        self.parameters: dict[str, dict] = template.get("Parameters", {})
        self.given = parameters
        self.context = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", **context}
        self._conditions: dict[str, bool | None] = {}
        self.resources: dict[str, dict] = {
            name: body
            for name, body in template.get("Resources", {}).items()
            if self.condition(body.get("Condition")) is not False
        }

    def parameter(self, name: str) -> object:
        spec = self.parameters[name]
        if name in self.given:
            value = self.given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            return Unknown({"Ref": name})
        if spec.get("Type", "").startswith("AWS::SSM::Parameter::Value"):
            return Unknown({"Ref": name})  # CloudFormation reads the SSM parameter it names
        if spec.get("Type") == "CommaDelimitedList" or spec.get("Type", "").startswith("List<"):
            return str(value).split(",")
        return str(value)

    def shown_parameter(self, name: str) -> str | None:
        if name not in self.parameters:
            return None
        if name not in self.given and "Default" not in self.parameters[name]:
            return None
        if self.parameters[name].get("NoEcho"):
            return "****"
        return str(self.given.get(name, self.parameters[name].get("Default", "")))

    def condition(self, name: str | None) -> bool | None:
        """True/False, or None when it depends on something unknown (then the resource counts as present)."""
        if name is None:
            return True
        if name not in self._conditions:
            self._conditions[name] = None  # a cycle resolves to unknown
            self._conditions[name] = self._truth(self.template.get("Conditions", {}).get(name))
        return self._conditions[name]

    def _truth(self, node) -> bool | None:
        if isinstance(node, dict) and len(node) == 1:
            ((key, value),) = node.items()
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in value)
                if isinstance(left, Unknown) or isinstance(right, Unknown):
                    return None
                return _flat(left) == _flat(right)
            if key == "Fn::Not":
                inner = self._truth(value[0])
                return None if inner is None else not inner
            if key in {"Fn::And", "Fn::Or"}:
                values = [self._truth(item) for item in value]
                if key == "Fn::And":
                    return False if False in values else (None if None in values else True)
                return True if True in values else (None if None in values else False)
        return None

    def resource(self, logical_id: str) -> object:
        body = self.resources[logical_id]
        return self.resolve({key: value for key, value in body.items() if key != "Metadata"})

    def resolve(self, node):
        if isinstance(node, list):
            return [item for item in (self.resolve(item) for item in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                if value == "AWS::NoValue":
                    return NO_VALUE
                if value in self.parameters:
                    return self.parameter(value)
                if value in self.context:
                    return self.context[value]
                return Unknown(node)
            if key == "Fn::If":
                truth = self.condition(value[0])
                if truth is None:
                    return Unknown({key: [value[0], self.resolve(value[1]), self.resolve(value[2])]})
                return self.resolve(value[1] if truth else value[2])
            if key == "Fn::Join":
                separator, items = value[0], self.resolve(value[1])
                if isinstance(items, list) and all(isinstance(item, str) for item in items):
                    return separator.join(items)
                return Unknown({key: [separator, items]})
            if key == "Fn::Sub":
                return self._sub(value)
            if key == "Fn::Select":
                index, items = self.resolve(value[0]), self.resolve(value[1])
                if isinstance(items, list) and str(index).isdigit() and int(index) < len(items):
                    return items[int(index)]
                return Unknown({key: [index, items]})
            if key == "Fn::Split":
                separator, text = value[0], self.resolve(value[1])
                return text.split(separator) if isinstance(text, str) else Unknown({key: [separator, text]})
            if key == "Fn::FindInMap":
                keys = [self.resolve(item) for item in value]
                found = self.template.get("Mappings", {})
                for part in keys:
                    if not isinstance(part, str) or not isinstance(found, dict) or part not in found:
                        return Unknown({key: keys})
                    found = found[part]
                return found
            if key == "Fn::GetAtt" or key.startswith("Fn::"):
                return Unknown({key: self.resolve(value)})
        return {
            key: resolved
            for key, resolved in ((key, self.resolve(value)) for key, value in node.items())
            if resolved is not NO_VALUE
        }

    def _sub(self, value):
        text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
        variables = {name: self.resolve(item) for name, item in variables.items()}

        def replace(match):
            name = match.group(1)
            if name in variables:
                found = variables[name]
            elif name in self.parameters:
                found = self.parameter(name)
            else:
                found = self.context.get(name)
            return found if isinstance(found, str) else match.group(0)

        return SUB_VARIABLE.sub(replace, text)


def _short_forms(value):
    """A Ref or GetAtt left unresolved reads as in a YAML template: !Ref NetworkVpc, !GetAtt Bucket.Arn."""
    if isinstance(value, Unknown) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return f"!Ref {argument}"
        if key == "Fn::GetAtt" and isinstance(argument, list):
            return f"!GetAtt {'.'.join(str(part) for part in argument)}"
    if isinstance(value, dict):
        return {key: _short_forms(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_short_forms(item) for item in value]
    return value


class Unknown(dict):
    """A value CloudFormation only knows when it runs the template; kept as the template says it."""


def _flat(value):
    return ",".join(value) if isinstance(value, list) else value


def _changes(path: str, old, new):
    if isinstance(old, dict) and isinstance(new, dict) and type(old) is type(new) and not isinstance(old, Unknown):
        for key in sorted(set(old) | set(new)):
            yield from _changes(f"{path}.{key}" if path else key, old.get(key), new.get(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from _changes(f"{path}[{index}]", before, after)
    elif old != new:
        yield PropertyChange(path=path, old=old, new=new)


# --- who may do what --------------------------------------------------------------------------------------------

POLICY_DOCUMENTS = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::SecretsManager::ResourcePolicy": "ResourcePolicy",
    "AWS::Logs::ResourcePolicy": "PolicyDocument",
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
}
SECURITY_GROUP_RULES = {"AWS::EC2::SecurityGroupIngress": "ingress", "AWS::EC2::SecurityGroupEgress": "egress"}


def _access_entries(resolver: Resolver, logical_id: str) -> set[tuple[str, str, bool]]:
    """(kind, text, widens when added) for each grant the resource makes: an IAM statement, a managed policy or
    role attached, an identity provider trusted, a security-group rule."""
    if logical_id not in resolver.resources:
        return set()
    body = resolver.resource(logical_id)
    kind = body.get("Type", "")
    properties = body.get("Properties", {}) if isinstance(body.get("Properties"), dict) else {}
    entries: set[tuple[str, str, bool]] = set()
    if kind == "AWS::EC2::SecurityGroup":
        for rule in properties.get("SecurityGroupIngress", []) or []:
            entries.add(("security group", _rule_text("ingress", rule), True))
        for rule in properties.get("SecurityGroupEgress", []) or []:
            entries.add(("security group", _rule_text("egress", rule), True))
        return entries
    if kind in SECURITY_GROUP_RULES:
        entries.add(("security group", _rule_text(SECURITY_GROUP_RULES[kind], properties), True))
        return entries
    if not kind.startswith("AWS::IAM::") and kind not in POLICY_DOCUMENTS and kind != "AWS::Lambda::Permission":
        return entries
    if kind == "AWS::Lambda::Permission":
        entries.add(("IAM", f"invoke permission {shown(properties)}", True))
    documents = []
    if kind in POLICY_DOCUMENTS:
        documents.append(("", properties.get(POLICY_DOCUMENTS[kind])))
    if "AssumeRolePolicyDocument" in properties:
        documents.append(("trust: ", properties["AssumeRolePolicyDocument"]))
    for policy in properties.get("Policies", []) or []:
        if isinstance(policy, dict):
            documents.append((f"{shown(policy.get('PolicyName'))}: ", policy.get("PolicyDocument")))
    for prefix, document in documents:
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError:
                entries.add(("IAM", f"{prefix}policy {shown(document)}", True))
                continue
        statements = document.get("Statement", []) if isinstance(document, dict) else []
        for statement in statements if isinstance(statements, list) else [statements]:
            if isinstance(statement, dict):
                entries.add(("IAM", prefix + _statement_text(statement), statement.get("Effect") != "Deny"))
    for arn in properties.get("ManagedPolicyArns", []) or []:
        entries.add(("IAM", f"managed policy {shown(arn)}", True))
    for attachment in ("Roles", "Users", "Groups"):
        for name in properties.get(attachment, []) or []:
            entries.add(("IAM", f"attached to {attachment[:-1].lower()} {shown(name)}", True))
    if "PermissionsBoundary" in properties:
        entries.add(("IAM", f"permissions boundary {shown(properties['PermissionsBoundary'])}", False))
    if kind == "AWS::IAM::OIDCProvider":
        for client in properties.get("ClientIdList", []) or []:
            entries.add(("IAM", f"trusts identity provider {shown(properties.get('Url'))} for {shown(client)}", True))
    return entries


def _statement_text(statement: dict) -> str:
    def listed(key: str) -> str:
        value = statement.get(key)
        values = value if isinstance(value, list) else [value]
        return ", ".join(sorted(shown(item) for item in values))

    parts = [statement.get("Effect", "Allow")]
    parts.append(f"not {listed('NotAction')}" if "NotAction" in statement else listed("Action"))
    if "Principal" in statement or "NotPrincipal" in statement:
        key = "Principal" if "Principal" in statement else "NotPrincipal"
        principal = statement[key]
        if isinstance(principal, dict):
            text = "; ".join(
                f"{kind} {', '.join(sorted(shown(item) for item in (ids if isinstance(ids, list) else [ids])))}"
                for kind, ids in sorted(principal.items())
            )
        else:
            text = shown(principal)
        parts.append(f"{'to' if key == 'Principal' else 'to all but'} {text}")
    if "Resource" in statement or "NotResource" in statement:
        key = "Resource" if "Resource" in statement else "NotResource"
        parts.append(f"{'on' if key == 'Resource' else 'on all but'} {listed(key)}")
    if "Condition" in statement:
        parts.append(f"when {shown(statement['Condition'])}")
    return " ".join(parts)


def _rule_text(direction: str, rule: dict) -> str:
    if not isinstance(rule, dict):
        return f"{direction} {shown(rule)}"
    protocol = str(rule.get("IpProtocol", ""))
    protocol = "all traffic" if protocol == "-1" else protocol
    ports = ""
    if "FromPort" in rule or "ToPort" in rule:
        low, high = shown(rule.get("FromPort")), shown(rule.get("ToPort"))
        ports = f" port {low}" if low == high else f" ports {low}-{high}"
    peers = (
        "CidrIp",
        "CidrIpv6",
        "SourcePrefixListId",
        "SourceSecurityGroupId",
        "DestinationPrefixListId",
        "DestinationSecurityGroupId",
    )
    peer = next((f"{shown(rule[key])}" for key in peers if key in rule), "(no peer)")
    where = "from" if direction == "ingress" else "to"
    group = f"{shown(rule['GroupId'])} " if "GroupId" in rule else ""
    return f"{group}{direction} {protocol}{ports} {where} {peer}".strip()
