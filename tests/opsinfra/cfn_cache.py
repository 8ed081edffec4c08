"""Templates synthesized once per test session (troposphere and cfn-lint are slow enough to matter)."""

import json
from functools import cache

DOMAIN = "shop.example.com"
ZONE = "Z0123456789ABCDEFGHIJ"


@cache
def settings_for(stack: str, env: str = "production", region: str | None = None, domain: bool = False):
    from opsinfra.stacks import stack_settings

    settings = stack_settings(stack=stack, env=env, region=region)
    return settings.replace(domain=DOMAIN, hosted_zone_id=ZONE) if domain else settings


@cache
def compact(stack: str, env: str = "production", region: str | None = None, domain: bool = False) -> str:
    from opsinfra.cfn import build_template, compact_json

    return compact_json(build_template(stack, settings_for(stack, env, region, domain)))


def template(stack: str, env: str = "production", region: str | None = None, domain: bool = False) -> dict:
    """A fresh dict each call, so a test cannot change what the next one reads."""
    return json.loads(compact(stack, env, region, domain))


# Every shape a template can take: each committed one, plus eu-west-1 (edge parts as parameters) and a domain.
VARIANTS = [
    ("bootstrap", "production", None, False),
    ("app", "production", None, False),
    ("app", "staging", None, False),
    ("edge", "production", None, False),
    ("app", "production", None, True),
    ("app", "production", "eu-west-1", False),
    ("app", "production", "eu-west-1", True),
    ("edge", "production", None, True),
    ("loadgen", "staging", None, False),
    ("loadgen", "production", "eu-west-1", False),
    ("image", "production", None, False),
]


def variant_id(variant) -> str:
    stack, env, region, domain = variant
    return f"{stack}-{env}-{region or 'us-east-1'}{'-domain' if domain else ''}"


def resources(body: dict, kind: str) -> dict[str, dict]:
    return {name: resource for name, resource in body["Resources"].items() if resource["Type"] == kind}


def lint_body(body: str, regions: tuple[str, ...]) -> list[str]:
    """cfn-lint's findings (errors, warnings and informational) for one template; runs in a worker process."""
    from cfnlint.api import lint

    return [
        f"{match.rule.id} {match.message} at {'/'.join(map(str, match.path))}"
        for match in lint(body, regions=list(regions))
    ]


@cache
def lint_all() -> dict[str, list[str]]:
    """Every variant linted once, two at a time (CI has two cores): the committed ones for both regions."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = {}
    for variant in VARIANTS:
        region = variant[2]
        regions = (region,) if region else ("us-east-1", "eu-west-1")
        jobs[variant_id(variant)] = (compact(*variant), regions)
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(lint_body, body, regions) for name, (body, regions) in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
