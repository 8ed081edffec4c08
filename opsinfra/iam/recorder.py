"""Record every AWS call the ops commands make, through botocore's event hooks, as IAM would authorize it.

Each call becomes one Call per resource it is authorized against: the IAM action (which is not always the API
operation's name), the resource ARN derived from the parameters, and the request context a condition reads. Calls
CloudFormation makes with the caller's credentials while it creates a change set (reading a TemplateURL, resolving
SSM-typed parameters) and the iam:PassRole of a RoleARN are recorded too, with `via` naming the service.
"""

import contextvars
import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from opsinfra.iam.policy import UNKNOWN_RESOURCE

# botocore's service names that IAM spells differently.
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "logs": "logs", "monitoring": "cloudwatch"}
# API operations whose IAM action has another name.
ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "GetObjectAttributes"): "s3:GetObject",
}
# Actions IAM authorizes only on Resource "*" (no resource-level permissions).
NO_RESOURCE_LEVEL = {
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeInstanceRefreshes",
    "autoscaling:DescribeScheduledActions",
    "cloudformation:ListStacks",
    "cloudformation:ValidateTemplate",
    "ssm:GetCommandInvocation",
    "ssm:ListCommandInvocations",
    "ssm:DescribeParameters",
    "sts:GetCallerIdentity",
    "imagebuilder:ListWorkflowStepExecutions",
}
# A stack's or Auto Scaling group's ARN ends in an id the caller does not know; policies match it with "*".
ANY_ID = "00000000-0000-0000-0000-000000000000"
SSM_TYPED = re.compile(r"^AWS::SSM::Parameter::Value<.+>$")
# A transform's expansion may add another transform, which CloudFormation also authorizes against the caller.
TRANSFORM_ADDS = {"AWS::SecretsManager-2020-07-23": ("AWS::Serverless-2016-10-31",)}

current_command: contextvars.ContextVar = contextvars.ContextVar("current_command", default=None)


@dataclass(frozen=True)
class Invocation:
    """A management command as it was called: its name and parsed options."""

    name: str
    options: tuple = ()

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)

    def __str__(self) -> str:
        shown = [f"--{key.replace('_', '-')}={value}" for key, value in self.options if value not in (None, False, [])]
        return " ".join([self.name, *shown])


@dataclass(frozen=True)
class Call:
    command: Invocation | None
    operation: str  # "cloudformation.CreateChangeSet" as botocore names it; for a derived call, what caused it
    action: str
    resource: str
    region: str
    context: dict = field(default_factory=dict, hash=False, compare=False)
    via: str = ""  # "": the command's own call; else the service that makes it with the caller's credentials

    def describe(self) -> str:
        via = f" (by {self.via} for {self.operation})" if self.via else ""
        return f"{self.action} on {self.resource}{via}"


