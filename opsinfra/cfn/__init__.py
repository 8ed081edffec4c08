"""The shop's CloudFormation, built with troposphere: one module per part, one builder per stack.

Nothing is built at import time, and nothing outside this package imports troposphere: app instances do not
install it (requirements/base.txt).
"""

import json

STACK_DESCRIPTIONS = {
    "bootstrap": "shop bootstrap: artifacts bucket, CloudFormation execution role, GitHub OIDC deploy roles",
    "app": "shop: Black-Friday-ready e-commerce stack (VPC, ALB, app instances, RDS Proxy, Redis, CloudFront)",
    "edge": "shop edge (us-east-1): CLOUDFRONT web ACL, certificate, CloudFront and WAF alarms",
    "loadgen": "shop loadgen: a locust master and workers in their own VPC, bounded in size and time",
    "image": "shop image: EC2 Image Builder components and builder infrastructure for the baked app image",
}


def build_template(stack: str, settings):
    """The troposphere Template of one stack ("bootstrap", "app", "edge" or "image") for these StackSettings."""
    from opsinfra.errors import StackConfigError, ops_requirements_check

    ops_requirements_check()
    from troposphere import Template

    if stack not in STACK_DESCRIPTIONS:
        raise StackConfigError(f"Unknown stack {stack!r}: choose one of {', '.join(STACK_DESCRIPTIONS)}.")
    template = Template(Description=STACK_DESCRIPTIONS[stack])
    template.set_version("2010-09-09")
    template.set_metadata({"Shop": {"Stack": stack, "Env": settings.env, "Region": settings.region}})
    if stack == "bootstrap":
        from opsinfra.cfn.bootstrap import build_bootstrap

        build_bootstrap(template, settings)
    elif stack == "app":
        from opsinfra.cfn.app import build_app

        build_app(template, settings)
    elif stack == "loadgen":
        from opsinfra.cfn.loadgen import build_loadgen

        build_loadgen(template, settings)
    elif stack == "image":
        from opsinfra.cfn.image import build_image

        build_image(template, settings)
    else:
        from opsinfra.cfn.edge_stack import build_edge

        build_edge(template, settings)
    if stack != "bootstrap":
        from opsinfra.cfn.common import bound_roles

        bound_roles(template, project=settings.project)
    return template


def template_dict(template) -> dict:
    return template.to_dict()


def render_json(template) -> str:
    """What is committed to templates_cfn/: sorted keys, indent 2, one trailing newline."""
    return json.dumps(template_dict(template), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def compact_json(template) -> str:
    """What is uploaded and sized against CloudFormation's 51,200-byte TemplateBody limit."""
    return json.dumps(template_dict(template), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
