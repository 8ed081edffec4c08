"""The app stack: every part wired together. In us-east-1 it also holds the CloudFront-only parts."""

from troposphere import Equals, If, Not, NoValue, Output, Ref, Sub, Template

from opsinfra.cfn.alarms import AlarmTargets, add_app_alarms, add_app_metric_alarms, add_edge_alarms
from opsinfra.cfn.budget import add_budget
from opsinfra.cfn.cache import add_cache
from opsinfra.cfn.common import parameter
from opsinfra.cfn.compute import AppWiring, add_compute
from opsinfra.cfn.dashboard import add_dashboard
from opsinfra.cfn.database import add_database
from opsinfra.cfn.edge import EdgeInputs, add_edge
from opsinfra.cfn.loadbalancer import add_load_balancer, origin_port
from opsinfra.cfn.network import add_interface_endpoints, add_network
from opsinfra.cfn.observability import add_alerts_topic, add_shed_metric_filter, app_metrics_namespace
from opsinfra.cfn.rotation import RotationInputs, add_rotation
from opsinfra.cfn.secrets import add_secrets
from opsinfra.cfn.security import add_certificate, add_web_acl
from opsinfra.cfn.security_groups import POSTGRES_PORT, add_security_groups
from opsinfra.stacks import StackSettings


def _artifacts_bucket(t: Template, settings: StackSettings):
    """The bootstrap stack's bucket: deploy_stack fills the parameter from its output of the same name."""
    bucket = parameter(
        t,
        "ArtifactsBucketName",
        default="",
        description="The bootstrap stack's ArtifactsBucketName; empty: the bucket it names by convention.",
    )
    t.add_condition("AppArtifactsBucketGiven", Not(Equals(Ref(bucket), "")))
    return If(
        "AppArtifactsBucketGiven",
        Ref(bucket),
        Sub(f"{settings.project}-artifacts-${{AWS::AccountId}}-${{AWS::Region}}"),
    )


def _edge_inputs(t: Template, settings: StackSettings, *, certificate) -> EdgeInputs:
    """In us-east-1 the web ACL (and the certificate) are built here; elsewhere the edge stack's ARNs come in."""
    if settings.in_edge_region:
        return EdgeInputs(web_acl_arn=add_web_acl(t, settings=settings).arn, certificate_arn=certificate)
    acl = parameter(
        t, "EdgeWebAclArn", default="", description="The edge stack's EdgeWebAclArn (CLOUDFRONT scope, us-east-1)."
    )
    t.add_condition("AppHasEdgeWebAcl", Not(Equals(Ref(acl), "")))
    if settings.env == "production":
        # CloudFormation refuses the change set: production never serves without a WAF in front.
        t.add_rule(
            "AppProductionHasWaf",
            {
                "Assertions": [
                    {
                        "Assert": Not(Equals(Ref(acl), "")),
                        "AssertDescription": "production needs the edge stack's EdgeWebAclArn: deploy the edge "
                        "stack (manage.py deploy_stack --stack edge --env production) first",
                    }
                ]
            },
        )
    certificate_arn, certificate_condition = None, None
    if settings.domain:
        edge_certificate = parameter(
            t, "EdgeCertificateArn", default="", description="The edge stack's EdgeCertificateArn (us-east-1)."
        )
        t.add_condition("AppHasEdgeCertificate", Not(Equals(Ref(edge_certificate), "")))
        certificate_arn, certificate_condition = Ref(edge_certificate), "AppHasEdgeCertificate"
    return EdgeInputs(
        web_acl_arn=If("AppHasEdgeWebAcl", Ref(acl), NoValue),
        certificate_arn=certificate_arn,
        certificate_condition=certificate_condition,
    )


