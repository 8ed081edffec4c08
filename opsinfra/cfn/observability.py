"""The alerts topic: SNS encrypted with a customer key CloudWatch and Budgets may use, a policy both may publish
under."""

from troposphere import Equals, Not, Ref, Sub, Template, kms, sns

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


def _budgets_may(*actions: str, resource) -> dict:
    return {
        "Sid": "BudgetsPublish",
        "Effect": "Allow",
        "Principal": {"Service": "budgets.amazonaws.com"},
        "Action": list(actions) if len(actions) > 1 else actions[0],
        "Resource": resource,
        "Condition": {"StringEquals": {"aws:SourceAccount": Ref("AWS::AccountId")}},
    }
