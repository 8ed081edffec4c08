"""The edge stack (us-east-1) for an app stack in another region: the CLOUDFRONT web ACL, the certificate, and
the CloudFront and WAF alarms, which CloudFront accepts or publishes only in us-east-1."""

from troposphere import Equals, Not, Output, Ref, Template

from opsinfra.cfn.alarms import add_edge_alarms
from opsinfra.cfn.common import parameter
from opsinfra.cfn.observability import add_alerts_topic
from opsinfra.cfn.security import add_certificate, add_web_acl
from opsinfra.stacks import StackSettings


def build_edge(t: Template, settings: StackSettings) -> None:
    distribution = parameter(
        t,
        "DistributionId",
        default="",
        description="The app stack's DistributionId, once it exists; empty: no CloudFront alarm yet.",
    )
    t.add_condition("EdgeHasDistribution", Not(Equals(Ref(distribution), "")))
    topic = add_alerts_topic(t, settings=settings)
    acl = add_web_acl(t, settings=settings)
    add_edge_alarms(
        t,
        web_acl_name=acl.name,
        distribution_id=Ref(distribution),
        topic=topic,
        distribution_condition="EdgeHasDistribution",
    )
    t.add_output(Output("EdgeWebAclArn", Value=acl.arn, Description="CLOUDFRONT-scope web ACL for the distribution"))
    t.add_output(Output("EdgeAlertsTopicArn", Value=topic, Description="SNS topic of the edge alarms"))
    if settings.domain:
        certificate = add_certificate(t, "SecurityEdgeCertificate", settings=settings)
        t.add_output(
            Output("EdgeCertificateArn", Value=certificate, Description="us-east-1 certificate for CloudFront")
        )
