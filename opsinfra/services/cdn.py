"""CloudFront invalidations for the shop distribution."""

import uuid
from dataclasses import dataclass

from opsinfra import aws
from opsinfra.errors import DeployFailed, DistributionNotFound, OpsError
from opsinfra.services import events, stacks

DEFAULT_PATHS = ("/api/products*",)


@dataclass(frozen=True)
class Invalidation:
    id: str
    distribution_id: str
    status: str
    paths: tuple[str, ...]


def distribution_id_find(*, stack_name: str, outputs_file: str | None = None) -> str:
    """DistributionId from the app stack's outputs file, which deploy_stack writes."""
    path = stacks.outputs_path(stack_name=stack_name, path=outputs_file)
    outputs = stacks.outputs_read(path=path)
    if outputs is None:
        raise DistributionNotFound(
            f"No outputs file at {path}: deploy the app stack with deploy_stack first, or pass --distribution-id."
        )
    if not outputs.get("DistributionId"):
        raise DistributionNotFound(f"The outputs file {path} has no DistributionId: pass --distribution-id.")
    return outputs["DistributionId"]


def cdn_purge(*, distribution_id: str, paths: list[str] | tuple[str, ...] = DEFAULT_PATHS) -> Invalidation:
    """Invalidate `paths`; each call is a new invalidation (unique CallerReference), even for the same paths."""
    bad = [path for path in paths if not path.startswith("/")]
    if bad:
        raise OpsError(f"CloudFront paths start with '/': {bad[0]!r} does not.")
    cloudfront = aws.client("cloudfront")
    try:
        raw = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": list(paths)},
                "CallerReference": f"shop-{uuid.uuid4().hex}",
            },
        )["Invalidation"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) == "NoSuchDistribution":
            raise DistributionNotFound(f"CloudFront has no distribution {distribution_id}.") from exc
        raise aws.call_failed(f"invalidate paths on {distribution_id}", exc) from exc
    return Invalidation(id=raw["Id"], distribution_id=distribution_id, status=raw["Status"], paths=tuple(paths))


def cdn_wait(*, invalidation: Invalidation, timeout_s: float = 900) -> Invalidation:
    """Poll until the invalidation completes. The emulator answers COMPLETED, AWS Completed: compare without case."""
    cloudfront = aws.client("cloudfront")
    deadline = events.clock.monotonic() + timeout_s
    delay = events.clock.first_delay()
    status = invalidation.status
    while status.lower() != "completed":
        if events.clock.monotonic() > deadline:
            raise DeployFailed(
                f"Invalidation {invalidation.id} is still {status} after {timeout_s:g} s; it goes on in CloudFront."
            )
        events.clock.sleep(delay)
        delay = events.clock.next_delay(delay)
        try:
            status = cloudfront.get_invalidation(DistributionId=invalidation.distribution_id, Id=invalidation.id)[
                "Invalidation"
            ]["Status"]
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"read invalidation {invalidation.id}", exc) from exc
    return Invalidation(
        id=invalidation.id, distribution_id=invalidation.distribution_id, status=status, paths=invalidation.paths
    )
