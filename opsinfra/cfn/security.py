"""The CLOUDFRONT-scope WAF web ACL (it sees the real viewer IP) and the DNS-validated ACM certificates."""

from dataclasses import dataclass

from troposphere import Equals, GetAtt, If, Join, Not, Ref, Sub, Template, certificatemanager, wafv2

from opsinfra.cfn.common import checkov_skip, log_group, parameter
from opsinfra.stacks import EDGE_REGION, StackSettings

# The figure the reference documented (its code drifted to 50,000): requests per client IP per window.
RATE_LIMIT = 2000
RATE_WINDOW_SECONDS = 300
# Headers that carry credentials: WAF writes "REDACTED" in their place in its logs.
REDACTED_HEADERS = ("cookie", "authorization", "x-session-token")
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesSQLiRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)


@dataclass(frozen=True)
class WebAcl:
    arn: GetAtt
    name: str


def _visibility(metric: str) -> wafv2.VisibilityConfig:
    return wafv2.VisibilityConfig(CloudWatchMetricsEnabled=True, SampledRequestsEnabled=True, MetricName=metric)


def add_web_acl(t: Template, *, settings: StackSettings) -> WebAcl:
    """Rate rule on the viewer IP (allow-listed addresses exempt), then the four AWS managed rule groups."""
    if settings.region != EDGE_REGION:
        raise ValueError(f"a CLOUDFRONT-scope web ACL exists only in {EDGE_REGION}, not {settings.region}")
    allow_list = parameter(
        t,
        "WafAllowList",
        Type="CommaDelimitedList",
        default=",".join(settings.allow_list),
        description="CIDRs the rate rule never counts (offices, load generators), comma-separated; empty: none.",
    )
    t.add_condition("SecurityHasAllowList", Not(Equals(Join("", Ref(allow_list)), "")))
    ip_set = t.add_resource(
        wafv2.IPSet(
            "SecurityAllowList",
            Scope="CLOUDFRONT",
            IPAddressVersion="IPV4",
            Addresses=If("SecurityHasAllowList", Ref(allow_list), []),
            Description="Exempt from the WAF rate rule",
        )
    )
    name = f"{settings.stack_name}-web-acl"
    rules = [
        wafv2.WebACLRule(
            Name="rate-limit-per-ip",
            Priority=0,
            Action=wafv2.RuleAction(Block=wafv2.BlockAction()),
            Statement=wafv2.Statement(
                RateBasedStatement=wafv2.RateBasedStatement(
                    Limit=RATE_LIMIT,
                    EvaluationWindowSec=RATE_WINDOW_SECONDS,
                    AggregateKeyType="IP",
                    ScopeDownStatement=wafv2.Statement(
                        NotStatement=wafv2.NotStatement(
                            Statement=wafv2.Statement(
                                IPSetReferenceStatement=wafv2.IPSetReferenceStatement(Arn=GetAtt(ip_set, "Arn"))
                            )
                        )
                    ),
                )
            ),
            VisibilityConfig=_visibility("rate-limit-per-ip"),
        )
    ]
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
        rules.append(
            wafv2.WebACLRule(
                Name=group,
                Priority=priority,
                OverrideAction=wafv2.OverrideAction(**{"None": {}}),
                Statement=wafv2.Statement(
                    ManagedRuleGroupStatement=wafv2.ManagedRuleGroupStatement(VendorName="AWS", Name=group)
                ),
                VisibilityConfig=_visibility(group),
            )
        )
    acl = t.add_resource(
        wafv2.WebACL(
            "SecurityWebAcl",
            Name=name,
            Scope="CLOUDFRONT",
            DefaultAction=wafv2.DefaultAction(Allow=wafv2.AllowAction()),
            # The WebACL metric dimension is this metric name; keeping it equal to the ACL name keeps alarms simple.
            VisibilityConfig=_visibility(name),
            Rules=rules,
        )
    )
    waf_logs = t.add_resource(
        log_group(
            "SecurityWafLogGroup",
            # WAF delivers only to log groups whose name starts with aws-waf-logs-.
            LogGroupName=f"aws-waf-logs-{settings.stack_name}",
            retention_days=settings.log_retention_days,
        )
    )
    t.add_resource(
        wafv2.LoggingConfiguration(
            "SecurityWafLogging",
            ResourceArn=GetAtt(acl, "Arn"),
            # WAF wants the log group ARN without the ":*" that GetAtt Arn appends.
            LogDestinationConfigs=[
                Sub(
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${Group}",
                    Group=Ref(waf_logs),
                )
            ],
            RedactedFields=[
                wafv2.LoggingConfigurationFieldToMatch(SingleHeader=wafv2.SingleHeader(Name=name))
                for name in REDACTED_HEADERS
            ],
        )
    )
    return WebAcl(arn=GetAtt(acl, "Arn"), name=name)


def add_certificate(t: Template, title: str, *, settings: StackSettings) -> Ref:
    """The apex and a wildcard (www., origin.), validated through the hosted zone."""
    certificate = t.add_resource(
        certificatemanager.Certificate(
            title,
            DomainName=settings.domain,
            SubjectAlternativeNames=[f"*.{settings.domain}"],
            ValidationMethod="DNS",
            DomainValidationOptions=[
                certificatemanager.DomainValidationOption(DomainName=name, HostedZoneId=settings.hosted_zone_id)
                for name in (settings.domain, f"*.{settings.domain}")
            ],
        )
    )
    checkov_skip(
        certificate,
        CKV2_AWS_71="apex plus one wildcard covers www. and origin. in one certificate CloudFront and the ALB share",
    )
    return Ref(certificate)
