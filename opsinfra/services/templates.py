"""Synthesize a stack's template, check it before anything reaches AWS, and stage a large one in S3."""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from opsinfra import aws
from opsinfra.errors import TemplateRejected

# CloudFormation takes at most 51,200 bytes inline (TemplateBody) and 1 MB from S3 (TemplateURL).
INLINE_LIMIT = 51_200
URL_LIMIT = 1_048_576


@dataclass(frozen=True)
class Template:
    stack: str
    body: str  # compact JSON: what is sized, uploaded and sent

    @property
    def data(self) -> dict:
        return json.loads(self.body)

    @property
    def size(self) -> int:
        return len(self.body.encode())

    @property
    def resources(self) -> dict[str, dict]:
        return self.data.get("Resources", {})

    @property
    def parameters(self) -> dict[str, dict]:
        return self.data.get("Parameters", {})

    @property
    def region(self) -> str | None:
        return self.data.get("Metadata", {}).get("Shop", {}).get("Region")


def template_build(*, stack: str, stack_settings) -> str:
    """Compact JSON of the stack's template: the same code path as `manage.py synth_stack`."""
    from opsinfra.cfn import build_template, compact_json

    return compact_json(build_template(stack, stack_settings))


def template_synthesize(*, stack: str, stack_settings) -> Template:
    return Template(stack=stack, body=template_build(stack=stack, stack_settings=stack_settings))


def template_check(*, template: Template, region: str) -> None:
    """Refuse a template made for another region, one over 1 MB, or one cfn-lint finds errors in."""
    if template.region and template.region != region:
        raise TemplateRejected(
            f"The {template.stack} template was synthesized for {template.region}, not {region}: "
            f"synthesize it for {region} (pass --region {template.region} to deploy where it belongs)."
        )
    if template.size > URL_LIMIT:
        raise TemplateRejected(
            f"The {template.stack} template is {template.size:,} bytes, over CloudFormation's limit of "
            f"{URL_LIMIT:,} bytes even from S3: split the stack."
        )
    errors = template_lint(template=template, region=region)
    if errors:
        first = errors[0]
        raise TemplateRejected(
            f"cfn-lint found {len(errors)} error(s) in the {template.stack} template, the first: {first}."
        )


def template_lint(*, template: Template, region: str) -> list[str]:
    """cfn-lint's errors (rules E*) for the region, one line each; warnings are the synth checks' business."""
    return list(_lint_errors(template.body, region))


@lru_cache(maxsize=8)
def _lint_errors(body: str, region: str) -> tuple[str, ...]:
    # Linting the app template takes seconds; the same body in the same region gives the same answer.
    import logging

    from cfnlint.api import lint

    # cfn-lint logs a transformed template (the app stack's AWS::SecretsManager transform) whole, at INFO.
    logging.getLogger("cfnlint").setLevel(logging.WARNING)

    return tuple(
        f"{match.rule.id} {match.message} ({'/'.join(str(part) for part in match.path)})"
        for match in lint(body, regions=[region])
        if match.rule.id.startswith("E")
    )


def url_threshold() -> int:
    return int(settings.OPSINFRA.get("TEMPLATE_URL_THRESHOLD", INLINE_LIMIT))


def template_needs_url(*, template: Template) -> bool:
    return template.size > url_threshold()


def template_upload(*, template: Template, bucket: str, stack_name: str, region: str) -> str:
    """Put the template in the artifacts bucket under its hash and return the TemplateURL CloudFormation reads."""
    digest = hashlib.sha256(template.body.encode()).hexdigest()
    key = f"templates/{stack_name}/{digest}.json"
    s3 = aws.client("s3", region=region)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=template.body.encode(), ContentType="application/json")
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"upload the template to s3://{bucket}/{key}", exc) from exc
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"
