"""The policy evaluator on its own: effects, wildcards, Not* elements, conditions and the boundary."""

import pytest

from opsinfra.iam.policy import UNKNOWN_RESOURCE, Request, UnsupportedCondition, evaluate

BUCKET = "arn:aws:s3:::shop-artifacts"


def policy(*statements):
    return [{"Version": "2012-10-17", "Statement": list(statements)}]


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_evaluate_allows_an_exact_match_and_refuses_anything_else():
    documents = policy(allow("s3:GetObject", f"{BUCKET}/releases/*"))

    assert evaluate(Request("s3:GetObject", f"{BUCKET}/releases/v1.tar.gz"), identity=documents).allowed
    refused = evaluate(Request("s3:PutObject", f"{BUCKET}/releases/v1.tar.gz"), identity=documents)
    assert (refused.allowed, refused.reason) == (False, "no allow")
    assert not evaluate(Request("s3:GetObject", f"{BUCKET}/templates/a.json"), identity=documents).allowed


def test_evaluate_action_is_case_insensitive_resource_is_not():
    documents = policy(allow("S3:getobject", f"{BUCKET}/Releases/*"))

    assert evaluate(Request("s3:GetObject", f"{BUCKET}/Releases/x"), identity=documents).allowed
    assert not evaluate(Request("s3:GetObject", f"{BUCKET}/releases/x"), identity=documents).allowed


@pytest.mark.parametrize(
    ("pattern", "action", "allowed"),
    [
        ("ec2:Describe*", "ec2:DescribeVpcs", True),
        ("ec2:Describe*", "ec2:CreateVpc", False),
        ("ssm:Get?arameter", "ssm:GetParameter", True),
        ("ssm:Get?arameter", "ssm:GetParameters", False),
        ("*", "iam:CreateRole", True),
    ],
)
def test_evaluate_action_wildcards(pattern, action, allowed):
    assert evaluate(Request(action, "*"), identity=policy(allow(pattern))).allowed is allowed


def test_evaluate_resource_wildcard_spans_colons_and_slashes_and_nothing_else_is_special():
    documents = policy(
        allow(
            "autoscaling:StartInstanceRefresh", "arn:aws:autoscaling:*:1:autoScalingGroup:*:autoScalingGroupName/shop-*"
        )
    )

    group = "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:0-0:autoScalingGroupName/shop-app-asg"
    assert evaluate(Request("autoscaling:StartInstanceRefresh", group), identity=documents).allowed
    other = group.replace("shop-app", "other")
    assert not evaluate(Request("autoscaling:StartInstanceRefresh", other), identity=documents).allowed
    brackets = policy(allow("s3:GetObject", f"{BUCKET}/[ab]"))
    assert not evaluate(Request("s3:GetObject", f"{BUCKET}/a"), identity=brackets).allowed
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/[ab]"), identity=brackets).allowed


def test_evaluate_explicit_deny_wins_over_any_allow():
    documents = policy(
        allow("iam:*", "*"),
        {"Sid": "KeepBoundary", "Effect": "Deny", "Action": "iam:DeleteRolePermissionsBoundary", "Resource": "*"},
    )

    decision = evaluate(Request("iam:DeleteRolePermissionsBoundary", "arn:aws:iam::1:role/shop-x"), identity=documents)

    assert (decision.allowed, decision.reason, decision.statement) == (False, "explicit deny", "KeepBoundary")
    assert evaluate(Request("iam:GetRole", "arn:aws:iam::1:role/shop-x"), identity=documents).allowed


def test_evaluate_not_action_and_not_resource():
    documents = policy(
        {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]},
    )

    assert evaluate(Request("ec2:RunInstances", "*"), identity=documents).allowed
    assert not evaluate(Request("iam:CreateRole", "*"), identity=documents).allowed
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/x"), identity=documents).allowed
    assert not evaluate(Request("s3:GetObject", "arn:aws:s3:::elsewhere/x"), identity=documents).allowed


def test_evaluate_unknown_resource_needs_resource_star_and_meets_every_deny():
    scoped = policy(allow("ec2:CreateVpc", "arn:aws:ec2:*:1:vpc/*"))
    star = policy(allow("ec2:CreateVpc", "*"))
    not_resource = policy({"Effect": "Allow", "Action": "ec2:CreateVpc", "NotResource": "arn:aws:ec2:*:1:vpc/x"})
    denied = policy(allow("ec2:*"), {"Effect": "Deny", "Action": "ec2:*", "NotResource": "arn:aws:ec2:*:1:vpc/x"})

    assert not evaluate(Request("ec2:CreateVpc", UNKNOWN_RESOURCE), identity=scoped).allowed
    assert evaluate(Request("ec2:CreateVpc", UNKNOWN_RESOURCE), identity=star).allowed
    assert not evaluate(Request("ec2:CreateVpc", UNKNOWN_RESOURCE), identity=not_resource).allowed
    assert evaluate(Request("ec2:CreateVpc", UNKNOWN_RESOURCE), identity=denied).reason == "explicit deny"


