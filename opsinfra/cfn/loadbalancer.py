"""The ALB in the public subnets: it forwards only requests that carry CloudFront's secret origin header."""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Template
from troposphere import elasticloadbalancingv2 as elb

from opsinfra.cfn.common import checkov_skip
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


def add_load_balancer(
    t: Template,
    *,
    settings: StackSettings,
    network: Network,
    groups: SecurityGroups,
    origin_verify: Ref,
    certificate: Ref | None,
) -> LoadBalancer:
    balancer = t.add_resource(
        elb.LoadBalancer(
            "LoadBalancer",
            Type="application",
            Scheme="internet-facing",
            Subnets=network.public_subnets,
            SecurityGroups=[groups.load_balancer],
            LoadBalancerAttributes=[
                elb.LoadBalancerAttributes(Key="idle_timeout.timeout_seconds", Value=str(settings.alb_idle_timeout)),
                elb.LoadBalancerAttributes(Key="routing.http.drop_invalid_header_fields.enabled", Value="true"),
            ],
        )
    )
    checkov_skip(
        balancer,
        CKV_AWS_91="CloudFront sees every request first; the app logs one JSON line per request to CloudWatch Logs",
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
