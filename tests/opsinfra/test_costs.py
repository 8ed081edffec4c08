"""The price and capacity tables are dated and sourced; the month is priced from the synthesized template's parts;
the budget's default limit is that month, half again."""

import math
import re
from datetime import date

import pytest

from opsinfra import capacity, costs
from opsinfra.services.diff import Resolver
from opsinfra.stacks import stack_settings
from tests.opsinfra.cfn_cache import template


def shape_of(env: str, region: str = "us-east-1", **live) -> costs.StackShape:
    settings = stack_settings(stack="app", env=env, region=region)
    return costs.stack_shape(Resolver(template("app", env, region), {}, {}).resources, settings, **live)


@pytest.mark.parametrize("table", [costs.price_table(), capacity.instance_capacity_table()])
def test_tables_are_dated_and_name_their_source(table):
    assert date.fromisoformat(table["retrieved"]) <= date.today()
    assert len(table["source"]) > 80


def test_instance_capacity_follows_its_stated_method():
    # requests_per_second = 1000 / 60 x vcpus / 2, rounded down to one decimal
    for name, row in capacity.instance_capacity_table()["types"].items():
        assert row["requests_per_second"] == math.floor(1000 / 60 * row["vcpus"] / 2 * 10) / 10, name


def test_production_shape_counts_the_template_parts():
    shape = shape_of("production")

    assert (shape.instances, shape.warm_pool, shape.nat_gateways, shape.availability_zones) == (2, 3, 3, 3)
    assert (shape.interface_endpoints, shape.web_acls, shape.waf_rules, shape.cache_nodes) == (2, 1, 5, 2)
    assert (shape.kms_keys, shape.secrets, shape.dashboards, shape.load_balancers) == (1, 5, 1, 1)
    # 13 single-metric alarms, three over both Redis nodes (2 metrics each), one over their hits and misses (4); the
    # app's own: four single-metric, checkout errors over outcomes (2), cache hit rate over hits, misses, bypasses (3)
    assert shape.alarm_metrics == 32


def test_production_month_at_minimum_and_at_ten_instances():
    shape = shape_of("production")

    lines = {line.item: line.monthly for line in costs.monthly_cost(shape)}
    peak = {line.item: line.monthly for line in costs.monthly_cost(shape.at(10))}

    assert lines["instances"] == round(2 * 0.0416 * 730, 2)
    assert lines["database"] == round(2 * 0.072 * 730, 2)  # multi-AZ: two instances
    assert lines["NAT gateways"] == round(3 * 0.045 * 730, 2)
    assert lines["public IPv4"] == round(6 * 0.005 * 730, 2)  # three NAT addresses, three ALB nodes
    assert peak["instances"] == round(10 * 0.0416 * 730, 2)
    assert peak["instance volumes"] == round(13 * 20 * 0.08, 2)
    assert costs.total(costs.monthly_cost(shape)) == 425.06
    assert {item for item in lines} == {item for item in peak}


def test_staging_is_smaller_and_eu_west_1_marks_its_estimates():
    staging = costs.total(costs.monthly_cost(shape_of("staging")))
    production = costs.total(costs.monthly_cost(shape_of("production")))
    assert staging < production / 2

    ireland = costs.monthly_cost(shape_of("production", region="eu-west-1"))
    estimated = {line.item for line in ireland if line.estimated}
    assert estimated == {"RDS Proxy", "cache", "interface endpoints"}
    assert costs.total(ireland) > production


def test_a_region_or_size_without_prices_names_what_to_add():
    with pytest.raises(costs.PricesMissing, match=r"No prices for ap-south-1 in prices\.json"):
        costs.region_prices("ap-south-1")
    with pytest.raises(costs.PricesMissing, match=r"No ec2_instance_hour price for t2\.nano"):
        costs.monthly_cost(shape_of("production", instance_type="t2.nano"))


@pytest.mark.parametrize("env", ["production", "staging"])
def test_budget_default_is_the_minimum_month_half_again(env):
    body = template("app", env, "us-east-1")
    shape = costs.stack_shape(
        Resolver({**body, "Resources": {name: value for name, value in body["Resources"].items()
                                        if value["Type"] != "AWS::Budgets::Budget"}}, {}, {}).resources,
        stack_settings(stack="app", env=env),
    )  # fmt: skip
    expected = math.ceil(costs.total(costs.monthly_cost(shape)) * 1.5 / 10) * 10

    assert body["Parameters"]["BudgetMonthlyLimit"]["Default"] == expected
    budget = body["Resources"]["BudgetMonthly"]["Properties"]
    assert budget["Budget"]["BudgetName"] == f"shop-app-{env}-monthly"
    assert budget["Budget"]["CostFilters"] == {"TagKeyValue": [f"aws:cloudformation:stack-name$shop-app-{env}"]}
    alerts = {(item["Notification"]["NotificationType"], item["Notification"]["Threshold"]) for item in
              budget["NotificationsWithSubscribers"]}  # fmt: skip
    assert alerts == {("ACTUAL", 80), ("FORECASTED", 100)}
    for item in budget["NotificationsWithSubscribers"]:
        assert item["Subscribers"] == [{"Address": {"Ref": "ObservabilityAlertsTopic"}, "SubscriptionType": "SNS"}]
    assert re.fullmatch(r"\d+", str(expected))