def test_evaluate_pass_role_condition_on_the_service_it_is_passed_to():
    documents = policy(
        allow("iam:PassRole", "arn:aws:iam::1:role/shop-*",
              Condition={"StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "rds.amazonaws.com"]}})
    )  # fmt: skip
    role = "arn:aws:iam::1:role/shop-app-Instance"

    assert evaluate(Request("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}), identity=documents)
    lambda_ = evaluate(
        Request("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}), identity=documents
    )
    assert not lambda_.allowed
    # A missing key makes StringEquals false.
    assert not evaluate(Request("iam:PassRole", role), identity=documents).allowed


def test_evaluate_create_role_only_with_the_boundary():
    boundary = "arn:aws:iam::1:policy/shop-role-boundary"
    documents = policy(allow("iam:CreateRole", "arn:aws:iam::1:role/shop-*",
                             Condition={"StringEquals": {"iam:PermissionsBoundary": boundary}}))  # fmt: skip
    role = "arn:aws:iam::1:role/shop-app-Instance"

    assert evaluate(Request("iam:CreateRole", role, {"iam:permissionsboundary": boundary}), identity=documents).allowed
    assert not evaluate(Request("iam:CreateRole", role), identity=documents).allowed
    other = {"iam:PermissionsBoundary": "arn:aws:iam::1:policy/wide-open"}
    assert not evaluate(Request("iam:CreateRole", role, other), identity=documents).allowed


@pytest.mark.parametrize(
    ("condition", "context", "allowed"),
    [
        ({"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}, {"aws:RequestedRegion": "us-east-1"}, True),
        ({"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}, {}, True),
        ({"StringLike": {"s3:prefix": "releases/*"}}, {"s3:prefix": "releases/v1"}, True),
        ({"StringNotLike": {"s3:prefix": "releases/*"}}, {"s3:prefix": "releases/v1"}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
        ({"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
        ({"Null": {"aws:TokenIssueTime": "false"}}, {}, False),
        ({"StringEqualsIfExists": {"iam:PassedToService": "ec2.amazonaws.com"}}, {}, True),
        (
            {"ArnLike": {"iam:PolicyARN": "arn:aws:iam::aws:policy/*"}},
            {"iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
            True,
        ),
        (
            {"ForAnyValue:StringEquals": {"aws:CalledVia": "cloudformation.amazonaws.com"}},
            {"aws:CalledVia": ["athena.amazonaws.com", "cloudformation.amazonaws.com"]},
            True,
        ),
        (
            {"ForAllValues:StringEquals": {"aws:TagKeys": ["Project", "Env"]}},
            {"aws:TagKeys": ["Project", "Owner"]},
            False,
        ),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["Project", "Env"]}}, {}, True),
    ],
)
def test_evaluate_condition_operators(condition, context, allowed):
    documents = policy(allow("s3:ListBucket", BUCKET, Condition=condition))

    assert evaluate(Request("s3:ListBucket", BUCKET, context), identity=documents).allowed is allowed


def test_evaluate_unknown_condition_operator_is_an_error_not_a_guess():
    documents = policy(allow("s3:ListBucket", BUCKET, Condition={"DateGreaterThan": {"aws:CurrentTime": "2026"}}))

    with pytest.raises(UnsupportedCondition, match="DateGreaterThan"):
        evaluate(Request("s3:ListBucket", BUCKET), identity=documents)


def test_evaluate_boundary_intersects_and_its_deny_wins():
    identity = policy(allow(["secretsmanager:GetSecretValue", "iam:CreateRole"], "*"))
    boundary = policy(allow("secretsmanager:GetSecretValue"), {"Effect": "Deny", "Action": "iam:*", "Resource": "*"})
    narrow = policy(allow("logs:PutLogEvents"))

    assert evaluate(Request("secretsmanager:GetSecretValue", "*"), identity=identity, boundary=boundary).allowed
    assert evaluate(Request("iam:CreateRole", "*"), identity=identity, boundary=boundary).reason == (
        "boundary: explicit deny"
    )
    assert evaluate(Request("secretsmanager:GetSecretValue", "*"), identity=identity, boundary=narrow).reason == (
        "boundary: no allow"
    )
    # A boundary alone grants nothing.
    assert not evaluate(Request("logs:PutLogEvents", "*"), identity=identity, boundary=narrow).allowed
