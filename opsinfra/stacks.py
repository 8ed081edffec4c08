"""What a stack is synthesized from: Django's OPSINFRA presets resolved for one stack, environment and region."""

import dataclasses
from dataclasses import dataclass

from django.conf import settings

from opsinfra.errors import StackConfigError

STACKS = ("bootstrap", "app", "edge", "loadgen", "image")
# CloudFront takes web ACLs, certificates and publishes its metrics only in us-east-1.
EDGE_REGION = "us-east-1"

# The CloudFront origin-facing managed prefix list (com.amazonaws.global.cloudfront.origin-facing) has a different
# id in every region, and CloudFormation cannot look one up by name.
CLOUDFRONT_PREFIX_LISTS = {
    "us-east-1": "pl-3b927c52",
    "us-east-2": "pl-b6a144df",
    "us-west-1": "pl-4ea04527",
    "us-west-2": "pl-82a045eb",
    "ca-central-1": "pl-38a64351",
    "eu-central-1": "pl-a3a144ca",
    "eu-west-1": "pl-4fa04526",
    "eu-west-2": "pl-93a247fa",
    "eu-west-3": "pl-75b1541c",
    "eu-north-1": "pl-fab65393",
    "ap-northeast-1": "pl-58a04531",
    "ap-southeast-1": "pl-31a34658",
    "ap-southeast-2": "pl-b8a742d1",
}


@dataclass(frozen=True)
class StackSettings:
    project: str
    env: str
    stack: str
    region: str
    stack_name: str
    github_repo: str
    domain: str
    hosted_zone_id: str
    alert_email: str
    instance_type: str
    db_instance_class: str
    db_multi_az: bool
    db_engine_version: str
    cache_node_type: str
    asg_min: int
    asg_max: int
    asg_desired: int
    warm_pool_size: int
    prescale_capacity: int
    nat_gateways: int
    interface_endpoints: bool
    app_port: int
    boot_seconds: int
    gunicorn_workers: int
    gunicorn_threads: int
    gunicorn_timeout: int
    proxy_borrow_timeout: int
    proxy_max_connections_percent: int
    origin_read_timeout: int
    alb_idle_timeout: int
    log_retention_days: int
    allow_list: tuple[str, ...] = ()

    @property
    def in_edge_region(self) -> bool:
        """True when the CloudFront-only parts (CLOUDFRONT web ACL, certificate, alarms) can sit in this stack."""
        return self.region == EDGE_REGION

    @property
    def release_parameter_name(self) -> str:
        """The SSM parameter deploy_app writes and instances read; no stack manages it."""
        return f"/{self.project}/{self.env}/release"

    @property
    def allow_parameter_name(self) -> str:
        """The SSM parameter the instances read RATELIMIT_ALLOW_IPS from; the loadgen deploy writes it, its destroy
        deletes it, no stack manages it."""
        return f"/{self.project}/{self.env}/ratelimit-allow-ips"

    @property
    def cloudfront_prefix_list_id(self) -> str:
        return CLOUDFRONT_PREFIX_LISTS[self.region]

    def replace(self, **changes) -> "StackSettings":
        return dataclasses.replace(self, **changes)


_FIELDS = {field.name for field in dataclasses.fields(StackSettings)}
_DERIVED = {"project", "env", "stack", "region", "stack_name", "github_repo"}


def stack_settings(*, stack: str, env: str, region: str | None = None) -> StackSettings:
    """The settings of one stack from `settings.OPSINFRA`; StackConfigError for anything that cannot be built."""
    config = settings.OPSINFRA
    if stack not in STACKS:
        raise StackConfigError(f"Unknown stack {stack!r}: choose one of {', '.join(STACKS)}.")
    environments = config["ENVIRONMENTS"]
    if env not in environments:
        raise StackConfigError(f"Unknown environment {env!r}: choose one of {', '.join(sorted(environments))}.")
    region = region or config["REGION"]
    if stack == "edge" and region != EDGE_REGION:
        raise StackConfigError(f"The edge stack always lives in {EDGE_REGION}, not {region}: omit --region.")
    if region not in CLOUDFRONT_PREFIX_LISTS:
        raise StackConfigError(
            f"Region {region} has no known CloudFront origin-facing prefix list: add it to CLOUDFRONT_PREFIX_LISTS."
        )
    preset = environments[env]
    unknown = set(preset) - (_FIELDS - _DERIVED)
    if unknown:
        raise StackConfigError(f"OPSINFRA environment {env!r} has unknown keys: {', '.join(sorted(unknown))}.")
    project = config["PROJECT"]
    stack_name = f"{project}-bootstrap" if stack == "bootstrap" else f"{project}-{stack}-{env}"
    values = {**preset, "allow_list": tuple(preset.get("allow_list", ()))}
    try:
        result = StackSettings(
            project=project,
            env=env,
            stack=stack,
            region=region,
            stack_name=stack_name,
            github_repo=config["GITHUB_REPOSITORY"],
            **values,
        )
    except TypeError as exc:
        raise StackConfigError(f"OPSINFRA environment {env!r} is incomplete: {exc}.") from None
    stack_settings_validate(result)
    return result


def stack_settings_validate(stack: StackSettings) -> None:
    """The combinations CloudFormation would only reject halfway through a deploy."""
    if stack.domain and not stack.hosted_zone_id:
        raise StackConfigError(f"Domain {stack.domain} needs hosted_zone_id: its certificate is validated by DNS.")
    if not stack.asg_min <= stack.asg_desired <= stack.asg_max:
        raise StackConfigError(
            f"Auto Scaling sizes must satisfy min <= desired <= max, got {stack.asg_min}/{stack.asg_desired}/"
            f"{stack.asg_max}."
        )
    if not stack.asg_min <= stack.prescale_capacity <= stack.asg_max:
        raise StackConfigError(
            f"prescale_capacity {stack.prescale_capacity} must lie within the group's {stack.asg_min}-{stack.asg_max}."
        )
    if stack.nat_gateways not in (1, 3):
        raise StackConfigError(f"nat_gateways must be 1 or 3 (one per AZ), got {stack.nat_gateways}.")
    if "/" not in stack.github_repo:
        raise StackConfigError(f"GITHUB_REPOSITORY must be OWNER/REPO, got {stack.github_repo!r}.")
