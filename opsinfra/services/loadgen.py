"""What the load-generation fleet changes outside its own stack: the locustfile it runs, in the artifacts bucket,
and its NAT addresses on the app's two allow lists (the app's per-IP limits, RATELIMIT_ALLOW_IPS, through an SSM
parameter; the WAF rate rule, through the web ACL's allow-list IP set). deploy_stack --stack loadgen sets both,
destroy_stack removes both (docs/loadgen.md).
"""

import io
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from opsinfra import aws
from opsinfra.errors import StackNotFound, TemplateRejected
from opsinfra.services import stacks
from opsinfra.services.deploy import Target, target_resolve

# StopAt must leave the fleet time to boot, and may not be further ahead than this.
MIN_LEAD = timedelta(minutes=10)
MAX_AHEAD = timedelta(hours=24)
STOP_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The web ACL's IP set the rate rule never counts (opsinfra/cfn/security.py), by logical id.
WAF_IP_SET = "SecurityAllowList"
WAF_REGION = "us-east-1"
LOCK_RETRIES = 3


@dataclass(frozen=True)
class AllowLists:
    """Where the fleet's addresses were written (or removed), for the command to report."""

    addresses: tuple[str, ...]
    parameter: str  # the SSM parameter the app instances read RATELIMIT_ALLOW_IPS from
    web_acl_stack: str | None  # the stack whose allow-list IP set changed; None: no web ACL found
    refresh: str | None  # the app group's instance refresh that takes the new list to every instance
    app_group: str | None = None
    changed: bool = True  # False: the parameter already said this, so nothing was refreshed


def loadgen_check(*, overrides: dict[str, str], now: datetime | None = None) -> None:
    """A fleet deploy names its hard stop and its target; refused before any AWS call otherwise."""
    now = now or datetime.now(UTC)
    given = overrides.get("StopAt", "")
    if not given:
        raise TemplateRejected(
            "--parameter StopAt=YYYY-MM-DDTHH:MM:SSZ is required: the fleet's hard stop (UTC), at most "
            f"{MAX_AHEAD.total_seconds() / 3600:g} hours ahead. Nothing was sent to AWS."
        )
    try:
        stop_at = datetime.strptime(given, STOP_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise TemplateRejected(
            f"--parameter StopAt={given} is not a UTC time like 2030-11-27T23:00:00Z. Nothing was sent to AWS."
        ) from None
    if stop_at < now + MIN_LEAD:
        raise TemplateRejected(
            f"--parameter StopAt={given} is less than {MIN_LEAD.total_seconds() / 60:g} minutes ahead "
            f"(now {now.strftime(STOP_AT_FORMAT)}): the fleet would stop before it runs. Nothing was sent to AWS."
        )
    if stop_at > now + MAX_AHEAD:
        raise TemplateRejected(
            f"--parameter StopAt={given} is more than {MAX_AHEAD.total_seconds() / 3600:g} hours ahead: the fleet's "
            "hard stop is bounded. Nothing was sent to AWS."
        )
    if not overrides.get("TargetHost"):
        raise TemplateRejected(
            "--parameter TargetHost=https://… is required: the site the fleet loads. Nothing was sent to AWS."
        )


def loadtests_archive() -> bytes:
    """The repository's loadtests/ package as the instances unpack it (tar.gz, Python files only)."""
    root = Path(settings.BASE_DIR)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted((root / "loadtests").glob("*.py")):
            info = archive.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def loadtests_upload(*, target: Target) -> str:
    """Put the locustfile bundle where the fleet's role may read it; returns its s3:// URL."""
    from opsinfra.cfn.loadgen import LOADTESTS_KEY, results_prefix

    bootstrap = target_resolve(stack="bootstrap", env=target.env, region=target.region)
    state = stacks.stack_require(
        cfn=aws.client("cloudformation", region=target.region),
        name=bootstrap.stack_name,
        region=target.region,
        create_with=bootstrap.command(),
    )
    bucket = state.outputs.get("ArtifactsBucketName")
    if not bucket:
        raise StackNotFound(f"The bootstrap stack {bootstrap.stack_name} has no ArtifactsBucketName output.")
    key = f"{results_prefix(target.stack_name)}/{LOADTESTS_KEY}"
    try:
        aws.client("s3", region=target.region).put_object(Bucket=bucket, Key=key, Body=loadtests_archive())
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"upload the load tests to s3://{bucket}/{key}", exc) from exc
    return f"s3://{bucket}/{key}"


def fleet_addresses(outputs: dict[str, str]) -> tuple[str, ...]:
    """The fleet's NAT addresses as /32 CIDRs, from the loadgen stack's NatAddresses output."""
    return tuple(sorted(f"{ip.strip()}/32" for ip in outputs.get("NatAddresses", "").split(",") if ip.strip()))


def allow_parameter_name(target: Target) -> str:
    return target.settings.allow_parameter_name


