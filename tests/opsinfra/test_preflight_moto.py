"""preflight after the walkthrough: bootstrap and the production app stack deployed on moto, a release, a sale
window, and the shop itself served by a real gunicorn on this test's PostgreSQL and Redis. What moto cannot answer
(drift, a pending subscription, an instance refresh, CloudWatch datapoints, an expiring certificate) goes through
Stubber in test_preflight_stubbed.py."""

import json
import re
import tarfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import boto3
import pytest
from django.core.management import CommandError, call_command

from catalog.models import Inventory, Product
from opsinfra.services import bundle, image
from tests.opsinfra.conftest import ACCOUNT, run
from tests.servers import gunicorn_servers, server_env

VERSION = "v1.4.2"
PEAK = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)


def checklist(out: str) -> dict[str, tuple[str, str]]:
    """{check: (status, detail)} from the printed table."""
    rows = {}
    for line in out.splitlines():
        found = re.match(r"^(PASS|WARN|FAIL)\s+(\S+(?: \S+)?)\s{2,}(.*)$", line)
        if found:
            rows[found.group(2)] = (found.group(1).lower(), found.group(3))
    return rows


@pytest.fixture
def small_bundle(monkeypatch):
    """deploy_app uploads a small archive in place of the real bundle (test_release_moto builds that one)."""

    def build(*, version, destination):
        destination.mkdir(parents=True, exist_ok=True)
        path = Path(destination) / f"{version}.tar.gz"
        with tarfile.open(path, "w:gz"):
            pass
        return path

    monkeypatch.setattr(bundle, "bundle_build", build)


@pytest.fixture
def walkthrough(aws_env, outputs_dir, small_bundle):
    """docs/deploy.md's walkthrough for production: bootstrap, the app stack (with an alert address), a release, a
    sale window around the peak."""
    run("deploy_stack", "--stack", "bootstrap", "--no-input", "--allow-wider-access")
    run("deploy_stack", "--stack", "app", "--env", "production", "--no-input", "--allow-wider-access",
        "--parameter", "AlertEmail=ops@example.com")  # fmt: skip
    run("deploy_app", "--env", "production", "--release", VERSION, "--no-refresh")
    start, end = PEAK - timedelta(hours=1), PEAK + timedelta(hours=6)
    run("schedule_peak", "--env", "production", "--start", start.isoformat(), "--end", end.isoformat(),
        "--capacity", "10")  # fmt: skip
    return json.loads((outputs_dir / "outputs-shop-app-production.json").read_text())


@pytest.fixture
def shop_url(transactional_db, needs_redis, settings):
    """The shop on gunicorn, on this test's database and Redis db, running the release, with 30 products."""
    products = Product.objects.bulk_create(
        Product(sku=f"PF-{number:04d}", name=f"Item {number}", category="Books", price=Decimal("9.50"))
        for number in range(1, 31)
    )
    Inventory.objects.bulk_create(Inventory(product=product, quantity=5) for product in products)
    with gunicorn_servers(server_env(REDIS_URL=settings.REDIS_URL, SHOP_VERSION=VERSION)) as (url,):
        yield url


