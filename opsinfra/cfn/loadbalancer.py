"""The ALB in the public subnets: it forwards only requests that carry CloudFront's secret origin header."""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Sub, Template, s3
from troposphere import elasticloadbalancingv2 as elb

from opsinfra.cfn.common import checkov_skip, stateful
from opsinfra.cfn.network import Network
from opsinfra.cfn.secrets import resolve
from opsinfra.cfn.security_groups import SecurityGroups
from opsinfra.stacks import StackSettings

ORIGIN_VERIFY_HEADER = "X-Origin-Verify"
HEALTH_PATH = "/health"
HEALTH_INTERVAL = 15
HEALTH_TIMEOUT = 5
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 3
# gunicorn's graceful timeout (35 s) is at least this, so in-flight requests finish during a scale-in.
DEREGISTRATION_DELAY = 30
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ACCESS_LOG_PREFIX = "alb"
# Regions older than August 2022 deliver ALB access logs as this Elastic Load Balancing account of the region.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "ap-northeast-1": "582318560864",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
}


@dataclass(frozen=True)
class LoadBalancer:
    dns_name: GetAtt
    canonical_zone: GetAtt
    full_name: GetAtt
    target_group: Ref
    target_group_full_name: GetAtt


def origin_port(settings: StackSettings) -> int:
    """443 with a certificate (a domain), 80 without: the only port CloudFront may reach."""
    return 443 if settings.domain else 80


def _add_access_log_bucket(t: Template, *, settings: StackSettings):
    """The ALB's access logs: SSE-S3 (ALB cannot write under a KMS key), kept log_retention_days, and writable by
    the region's Elastic Load Balancing log delivery under the alb/ prefix only."""
    bucket = t.add_resource(
        s3.Bucket(
            "LoadBalancerLogsBucket",
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
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    s3.LifecycleRule(
                        Id="expire-access-logs",
                        Status="Enabled",
                        ExpirationInDays=settings.log_retention_days,
                        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=1),
                    )
                ]
            ),
        )
    )
    # Kept when the stack goes: the logs of its last days are what an investigation after a deletion reads.
    stateful(bucket, "Retain")
    checkov_skip(bucket, CKV_AWS_18="it is the access-log bucket; logging its own reads would log into itself")
    policy = t.add_resource(
        s3.BucketPolicy(
            "LoadBalancerLogsBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ElbDeliversAccessLogs",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": Sub(f"arn:${{AWS::Partition}}:iam::{ELB_LOG_ACCOUNTS[settings.region]}:root")
                        },
                        "Action": "s3:PutObject",
                        "Resource": Sub(f"${{{bucket.title}.Arn}}/{ACCESS_LOG_PREFIX}/AWSLogs/${{AWS::AccountId}}/*"),
                    },
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [GetAtt(bucket, "Arn"), Sub(f"${{{bucket.title}.Arn}}/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ],
            },
        )
    )
    return bucket, policy


