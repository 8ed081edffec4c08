"""Baked app images: build one with EC2 Image Builder, publish it in the image parameter, and tell how old it is.

The image stack holds the components and the builder infrastructure; a bake makes one recipe (the two components,
the release's Version and Bundle, the latest public Amazon Linux 2023 as parent), builds it, and writes the AMI id
to the image parameter the app stack's launch templates resolve at every launch (docs/image.md).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from opsinfra import aws
from opsinfra.errors import ImageBuildFailed, StackNotFound
from opsinfra.services import events, stacks
from opsinfra.services.deploy import Target, target_resolve

PUBLIC_IMAGE = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
BUILD_DONE = {"AVAILABLE", "FAILED", "CANCELLED", "DELETED"}
# Image Builder's own figures for an AMI build: tens of minutes (launch, build, snapshot, distribute).
BUILD_TIMEOUT_S = 90 * 60
ROOT_VOLUME_GIB = 20
OUTPUTS = ("SystemComponentArn", "ReleaseComponentArn", "InfrastructureConfigurationArn")


def image_parameter_name(*, project: str, env: str) -> str:
    """The AMI id of the latest bake (data type aws:ec2:image): what the launch templates resolve."""
    return f"/{project}/{env}/image"


def image_release_parameter_name(*, project: str, env: str) -> str:
    """What the latest bake holds: {"image", "release", "parent_image", "baked_at"}."""
    return f"/{project}/{env}/image-release"


@dataclass(frozen=True)
class ImagePlace:
    region: str
    env: str
    recipe_name: str
    image_parameter: str
    image_release_parameter: str
    system_component: str
    release_component: str
    infrastructure: str


@dataclass(frozen=True)
class BuildProgress:
    status: str
    step: str  # the Image Builder workflow step running (or failed), "" before the workflow starts


@dataclass(frozen=True)
class Baked:
    image_id: str
    image_arn: str
    release: str
    parent_image: str
    previous_image: str | None


def image_place(*, env: str, region: str | None = None) -> ImagePlace:
    """The image stack's components and infrastructure (the stack must exist)."""
    target = target_resolve(stack="image", env=env, region=region)
    cfn = aws.client("cloudformation", region=target.region)
    state = stacks.stack_require(cfn=cfn, name=target.stack_name, region=target.region, create_with=target.command())
    missing = [key for key in OUTPUTS if not state.outputs.get(key)]
    if missing:
        raise StackNotFound(f"The image stack {target.stack_name} has no {missing[0]} output: deploy it again.")
    project = target.settings.project
    return ImagePlace(
        region=target.region,
        env=env,
        recipe_name=target.stack_name,
        image_parameter=image_parameter_name(project=project, env=env),
        image_release_parameter=image_release_parameter_name(project=project, env=env),
        system_component=state.outputs["SystemComponentArn"],
        release_component=state.outputs["ReleaseComponentArn"],
        infrastructure=state.outputs["InfrastructureConfigurationArn"],
    )


def recipe_version(now: datetime) -> str:
    """Recipe versions are immutable and must grow: one per bake, from the clock (no leading zeros)."""
    return f"{now.year}.{now.month * 100 + now.day}.{now.hour * 10000 + now.minute * 100 + now.second}"


