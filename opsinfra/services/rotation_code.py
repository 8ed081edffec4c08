"""The rotation function's code: deploy_stack puts its bundle in the artifacts bucket before a change set runs."""

from opsinfra import aws
from opsinfra.errors import DeployFailed
from opsinfra.services.changesets import ChangeSet

PARAMETER = "RotationCodeKey"


def rotation_code_stage(*, change_set: ChangeSet, region: str) -> str | None:
    """Upload the bundle this checkout builds to the key the change set names (its RotationCodeKey), so Lambda finds
    it when CloudFormation creates or updates the function; return its S3 URL. None when the stack has no rotation
    function. A change set made from other code names another bundle: DeployFailed, nothing uploaded."""
    from opsinfra.rotation.bundle import rotation_bundle

    key = change_set.parameters.get(PARAMETER)
    if not key:
        return None
    built = rotation_bundle()
    if key != built.key:
        raise DeployFailed(
            f"Change set {change_set.name} names the rotation function bundle {key}, and this checkout builds "
            f"{built.key}: create the change set again from this checkout."
        )
    bucket = change_set.parameters.get("ArtifactsBucketName")
    if not bucket:
        raise DeployFailed(f"Change set {change_set.name} names no ArtifactsBucketName to put {key} in.")
    try:
        aws.client("s3", region=region).put_object(
            Bucket=bucket, Key=key, Body=built.data, ContentType="application/zip"
        )
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"upload the rotation function to s3://{bucket}/{key}", exc) from exc
    return f"s3://{bucket}/{key}"
