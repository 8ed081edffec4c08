"""The alerts topic: SNS encrypted with a customer key CloudWatch may use, a policy CloudWatch may publish under."""

from troposphere import Equals, Not, Ref, Sub, Template, kms, sns

from opsinfra.cfn.common import parameter, stateful
from opsinfra.stacks import StackSettings


def add_alerts_topic(t: Template, *, settings: StackSettings) -> Ref:
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
                    }
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