def parent_image(*, region: str) -> str:
    ssm = aws.client("ssm", region=region)
    try:
        return ssm.get_parameter(Name=PUBLIC_IMAGE)["Parameter"]["Value"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read the public image parameter {PUBLIC_IMAGE}", exc) from exc


def _current_step(builder, image_arn: str) -> str:
    """The workflow step running now, or the one that failed; "" when Image Builder has none to show yet."""
    try:
        executions = builder.list_workflow_executions(imageBuildVersionArn=image_arn).get("workflowExecutions", [])
        if not executions:
            return ""
        latest = executions[-1]["workflowExecutionId"]
        steps = builder.list_workflow_step_executions(workflowExecutionId=latest).get("steps", [])
    except aws.aws_errors():
        return ""  # progress detail only: the image's own status decides
    for wanted in ("FAILED", "RUNNING"):
        for step in steps:
            if step.get("status") == wanted:
                return step.get("name", "")
    return steps[-1].get("name", "") if steps else ""


def _clean_up(builder, *, image_arn: str | None, recipe_arn: str) -> list[str]:
    """Cancel a build still going, delete its image and the recipe; returns what could not be removed."""
    left = []
    if image_arn:
        try:
            builder.cancel_image_creation(imageBuildVersionArn=image_arn)
        except aws.aws_errors() as exc:
            if aws.error_code(exc) not in {"ResourceNotFoundException", "InvalidRequestException"}:
                left.append(f"build {image_arn} ({aws.error_message(exc)})")
        try:
            builder.delete_image(imageBuildVersionArn=image_arn)
        except aws.aws_errors() as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                left.append(f"image {image_arn} ({aws.error_message(exc)})")
    try:
        builder.delete_image_recipe(imageRecipeArn=recipe_arn)
    except aws.aws_errors() as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            left.append(f"recipe {recipe_arn} ({aws.error_message(exc)})")
    return left


def image_bake(
    *,
    place: ImagePlace,
    version: str,
    bundle_url: str,
    on_progress: Callable[[BuildProgress], None],
    timeout_s: float = BUILD_TIMEOUT_S,
) -> Baked:
    """Build the image of `version` and publish it; ImageBuildFailed names the step, and nothing is left running
    (Image Builder terminates the builder instance of a failed build; the build and its recipe are deleted)."""
    builder = aws.client("imagebuilder", region=place.region)
    parent = parent_image(region=place.region)
    now = datetime.now(UTC)
    try:
        recipe_arn = builder.create_image_recipe(
            name=place.recipe_name,
            semanticVersion=recipe_version(now),
            description=f"shop release {version}"[:1024],
            parentImage=parent,
            components=[
                {"componentArn": place.system_component},
                {
                    "componentArn": place.release_component,
                    "parameters": [{"name": "Version", "value": [version]}, {"name": "Bundle", "value": [bundle_url]}],
                },
            ],
            blockDeviceMappings=[
                {
                    "deviceName": "/dev/xvda",
                    "ebs": {"volumeSize": ROOT_VOLUME_GIB, "volumeType": "gp3", "encrypted": True},
                }
            ],
            clientToken=f"{place.recipe_name}-{now:%Y%m%d%H%M%S}",
        )["imageRecipeArn"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"create the image recipe of {version}", exc) from exc
    image_arn = None
    try:
        image_arn = builder.create_image(
            imageRecipeArn=recipe_arn,
            infrastructureConfigurationArn=place.infrastructure,
            # The release is proven by its own /health at boot; Image Builder's test instance would double the cost.
            imageTestsConfiguration={"imageTestsEnabled": False},
            enhancedImageMetadataEnabled=True,
            clientToken=f"{place.recipe_name}-{now:%Y%m%d%H%M%S}-image",
        )["imageBuildVersionArn"]
        image = _follow(builder, image_arn=image_arn, on_progress=on_progress, timeout_s=timeout_s)
    except (ImageBuildFailed, *aws.aws_errors()) as exc:
        left = _clean_up(builder, image_arn=image_arn, recipe_arn=recipe_arn)
        remains = f" Left behind: {'; '.join(left)}." if left else " Nothing is left running."
        if isinstance(exc, ImageBuildFailed):
            raise ImageBuildFailed(f"{exc}{remains}") from None
        raise ImageBuildFailed(f"{aws.call_failed(f'build the image of {version}', exc)}{remains}") from exc
    amis = [ami for ami in image.get("outputResources", {}).get("amis", []) if ami.get("region") == place.region]
    if not amis:
        _clean_up(builder, image_arn=None, recipe_arn=recipe_arn)
        raise ImageBuildFailed(f"Image {image_arn} is AVAILABLE but has no AMI in {place.region}.")
    previous = image_publish(place=place, image_id=amis[0]["image"], release=version, parent=parent)
    return Baked(
        image_id=amis[0]["image"], image_arn=image_arn, release=version, parent_image=parent, previous_image=previous
    )


def _follow(builder, *, image_arn: str, on_progress: Callable[[BuildProgress], None], timeout_s: float) -> dict:
    deadline = events.clock.monotonic() + timeout_s
    delay = events.clock.first_delay()
    last = None
    while True:
        image = builder.get_image(imageBuildVersionArn=image_arn)["image"]
        state = image.get("state", {})
        status = state.get("status", "PENDING")
        step = _current_step(builder, image_arn) if status not in {"PENDING", "AVAILABLE"} else ""
        progress = BuildProgress(status=status, step=step)
        if progress != last:
            on_progress(progress)
            last = progress
        if status == "AVAILABLE":
            return image
        if status in BUILD_DONE:
            at = f" at step {step}" if step else ""
            raise ImageBuildFailed(
                f"Image build {image_arn} ended {status}{at}: {state.get('reason') or 'no reason given'}."
            )
        if events.clock.monotonic() > deadline:
            at = f" at step {step}" if step else ""
            raise ImageBuildFailed(f"Image build {image_arn} was still {status}{at} after {timeout_s / 60:g} minutes.")
        events.clock.sleep(delay)
        delay = events.clock.next_delay(delay)


def image_publish(*, place: ImagePlace, image_id: str, release: str, parent: str) -> str | None:
    """Point the image parameter at the new AMI (the next launch uses it); returns the AMI it named before."""
    ssm = aws.client("ssm", region=place.region)
    previous = image_parameter_read(place.region, place.image_parameter)
    record = {
        "image": image_id,
        "release": release,
        "parent_image": parent,
        "baked_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        ssm.put_parameter(
            Name=place.image_parameter, Value=image_id, Type="String", DataType="aws:ec2:image", Overwrite=True
        )
        ssm.put_parameter(
            Name=place.image_release_parameter, Value=json.dumps(record, sort_keys=True), Type="String", Overwrite=True
        )
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"write {place.image_parameter}", exc) from exc
    return previous


