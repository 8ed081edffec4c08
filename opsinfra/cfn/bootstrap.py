"""The bootstrap stack: artifacts bucket, CloudFormation execution role, GitHub OIDC provider and its two roles.

Deployed once per account and region by an administrator; every later deploy runs as the roles it creates.
"""

from troposphere import Equals, GetAtt, If, Output, Ref, Sub, Template, iam, s3

from opsinfra.cfn.common import checkov_skip, parameter, role_boundary_arn, role_boundary_name, service_trust, stateful
from opsinfra.cfn.compute import AL2023_AMI
from opsinfra.iam import execution as handler_needs
from opsinfra.stacks import StackSettings

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
# GitHub's OIDC certificate thumbprints; IAM no longer checks them for GitHub, but moto and older APIs want one.
GITHUB_THUMBPRINTS = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
# The largest managed policy IAM takes, in characters without whitespace; the execution role's actions are split
# into policies under it (an inline policy would hit the role's 10,240-character aggregate limit).
MANAGED_POLICY_LIMIT = 6_144
# The checkov findings of each execution policy part, as split today (test_cfn_checkov fails on a stale entry).
EXECUTION_POLICY_CHECKS = {
    1: ("CKV_AWS_107", "CKV_AWS_111"),
    2: ("CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_111"),
}
BOUNDARY_ACTIONS = [
    # What the roles the stacks create may ever do: their own policies (instance, proxy, flow logs, rotation,
    # loadgen, image builder) and AmazonSSMManagedInstanceCore, which the instance role attaches.
    # tests/opsinfra/test_iam_execution.py checks that every action the stacks' roles are granted is inside.
    "autoscaling:CompleteLifecycleAction",
    # The rotation function's network interfaces in the VPC.
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:UnassignPrivateIpAddresses",
    "ec2messages:*",
    # The image stack's builder instance reads the shop's components.
    "imagebuilder:GetComponent",
    "logs:CreateLogStream",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
    "s3:GetObject",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetRandomPassword",
    "s3:PutObject",  # the loadgen master's results, under loadgen/<stack name>/results/ of the artifacts bucket
    "secretsmanager:GetSecretValue",
    # The rotation function writes the database secret's new version and moves its stages.
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "ssm:DescribeAssociation",
    "ssm:DescribeDocument",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:GetDocument",
    "ssm:GetManifest",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:ListAssociations",
    "ssm:ListInstanceAssociations",
    "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult",
    "ssm:PutInventory",
    "ssm:UpdateAssociationStatus",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:*",
]
# What deploy_stack reads of a stack and its change sets (tests/opsinfra/test_iam_pipeline.py records it); GetTemplate
# is the deployed template the diff compares the new one with.
CHANGE_SET_READ = ["cloudformation:DescribeChangeSet", "cloudformation:DescribeStacks", "cloudformation:GetTemplate",
                   "cloudformation:ListChangeSets"]  # fmt: skip


def _policy(name: str, *statements: dict) -> iam.Policy:
    return iam.Policy(PolicyName=name, PolicyDocument={"Version": "2012-10-17", "Statement": list(statements)})


def _allow(sid: str, actions, resource, **condition) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def _compact_size(value) -> int:
    import json

    return len(json.dumps(value, separators=(",", ":"), default=str))


def _read_wildcards(actions: set[str]) -> list[str]:
    """Describe* and List* per service in place of the single reads (they return configuration, never data);
    every Get and every write stays spelled out."""
    patterns = set()
    for action in actions:
        service, name = action.split(":", 1)
        prefix = next((verb for verb in ("Describe", "List") if name.startswith(verb)), None)
        patterns.add(f"{service}:{prefix}*" if prefix else action)
    return sorted(patterns)


