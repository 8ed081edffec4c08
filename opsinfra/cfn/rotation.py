"""The app database secret's rotation: the stack's own function (opsinfra/rotation), its role, its schedule.

The function alternates the secret between shop_app and shop_app_clone every 30 days, logging in with the RDS master
secret. It runs in the private subnets in NetworkRotationSecurityGroup, which reaches PostgreSQL on 5432 and Secrets
Manager on 443 (the interface endpoint, or the NAT where endpoints are off). Its code is the bundle deploy_stack
uploads to the artifacts bucket (opsinfra/rotation/bundle.py); its role carries the permissions boundary like every
role of the stack.
"""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Template, awslambda, iam, secretsmanager

from opsinfra.cfn.common import checkov_skip, log_group, parameter, service_trust
from opsinfra.cfn.network import Network
from opsinfra.cfn.secrets import RDS_REJECTED, SQL_UNSAFE
from opsinfra.cfn.security_groups import SecurityGroups
from opsinfra.rotation import bundle
from opsinfra.stacks import StackSettings

ROTATION_SCHEDULE = "rate(30 days)"
RUNTIME = "python3.12"
TIMEOUT_SECONDS = 30
# Secrets Manager runs the four steps one after another; a second slot lets a retry start while one ends.
CONCURRENCY = 2
# What the function does with the secret it rotates, and with the master secret it logs in with.
ROTATED_SECRET_ACTIONS = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
]
# A function in a VPC: Lambda makes and removes its network interfaces with the function's role.
NETWORK_INTERFACE_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:UnassignPrivateIpAddresses",
]
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]


@dataclass(frozen=True)
class RotationInputs:
    secret: Ref
    master_secret: GetAtt
    # The attachment adds host and port to the secret: the function reads them before its first rotation.
    attachment: str
    artifacts_bucket: object


def function_name(settings: StackSettings) -> str:
    return f"{settings.stack_name}-db-rotation"


def add_rotation(
    t: Template, *, settings: StackSettings, network: Network, groups: SecurityGroups, inputs: RotationInputs
) -> None:
    code_key = parameter(
        t,
        "RotationCodeKey",
        default=bundle.rotation_bundle().key,
        AllowedPattern=bundle.KEY_PATTERN,
        description="The rotation function's bundle in the artifacts bucket (deploy_stack uploads it).",
    )
    name = function_name(settings)
    logs = t.add_resource(
        log_group(
            "DatabaseRotationLogGroup",
            LogGroupName=f"/aws/lambda/{name}",
            retention_days=settings.log_retention_days,
        )
    )
    statements = [
        {"Sid": "RotatedSecret", "Effect": "Allow", "Action": ROTATED_SECRET_ACTIONS, "Resource": inputs.secret},
        {"Sid": "MasterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": inputs.master_secret},
        # Neither has resource-level permissions.
        {"Sid": "Passwords", "Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
        {"Sid": "NetworkInterfaces", "Effect": "Allow", "Action": NETWORK_INTERFACE_ACTIONS, "Resource": "*"},
        {"Sid": "Logs", "Effect": "Allow", "Action": LOG_ACTIONS, "Resource": GetAtt(logs, "Arn")},
    ]  # fmt: skip
    role = t.add_resource(
        iam.Role(
            "DatabaseRotationRole",
            AssumeRolePolicyDocument=service_trust("lambda.amazonaws.com"),
            Policies=[
                iam.Policy(
                    PolicyName="rotate-database-secret",
                    PolicyDocument={"Version": "2012-10-17", "Statement": statements},
                )
            ],
        )
    )
    checkov_skip(
        role,
        CKV_AWS_111="ec2:CreateNetworkInterface and its siblings have no resource-level permissions for Lambda's "
        "VPC interfaces; Lambda creates them in the function's subnets and group",
    )
    function = t.add_resource(
        awslambda.Function(
            "DatabaseRotationFunction",
            DependsOn=logs.title,
            FunctionName=name,
            Description="Rotates DatabaseAppSecret, alternating shop_app and shop_app_clone",
            Runtime=RUNTIME,
            Handler=bundle.HANDLER,
            Code=awslambda.Code(S3Bucket=inputs.artifacts_bucket, S3Key=Ref(code_key)),
            Role=GetAtt(role, "Arn"),
            Timeout=TIMEOUT_SECONDS,
            MemorySize=128,
            ReservedConcurrentExecutions=CONCURRENCY,
            VpcConfig=awslambda.VPCConfig(SubnetIds=network.private_subnets, SecurityGroupIds=[groups.rotation]),
            Environment=awslambda.Environment(Variables={"EXCLUDE_CHARACTERS": RDS_REJECTED + SQL_UNSAFE}),
        )
    )
    checkov_skip(
        function,
        CKV_AWS_116="Secrets Manager invokes each step synchronously and records a failure itself; a dead-letter "
        "queue receives asynchronous events only",
        CKV_AWS_173="the environment holds the password characters never generated, no secret",
        CKV_AWS_272="the code is the bundle only the deploy role writes to the artifacts bucket, named by its SHA-256",
    )
    permission = t.add_resource(
        awslambda.Permission(
            "DatabaseRotationPermission",
            FunctionName=GetAtt(function, "Arn"),
            Action="lambda:InvokeFunction",
            Principal="secretsmanager.amazonaws.com",
            SourceAccount=Ref("AWS::AccountId"),
            SourceArn=inputs.secret,
        )
    )
    t.add_resource(
        secretsmanager.RotationSchedule(
            "DatabaseAppSecretRotation",
            DependsOn=[inputs.attachment, permission.title],
            SecretId=inputs.secret,
            RotationLambdaARN=GetAtt(function, "Arn"),
            RotationRules=secretsmanager.RotationRules(ScheduleExpression=ROTATION_SCHEDULE),
            RotateImmediatelyOnUpdate=False,
        )
    )
