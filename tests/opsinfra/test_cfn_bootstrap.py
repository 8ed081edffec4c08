"""The bootstrap stack: artifacts bucket, and GitHub OIDC roles that trust one subject each and list their actions."""

import pytest

from tests.opsinfra.cfn_cache import template

DEPLOY_ACTIONS = {
    "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:CancelUpdateStack",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:SetStackPolicy",
    "cloudformation:DescribeStackEvents",
    "cloudformation:ListChangeSets",
    "iam:PassRole",
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "ssm:GetParameters",
    "ssm:PutParameter",
    "ssm:GetParameter",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:PutScheduledUpdateGroupAction",
    "autoscaling:DeleteScheduledAction",
    "autoscaling:DescribeInstanceRefreshes",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeScheduledActions",
    "ssm:DescribeDocument",
    "ssm:SendCommand",
    "ssm:GetCommandInvocation",
    "cloudfront:CreateInvalidation",
    "cloudfront:GetInvalidation",
    # bake_image (docs/image.md)
    "imagebuilder:CreateImageRecipe",
    "imagebuilder:DeleteImageRecipe",
    "imagebuilder:CreateImage",
    "imagebuilder:GetImage",
    "imagebuilder:CancelImageCreation",
    "imagebuilder:DeleteImage",
    "imagebuilder:ListWorkflowExecutions",
    "imagebuilder:ListWorkflowStepExecutions",
}


@pytest.fixture(scope="module")
def bootstrap():
    return template("bootstrap")


def _actions(role: dict) -> set[str]:
    actions = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            value = statement["Action"]
            actions |= {value} if isinstance(value, str) else set(value)
    return actions


def _subject(role: dict) -> dict:
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    conditions = statement["Condition"]
    assert set(conditions) == {"StringEquals"}  # never StringLike: no wildcard subjects
    assert conditions["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    return conditions["StringEquals"]["token.actions.githubusercontent.com:sub"]


def test_deploy_role_trusts_only_the_production_environment(bootstrap):
    subject = _subject(bootstrap["Resources"]["BootstrapDeployRole"])
    assert subject["Fn::Sub"][0] == "repo:${Repository}:environment:production"
    assert subject["Fn::Sub"][1] == {"Repository": {"Ref": "GitHubRepository"}}
    assert bootstrap["Parameters"]["GitHubRepository"]["Default"] == "example/shop"


def test_preview_role_trusts_only_pull_requests(bootstrap):
    subject = _subject(bootstrap["Resources"]["BootstrapPreviewRole"])
    assert subject["Fn::Sub"][0] == "repo:${Repository}:pull_request"


def test_deploy_role_lists_exactly_its_actions(bootstrap):
    assert _actions(bootstrap["Resources"]["BootstrapDeployRole"]) == DEPLOY_ACTIONS


def test_preview_role_cannot_execute(bootstrap):
    actions = _actions(bootstrap["Resources"]["BootstrapPreviewRole"])
    assert actions == {
        "cloudformation:CreateChangeSet",
        "cloudformation:DeleteChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:DescribeStacks",
        "cloudformation:GetTemplate",
        "cloudformation:ListChangeSets",
        "s3:PutObject",
        "s3:GetObject",
        "ssm:GetParameters",
    }


def test_no_role_has_administrator_access_or_a_star_action(bootstrap):
    for name, resource in bootstrap["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        assert "AdministratorAccess" not in str(resource["Properties"].get("ManagedPolicyArns", [])), name
        assert "*" not in _actions(resource), name
        assert all(not action.endswith(":*") or name == "BootstrapExecutionRole" for action in _actions(resource))


def test_pass_role_only_to_cloudformation(bootstrap):
    statements = bootstrap["Resources"]["BootstrapDeployRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    (passing,) = [s for s in statements["Statement"] if s["Action"] == "iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": ["BootstrapExecutionRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}


def test_oidc_provider_created_only_when_none_is_given(bootstrap):
    provider = bootstrap["Resources"]["BootstrapGitHubOidcProvider"]
    assert provider["Condition"] == "BootstrapCreateOidcProvider"
    assert bootstrap["Parameters"]["OidcProviderArn"]["Default"] == ""


def test_artifacts_bucket_versioned_private_tls_only(bootstrap):
    bucket = bootstrap["Resources"]["BootstrapArtifactsBucket"]
    properties = bucket["Properties"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert properties["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    policy = bootstrap["Resources"]["BootstrapArtifactsBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
