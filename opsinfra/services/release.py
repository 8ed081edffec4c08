"""Rolling out a release: upload its bundle, migrate once, point the release parameter at it, refresh instances.

The release lives in an SSM parameter no stack manages, so a stack update or rollback never changes which code
runs; only deploy_app does.
"""

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsinfra import aws
from opsinfra.errors import ReleaseError, StackNotFound
from opsinfra.services import bundle, events, stacks
from opsinfra.services.deploy import Target, target_resolve
from opsinfra.services.status import release_parameter_name

MIGRATION_TIMEOUT_S = 900
REFRESH_DONE = {"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"}
# Where user data writes the instance's environment files (migrate.env names the master database secret).
INSTANCE_ENV_DIR = "/etc/shop"


@dataclass(frozen=True)
class Place:
    """Where a release goes: the artifacts bucket, and the app stack's group and migration document if it exists."""

    region: str
    bucket: str
    parameter: str
    asg_name: str | None
    migration_document: str | None
    warmup_s: int
    # The group whose instance runs migrations (the only role that reads the master secret); older stacks have none.
    migration_group: str | None = None


@dataclass(frozen=True)
class Migration:
    instance_id: str
    command_id: str
    status: str
    output: str
    # False when the stack's document takes neither Bundle nor Version: it migrates the release already installed on
    # the instance, not the one being rolled out.
    runs_new_release: bool = True


@dataclass(frozen=True)
class Refresh:
    id: str
    status: str
    percentage: int
    reason: str


def bundle_url(place: Place, version: str) -> str:
    return f"s3://{place.bucket}/{bundle.bundle_key(version)}"


def release_place(*, target: Target, outputs_file: str | None = None) -> Place:
    """The bucket from the bootstrap stack (which must exist); the group from the app stack (which may not yet)."""
    bootstrap = target_resolve(stack="bootstrap", env=target.env, region=target.region)
    cfn = aws.client("cloudformation", region=target.region)
    bootstrap_state = stacks.stack_require(
        cfn=cfn, name=bootstrap.stack_name, region=target.region, create_with=bootstrap.command()
    )
    bucket = bootstrap_state.outputs.get("ArtifactsBucketName")
    if not bucket:
        raise StackNotFound(f"The bootstrap stack {bootstrap.stack_name} has no ArtifactsBucketName output.")
    try:
        asg_name = stacks.output_find(
            cfn=cfn, stack_name=target.stack_name, key="AutoScalingGroupName", outputs_file=outputs_file
        )
    except StackNotFound:
        asg_name = None
    document, migration_group = None, None
    if asg_name:
        saved = stacks.outputs_read(path=stacks.outputs_path(stack_name=target.stack_name, path=outputs_file)) or {}
        document = saved.get("MigrationDocumentName") or None
        migration_group = saved.get("MigrationGroupName") or None
    return Place(
        region=target.region,
        bucket=bucket,
        parameter=release_parameter_name(target),
        asg_name=asg_name,
        migration_document=document,
        migration_group=migration_group,
        warmup_s=int(getattr(target.settings, "boot_seconds", 600)),
    )


def bundle_exists(*, place: Place, version: str) -> bool:
    s3 = aws.client("s3", region=place.region)
    try:
        s3.head_object(Bucket=place.bucket, Key=bundle.bundle_key(version))
    except aws.aws_errors() as exc:
        if aws.error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise aws.call_failed(f"look for the bundle of {version}", exc) from exc
    return True


def bundle_upload(*, place: Place, version: str, path: Path) -> str:
    s3 = aws.client("s3", region=place.region)
    try:
        s3.upload_file(str(path), place.bucket, bundle.bundle_key(version))
    except (*aws.aws_errors(), OSError) as exc:
        raise aws.call_failed(f"upload {path.name} to s3://{place.bucket}", exc) from exc
    return bundle_url(place, version)


def migration_script(*, url: str) -> str:
    """Shell for an app stack without a migration document: install the new release beside the running one and
    migrate with the master database user, from the environment files user data writes. No `set -x`: it would log
    secrets."""
    quoted = shlex.quote(url)
    return "\n".join(
        [
            "set -euo pipefail",
            "work=$(mktemp -d /tmp/shop-migrate.XXXXXX)",
            "trap 'rm -rf \"$work\"' EXIT",
            f"set -a; . {INSTANCE_ENV_DIR}/app.env; . {INSTANCE_ENV_DIR}/migrate.env; set +a",
            f'aws s3 cp --only-show-errors --region "$AWS_REGION" {quoted} "$work/release.tar.gz"',
            'tar -xzf "$work/release.tar.gz" -C "$work"',
            'python3.11 -m venv "$work/venv"',
            'wheels="$work/wheels" requirements="$work/requirements/base.txt"',
            '"$work/venv/bin/pip" install --quiet --no-index --find-links "$wheels" -r "$requirements"',
            'cd "$work" && DB_SECRET_ARN="$DB_MASTER_SECRET_ARN" "$work/venv/bin/python" manage.py migrate --no-input',
        ]
    )


def migration_instance(*, place: Place) -> str:
    """One healthy, in-service instance of the migration group, else of the web group (sorted, so a retry picks the
    same one)."""
    group_name = place.migration_group or place.asg_name
    autoscaling = aws.client("autoscaling", region=place.region)
    try:
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe {group_name}", exc) from exc
    healthy = sorted(
        instance["InstanceId"]
        for group in groups
        for instance in group.get("Instances", [])
        if instance.get("LifecycleState") == "InService" and instance.get("HealthStatus") == "Healthy"
    )
    if not healthy:
        raise ReleaseError(f"{group_name} has no healthy instance in service to run the migrations on.")
    return healthy[0]