def build_app(t: Template, settings: StackSettings) -> None:
    release_parameter = parameter(
        t,
        "ReleaseParameterName",
        default=settings.release_parameter_name,
        description="SSM parameter holding the current release as JSON {version, bundle}; written by deploy_app.",
    )
    artifacts_bucket = _artifacts_bucket(t, settings)
    topic = add_alerts_topic(t, settings=settings, budget_alerts=True)
    network = add_network(t, settings)
    groups = add_security_groups(t, network=network, settings=settings, origin_port=origin_port(settings))
    add_interface_endpoints(t, network=network, security_group=groups.endpoints)
    secrets = add_secrets(t)
    # One regional certificate for the ALB; in us-east-1 it also serves CloudFront.
    certificate = add_certificate(t, "SecurityCertificate", settings=settings) if settings.domain else None
    database = add_database(t, settings=settings, network=network, groups=groups, port=POSTGRES_PORT)
    rotation = RotationInputs(
        secret=database.app_user_secret,
        master_secret=database.master_secret,
        attachment=database.app_user_secret_attachment,
        artifacts_bucket=artifacts_bucket,
    )
    add_rotation(t, settings=settings, network=network, groups=groups, inputs=rotation)
    cache = add_cache(t, settings=settings, network=network, groups=groups, auth_token=secrets.cache_auth_token)
    balancer = add_load_balancer(
        t,
        settings=settings,
        network=network,
        groups=groups,
        origin_verify=secrets.origin_verify,
        certificate=certificate,
    )
    inputs = _edge_inputs(t, settings, certificate=certificate)
    edge = add_edge(t, settings=settings, load_balancer=balancer, origin_verify=secrets.origin_verify, inputs=inputs)
    wiring = AppWiring(
        database=database,
        cache_endpoint=cache.primary_endpoint,
        app_secret=secrets.app,
        # CloudFront forwards every viewer header but Host: the app sees the origin's name.
        allowed_hosts=f"origin.{settings.domain}" if settings.domain else balancer.dns_name,
        artifacts_bucket=artifacts_bucket,
        release_parameter=Ref(release_parameter),
        allow_parameter=settings.allow_parameter_name,
    )
    compute = add_compute(t, settings=settings, network=network, groups=groups, load_balancer=balancer, wiring=wiring)
    names = AlarmTargets(
        load_balancer=balancer.full_name,
        target_group=balancer.target_group_full_name,
        auto_scaling_group=compute.group,
        database_instance=database.instance,
        proxy_name=database.proxy_name,
        cache_clusters=cache.member_cluster_ids,
    )
    add_app_alarms(t, settings=settings, names=names, topic=topic)
    add_shed_metric_filter(t, settings=settings, app_log_group=compute.app_log_group)
    add_app_metric_alarms(t, namespace=app_metrics_namespace(settings), topic=topic)
    if settings.in_edge_region:
        add_edge_alarms(
            t, web_acl_name=f"{settings.stack_name}-web-acl", distribution_id=edge.distribution, topic=topic
        )
    dashboard = add_dashboard(
        t,
        names=names,
        distribution=edge.distribution,
        name=settings.stack_name,
        app_namespace=app_metrics_namespace(settings),
    )
    budget = add_budget(t, settings=settings, topic=topic)
    outputs = {
        "DistributionId": (edge.distribution, "CloudFront distribution (purge_cdn)"),
        "DistributionDomainName": (edge.domain_name, "CloudFront domain name"),
        "AutoScalingGroupName": (compute.group, "App instances' Auto Scaling group"),
        "LoadBalancerDnsName": (balancer.dns_name, "ALB DNS name (answers 403 without CloudFront's origin header)"),
        "DatabaseProxyEndpoint": (database.proxy_endpoint, "RDS Proxy endpoint the app connects to"),
        "DatabaseMasterSecretArn": (database.master_secret, "RDS-managed master secret (migration instance, proxy)"),
        "DatabaseAppSecretArn": (database.app_user_secret, "The app's database role secret (DB_SECRET_ARN)"),
        "AppSecretArn": (secrets.app, "The app's own secrets (APP_SECRET_ARN)"),
        "CacheEndpoint": (cache.primary_endpoint, "Redis primary endpoint (TLS, AUTH)"),
        "AlertsTopicArn": (topic, "SNS topic every alarm notifies"),
        "DashboardName": (dashboard, "CloudWatch dashboard"),
        "ReleaseParameterName": (Ref(release_parameter), "SSM parameter deploy_app writes the release to"),
        "BudgetName": (Ref(budget), "Monthly cost budget (preflight reads it)"),
        "MigrationDocumentName": (compute.migration_document, "SSM document deploy_app sends to run migrations"),
        "MigrationGroupName": (compute.migration_group, "The migration instance's group (deploy_app migrates there)"),
    }
    for name, (value, description) in outputs.items():
        t.add_output(Output(name, Value=value, Description=description))
