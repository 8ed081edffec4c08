"""CloudFront in front of the ALB: cache policies per path, the secret origin header, DNS alias records."""

from dataclasses import dataclass

from troposphere import GetAtt, If, NoValue, Ref, Template, cloudfront, route53

from opsinfra.cfn.common import checkov_skip
from opsinfra.cfn.loadbalancer import ORIGIN_VERIFY_HEADER, LoadBalancer
from opsinfra.cfn.secrets import resolve
from opsinfra.stacks import StackSettings

# AWS managed policies (fixed ids, the same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"
# Every CloudFront distribution's alias target zone.
CLOUDFRONT_ZONE = "Z2FDTNDATAQYW2"

PRODUCTS_TTL = 300
STATIC_TTL = 31_536_000  # a year: collectstatic hashes file names, so a changed file is a new URL
STOREFRONT_MAX_TTL = 60  # the storefront sends its own short s-maxage; CloudFront never keeps it longer
# The only parameters the products API reads (catalog/params.py): any other query string shares their entry, so
# junk parameters cannot make every request a miss.
PRODUCTS_QUERY_STRINGS = ("category", "q", "page", "page_size")
NEVER_CACHED = ("/api/inventory*", "/api/checkout*", "/api/sessions*", "/api/orders*")
READ_METHODS = ["GET", "HEAD"]
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
ORIGIN_ID = "alb"


@dataclass(frozen=True)
class Edge:
    distribution: Ref
    domain_name: GetAtt


@dataclass(frozen=True)
class EdgeInputs:
    """What the distribution attaches: in us-east-1 resources of this stack, elsewhere the edge stack's ARNs."""

    web_acl_arn: object
    certificate_arn: object | None  # None: no domain, CloudFront's default certificate
    certificate_condition: str | None = None  # the certificate is a parameter that may still be empty


def _cache_policy(
    t: Template, title: str, *, name: str, comment: str, default_ttl: int, max_ttl: int, query_strings=()
):
    return t.add_resource(
        cloudfront.CachePolicy(
            title,
            CachePolicyConfig=cloudfront.CachePolicyConfig(
                # Cache policy names are unique per account: prefixed with the stack name.
                Name=name,
                Comment=comment,
                DefaultTTL=default_ttl,
                MaxTTL=max_ttl,
                MinTTL=0,
                ParametersInCacheKeyAndForwardedToOrigin=cloudfront.ParametersInCacheKeyAndForwardedToOrigin(
                    EnableAcceptEncodingGzip=True,
                    EnableAcceptEncodingBrotli=True,
                    # No request header in the key: the reference keyed on X-Cache, a response header, and only
                    # split its cache.
                    HeadersConfig=cloudfront.CacheHeadersConfig(HeaderBehavior="none"),
                    CookiesConfig=cloudfront.CacheCookiesConfig(CookieBehavior="none"),
                    QueryStringsConfig=cloudfront.CacheQueryStringsConfig(
                        QueryStringBehavior="whitelist", QueryStrings=list(query_strings)
                    )
                    if query_strings
                    else cloudfront.CacheQueryStringsConfig(QueryStringBehavior="none"),
                ),
            ),
        )
    )


def _behavior(path: str | None, *, cache_policy, read_only: bool, forward_viewer: bool):
    kind = cloudfront.DefaultCacheBehavior if path is None else cloudfront.CacheBehavior
    extra = {} if path is None else {"PathPattern": path}
    return kind(
        TargetOriginId=ORIGIN_ID,
        ViewerProtocolPolicy="redirect-to-https",
        CachePolicyId=cache_policy,
        OriginRequestPolicyId=ALL_VIEWER_EXCEPT_HOST if forward_viewer else NoValue,
        ResponseHeadersPolicyId=SECURITY_HEADERS,
        AllowedMethods=READ_METHODS if read_only else ALL_METHODS,
        CachedMethods=READ_METHODS,
        Compress=True,
        **extra,
    )


