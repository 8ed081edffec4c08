"""The stack's monthly cost budget: actual spend over 80 % and forecast over 100 % of the limit notify the alerts
topic. Its default limit is the minimum-size month from the dated price table (opsinfra/costs.py), half again."""

from troposphere import Ref, Template, budgets

from opsinfra.cfn.common import parameter
from opsinfra.costs import budget_amount, monthly_cost, stack_shape
from opsinfra.stacks import StackSettings

# CloudFormation tags every resource it creates with the stack's name; Billing counts the tag only once it is
# activated as a cost-allocation tag (docs/operations.md), and until then the filtered budget sees no spend.
STACK_NAME_TAG = "aws:cloudformation:stack-name"
ALERTS = (("ACTUAL", 80), ("FORECASTED", 100))


def budget_name(settings: StackSettings) -> str:
    return f"{settings.stack_name}-monthly"


def add_budget(t: Template, *, settings: StackSettings, topic) -> budgets.Budget:
    """Call it last: the default limit prices the resources already in the template."""
    from opsinfra.services.diff import Resolver

    resources = Resolver(t.to_dict(), {}, {}).resources
    amount = budget_amount(monthly_cost(stack_shape(resources, settings)))
    limit = parameter(
        t,
        "BudgetMonthlyLimit",
        Type="Number",
        default=amount,
        MinValue=1,
        description="Monthly cost budget of this stack in USD (default: the minimum-size month, half again); "
        "raise it before a sale month.",
    )
    return t.add_resource(
        budgets.Budget(
            "BudgetMonthly",
            Budget=budgets.BudgetData(
                BudgetName=budget_name(settings),
                BudgetType="COST",
                TimeUnit="MONTHLY",
                BudgetLimit=budgets.Spend(Amount=Ref(limit), Unit="USD"),
                CostFilters={"TagKeyValue": [f"{STACK_NAME_TAG}${settings.stack_name}"]},
            ),
            NotificationsWithSubscribers=[
                budgets.NotificationWithSubscribers(
                    Notification=budgets.Notification(
                        NotificationType=kind,
                        ComparisonOperator="GREATER_THAN",
                        Threshold=threshold,
                        ThresholdType="PERCENTAGE",
                    ),
                    Subscribers=[budgets.Subscriber(SubscriptionType="SNS", Address=topic)],
                )
                for kind, threshold in ALERTS
            ],
        )
    )
