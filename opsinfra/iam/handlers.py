"""The permissions CloudFormation's resource handlers need, per resource type: the dated table handlers.json.

The table is copied from the `handlers` section of the CloudFormation resource provider schemas that cfn-lint ships
(cfnlint/data/schemas, the us-east-1 provider list), the registry schemas AWS publishes; `python -m
opsinfra.iam.handlers` rewrites it from the installed cfn-lint, and tests/opsinfra/test_iam_handlers.py fails when
the two disagree (a cfn-lint upgrade brings newer schemas: rewrite the table and commit it with the new date).
"""

import argparse
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("handlers.json")
# The handlers CloudFormation runs on a stack's resources: read answers GetAtt and follows every create and update.
OPERATIONS = ("create", "read", "update", "delete")
# Types a change already in review adds to the app stack; listed so their rows are there when it merges.
EXPECTED_TYPES = (
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::SecretsManager::ResourcePolicy",
)


@cache
def table() -> dict:
    return json.loads(TABLE.read_text())


def permissions(resource_type: str) -> dict[str, list[str]]:
    """operation → IAM actions for one type; KeyError names a type the table lacks."""
    try:
        return table()["types"][resource_type]
    except KeyError:
        raise KeyError(
            f"{resource_type} is not in {TABLE.name}: add it with `python -m opsinfra.iam.handlers --type "
            f"{resource_type}` and commit the table."
        ) from None


def schema_handlers(resource_type: str) -> dict[str, list[str]]:
    """The handler permissions of the installed cfn-lint's schema for the type (us-east-1)."""
    import cfnlint

    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    index = json.loads((schemas / "providers" / "us-east-1.json").read_text())
    schema = json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {operation: sorted(set(handlers.get(operation, {}).get("permissions", []))) for operation in OPERATIONS}


def source() -> str:
    from importlib.metadata import version

    return (
        f"CloudFormation resource provider schemas (registry), `handlers` section, as shipped in cfn-lint "
        f"{version('cfn-lint')} (cfnlint/data/schemas/resources, us-east-1 provider list)"
    )


def table_build(types: list[str]) -> dict:
    return {
        "source": source(),
        "retrieved": datetime.now(UTC).date().isoformat(),
        "operations": list(OPERATIONS),
        "types": {resource_type: schema_handlers(resource_type) for resource_type in sorted(set(types))},
    }


def template_types() -> set[str]:
    """Resource types of the app stack (both presets), the edge, loadgen and image stacks, as opsinfra.cfn builds
    them."""
    from opsinfra.iam.pipeline import synthesized

    found = set()
    for stack, env in (
        ("app", "production"),
        ("app", "staging"),
        ("edge", "production"),
        ("loadgen", "staging"),
        ("image", "production"),
    ):
        found |= {resource["Type"] for resource in synthesized(stack, env=env)["Resources"].values()}
    return found


def main() -> None:
    import django

    parser = argparse.ArgumentParser(description="Rewrite opsinfra/iam/handlers.json from cfn-lint's schemas.")
    parser.add_argument("--type", action="append", default=[], help="Also a type the templates do not use yet.")
    extra = parser.parse_args().type
    django.setup()
    existing = set(table()["types"]) if TABLE.exists() else set()
    data = table_build(sorted(template_types() | existing | set(EXPECTED_TYPES) | set(extra)))
    TABLE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"{TABLE}: {len(data['types'])} types from {data['source']}")


if __name__ == "__main__":
    main()