def migration_document_parameters(*, place: Place) -> set[str]:
    """The parameters the stack's migration document declares (it is the only document the deploy role may send)."""
    ssm = aws.client("ssm", region=place.region)
    try:
        document = ssm.describe_document(Name=place.migration_document)["Document"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe SSM document {place.migration_document}", exc) from exc
    return {parameter["Name"] for parameter in document.get("Parameters", [])}


def migrations_run(*, place: Place, version: str) -> Migration:
    """`manage.py migrate` of the new release on one instance, before any instance switches to it."""
    instance_id = migration_instance(place=place)
    ssm = aws.client("ssm", region=place.region)
    url = bundle_url(place, version)
    if place.migration_document:
        document = place.migration_document
        declared = migration_document_parameters(place=place)
        offered = {"Bundle": [url], "Version": [version]}
        parameters = {name: value for name, value in offered.items() if name in declared}
        runs_new_release = bool(parameters)
    else:
        document, parameters = "AWS-RunShellScript", {"commands": [migration_script(url=url)]}
        runs_new_release = True
    request = {
        "InstanceIds": [instance_id],
        "DocumentName": document,
        "Comment": f"shop migrate {version}"[:100],
        "TimeoutSeconds": MIGRATION_TIMEOUT_S,
    }
    if parameters:
        request["Parameters"] = parameters
    try:
        command_id = ssm.send_command(**request)["Command"]["CommandId"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"send the migration command to {instance_id}", exc) from exc
    deadline = events.clock.monotonic() + MIGRATION_TIMEOUT_S
    delay = events.clock.first_delay()
    while True:
        events.clock.sleep(delay)
        delay = events.clock.next_delay(delay)
        try:
            invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except aws.aws_errors() as exc:
            # Right after SendCommand the invocation may not exist yet.
            if aws.error_code(exc) == "InvocationDoesNotExist" and events.clock.monotonic() < deadline:
                continue
            raise aws.call_failed(f"read migration command {command_id}", exc) from exc
        status = invocation["Status"]
        if status not in {"Pending", "InProgress", "Delayed"}:
            output = (invocation.get("StandardErrorContent") or invocation.get("StandardOutputContent") or "").strip()
            return Migration(
                instance_id=instance_id,
                command_id=command_id,
                status=status,
                output=output,
                runs_new_release=runs_new_release,
            )
        if events.clock.monotonic() > deadline:
            return Migration(
                instance_id=instance_id,
                command_id=command_id,
                status="TimedOut",
                output="",
                runs_new_release=runs_new_release,
            )


def release_write(*, place: Place, version: str) -> dict | None:
    """Point the release parameter at `version`; returns what it said before (None when it was unset)."""
    ssm = aws.client("ssm", region=place.region)
    previous = None
    try:
        previous = json.loads(ssm.get_parameter(Name=place.parameter)["Parameter"]["Value"])
    except aws.aws_errors() as exc:
        if aws.error_code(exc) != "ParameterNotFound":
            raise aws.call_failed(f"read {place.parameter}", exc) from exc
    except ValueError:
        previous = None
    value = json.dumps({"version": version, "bundle": bundle_url(place, version)}, sort_keys=True)
    try:
        ssm.put_parameter(Name=place.parameter, Value=value, Type="String", Overwrite=True)
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"write {place.parameter}", exc) from exc
    return previous


def release_restore(*, place: Place, previous: dict) -> None:
    ssm = aws.client("ssm", region=place.region)
    try:
        ssm.put_parameter(
            Name=place.parameter, Value=json.dumps(previous, sort_keys=True), Type="String", Overwrite=True
        )
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"restore {place.parameter}", exc) from exc


def refresh_start(*, place: Place) -> str:
    """Replace every instance, launching before terminating (100 % healthy kept, up to 200 % running), and roll
    back on failure."""
    autoscaling = aws.client("autoscaling", region=place.region)
    try:
        return autoscaling.start_instance_refresh(
            AutoScalingGroupName=place.asg_name,
            Strategy="Rolling",
            Preferences={
                "MinHealthyPercentage": 100,
                "MaxHealthyPercentage": 200,
                "InstanceWarmup": place.warmup_s,
                "SkipMatching": False,
                "AutoRollback": True,
                "ScaleInProtectedInstances": "Refresh",
                "StandbyInstances": "Terminate",
            },
        )["InstanceRefreshId"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) == "InstanceRefreshInProgress":
            raise ReleaseError(
                f"An instance refresh is already running on {place.asg_name}: wait for it (deploy_app --wait "
                "follows only its own) or cancel it in the console."
            ) from exc
        raise aws.call_failed(f"start an instance refresh on {place.asg_name}", exc) from exc


def refresh_follow(
    *, place: Place, refresh_id: str, on_progress: Callable[[Refresh], None], timeout_s: float
) -> Refresh:
    """Poll the refresh until it ends or the timeout passes (then it goes on in AWS); report each change."""
    autoscaling = aws.client("autoscaling", region=place.region)
    deadline = events.clock.monotonic() + timeout_s
    delay = events.clock.first_delay()
    last = None
    while True:
        try:
            raw = autoscaling.describe_instance_refreshes(
                AutoScalingGroupName=place.asg_name, InstanceRefreshIds=[refresh_id]
            )["InstanceRefreshes"][0]
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"read instance refresh {refresh_id}", exc) from exc
        refresh = Refresh(
            id=refresh_id,
            status=raw["Status"],
            percentage=int(raw.get("PercentageComplete") or 0),
            reason=raw.get("StatusReason", ""),
        )
        if refresh != last:
            on_progress(refresh)
            last = refresh
        if refresh.status in REFRESH_DONE:
            return refresh
        if events.clock.monotonic() > deadline:
            return refresh
        events.clock.sleep(delay)
        delay = events.clock.next_delay(delay)