def _execution_policies(t: Template, role: iam.Role, actions: set[str]) -> None:
    """The non-IAM actions on Resource "*" (most have no resource-level create permissions), in managed policies
    under IAM's size limit, attached to the role."""
    by_service: dict[str, list[str]] = {}
    for action in _read_wildcards({action for action in actions if not action.startswith("iam:")}):
        by_service.setdefault(action.split(":", 1)[0], []).append(action)
    chunks: list[list[str]] = [[]]
    for service in sorted(by_service):
        statement = {"Effect": "Allow", "Action": by_service[service], "Resource": "*"}
        # Leave room for the document's own keys and the Sid.
        if chunks[-1] and _compact_size(chunks[-1] + by_service[service]) + 200 > MANAGED_POLICY_LIMIT:
            chunks.append([])
        chunks[-1].extend(statement["Action"])
    for index, chunk in enumerate(chunks, start=1):
        policy = t.add_resource(
            iam.ManagedPolicy(
                f"BootstrapExecutionPolicy{index}",
                Description=f"CloudFormation resource handlers of the shop stacks, part {index} of {len(chunks)}",
                Roles=[Ref(role)],
                PolicyDocument={
                    "Version": "2012-10-17",
                    "Statement": [_allow("StackResources", sorted(chunk), "*")],
                },
            )
        )
        reasons = {
            "CKV_AWS_107": "CloudFormation creates the stacks' credentials (secrets, the proxy's auth) it never reads",
            "CKV_AWS_108": "CloudFormation reads what it creates; the read handlers need these Get calls",
            "CKV_AWS_109": "CloudFormation manages the stacks' KMS key policies and topic policies",
            "CKV_AWS_111": "resource handlers create resources whose ARNs do not exist before the deploy",
        }
        # Which checks each part trips follows from which services it holds; test_cfn_checkov names a change.
        checkov_skip(policy, **{check: reasons[check] for check in EXECUTION_POLICY_CHECKS.get(index, ())})


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
    templates = Sub(f"${{{bucket.title}.Arn}}/templates/*")
    releases = Sub(f"${{{bucket.title}.Arn}}/releases/*")
    rotation_code = Sub(f"${{{bucket.title}.Arn}}/lambda/db-rotation/*")
    account = "arn:${AWS::Partition}:iam::${AWS::AccountId}"
    shop_roles = Sub(f"{account}:role/{project}-*")
    boundary_arn = role_boundary_arn(project)
    boundary = t.add_resource(
        iam.ManagedPolicy(
            "BootstrapRoleBoundary",
            ManagedPolicyName=role_boundary_name(project),
            Description="Permissions boundary of every role the shop stacks create: the most such a role may do",
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    _allow("StackRoleWork", BOUNDARY_ACTIONS, "*"),
                    {"Sid": "NoIdentityChanges", "Effect": "Deny",
                     "Action": ["iam:*", "sts:AssumeRole", "organizations:*", "account:*"], "Resource": "*"},
                ],
            },
        )
    )  # fmt: skip
    checkov_skip(
        boundary,
        CKV_AWS_108="a ceiling, not a grant: the roles' own policies name the objects, parameters, secrets they read",
        CKV_AWS_111="a ceiling, not a grant: the roles' own policies name the resources they write",
    )
    iam_actions = sorted(action for action in handler_needs.execution_actions(handler_needs.handlers_types()) if
                         action.startswith("iam:"))  # fmt: skip
    bounded = [action for action in iam_actions if action in handler_needs.BOUNDARY_ACTIONS]
    profile_actions = [action for action in iam_actions if "InstanceProfile" in action]
    role_actions = [action for action in iam_actions if action not in {*bounded, *profile_actions,
                                                                        "iam:CreateServiceLinkedRole"}]  # fmt: skip
    passed_to = sorted({service for service in handler_needs.PASSED_TO.values() if service} -
                       set(handler_needs.PASSED_ONLY))  # fmt: skip
    functions = Sub(f"arn:${{AWS::Partition}}:lambda:*:${{AWS::AccountId}}:function:{project}-*")
    all_actions = handler_needs.execution_actions(handler_needs.handlers_types())
    function_actions = sorted(action for action in all_actions if action.startswith("lambda:"))
    execution_role = t.add_resource(
        iam.Role(
            "BootstrapExecutionRole",
            AssumeRolePolicyDocument=service_trust("cloudformation.amazonaws.com"),
            Policies=[
                _policy(
                    "stack-roles",
                    # Roles the stacks create are named <stack name>-<logical id>-<suffix>: all start with the project.
                    _allow("RolesUnderBoundary", bounded, shop_roles,
                           StringEquals={"iam:PermissionsBoundary": boundary_arn}),
                    _allow("Roles", role_actions, shop_roles),
                    _allow("InstanceProfiles", profile_actions, Sub(f"{account}:instance-profile/{project}-*")),
                    _allow("PassStackRoles", "iam:PassRole", shop_roles,
                           StringEquals={"iam:PassedToService": passed_to}),
                    *[_allow(f"Pass{role}", "iam:PassRole", Sub(f"{account}:role/{project}-*-{role}-*"),
                             StringEquals={"iam:PassedToService": service})
                      for service, role in sorted(handler_needs.PASSED_ONLY.items())],
                    _allow("ServiceLinkedRoles", "iam:CreateServiceLinkedRole",
                           Sub(f"{account}:role/aws-service-role/*")),
                    _allow("ImageBuilderRole", "iam:GetRole",
                           Sub(f"{account}:role/aws-service-role/{handler_needs.IMAGE_BUILDER_ROLE}")),
                    {"Sid": "KeepBoundary", "Effect": "Deny", "Action": "iam:DeleteRolePermissionsBoundary",
                     "Resource": "*"},
                    {"Sid": "BoundaryIsFixed", "Effect": "Deny",
                     "Action": ["iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion",
                                "iam:SetDefaultPolicyVersion"],
                     "Resource": boundary_arn},
                ),
                # The stacks' functions (the secret rotation) are named <stack name>-…: all start with the project.
                _policy("stack-functions", _allow("Functions", function_actions, functions)),
            ],
        )
    )  # fmt: skip
    execution_role.DependsOn = [boundary.title]
    _execution_policies(t, execution_role, {action for action in all_actions if not action.startswith("lambda:")})
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
    shop_groups = Sub("arn:${AWS::Partition}:autoscaling:*:${AWS::AccountId}:autoScalingGroup:*:"
                      f"autoScalingGroupName/{project}-*")  # fmt: skip
    # Public parameters belong to no account.
    ami_parameter = Sub(f"arn:${{AWS::Partition}}:ssm:*::parameter{AL2023_AMI}")
    # bake_image writes the baked AMI (image) and what it holds (image-release); deploy_stack looks for the first.
    image_parameters = [Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:parameter/{project}/*/{name}")
                        for name in ("image", "image-release")]  # fmt: skip
    builder = "arn:${AWS::Partition}:imagebuilder:*:${AWS::AccountId}"
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
                                          "cloudformation:DescribeStackEvents", *CHANGE_SET_READ], stacks),
                    # The app stack's policy (no replacement of the database or the cache), set around each update.
                    _allow("StackPolicy", "cloudformation:SetStackPolicy", stacks),
                    _allow("PassExecutionRole", "iam:PassRole", GetAtt(execution_role, "Arn"),
                           StringEquals={"iam:PassedToService": "cloudformation.amazonaws.com"}),
                    # CloudFormation reads a TemplateURL with the caller's credentials; HeadObject is s3:GetObject.
                    _allow("Artifacts", ["s3:PutObject", "s3:GetObject"], [templates, releases]),
                    # The rotation function's bundle, put before a change set that names it runs; the preview role
                    # may not: the code runs with the database master secret.
                    _allow("RotationCode", "s3:PutObject", rotation_code),
                    # Without ListBucket S3 answers HeadObject of a missing bundle with 403, not 404.
                    _allow("ListArtifacts", "s3:ListBucket", GetAtt(bucket, "Arn")),
                    # bake_image: the public parent image, a recipe per bake, the build, and the image parameters.
                    _allow("ParentImage", "ssm:GetParameter", ami_parameter),
                    _allow("ImageParameter", "ssm:GetParameters", image_parameters[0]),
                    _allow("PublishImage", "ssm:PutParameter", image_parameters),
                    _allow("ImageRecipes", ["imagebuilder:CreateImageRecipe", "imagebuilder:DeleteImageRecipe",
                                            "imagebuilder:CreateImage"],
                           Sub(f"{builder}:image-recipe/{project}-image-*/*")),
                    _allow("ImageBuilds", ["imagebuilder:CreateImage"],
                           Sub(f"{builder}:infrastructure-configuration/{project}-image-*")),
                    _allow("Images", ["imagebuilder:GetImage", "imagebuilder:CancelImageCreation",
                                      "imagebuilder:DeleteImage", "imagebuilder:ListWorkflowExecutions"],
                           Sub(f"{builder}:image/{project}-image-*/*")),
                    _allow("ImageSteps", "imagebuilder:ListWorkflowStepExecutions", "*"),
                    _allow("Release", ["ssm:PutParameter", "ssm:GetParameter"],
                           Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:parameter/{project}/*/release")),
                    # The instance refresh (deploy_app) and the sale windows (schedule_peak).
                    _allow("AppGroup", ["autoscaling:StartInstanceRefresh",
                                        "autoscaling:PutScheduledUpdateGroupAction",
                                        "autoscaling:DeleteScheduledAction"], shop_groups),
                    # Describe calls have no resource-level permissions.
                    _allow("Describe", ["autoscaling:DescribeInstanceRefreshes",
                                        "autoscaling:DescribeAutoScalingGroups",
                                        "autoscaling:DescribeScheduledActions", "ssm:GetCommandInvocation"], "*"),
                    # deploy_app reads which parameters the migration document takes before it sends it.
                    _allow("MigrationDocument", "ssm:DescribeDocument",
                           Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:document/{project}-*-migrate")),
                    _allow("Migrations", "ssm:SendCommand", [
                        Sub(f"arn:${{AWS::Partition}}:ssm:*:${{AWS::AccountId}}:document/{project}-*-migrate"),
                        # A stack without a migration document: deploy_app sends AWS's own shell document.
                        Sub("arn:${AWS::Partition}:ssm:*::document/AWS-RunShellScript"),
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
                    # The app template is over 51,200 bytes: it goes to S3 first, and CloudFormation reads it back
                    # with the caller's credentials.
                    _allow("Templates", ["s3:PutObject", "s3:GetObject"], templates),
                    # deploy_stack passes the baked image's parameter to the app stack when it exists.
                    _allow("ImageParameter", "ssm:GetParameters", image_parameters[0]),
                )
            ],
        )
    )  # fmt: skip
    outputs = {
        "ArtifactsBucketName": (Ref(bucket), "Bucket for templates over 51,200 bytes and release bundles"),
        "CloudFormationExecutionRoleArn": (
            GetAtt(execution_role, "Arn"),
            "Role CloudFormation runs the shop stacks as",
        ),
        "DeployRoleArn": (GetAtt(deploy, "Arn"), "Role GitHub Actions assumes from the production environment"),
        "PreviewRoleArn": (GetAtt(preview, "Arn"), "Role GitHub Actions assumes for pull requests (change sets only)"),
        "OidcProviderArn": (provider_arn, "The account's GitHub OIDC provider"),
    }
    for name, (value, description) in outputs.items():
        t.add_output(Output(name, Value=value, Description=description))