def web_acl_stack(target: Target) -> str:
    """The stack holding the web ACL of the app in the fleet's region: the app stack itself in us-east-1, the edge
    stack elsewhere (docs/infrastructure.md)."""
    stack = "app" if target.region == WAF_REGION else "edge"
    return target_resolve(stack=stack, env=target.env, region=WAF_REGION).stack_name


def _ip_set(*, stack_name: str) -> tuple[str, str] | None:
    """(name, id) of the web ACL's allow-list IP set, or None when the stack or the set does not exist."""
    cfn = aws.client("cloudformation", region=WAF_REGION)
    try:
        resource = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=WAF_IP_SET)
    except aws.aws_errors() as exc:
        if aws.error_code(exc) == "ValidationError":
            return None
        raise aws.call_failed(f"find the allow-list IP set of {stack_name}", exc) from exc
    # An AWS::WAFv2::IPSet's physical id is "name|id|scope".
    name, ip_set_id, _scope = resource["StackResourceDetail"]["PhysicalResourceId"].split("|")
    return name, ip_set_id


def _ip_set_change(*, name: str, ip_set_id: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
    """Add and remove addresses, keeping every other one (the stack's WafAllowList); retried on a lost lock."""
    waf = aws.client("wafv2", region=WAF_REGION)
    for attempt in range(LOCK_RETRIES):
        try:
            found = waf.get_ip_set(Name=name, Scope="CLOUDFRONT", Id=ip_set_id)
            current = set(found["IPSet"]["Addresses"])
            wanted = (current | set(add)) - set(remove)
            if wanted == current:
                return
            waf.update_ip_set(
                Name=name, Scope="CLOUDFRONT", Id=ip_set_id, Addresses=sorted(wanted), LockToken=found["LockToken"]
            )
            return
        except aws.aws_errors() as exc:
            if aws.error_code(exc) == "WAFOptimisticLockException" and attempt < LOCK_RETRIES - 1:
                continue
            raise aws.call_failed(f"change the addresses of WAF IP set {name}", exc) from exc


def _app_refresh(*, target: Target) -> tuple[str | None, str | None]:
    """Start an instance refresh of the app's web group, so every instance reads the new allow list at boot;
    (group, refresh id), or (None, None) when there is no app stack in the region."""
    from opsinfra.services import release

    app = target_resolve(stack="app", env=target.env, region=target.region)
    state = stacks.stack_get(cfn=aws.client("cloudformation", region=target.region), name=app.stack_name)
    group = (state.outputs if state else {}).get("AutoScalingGroupName")
    if not group:
        return None, None
    place = release.Place(
        region=target.region,
        bucket="",
        parameter="",
        asg_name=group,
        migration_document=None,
        warmup_s=int(app.settings.boot_seconds),
    )
    return group, release.refresh_start(place=place)


def allow_list_apply(*, target: Target, outputs: dict[str, str]) -> AllowLists:
    """Put the fleet's addresses on both allow lists; the same again changes nothing and starts no refresh."""
    addresses = fleet_addresses(outputs)
    if not addresses:
        raise StackNotFound(f"Stack {target.stack_name} has no NatAddresses output: is it a loadgen stack?")
    name = allow_parameter_name(target)
    ssm = aws.client("ssm", region=target.region)
    value = ",".join(addresses)
    try:
        previous = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) != "ParameterNotFound":
            raise aws.call_failed(f"read {name}", exc) from exc
        previous = None
    if previous != value:
        try:
            ssm.put_parameter(
                Name=name,
                Value=value,
                Type="String",
                Overwrite=True,
                Description="RATELIMIT_ALLOW_IPS of the app instances: the loadgen fleet's addresses",
            )
        except aws.aws_errors() as exc:  # fmt: skip
            raise aws.call_failed(f"write {name}", exc) from exc
    acl_stack = web_acl_stack(target)
    ip_set = _ip_set(stack_name=acl_stack)
    if ip_set:
        _ip_set_change(name=ip_set[0], ip_set_id=ip_set[1], add=addresses)
    changed = previous != value
    group, refresh = _app_refresh(target=target) if changed else (None, None)
    return AllowLists(addresses, name, acl_stack if ip_set else None, refresh, group, changed)


def allow_list_remove(*, target: Target, addresses: tuple[str, ...]) -> AllowLists:
    """Take the fleet's addresses off both allow lists (the parameter goes; the IP set keeps its other entries)."""
    name = allow_parameter_name(target)
    try:
        aws.client("ssm", region=target.region).delete_parameter(Name=name)
        removed = True
    except aws.aws_errors() as exc:
        if aws.error_code(exc) != "ParameterNotFound":
            raise aws.call_failed(f"delete {name}", exc) from exc
        removed = False
    acl_stack = web_acl_stack(target)
    ip_set = _ip_set(stack_name=acl_stack)
    if ip_set and addresses:
        _ip_set_change(name=ip_set[0], ip_set_id=ip_set[1], remove=addresses)
    group, refresh = _app_refresh(target=target) if removed else (None, None)
    return AllowLists(addresses, name, acl_stack if ip_set else None, refresh, group, removed)