def image_parameter_read(region: str, name: str) -> str | None:
    """A parameter's value, None when it does not exist. GetParameters answers a missing name without an error."""
    ssm = aws.client("ssm", region=region)
    try:
        found = ssm.get_parameters(Names=[name])["Parameters"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read {name}", exc) from exc
    return found[0]["Value"] if found else None


def image_parameter_for_stack(*, target: Target) -> str | None:
    """The image parameter deploy_stack passes to the app stack as AmiParameter, when a bake has written it; None
    keeps the template's default, the public Amazon Linux 2023 parameter."""
    name = image_parameter_name(project=target.settings.project, env=target.env)
    return name if image_parameter_read(target.region, name) else None


@dataclass(frozen=True)
class ImageAge:
    """The baked image against the live release, for preflight."""

    release: str | None  # the live release (release parameter)
    image: str | None  # the AMI id of the latest bake
    image_release: str | None  # the release baked into it
    baked_at: str | None
    warning: str | None  # one sentence when new instances will install the release at boot; None when current


def image_age_check(*, target: Target) -> ImageAge:
    """Whether the image new instances launch from is older than the live release (it then pays the release's
    install at every cold boot). `target` is the app stack's (deploy.target_resolve(stack="app", env=...))."""
    ssm = aws.client("ssm", region=target.region)
    project = target.settings.project
    release, released_at = None, None
    try:
        parameter = ssm.get_parameter(Name=f"/{project}/{target.env}/release")["Parameter"]
        release = json.loads(parameter["Value"]).get("version")
        released_at = parameter.get("LastModifiedDate")
    except aws.aws_errors() as exc:
        if aws.error_code(exc) != "ParameterNotFound":
            raise aws.call_failed(f"read /{project}/{target.env}/release", exc) from exc
    except ValueError:
        release = None
    raw = image_parameter_read(target.region, image_release_parameter_name(project=project, env=target.env))
    record = json.loads(raw) if raw else {}
    image, image_release, baked_at = record.get("image"), record.get("release"), record.get("baked_at")
    bake = f"`manage.py bake_image --env {target.env} --release {release}`"
    if release is None:
        warning = None
    elif not image:
        warning = (
            f"No baked image for {target.env}: every new instance installs packages and release {release} at boot "
            f"(the public image). Bake one: {bake}."
        )
    elif image_release != release:
        older = ""
        if baked_at and released_at and datetime.fromisoformat(baked_at) < released_at:
            older = f", baked {baked_at} before the release was set"
        warning = (
            f"The baked image {image} holds release {image_release}{older}; the live release is {release}: new "
            f"instances install it at boot. Bake it: {bake}."
        )
    else:
        warning = None
    return ImageAge(release=release, image=image, image_release=image_release, baked_at=baked_at, warning=warning)