class Recorder:
    def __init__(self, *, account: str, partition: str = "aws"):
        self.account = account
        self.partition = partition
        self.calls: list[Call] = []
        self._uploaded: dict[tuple[str, str], bytes] = {}
        self._last_bucket = ""

    # --- hooking clients ------------------------------------------------------------------------------------------

    def attach(self, client) -> None:
        """Record every call `client` makes from now on (before-parameter-build fires for stubbed calls too)."""
        service = client.meta.service_model.service_name
        region = client.meta.region_name
        # s3transfer uploads from worker threads, where the command's context variable is not set: a client belongs
        # to the command that made it.
        owner = current_command.get()
        event_service = client.meta.service_model.service_id.hyphenize()

        def before(params, model, **_):
            self.record(service=service, operation=model.name, params=params, region=region, owner=owner)

        def after(http_response, model, context=None, **_):
            # S3 answers a missing key with 404 only to a caller allowed s3:ListBucket, else with 403.
            if service == "s3" and model.name in {"HeadObject", "GetObject"} and http_response.status_code == 404:
                bucket = (context or {}).get("s3_redirect", {}).get("bucket") or self._last_bucket
                self.calls.append(
                    Call(current_command.get() or owner, f"s3.{model.name}", "s3:ListBucket", self.s3_arn(bucket),
                         region, {"aws:RequestedRegion": region}, via="")
                )  # fmt: skip

        client.meta.events.register(f"before-parameter-build.{event_service}", before)
        client.meta.events.register(f"after-call.{event_service}", after)

    # --- recording ------------------------------------------------------------------------------------------------

    def record(self, *, service: str, operation: str, params: dict, region: str, owner=None) -> None:
        prefix = IAM_PREFIX.get(service, service)
        action = ACTION_OF.get((service, operation), f"{prefix}:{operation}")
        context = {"aws:RequestedRegion": region, "aws:SecureTransport": "true"}
        command = current_command.get() or owner
        if service == "s3" and "Bucket" in params:
            self._last_bucket = params["Bucket"]
        for resource in self.resources(action=action, params=params, region=region):
            self.calls.append(Call(command, f"{service}.{operation}", action, resource, region, context))
        if action == "s3:PutObject" and "Body" in params and "Key" in params:
            self._uploaded[(params["Bucket"], params["Key"])] = _body_bytes(params["Body"])
        if action in {"cloudformation:CreateChangeSet", "cloudformation:CreateStack", "cloudformation:UpdateStack"}:
            self.calls.extend(self.forward_calls(command, f"{service}.{operation}", params, region))

    def forward_calls(self, command, operation: str, params: dict, region: str) -> list[Call]:
        """What CloudFormation does as the caller when it creates a change set."""
        found = []
        context = {"aws:RequestedRegion": region, "aws:CalledVia": ["cloudformation.amazonaws.com"]}
        if params.get("RoleARN"):
            found.append(
                Call(command, operation, "iam:PassRole", params["RoleARN"], region,
                     {**context, "iam:PassedToService": "cloudformation.amazonaws.com"}, via="")
            )  # fmt: skip
        body = params.get("TemplateBody")
        if params.get("TemplateURL"):
            bucket, key = template_url_object(params["TemplateURL"])
            found.append(
                Call(command, operation, "s3:GetObject", self.s3_arn(bucket, key), region, context, "cloudformation")
            )
            uploaded = self._uploaded.get((bucket, key))
            body = uploaded.decode() if uploaded is not None else None
            if body is None:
                found.append(Call(command, operation, "unknown:TemplateNotSeen", params["TemplateURL"], region))
        if body:
            template = json.loads(body)
            # A change set of a template with a transform needs CreateChangeSet on the transform, as the caller.
            declared = template.get("Transform", [])
            transforms = [declared] if isinstance(declared, str) else list(declared)
            transforms += [added for name in transforms for added in TRANSFORM_ADDS.get(name, ())]
            found.extend(
                Call(command, operation, "cloudformation:CreateChangeSet",
                     f"arn:{self.partition}:cloudformation:{region}:aws:transform/{name.removeprefix('AWS::')}",
                     region, context, "cloudformation")
                for name in dict.fromkeys(transforms)
            )  # fmt: skip
            given = {item["ParameterKey"]: item.get("ParameterValue") for item in params.get("Parameters", [])}
            names = [
                given.get(name) or spec.get("Default", "")
                for name, spec in template.get("Parameters", {}).items()
                if SSM_TYPED.match(spec.get("Type", ""))
            ]
            found.extend(
                Call(command, operation, "ssm:GetParameters", self.ssm_parameter_arn(name, region), region, context,
                     "cloudformation")
                for name in names if name
            )  # fmt: skip
        return found

    # --- resource ARNs --------------------------------------------------------------------------------------------

    def resources(self, *, action: str, params: dict, region: str) -> list[str]:
        if action in NO_RESOURCE_LEVEL:
            return ["*"]
        service = action.split(":", 1)[0]
        derive = getattr(self, f"_{service}_resources", None)
        found = derive(action, params, region) if derive else []
        return found or [UNKNOWN_RESOURCE]

    def s3_arn(self, bucket: str, key: str | None = None) -> str:
        return f"arn:{self.partition}:s3:::{bucket}" + (f"/{key}" if key is not None else "")

    def stack_arn(self, name_or_id: str, region: str) -> str:
        if name_or_id.startswith("arn:"):
            return name_or_id
        return f"arn:{self.partition}:cloudformation:{region}:{self.account}:stack/{name_or_id}/{ANY_ID}"

    def ssm_parameter_arn(self, name: str, region: str) -> str:
        if name.startswith("arn:"):
            return name
        path = name if name.startswith("/") else f"/{name}"
        # Public parameters (AWS's AMI ids) belong to no account.
        owner = "" if path.startswith("/aws/service/") else self.account
        return f"arn:{self.partition}:ssm:{region}:{owner}:parameter{path}"

    def _s3_resources(self, action, params, region):
        if "Key" in params:
            return [self.s3_arn(params["Bucket"], params["Key"])]
        if "Bucket" in params:
            return [self.s3_arn(params["Bucket"])]
        return []

    def _cloudformation_resources(self, action, params, region):
        stack = params.get("StackName")
        change_set = params.get("ChangeSetName", "")
        if not stack and change_set.startswith("arn:"):
            # arn:aws:cloudformation:region:account:changeSet/name/id: the stack is not in it.
            return []
        return [self.stack_arn(stack, region)] if stack else []

    def _ssm_resources(self, action, params, region):
        p, account = self.partition, self.account
        if action in {"ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameterHistory"}:
            return [self.ssm_parameter_arn(params["Name"], region)]
        if action == "ssm:GetParameters":
            return [self.ssm_parameter_arn(name, region) for name in params["Names"]]
        if action in {"ssm:DescribeDocument", "ssm:GetDocument"}:
            return [self.ssm_document_arn(params["Name"], region)]
        if action == "ssm:SendCommand":
            documents = [self.ssm_document_arn(params["DocumentName"], region)]
            instances = [f"arn:{p}:ec2:{region}:{account}:instance/{item}" for item in params.get("InstanceIds", [])]
            return documents + instances
        return []

    def _imagebuilder_resources(self, action, params, region):
        prefix = f"arn:{self.partition}:imagebuilder:{region}:{self.account}"
        if action == "imagebuilder:CreateImageRecipe":
            return [f"{prefix}:image-recipe/{params['name'].lower()}/{params['semanticVersion']}"]
        if action == "imagebuilder:DeleteImageRecipe":
            return [params["imageRecipeArn"]]
        if action == "imagebuilder:CreateImage":
            return [params["imageRecipeArn"], params["infrastructureConfigurationArn"]]
        if "imageBuildVersionArn" in params:
            return [params["imageBuildVersionArn"]]
        return []

    def ssm_document_arn(self, name: str, region: str) -> str:
        # Documents AWS owns (AWS-RunShellScript) belong to no account.
        owner = "" if name.startswith(("AWS-", "AWSSupport-", "Amazon")) else self.account
        return f"arn:{self.partition}:ssm:{region}:{owner}:document/{name}"

    def _autoscaling_resources(self, action, params, region):
        name = params.get("AutoScalingGroupName")
        if not name:
            return []
        return [f"arn:{self.partition}:autoscaling:{region}:{self.account}:autoScalingGroup:{ANY_ID}:"
                f"autoScalingGroupName/{name}"]  # fmt: skip

    def _cloudfront_resources(self, action, params, region):
        distribution = params.get("DistributionId")
        return [f"arn:{self.partition}:cloudfront::{self.account}:distribution/{distribution}"] if distribution else []

    # --- reading the recording ------------------------------------------------------------------------------------

    def by_command(self) -> dict[str, list[Call]]:
        grouped: dict[str, list[Call]] = {}
        for call in self.calls:
            grouped.setdefault(call.command.name if call.command else "", []).append(call)
        return grouped


def template_url_object(url: str) -> tuple[str, str]:
    """(bucket, key) of a virtual-hosted or path-style S3 URL."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    path = unquote(parsed.path.lstrip("/"))
    if ".s3." in host or host.endswith(".s3.amazonaws.com"):
        return host.split(".s3", 1)[0], path
    bucket, _, key = path.partition("/")
    return bucket, key


def _body_bytes(body) -> bytes:
    """An upload's body; botocore has already wrapped bytes in a file-like object, which is read and rewound."""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "read") and hasattr(body, "seek"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data if isinstance(data, bytes) else data.encode()
    return b""