def add_edge(
    t: Template, *, settings: StackSettings, load_balancer: LoadBalancer, origin_verify: Ref, inputs: EdgeInputs
) -> Edge:
    products = _cache_policy(
        t,
        "EdgeProductsCachePolicy",
        name=f"{settings.stack_name}-products",
        comment="Products: 300 s, keyed on category, q, page and page_size only",
        default_ttl=PRODUCTS_TTL,
        max_ttl=PRODUCTS_TTL,
        query_strings=PRODUCTS_QUERY_STRINGS,
    )
    static = _cache_policy(
        t,
        "EdgeStaticCachePolicy",
        name=f"{settings.stack_name}-static",
        comment="Hashed static files: a year",
        default_ttl=STATIC_TTL,
        max_ttl=STATIC_TTL,
    )
    storefront = _cache_policy(
        t,
        "EdgeStorefrontCachePolicy",
        name=f"{settings.stack_name}-storefront",
        comment="Storefront: the page's own s-maxage, at most a minute",
        default_ttl=0,
        max_ttl=STOREFRONT_MAX_TTL,
    )
    behaviors = [
        _behavior("/api/products*", cache_policy=Ref(products), read_only=True, forward_viewer=True),
        *[
            _behavior(path, cache_policy=CACHING_DISABLED, read_only=False, forward_viewer=True)
            for path in NEVER_CACHED
        ],
        _behavior("/static/*", cache_policy=Ref(static), read_only=True, forward_viewer=False),
        _behavior("/", cache_policy=Ref(storefront), read_only=True, forward_viewer=True),
    ]
    if settings.domain:
        # The certificate covers the custom domain, never *.elb.amazonaws.com: HTTPS goes to origin.<domain>.
        origin_domain = f"origin.{settings.domain}"
        origin_protocol = "https-only"
    else:
        origin_domain = load_balancer.dns_name
        origin_protocol = "http-only"
    if inputs.certificate_arn is None:
        viewer_certificate = cloudfront.ViewerCertificate(CloudFrontDefaultCertificate=True)
        aliases = NoValue
    else:
        viewer_certificate = cloudfront.ViewerCertificate(
            AcmCertificateArn=inputs.certificate_arn,
            SslSupportMethod="sni-only",
            MinimumProtocolVersion="TLSv1.2_2021",
        )
        aliases = [settings.domain, f"www.{settings.domain}"]
        if inputs.certificate_condition:
            # Until the edge stack's certificate is passed in, serve on CloudFront's own name.
            default = cloudfront.ViewerCertificate(CloudFrontDefaultCertificate=True)
            viewer_certificate = If(inputs.certificate_condition, viewer_certificate, default)
            aliases = If(inputs.certificate_condition, aliases, NoValue)
    distribution = t.add_resource(
        cloudfront.Distribution(
            "EdgeDistribution",
            DistributionConfig=cloudfront.DistributionConfig(
                Comment=f"{settings.stack_name}",
                Enabled=True,
                PriceClass="PriceClass_100",
                IPV6Enabled=True,
                HttpVersion="http2and3",
                Aliases=aliases,
                ViewerCertificate=viewer_certificate,
                WebACLId=inputs.web_acl_arn,
                Origins=[
                    cloudfront.Origin(
                        Id=ORIGIN_ID,
                        DomainName=origin_domain,
                        CustomOriginConfig=cloudfront.CustomOriginConfig(
                            OriginProtocolPolicy=origin_protocol,
                            OriginSSLProtocols=["TLSv1.2"],
                            OriginReadTimeout=settings.origin_read_timeout,
                            OriginKeepaliveTimeout=5,
                        ),
                        OriginCustomHeaders=[
                            cloudfront.OriginCustomHeader(
                                HeaderName=ORIGIN_VERIFY_HEADER, HeaderValue=resolve(origin_verify)
                            )
                        ],
                    )
                ],
                DefaultCacheBehavior=_behavior(
                    None, cache_policy=CACHING_DISABLED, read_only=False, forward_viewer=True
                ),
                CacheBehaviors=behaviors,
            ),
        )
    )
    checkov_skip(
        distribution,
        CKV_AWS_86="the app logs every request (with CloudFront's request id) to CloudWatch Logs",
    )
    if inputs.certificate_arn is None or inputs.certificate_condition:
        checkov_skip(
            distribution,
            CKV_AWS_174="CloudFront's default certificate (no domain, or until the edge certificate is passed in) "
            "sets no minimum version; with the custom one it is TLSv1.2_2021",
        )
    if settings.hosted_zone_id:
        _add_records(t, settings=settings, distribution=distribution, load_balancer=load_balancer)
    return Edge(distribution=Ref(distribution), domain_name=GetAtt(distribution, "DomainName"))


def _add_records(t: Template, *, settings: StackSettings, distribution, load_balancer: LoadBalancer) -> None:
    """Apex and www alias the distribution (A and AAAA, IPv6 is on); origin. aliases the ALB."""
    to_cloudfront = route53.AliasTarget(HostedZoneId=CLOUDFRONT_ZONE, DNSName=GetAtt(distribution, "DomainName"))
    records = [
        route53.RecordSet(Name=name, Type=kind, AliasTarget=to_cloudfront)
        for name in (settings.domain, f"www.{settings.domain}")
        for kind in ("A", "AAAA")
    ]
    records.append(
        route53.RecordSet(
            Name=f"origin.{settings.domain}",
            Type="A",
            AliasTarget=route53.AliasTarget(
                HostedZoneId=load_balancer.canonical_zone, DNSName=load_balancer.dns_name, EvaluateTargetHealth=True
            ),
        )
    )
    t.add_resource(route53.RecordSetGroup("EdgeDnsRecords", HostedZoneId=settings.hosted_zone_id, RecordSets=records))