def preflight(*args) -> tuple[str, str]:
    """The command's stdout and its refusal ("" when it exits 0)."""
    out = StringIO()
    try:
        call_command("preflight", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


def test_preflight_after_the_walkthrough_reads_every_check_and_prints_the_cost(walkthrough, shop_url):
    args = ("--env", "production", "--at", PEAK.isoformat(), "--expected-rps", "150", "--url", shop_url,
            "--pages", "2", "--products", "5", "--no-drift")  # fmt: skip

    out, refusal = preflight(*args)

    checks = checklist(out)
    assert {name: state for name, (state, _) in checks.items()} == {
        "stack": "pass",
        "instances": "pass",
        "warm pool": "warn",  # moto keeps no instances in a warm pool
        "sale window": "pass",
        "capacity": "pass",
        "db connections": "pass",
        "cache memory": "warn",  # moto has no ElastiCache datapoints
        "alarms": "pass",
        "alert subscription": "pass",
        "waf": "pass",
        "certificate": "pass",
        "database": "pass",
        "cache": "pass",
        "budget": "pass",
        "product cache": "warn",  # the first run finds the cache cold
        "release": "pass",
        "image": "warn",  # nothing baked: new instances install the release at boot
    }
    assert refusal == ""  # warns alone exit 0
    assert out.splitlines()[-1] == "Ready: 13 pass, 4 warn, 0 fail."
    window = f"sale-{PEAK - timedelta(hours=1):%Y%m%d-%H%M}"
    assert checks["capacity"][1] == (
        f"10 x t3.medium (sale window {window}) x 16.6 req/s = 166 req/s at the origin >= 150 expected."
    )
    assert checks["db connections"][1] == (
        "at max 20 instances x 4 workers x 4 threads = 320 clients; RDS Proxy may open 405 on db.t3.medium."
    )
    assert checks["alert subscription"][1] == "confirmed: email ops@example.com."
    assert checks["release"][1] == f"{VERSION} answers /health."
    assert checks["budget"][1].startswith("shop-app-production-monthly: limit 640 USD a month")
    assert "7 of 7 were not cache hits" in checks["product cache"][1]
    # The month: 2 instances at the minimum, the window's 10 at the peak, priced from the dated table.
    assert re.search(r"^instances +2 x t3\.medium +60\.74 +303\.68$", out, re.M)
    assert re.search(r"^database +db\.t3\.medium multi-AZ +105\.12 +105\.12$", out, re.M)
    assert re.search(r"^total +425\.06 +680\.80$", out, re.M)

    # when the misses filled the cache, a second run finds every page and product warm
    out, refusal = preflight(*args)

    assert checklist(out)["product cache"] == ("pass", f"7 of 7 answered HIT (2 list pages, 5 products) at {shop_url}.")
    assert refusal == ""
    # --strict: a warn is a failure too
    out, refusal = preflight(*args, "--strict")
    assert refusal == "Not ready: 14 pass, 3 warn, 0 fail (warm pool, cache memory, image)."


def test_preflight_fails_what_changed_on_the_live_stack(walkthrough, shop_url):
    args = ("--env", "production", "--url", shop_url, "--no-drift")
    alarms = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]
    boto3.client("cloudwatch").set_alarm_state(AlarmName=alarms[0]["AlarmName"], StateValue="ALARM", StateReason="test")
    topic = walkthrough["AlertsTopicArn"]
    for subscription in boto3.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        boto3.client("sns").unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    boto3.client("budgets").delete_budget(AccountId=ACCOUNT, BudgetName="shop-app-production-monthly")

    out, refusal = preflight(*args, "--at", (PEAK + timedelta(days=1)).isoformat(), "--expected-rps", "400")

    checks = checklist(out)
    assert checks["alarms"] == ("warn", f"23 alarms notify the topic; in ALARM now: {alarms[0]['AlarmName']}.")
    assert checks["alert subscription"][0] == "fail"
    assert checks["alert subscription"][1].startswith("nobody is subscribed to the alerts topic")
    assert checks["budget"][0] == "fail"
    assert "shop-app-production-monthly" in checks["budget"][1]
    # no window at that time: the group's min of 2 serves 33 req/s, and 400 needs 25, more than the max of 20
    assert checks["sale window"][0] == "warn"
    assert checks["capacity"] == (
        "fail",
        "2 x t3.medium (the group's min) x 16.6 req/s = 33 req/s at the origin; 400 expected needs 25 instances, "
        "more than the group's max 20: raise asg_max (and check the connection budget).",
    )
    assert refusal.startswith("Not ready: ")
    assert refusal.endswith("(capacity, alert subscription, budget).")
    # the peak the cost is printed for stops at the group's max
    assert re.search(r"^instances +2 x t3\.medium +60\.74 +607\.36$", out, re.M)


def test_preflight_warns_while_the_baked_image_holds_an_older_release(walkthrough, shop_url):
    """bake_image publishes an image and what it holds (image.image_publish); the check compares it with the live
    release deploy_app set."""
    args = ("--env", "production", "--url", shop_url, "--no-drift", "--pages", "1", "--products", "1")
    run("deploy_stack", "--stack", "image", "--env", "production", "--no-input", "--allow-wider-access")
    place = image.image_place(env="production")

    image.image_publish(place=place, image_id="ami-0123456789abcdef0", release="v1.4.1", parent="ami-0parent")
    detail = checklist(preflight(*args)[0])["image"]

    assert detail[0] == "warn"
    assert "ami-0123456789abcdef0 holds release v1.4.1" in detail[1] and f"the live release is {VERSION}" in detail[1]
    assert f"bake_image --env production --release {VERSION}" in detail[1]

    image.image_publish(place=place, image_id="ami-0fedcba9876543210", release=VERSION, parent="ami-0parent")
    state, detail = checklist(preflight(*args)[0])["image"]

    assert state == "pass"
    assert detail.startswith(f"ami-0fedcba9876543210 holds the live release {VERSION} (baked ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--env", "nowhere"), "Unknown environment 'nowhere'"),
        (("--at", "2020-01-01T00:00"), "is in the past"),
        (("--at", "next friday"), "is not a time like"),
        (("--expected-rps", "0"), "more than 0"),
        (("--url", "ftp://x"), "is not an http"),
    ],
)
def test_preflight_refuses_bad_input_before_any_call(aws_env, aws_calls, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("preflight", *args)
    assert aws_calls.calls == []


def test_preflight_without_the_stack_names_it(aws_env):
    with pytest.raises(CommandError, match="There is no stack shop-app-production in us-east-1"):
        run("preflight", "--env", "production")
    assert boto3.client("cloudformation").list_stacks()["StackSummaries"] == []
