"""Synthesizing the committed templates and checking that templates_cfn/ matches the code."""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from opsinfra.stacks import stack_settings

# CloudFormation accepts at most this many bytes inline (TemplateBody); larger templates go through S3.
TEMPLATE_BODY_LIMIT = 51_200
TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates_cfn"
# (stack, env) of every committed template, synthesized for the default region.
COMMITTED = (
    ("bootstrap", "production"),
    ("app", "production"),
    ("app", "staging"),
    ("edge", "production"),
    ("loadgen", "staging"),
    ("image", "production"),
)


@dataclass(frozen=True)
class Synthesized:
    stack: str
    env: str
    region: str
    text: str  # the file's content: indented JSON, or YAML
    compact_size: int
    resource_count: int

    @property
    def over_limit(self) -> bool:
        return self.compact_size > TEMPLATE_BODY_LIMIT

    def summary(self) -> str:
        verdict = (
            "over the 51,200-byte TemplateBody limit: deploy_stack stages it in the artifacts bucket (TemplateURL)"
            if self.over_limit
            else "within the 51,200-byte TemplateBody limit"
        )
        return f"{self.resource_count} resources, {self.compact_size:,} bytes compact, {verdict}"


def template_path(stack: str, env: str, fmt: str = "json") -> Path:
    return TEMPLATES_DIR / f"{stack}-{env}.{fmt}"


def template_synth(*, stack: str, env: str, region: str | None = None, fmt: str = "json") -> Synthesized:
    """Raises opsinfra.errors.StackConfigError for settings that cannot be built."""
    from opsinfra.cfn import build_template, compact_json, render_json

    stack_config = stack_settings(stack=stack, env=env, region=region)
    template = build_template(stack, stack_config)
    # Long form only: the local emulator and some tools do not read YAML short tags (!Ref, !Sub).
    text = render_json(template) if fmt == "json" else template.to_yaml(long_form=True)
    return Synthesized(
        stack=stack,
        env=env,
        region=stack_config.region,
        text=text,
        compact_size=len(compact_json(template).encode()),
        resource_count=len(template.resources),
    )


def templates_drifted() -> list[Path]:
    """Committed templates that differ from (or are missing next to) what the code generates."""
    drifted = []
    for stack, env in COMMITTED:
        path = template_path(stack, env)
        expected = template_synth(stack=stack, env=env).text
        if not path.exists() or path.read_text() != expected:
            drifted.append(path)
    return drifted
