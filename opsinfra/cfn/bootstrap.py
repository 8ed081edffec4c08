"""The bootstrap stack: artifacts bucket, CloudFormation execution role, GitHub OIDC provider and its two roles.

Deployed once per account and region by an administrator; every later deploy runs as the roles it creates.
"""

from troposphere import Equals, GetAtt, If, Output, Ref, Sub, Template, iam, s3

from opsinfra.cfn.common import checkov_skip, parameter, service_trust, stateful
from opsinfra.stacks import StackSettings

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# GitHub's OIDC certificate thumbprints; IAM no longer checks them for GitHub, but moto and older APIs want one.
GITHUB_THUMBPRINTS = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
# Services whose resources the app and edge stacks create. Each is a service prefix, never "*".
EXECUTION_SERVICES = (
    "acm",
    "autoscaling",
    "cloudfront",
    "cloudwatch",
    "ec2",
    "elasticache",
    "elasticloadbalancing",
    "kms",
    "logs",
    "rds",
    "route53",
    "secretsmanager",
    "sns",
    "ssm",
    "wafv2",
)
IAM_ROLE_ACTIONS = [
    "iam:AddRoleToInstanceProfile",
    "iam:AttachRolePolicy",
    "iam:CreateInstanceProfile",
    "iam:CreateRole",
    "iam:DeleteInstanceProfile",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:GetInstanceProfile",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:PassRole",
    "iam:PutRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
]
CHANGE_SET_READ = [
    "cloudformation:DescribeChangeSet",
    "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStacks",
    "cloudformation:GetTemplate",
    "cloudformation:ListChangeSets",
]


def _policy(name: str, *statements: dict) -> iam.Policy:
    return iam.Policy(PolicyName=name, PolicyDocument={"Version": "2012-10-17", "Statement": list(statements)})


