"""Helpers every part uses: parameters, suppressions with their reasons, stateful-resource policies."""

from troposphere import AWSObject, Parameter, Sub, Tags, Template


def parameter(t: Template, name: str, *, default, description: str, **kwargs) -> Parameter:
    """A Parameter with a Default: every stack deploys with no --parameter at all."""
    kind = kwargs.pop("Type", "String")
    return t.add_parameter(Parameter(name, Type=kind, Default=default, Description=description, **kwargs))


def flag_parameter(t: Template, name: str, *, default: bool, description: str) -> Parameter:
    return parameter(
        t, name, default="true" if default else "false", description=description, AllowedValues=["true", "false"]
    )


def stateful(resource: AWSObject, policy: str) -> AWSObject:
    """Explicit DeletionPolicy and UpdateReplacePolicy: a replacement must not silently drop data."""
    resource.DeletionPolicy = policy
    resource.UpdateReplacePolicy = policy
    return resource


def checkov_skip(resource: AWSObject, **reasons: str) -> AWSObject:
    """Skip checkov checks on this resource only, each with the reason written next to it."""
    metadata = dict(getattr(resource, "Metadata", {}) or {})
    skips = list(metadata.get("checkov", {}).get("skip", []))
    skips += [{"id": check, "comment": reason} for check, reason in sorted(reasons.items())]
    metadata["checkov"] = {"skip": skips}
    resource.Metadata = metadata
    return resource


def cfn_lint_ignore(resource: AWSObject, **reasons: str) -> AWSObject:
    """Ignore cfn-lint rules on this resource only; the reasons sit beside them under "Suppressions"."""
    metadata = dict(getattr(resource, "Metadata", {}) or {})
    metadata["cfn-lint"] = {"config": {"ignore_checks": sorted(reasons)}}
    metadata["Suppressions"] = {**metadata.get("Suppressions", {}), **dict(sorted(reasons.items()))}
    resource.Metadata = metadata
    return resource


def log_group(title: str, *, retention_days: int, **kwargs):
    """A log group with a retention (a group CloudWatch creates itself keeps everything forever)."""
    from troposphere import logs

    group = logs.LogGroup(title, RetentionInDays=retention_days, **kwargs)
    checkov_skip(
        group,
        CKV_AWS_158="CloudWatch Logs encrypts every group at rest; these hold request, boot and database log lines, "
        "never a secret (no set -x, no SQL parameters of secrets)",
    )
    return stateful(group, "Delete")


SECRETS_KEY_REASON = (
    "encrypted with the account's aws/secretsmanager key: only this account's roles read it, and a customer key "
    "would add a key grant to every reader (proxy, instances, CloudFormation) without narrowing who can read"
)


def name_tags(name) -> Tags:
    return Tags(Name=name)


def service_trust(service: str, **conditions) -> dict:
    """An AssumeRolePolicyDocument that lets one AWS service assume the role."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if conditions:
        statement["Condition"] = conditions
    return {"Version": "2012-10-17", "Statement": [statement]}


def role_boundary_name(project: str) -> str:
    """The managed policy the bootstrap stack defines as the permissions boundary of every role the stacks make."""
    return f"{project}-role-boundary"


def role_boundary_arn(project: str) -> Sub:
    return Sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{role_boundary_name(project)}")


def bound_roles(t: Template, *, project: str) -> None:
    """Every role of the template carries the boundary: the execution role may create no role without it."""
    from troposphere import iam

    for resource in t.resources.values():
        if isinstance(resource, iam.Role):
            resource.PermissionsBoundary = role_boundary_arn(project)
