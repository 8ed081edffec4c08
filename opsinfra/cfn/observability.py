"""The alerts topic: SNS encrypted with a customer key CloudWatch and Budgets may use, a policy both may publish
under; the app's metrics namespace, and the metric the nginx access log gives it (shed requests)."""

import json

from troposphere import Equals, Not, Ref, Sub, Template, kms, logs, sns

from opsinfra.cfn.common import parameter, stateful
from opsinfra.stacks import StackSettings


def add_alerts_topic(t: Template, *, settings: StackSettings, budget_alerts: bool = False) -> Ref:
    """budget_alerts: AWS Budgets may publish too (the app stack's budget, opsinfra/cfn/budget.py)."""
    email = parameter(
        t,
        "AlertEmail",
        default=settings.alert_email,
        description="Address subscribed to the alerts topic (confirm the email SNS sends); empty: no subscription.",
    )
    t.add_condition("ObservabilityHasAlertEmail", Not(Equals(Ref(email), "")))
    key = t.add_resource(
        kms.Key(
            "ObservabilityAlertsKey",
            Description="Alerts topic encryption; CloudWatch alarms may use it",
            EnableKeyRotation=True,
            PendingWindowInDays=7,
            KeyPolicy={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AccountAdministers",
                        "Effect": "Allow",
                        "Principal": {"AWS": Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        # Under the AWS-managed alias/aws/sns key CloudWatch cannot encrypt, and every alarm
                        # notification is silently dropped.
                        "Sid": "CloudWatchPublishes",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                        "Resource": "*",
                        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
                    },
                    *([_budgets_may("kms:Decrypt", "kms:GenerateDataKey*", resource="*")] if budget_alerts else []),
                ],
            },
        )
    )
    stateful(key, "Delete")
    topic = t.add_resource(
        sns.Topic(
            "ObservabilityAlertsTopic",
            KmsMasterKeyId=Ref(key),
            DisplayName=f"{settings.stack_name} alerts",
        )
    )
    t.add_resource(
        sns.TopicPolicy(
            "ObservabilityAlertsTopicPolicy",
            Topics=[Ref(topic)],
            PolicyDocument={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "CloudWatchAlarmsPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": Ref(topic),
                        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
                    },
                    *([_budgets_may("sns:Publish", resource=Ref(topic))] if budget_alerts else []),
                ],
            },
        )
    )
    t.add_resource(
        sns.SubscriptionResource(
            "ObservabilityAlertsEmail",
            Condition="ObservabilityHasAlertEmail",
            TopicArn=Ref(topic),
            Protocol="email",
            Endpoint=Ref(email),
        )
    )
    return Ref(topic)


# nginx answers a shed request itself (docs/serving.md), so the app never counts it: a metric filter on the access
# log does. A shed request's line has the upstream group's name where an address would be (shop/nginx/nginx.conf).
SHED_REQUESTS = "ShedRequests"
SHED_LINE = {"logger": "nginx.access", "status": 503, "upstream_addr": "shop_app"}


def app_metrics_namespace(settings: StackSettings) -> str:
    """The CloudWatch namespace of the app's own metrics: one per stack, so staging never mixes with production."""
    return settings.stack_name


def json_filter_pattern(fields: dict) -> str:
    """A CloudWatch Logs filter pattern matching JSON lines whose `fields` have these values."""
    terms = " && ".join(f"($.{name} = {json.dumps(value)})" for name, value in fields.items())
    return f"{{ {terms} }}"


def add_shed_metric_filter(t: Template, *, settings: StackSettings, app_log_group: Ref) -> logs.MetricFilter:
    return t.add_resource(
        logs.MetricFilter(
            "ObservabilityShedFilter",
            LogGroupName=app_log_group,
            FilterPattern=json_filter_pattern(SHED_LINE),
            MetricTransformations=[
                logs.MetricTransformation(
                    MetricNamespace=app_metrics_namespace(settings),
                    MetricName=SHED_REQUESTS,
                    MetricValue="1",
                    # 0 in the minutes with log lines but no shed request: the graph shows no shedding, not no data.
                    DefaultValue=0,
                    Unit="Count",
                )
            ],
        )
    )


def _budgets_may(*actions: str, resource) -> dict:
    return {
        "Sid": "BudgetsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "budgets.amazonaws.com"},
        "Action": list(actions) if len(actions) > 1 else actions[0],
        "Resource": resource,
        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
    }
