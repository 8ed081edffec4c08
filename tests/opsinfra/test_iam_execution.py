"""The CloudFormation execution role against what the resource handlers of the app, edge and loadgen stacks need
(the dated table opsinfra/iam/handlers.json), and the permissions boundary every role those stacks create must
carry."""

import pytest

from opsinfra.iam import execution, handlers, pipeline
from opsinfra.iam import roles as role_model
from opsinfra.iam.policy import Request, action_matches, evaluate, statements

ACCOUNT = "123456789012"
STACKS = (
    ("app", "production"),
    ("app", "staging"),
    ("edge", "production"),
    ("loadgen", "staging"),
    ("image", "production"),
)
# Grants of the execution role no handler need asks for, each with its reason.
EXCEPTIONS: dict[str, str] = {}


@pytest.fixture(scope="module")
def bootstrap():
    return pipeline.synthesized("bootstrap")


@pytest.fixture(scope="module")
def execution_role(bootstrap):
    place = role_model.Place(account=ACCOUNT, region="us-east-1", stack_name="shop-bootstrap")
    return role_model.roles(bootstrap, place)[pipeline.EXECUTION_ROLE], role_model.managed_policies(bootstrap, place)


@pytest.fixture(scope="module")
def stack_templates():
    return {(stack, env): pipeline.synthesized(stack, env=env) for stack, env in STACKS}


def _place(stack: str, env: str) -> role_model.Place:
    return role_model.Place(account=ACCOUNT, region="us-east-1", stack_name=f"shop-{stack}-{env}")


def test_handler_table_is_dated_sourced_and_matches_the_installed_schemas():
    table = handlers.table()

    assert table["retrieved"] >= "2026-12-06" and "cfn-lint" in table["source"]
    assert table["source"] == handlers.source(), "cfn-lint changed: run `python -m opsinfra.iam.handlers`"
    for resource_type, listed in table["types"].items():
        assert listed == handlers.schema_handlers(resource_type), resource_type


def test_handler_table_has_every_type_the_templates_use(stack_templates):
    used = {resource["Type"] for template in stack_templates.values() for resource in template["Resources"].values()}

    assert used <= set(handlers.table()["types"]), "run `python -m opsinfra.iam.handlers` and commit the table"


def test_execution_role_allows_every_handler_need(execution_role, stack_templates):
    role, _ = execution_role
    needs = [need for (stack, env), template in stack_templates.items()
             for need in execution.stack_needs(template, _place(stack, env))]  # fmt: skip

    refused = [
        f"{need.describe()}: {decision.reason} {decision.statement}".rstrip()
        for need in needs
        if not (
            decision := evaluate(Request(need.action, need.resource, need.context), identity=list(role.policies))
        ).allowed
    ]

    assert len(needs) > 300
    assert refused == []


def test_execution_role_grants_nothing_no_handler_needs(execution_role, stack_templates):
    role, _ = execution_role
    needed = {need.action for (stack, env), template in stack_templates.items()
              for need in execution.stack_needs(template, _place(stack, env))}  # fmt: skip

    unused = [
        f"{statement.get('Sid')}: {pattern}"
        for document in role.policies
        for statement in statements(document)
        if statement.get("Effect") == "Allow"
        for pattern in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        if not any(action_matches(pattern, action) for action in needed) and pattern not in EXCEPTIONS
    ]

    assert unused == []


def test_execution_role_has_no_service_wildcard_and_cannot_remove_the_boundary(execution_role):
    role, _ = execution_role
    actions = [action for document in role.policies for statement in statements(document)
               if statement.get("Effect") == "Allow" for action in
               ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])]  # fmt: skip
    shop_role = f"arn:aws:iam::{ACCOUNT}:role/shop-app-production-ComputeInstanceRole-X"

    assert not [action for action in actions if action.endswith(":*") or action == "*"]
    for action in ("iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion", "iam:AttachUserPolicy"):
        assert not evaluate(Request(action, "*"), identity=list(role.policies)).allowed, action
    # A role without the boundary, or with another one, cannot be created.
    assert not evaluate(Request("iam:CreateRole", shop_role), identity=list(role.policies)).allowed
    wide = {"iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/other"}
    assert not evaluate(Request("iam:CreateRole", shop_role, wide), identity=list(role.policies)).allowed
    # Nor one outside the project's names, nor may a role be passed to a service the stacks do not use.
    passing = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert not evaluate(Request("iam:PassRole", shop_role, passing), identity=list(role.policies)).allowed
    # Lambda gets the rotation function's role only; functions are made and changed under the project's names only.
    rotation_role = f"arn:aws:iam::{ACCOUNT}:role/shop-app-production-DatabaseRotationRole-X"
    assert evaluate(Request("iam:PassRole", rotation_role, passing), identity=list(role.policies)).allowed
    function = "arn:aws:lambda:us-east-1:{}:function:{}"
    for action in ("lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:AddPermission"):
        assert evaluate(Request(action, function.format(ACCOUNT, "shop-app-production-db-rotation")),
                        identity=list(role.policies)).allowed  # fmt: skip
        assert not evaluate(Request(action, function.format(ACCOUNT, "other-function")),
                            identity=list(role.policies)).allowed  # fmt: skip


def test_every_stack_role_carries_the_bootstrap_boundary_and_stays_inside_it(execution_role, stack_templates):
    _, managed = execution_role
    boundary_arn = f"arn:aws:iam::{ACCOUNT}:policy/shop-role-boundary"
    assert boundary_arn in managed
    outside = []
    for (stack, env), template in stack_templates.items():
        # Every role is one of the template's own resources: no transform or nested stack creates roles unseen.
        assert "Transform" not in template
        assert not [
            kind
            for resource in template["Resources"].values()
            if (kind := resource["Type"]) == "AWS::CloudFormation::Stack" or kind.startswith("AWS::Serverless")
        ]
        created = role_model.roles(template, _place(stack, env), known_policies=managed)
        assert set(created) == {name for name, resource in template["Resources"].items()
                                if resource["Type"] == "AWS::IAM::Role"}  # fmt: skip
        for role in created.values():
            assert role.boundary_arn == boundary_arn, role.logical_id
            boundary = role_model.boundary_documents(role, managed)
            for document in role.policies:
                for statement in statements(document):
                    actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
                    resource = statement["Resource"] if isinstance(statement["Resource"], str) else (
                        statement["Resource"][0])  # fmt: skip
                    for action in actions:
                        # The boundary alone: does it let the role do what its own policy grants?
                        decision = evaluate(Request(action, resource), identity=boundary)
                        if not decision.allowed:
                            outside.append(f"{stack} {role.logical_id}: {action} ({decision.reason})")

    assert outside == []