def add_load_balancer(
    t: Template,
    *,
    settings: StackSettings,
    network: Network,
    groups: SecurityGroups,
    origin_verify: Ref,
    certificate: Ref | None,
) -> LoadBalancer:
    attributes = {
        "idle_timeout.timeout_seconds": str(settings.alb_idle_timeout),
        "routing.http.drop_invalid_header_fields.enabled": "true",
    }
    production = settings.env == "production"
    extra = {}
    if production:
        bucket, policy = _add_access_log_bucket(t, settings=settings)
        attributes |= {
            "deletion_protection.enabled": "true",
            "access_logs.s3.enabled": "true",
            "access_logs.s3.bucket": Ref(bucket),
            "access_logs.s3.prefix": ACCESS_LOG_PREFIX,
        }
        # ELB checks that it may write to the bucket when the attribute is set.
        extra["DependsOn"] = policy.title
    balancer = t.add_resource(
        elb.LoadBalancer(
            "LoadBalancer",
            Type="application",
            Scheme="internet-facing",
            Subnets=network.public_subnets,
            SecurityGroups=[groups.load_balancer],
            LoadBalancerAttributes=[elb.LoadBalancerAttributes(Key=k, Value=v) for k, v in attributes.items()],
            **extra,
        )
    )
    if not production:
        checkov_skip(
            balancer,
            CKV_AWS_91="staging keeps no access logs; CloudFront sees every request first and the app logs one "
            "JSON line per request to CloudWatch Logs",
            CKV_AWS_150="staging is deleted and recreated at will; production has deletion protection",
        )
    target_group = t.add_resource(
        elb.TargetGroup(
            "LoadBalancerTargetGroup",
            VpcId=network.vpc,
            Protocol="HTTP",
            Port=settings.app_port,
            TargetType="instance",
            HealthCheckPath=HEALTH_PATH,
            HealthCheckIntervalSeconds=HEALTH_INTERVAL,
            HealthCheckTimeoutSeconds=HEALTH_TIMEOUT,
            HealthyThresholdCount=HEALTHY_THRESHOLD,
            UnhealthyThresholdCount=UNHEALTHY_THRESHOLD,
            Matcher=elb.Matcher(HttpCode="200"),
            TargetGroupAttributes=[
                elb.TargetGroupAttribute(Key="deregistration_delay.timeout_seconds", Value=str(DEREGISTRATION_DELAY))
            ],
        )
    )
    forbidden = elb.Action(
        Type="fixed-response",
        FixedResponseConfig=elb.FixedResponseConfig(
            StatusCode="403", ContentType="text/plain", MessageBody="Forbidden"
        ),
    )
    if certificate is None:
        origin = t.add_resource(
            elb.Listener(
                "LoadBalancerHttpListener",
                LoadBalancerArn=Ref(balancer),
                Protocol="HTTP",
                Port=80,
                DefaultActions=[forbidden],
            )
        )
        checkov_skip(
            origin,
            CKV_AWS_2="without a domain there is no certificate: CloudFront reaches the origin over HTTP, and only "
            "CloudFront's prefix list may connect",
            CKV_AWS_103="no TLS on an HTTP listener; see CKV_AWS_2",
        )
    else:
        origin = t.add_resource(
            elb.Listener(
                "LoadBalancerHttpsListener",
                LoadBalancerArn=Ref(balancer),
                Protocol="HTTPS",
                Port=443,
                SslPolicy=TLS_POLICY,
                Certificates=[elb.Certificate(CertificateArn=certificate)],
                DefaultActions=[forbidden],
            )
        )
        t.add_resource(
            elb.Listener(
                "LoadBalancerHttpListener",
                LoadBalancerArn=Ref(balancer),
                Protocol="HTTP",
                Port=80,
                DefaultActions=[
                    elb.Action(
                        Type="redirect",
                        RedirectConfig=elb.RedirectConfig(Protocol="HTTPS", Port="443", StatusCode="HTTP_301"),
                    )
                ],
            )
        )
    t.add_resource(
        elb.ListenerRule(
            "LoadBalancerOriginRule",
            ListenerArn=Ref(origin),
            Priority=1,
            Conditions=[
                elb.Condition(
                    Field="http-header",
                    HttpHeaderConfig=elb.HttpHeaderConfig(
                        HttpHeaderName=ORIGIN_VERIFY_HEADER, Values=[resolve(origin_verify)]
                    ),
                )
            ],
            Actions=[elb.ListenerRuleAction(Type="forward", TargetGroupArn=Ref(target_group))],
        )
    )
    return LoadBalancer(
        dns_name=GetAtt(balancer, "DNSName"),
        canonical_zone=GetAtt(balancer, "CanonicalHostedZoneID"),
        full_name=GetAtt(balancer, "LoadBalancerFullName"),
        target_group=Ref(target_group),
        target_group_full_name=GetAtt(target_group, "TargetGroupFullName"),
    )