def _allow(sid: str, actions, resource, **condition) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _github_trust(provider, repository: Ref, subject: str) -> dict:
    """Trust GitHub's OIDC tokens for exactly one subject of one repository."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC_HOST}:sub": Sub(f"repo:${{Repository}}:{subject}", Repository=repository),
                    }
                },
            }
        ],
    }


def build_bootstrap(t: Template, settings: StackSettings) -> None:
    project = settings.project
    repository = parameter(
        t,
        "GitHubRepository",
        default=settings.github_repo,
        AllowedPattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="OWNER/REPO whose GitHub Actions may deploy (environment production) and preview (pull requests).",
    )
    existing_provider = parameter(
        t,
        "OidcProviderArn",
        default="",
        description="ARN of the account's GitHub OIDC provider if one exists (one per account); empty: create it.",
    )
    t.add_condition("BootstrapCreateOidcProvider", Equals(Ref(existing_provider), ""))

    bucket = t.add_resource(
        s3.Bucket(
            "BootstrapArtifactsBucket",
            BucketName=Sub(f"{project}-artifacts-${{AWS::AccountId}}-${{AWS::Region}}"),
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                    )
                ]
            ),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
            ),
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    s3.LifecycleRule(
                        Id="expire-old-versions",
                        Status="Enabled",
                        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=30),
                        AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
                    )
                ]
            ),
        )
    )
    stateful(bucket, "Retain")
    checkov_skip(
        bucket,
        CKV_AWS_18="holds only templates and release bundles written by the deploy role; CloudTrail records access",
    )
    t.add_resource(
        s3.BucketPolicy(
            "BootstrapArtifactsBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [GetAtt(bucket, "Arn"), Sub(f"${{{bucket.title}.Arn}}/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        )
    )
    bucket_objects = Sub(f"${{{bucket.title}.Arn}}/*")
    shop_roles = Sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{project}-*")
    execution = t.add_resource(
        iam.Role(
            "BootstrapExecutionRole",
            AssumeRolePolicyDocument=service_trust("cloudformation.amazonaws.com"),
            Policies=[
                _policy(
                    "create-shop-stacks",
                    _allow("StackServices", [f"{service}:*" for service in EXECUTION_SERVICES], "*"),
                    # Roles the stacks create are named <stack name>-<logical id>-<suffix>: all start with the project.
                    _allow("StackRoles", IAM_ROLE_ACTIONS, [shop_roles,
                           Sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:instance-profile/{project}-*")]),
                    _allow("ServiceLinkedRoles", "iam:CreateServiceLinkedRole",
                           Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*")),
                    _allow("ReadArtifacts", "s3:GetObject", bucket_objects),
                ),
            ],
        )
    )  # fmt: skip
    checkov_skip(
        execution,
        CKV_AWS_107="CloudFormation creates the stacks' secrets; it never reads them",
        CKV_AWS_108="CloudFormation must describe and create resources whose ARNs do not exist before the deploy",
        CKV_AWS_109="CloudFormation manages the stacks' KMS keys and their policies",
        CKV_AWS_111="creating resources needs Resource * for services without resource-level create permissions",
    )
    provider = t.add_resource(
        iam.OIDCProvider(
            "BootstrapGitHubOidcProvider",
            Condition="BootstrapCreateOidcProvider",
            Url=GITHUB_OIDC_URL,
            ClientIdList=["sts.amazonaws.com"],
            ThumbprintList=GITHUB_THUMBPRINTS,
        )
    )
    provider_arn = If("BootstrapCreateOidcProvider", Ref(provider), Ref(existing_provider))
    stacks = Sub(f"arn:${{AWS::Partition}}:cloudformation:*:${{AWS::AccountId}}:stack/{project}-*/*")
    # The edge stack lives in us-east-1, so stack and distribution ARNs allow any region of the account.
    deploy = t.add_resource(
        iam.Role(
            "BootstrapDeployRole",
            AssumeRolePolicyDocument=_github_trust(provider_arn, Ref(repository), "environment:production"),
            Policies=[
                _policy(
                    "deploy",
                    _allow("ChangeSets", ["cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet",
                                          "cloudformation:DeleteChangeSet", "cloudformation:CancelUpdateStack",
                                          *CHANGE_SET_READ], stacks),
                    _allow("PassExecutionRole", "iam:PassRole", GetAtt(execution, "Arn"),
                           StringEquals={"iam:PassedToService": "cloudformation.amazonaws.com"}),
                    _allow("Artifacts", ["s3:PutObject", "s3:GetObject"], bucket_objects),
                    _allow("Release", ["ssm:PutParameter", "ssm:GetParameter"],
                           Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:parameter/{project}/*/release")),
                    _allow("InstanceRefresh", "autoscaling:StartInstanceRefresh",
                           Sub("arn:${AWS::Partition}:autoscaling:*:${AWS::AccountId}:autoScalingGroup:*:"
                               f"autoScalingGroupName/{project}-*")),
                    # Describe calls have no resource-level permissions.
                    _allow("Describe", ["autoscaling:DescribeInstanceRefreshes",
                                        "autoscaling:DescribeAutoScalingGroups", "ssm:GetCommandInvocation",
                                        "ssm:ListCommandInvocations"], "*"),
                    # deploy_app reads which parameters the migration document takes before it sends it.
                    _allow("MigrationDocument", "ssm:DescribeDocument",
                           Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:document/{project}-*-migrate")),
                    _allow("Migrations", "ssm:SendCommand", [
                        Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:document/{project}-*-migrate"),
                        Sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*"),
                    ]),
                    _allow("Invalidations", ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
                           Sub("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*")),
                )
            ],
        )
    )  # fmt: skip
    preview = t.add_resource(
        iam.Role(
            "BootstrapPreviewRole",
            AssumeRolePolicyDocument=_github_trust(provider_arn, Ref(repository), "pull_request"),
            Policies=[
                _policy(
                    "preview",
                    _allow("ChangeSets", ["cloudformation:CreateChangeSet", "cloudformation:DeleteChangeSet",
                                          *CHANGE_SET_READ], stacks),
                    _allow("ReadArtifacts", "s3:GetObject", bucket_objects),
                    _allow("ListArtifacts", "s3:ListBucket", GetAtt(bucket, "Arn")),
                )
            ],
        )
    )  # fmt: skip
    outputs = {
        "ArtifactsBucketName": (Ref(bucket), "Bucket for templates over 51,200 bytes and release bundles"),
        "CloudFormationExecutionRoleArn": (GetAtt(execution, "Arn"), "Role CloudFormation runs the shop stacks as"),
        "DeployRoleArn": (GetAtt(deploy, "Arn"), "Role GitHub Actions assumes from the production environment"),
        "PreviewRoleArn": (GetAtt(preview, "Arn"), "Role GitHub Actions assumes for pull requests (change sets only)"),
        "OidcProviderArn": (provider_arn, "The account's GitHub OIDC provider"),
    }
    for name, (value, description) in outputs.items():
        t.add_output(Output(name, Value=value, Description=description))
