"""Is the live app stack ready for a sale? A checklist of pass / warn / fail read from AWS and from the shop's URL.

Every check reads; none changes anything (but the product-cache probe's misses fill the entries they missed).
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opsinfra import aws, capacity, costs
from opsinfra.errors import OpsError, StackNotFound
from opsinfra.services import image, probes, schedule, stacks, status
from opsinfra.services.deploy import Target

PASS, WARN, FAIL = "pass", "warn", "fail"
CERTIFICATE_MARGIN = timedelta(days=30)
BACKUP_DAYS = 7
CACHE_MEMORY_WARN, CACHE_MEMORY_FAIL = 60.0, 80.0  # %: the stack's alarm fires at 80
CACHE_METRIC_WINDOW = timedelta(hours=3)
FAILED_REFRESHES = {"Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass, warn, fail
    detail: str


@dataclass(frozen=True)
class Cost:
    instances: int
    lines: tuple[costs.CostLine, ...]

    @property
    def total(self) -> float:
        return costs.total(list(self.lines))


@dataclass(frozen=True)
class Report:
    target: Target
    at: datetime
    checks: tuple[Check, ...]
    cost_minimum: Cost | None = None
    cost_peak: Cost | None = None
    usage_prices: dict = field(default_factory=dict)
    cost_error: str = ""

    def failed(self, *, strict: bool = False) -> list[Check]:
        bad = {FAIL, WARN} if strict else {FAIL}
        return [check for check in self.checks if check.status in bad]


@dataclass
class Live:
    """What the checks share: the stack, its resources by type, and the facts several checks need."""

    target: Target
    state: stacks.StackState
    resources: dict[str, list[tuple[str, str]]]  # type → [(logical id, physical id)]
    at: datetime
    now: datetime
    url: str
    group: dict | None = None
    capacity_at: int | None = None
    capacity_source: str = ""

    def physical(self, resource_type: str) -> list[str]:
        return [physical for _, physical in self.resources.get(resource_type, [])]


def preflight_run(
    *,
    target: Target,
    at: datetime | None = None,
    expected_rps: float | None = None,
    url: str | None = None,
    pages: int = 3,
    products: int = 10,
    drift: bool = True,
    now: datetime | None = None,
) -> Report:
    """Read the live stack and answer every check; StackNotFound when there is no stack at all."""
    now = now or datetime.now(UTC)
    cfn = aws.client("cloudformation", region=target.region)
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    if state is None:
        raise StackNotFound(
            f"There is no stack {target.stack_name} in {target.region}: nothing to check (deploy it first)."
        )
    live = Live(
        target=target,
        state=state,
        resources=_resources(cfn, target.stack_name),
        at=at or now,
        now=now,
        url=url or _stack_url(target, state),
    )
    checks = [stack_check(live)]
    if drift:
        checks.append(drift_check(live))
    checks += [
        _guarded("instances", instances_check, live),
        _guarded("warm pool", warm_pool_check, live),
        _guarded("sale window", sale_window_check, live),
        capacity_check(live, expected_rps=expected_rps),
        _guarded("db connections", connections_check, live),
        _guarded("cache memory", cache_memory_check, live),
        _guarded("alarms", alarms_check, live),
        _guarded("alert subscription", subscription_check, live),
        _guarded("waf", waf_check, live),
        _guarded("certificate", certificate_check, live),
        _guarded("database", database_check, live),
        _guarded("cache", cache_check, live),
        _guarded("budget", budget_check, live),
        product_cache_check(live, pages=pages, products=products),
        _guarded("release", release_check, live),
        _guarded("image", image_check, live),
    ]
    try:
        minimum, peak, usage, cost_error = *_costs(live, expected_rps=expected_rps), ""
    except OpsError as exc:  # a region or size without a price, or no troposphere to synthesize with
        minimum, peak, usage, cost_error = None, None, {}, str(exc)
    return Report(
        target=target,
        at=live.at,
        checks=tuple(checks),
        cost_minimum=minimum,
        cost_peak=peak,
        usage_prices=usage,
        cost_error=cost_error,
    )


def _guarded(name: str, check, live: Live) -> Check:
    """A call AWS refuses (or cannot answer) fails that check alone, with AWS's reason."""
    try:
        return check(live)
    except OpsError as exc:
        return Check(name, FAIL, str(exc))


def _resources(cfn, stack_name: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    try:
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            for item in page["StackResourceSummaries"]:
                found.setdefault(item["ResourceType"], []).append(
                    (item["LogicalResourceId"], item.get("PhysicalResourceId", ""))
                )
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"list the resources of {stack_name}", exc) from exc
    return found


def _stack_url(target: Target, state: stacks.StackState) -> str:
    domain = getattr(target.settings, "domain", "")
    if domain:
        return f"https://{domain}"
    return f"https://{state.outputs.get('DistributionDomainName', '')}"


# --- the stack ----------------------------------------------------------------------------------------------------


def stack_check(live: Live) -> Check:
    state = live.state
    if state.in_progress:
        return Check("stack", WARN, f"{state.name} is {state.status}: check again when it ends.")
    if state.status.endswith("_COMPLETE") and "ROLLBACK" not in state.status:
        return Check("stack", PASS, f"{state.name} is {state.status}.")
    reason = f" ({state.reason})" if state.reason else ""
    return Check("stack", FAIL, f"{state.name} is {state.status}{reason}.")


def drift_check(live: Live) -> Check:
    try:
        drift = status.stack_drift(target=live.target)
    except OpsError as exc:
        return Check("drift", WARN, f"drift could not be detected: {exc}")
    if drift.status == "IN_SYNC":
        return Check("drift", PASS, "every resource matches the template.")
    if drift.status == "DRIFTED":
        names = ", ".join(f"{logical} ({kind})" for logical, _, kind in drift.resources[:5])
        return Check("drift", FAIL, f"{drift.drifted_resources} resource(s) differ from the template: {names}.")
    return Check("drift", WARN, f"drift status {drift.status}.")


# --- instances, warm pool, sale windows, capacity -------------------------------------------------------------------


def _group(live: Live) -> dict:
    if live.group is None:
        name = live.state.outputs.get("AutoScalingGroupName", "")
        autoscaling = aws.client("autoscaling", region=live.target.region)
        live.group = schedule.group_sizes(autoscaling=autoscaling, asg_name=name)
    return live.group


def instances_check(live: Live) -> Check:
    group = _group(live)
    healthy = [
        item
        for item in group.get("Instances", [])
        if item.get("LifecycleState") == "InService" and item.get("HealthStatus") == "Healthy"
    ]
    sizes = f"min {group['MinSize']}, desired {group['DesiredCapacity']}, max {group['MaxSize']}"
    if len(healthy) < group["MinSize"]:
        return Check("instances", FAIL, f"{len(healthy)} healthy in service, fewer than the group's min ({sizes}).")
    if len(healthy) < group["DesiredCapacity"]:
        return Check(
            "instances", WARN, f"{len(healthy)} healthy in service, desired {group['DesiredCapacity']} ({sizes})."
        )
    return Check("instances", PASS, f"{len(healthy)} healthy in service ({sizes}).")


def warm_pool_check(live: Live) -> Check:
    group = _group(live)
    autoscaling = aws.client("autoscaling", region=live.target.region)
    try:
        answer = autoscaling.describe_warm_pool(AutoScalingGroupName=group["AutoScalingGroupName"])
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe the warm pool of {group['AutoScalingGroupName']}", exc) from exc
    pool = answer.get("WarmPoolConfiguration")
    wanted = getattr(live.target.settings, "warm_pool_size", 0)
    if not pool:
        return Check("warm pool", FAIL if wanted else PASS, f"no warm pool (the preset wants {wanted}).")
    size = pool.get("MinSize", 0)
    ready = len(answer.get("Instances", []))
    detail = f"min {size} {pool.get('PoolState', '').lower()} instances, {ready} in the pool now"
    if size < wanted:
        return Check("warm pool", WARN, f"{detail}; the preset wants {wanted}.")
    if ready < size:
        return Check("warm pool", WARN, f"{detail}: it is still filling.")
    return Check("warm pool", PASS, f"{detail}.")


def _windows(live: Live) -> list[tuple[str, datetime, datetime, int]]:
    """(name, start, end, capacity) of each sale window schedule_peak made, by start."""
    group = _group(live)
    actions = schedule.schedule_list(region=live.target.region, asg_name=group["AutoScalingGroupName"])
    by_name = {action.name: action for action in actions}
    windows = []
    for action in actions:
        if action.name.startswith(schedule.PREFIX) and action.name.endswith("-up") and action.start:
            name = action.name.removesuffix("-up")
            down = by_name.get(f"{name}-down")
            end = down.start if down and down.start else datetime.max.replace(tzinfo=UTC)
            windows.append((name, action.start, end, action.min_size or action.desired or 0))
    return windows


def sale_window_check(live: Live) -> Check:
    group = _group(live)
    windows = [window for window in _windows(live) if window[2] > live.now]
    covering = [window for window in windows if window[1] <= live.at < window[2]]
    when = f"{live.at:%Y-%m-%d %H:%M} UTC"
    if covering:
        name, start, end, size = covering[0]
        live.capacity_at, live.capacity_source = size, f"sale window {name}"
        boot = timedelta(seconds=getattr(live.target.settings, "boot_seconds", 600))
        if start > live.now and start > live.at - boot:
            return Check(
                "sale window",
                WARN,
                f"{name} starts at {start:%H:%M} UTC, less than one instance boot "
                f"({boot.seconds // 60} min) before {when}: start it earlier.",
            )
        return Check(
            "sale window",
            PASS,
            f"{name}: {size} instances from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC covers {when}.",
        )
    if live.at <= live.now:
        live.capacity_at, live.capacity_source = group["DesiredCapacity"], "desired now"
        upcoming = ", ".join(window[0] for window in windows) or "none"
        return Check("sale window", PASS, f"no window is on now; upcoming: {upcoming}.")
    live.capacity_at, live.capacity_source = group["MinSize"], "the group's min"
    return Check(
        "sale window",
        WARN,
        f"no sale window covers {when}: the group will be at its min of "
        f"{group['MinSize']} (schedule_peak --start ... --end ... --capacity N).",
    )


def capacity_check(live: Live, *, expected_rps: float | None) -> Check:
    instance_type = getattr(live.target.settings, "instance_type", "")
    try:
        per_instance = capacity.instance_requests_per_second(instance_type)
    except KeyError:
        return Check("capacity", FAIL, f"{instance_type} is not in {capacity.INSTANCE_CAPACITY_FILE.name}: add it.")
    if live.capacity_at is None:
        return Check("capacity", FAIL, "the group's size could not be read (see instances).")
    served = live.capacity_at * per_instance
    basis = (
        f"{live.capacity_at} x {instance_type} ({live.capacity_source}) x {per_instance:g} req/s = "
        f"{served:,.0f} req/s at the origin"
    )
    if expected_rps is None:
        return Check("capacity", WARN, f"{basis}; give --expected-rps to compare with the expected load.")
    needed = math.ceil(expected_rps / per_instance)
    maximum = _group(live)["MaxSize"]
    if needed <= live.capacity_at:
        return Check("capacity", PASS, f"{basis} >= {expected_rps:,.0f} expected.")
    if needed <= maximum:
        return Check(
            "capacity",
            WARN,
            f"{basis} < {expected_rps:,.0f} expected: {needed} instances needed, within "
            f"max {maximum}, but target tracking adds them only as the load comes (schedule a window).",
        )
    return Check(
        "capacity",
        FAIL,
        f"{basis}; {expected_rps:,.0f} expected needs {needed} instances, more than "
        f"the group's max {maximum}: raise asg_max (and check the connection budget).",
    )


def connections_check(live: Live) -> Check:
    settings = live.target.settings
    instance_class = _database(live)["DBInstanceClass"]
    if instance_class not in capacity.DB_INSTANCE_MEMORY_GIB:
        return Check("db connections", FAIL, f"{instance_class} is not in opsinfra.capacity.DB_INSTANCE_MEMORY_GIB.")
    budget = capacity.connection_budget(
        instances=_group(live)["MaxSize"],
        workers=settings.gunicorn_workers,
        threads=settings.gunicorn_threads,
        instance_class=instance_class,
        proxy_max_connections_percent=settings.proxy_max_connections_percent,
    )
    detail = (
        f"at max {budget.instances} instances x {budget.workers} workers x {budget.threads} threads = "
        f"{budget.client_connections} clients; RDS Proxy may open {budget.proxy_connections} on "
        f"{instance_class}"
    )
    return Check("db connections", FAIL if budget.exceeded else PASS, detail + ".")


# --- database, cache -------------------------------------------------------------------------------------------------


def _database(live: Live) -> dict:
    (identifier,) = live.physical("AWS::RDS::DBInstance") or [""]
    rds = aws.client("rds", region=live.target.region)
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe database {identifier or '(none in the stack)'}", exc) from exc


def database_check(live: Live) -> Check:
    database = _database(live)
    wanted_multi_az = getattr(live.target.settings, "db_multi_az", True)
    backups = database.get("BackupRetentionPeriod", 0)
    detail = (
        f"{database['DBInstanceIdentifier']} {database['DBInstanceClass']} {database['DBInstanceStatus']}, "
        f"{'multi-AZ' if database.get('MultiAZ') else 'single-AZ'}, backups kept {backups} "
        f"day{'s' if backups != 1 else ''}"
    )
    if database["DBInstanceStatus"] != "available" or backups == 0 or (wanted_multi_az and not database.get("MultiAZ")):
        return Check("database", FAIL, detail + ".")
    if not database.get("MultiAZ") or backups < BACKUP_DAYS:
        return Check("database", WARN, f"{detail} (production wants multi-AZ and {BACKUP_DAYS} days).")
    return Check("database", PASS, detail + ".")


def _replication_group(live: Live) -> dict:
    (group_id,) = live.physical("AWS::ElastiCache::ReplicationGroup") or [""]
    elasticache = aws.client("elasticache", region=live.target.region)
    try:
        return elasticache.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe cache {group_id or '(none in the stack)'}", exc) from exc


def cache_check(live: Live) -> Check:
    group = _replication_group(live)
    multi_az = group.get("MultiAZ") == "enabled"
    failover = group.get("AutomaticFailover") == "enabled"
    snapshots = group.get("SnapshotRetentionLimit", 0)
    nodes = len(group.get("MemberClusters", []))
    detail = (
        f"{group['ReplicationGroupId']} {group.get('Status')}, {nodes} nodes, multi-AZ "
        f"{'on' if multi_az else 'off'}, failover {'on' if failover else 'off'}, snapshots kept {snapshots} "
        f"day{'s' if snapshots != 1 else ''}"
    )
    if group.get("Status") != "available" or not (multi_az and failover):
        return Check("cache", FAIL, detail + ".")
    if snapshots < 1:
        return Check("cache", WARN, detail + ".")
    return Check("cache", PASS, detail + ".")


def cache_memory_check(live: Live) -> Check:
    group = _replication_group(live)
    node_type = group.get("CacheNodeType", "")
    size = capacity.CACHE_NODE_MEMORY_GIB.get(node_type)
    shown = f"{node_type} ({size:g} GiB)" if size else node_type
    cloudwatch = aws.client("cloudwatch", region=live.target.region)
    fullest = None
    for cluster in group.get("MemberClusters", []):
        try:
            points = cloudwatch.get_metric_statistics(
                Namespace="AWS/ElastiCache",
                MetricName="DatabaseMemoryUsagePercentage",
                Dimensions=[{"Name": "CacheClusterId", "Value": cluster}],
                StartTime=live.now - CACHE_METRIC_WINDOW,
                EndTime=live.now,
                Period=300,
                Statistics=["Maximum"],
            )["Datapoints"]
        except aws.aws_errors() as exc:
            raise aws.call_failed(f"read the memory of {cluster}", exc) from exc
        for point in points:
            fullest = max(fullest or 0.0, point["Maximum"])
    if fullest is None:
        return Check("cache memory", WARN, f"{shown}: no memory datapoints in the last 3 hours.")
    detail = f"{shown}: the fullest node used {fullest:.0f} % of its memory in the last 3 hours"
    if fullest >= CACHE_MEMORY_FAIL:
        return Check("cache memory", FAIL, f"{detail} (evictions start near 100 %).")
    if fullest >= CACHE_MEMORY_WARN:
        return Check("cache memory", WARN, detail + ".")
    return Check("cache memory", PASS, detail + ".")


# --- alarms, WAF, certificate, budget ---------------------------------------------------------------------------------


def alarms_check(live: Live) -> Check:
    names = live.physical("AWS::CloudWatch::Alarm")
    topic = live.state.outputs.get("AlertsTopicArn", "")
    cloudwatch = aws.client("cloudwatch", region=live.target.region)
    found = []
    for start in range(0, len(names), 100):
        try:
            found += cloudwatch.describe_alarms(AlarmNames=names[start : start + 100])["MetricAlarms"]
        except aws.aws_errors() as exc:
            raise aws.call_failed("describe the stack's alarms", exc) from exc
    missing = sorted(set(names) - {alarm["AlarmName"] for alarm in found})
    silent = [alarm["AlarmName"] for alarm in found if topic not in alarm.get("AlarmActions", [])]
    firing = [alarm["AlarmName"] for alarm in found if alarm.get("StateValue") == "ALARM"]
    if not names or missing or silent:
        problems = [
            f"{len(missing)} missing" if missing else "",
            f"{len(silent)} not notifying {topic}" if silent else "",
        ]
        return Check(
            "alarms", FAIL, f"{len(names)} alarms in the stack: {', '.join(p for p in problems if p) or 'none'}."
        )
    if firing:
        return Check("alarms", WARN, f"{len(found)} alarms notify the topic; in ALARM now: {', '.join(firing)}.")
    return Check("alarms", PASS, f"{len(found)} alarms notify {topic.rsplit(':', 1)[-1]}; none in ALARM.")


def subscription_check(live: Live) -> Check:
    topic = live.state.outputs.get("AlertsTopicArn", "")
    sns = aws.client("sns", region=live.target.region)
    subscriptions = []
    try:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
            subscriptions += page["Subscriptions"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"list the subscriptions of {topic}", exc) from exc
    confirmed = [item for item in subscriptions if item["SubscriptionArn"].startswith("arn:")]
    pending = len(subscriptions) - len(confirmed)
    if confirmed:
        shown = ", ".join(f"{item['Protocol']} {item['Endpoint']}" for item in confirmed)
        return Check("alert subscription", PASS, f"confirmed: {shown}" + (f"; {pending} pending." if pending else "."))
    if pending:
        return Check(
            "alert subscription",
            FAIL,
            f"{pending} subscription(s) pending confirmation: click the link "
            "in the email SNS sent, or nobody hears the alarms.",
        )
    return Check(
        "alert subscription",
        FAIL,
        "nobody is subscribed to the alerts topic: deploy with "
        "--parameter AlertEmail=you@example.com and confirm the email.",
    )


def _distribution(live: Live) -> dict:
    distribution_id = live.state.outputs.get("DistributionId", "")
    cloudfront = aws.client("cloudfront", region=live.target.region)
    try:
        return cloudfront.get_distribution_config(Id=distribution_id)["DistributionConfig"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read distribution {distribution_id}", exc) from exc


def waf_check(live: Live) -> Check:
    acl = _distribution(live).get("WebACLId", "")
    if not acl:
        return Check("waf", FAIL, f"distribution {live.state.outputs.get('DistributionId')} has no web ACL.")
    return Check("waf", PASS, f"web ACL {acl.rsplit('/', 2)[-2] if '/' in acl else acl} on the distribution.")


def certificate_check(live: Live) -> Check:
    viewer = _distribution(live).get("ViewerCertificate", {})
    arn = viewer.get("ACMCertificateArn", "")
    if not arn:
        return Check("certificate", PASS, "CloudFront's default *.cloudfront.net certificate (AWS renews it).")
    acm = aws.client("acm", region="us-east-1")  # CloudFront takes certificates from us-east-1 only
    try:
        certificate = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe certificate {arn}", exc) from exc
    expires = certificate.get("NotAfter")
    detail = f"{certificate.get('DomainName')} {certificate.get('Status')}"
    if certificate.get("Status") != "ISSUED" or expires is None or expires <= live.at:
        return Check("certificate", FAIL, f"{detail}, not valid at {live.at:%Y-%m-%d %H:%M} UTC.")
    detail += f", expires {expires:%Y-%m-%d}"
    if expires - live.at < CERTIFICATE_MARGIN:
        return Check("certificate", WARN, f"{detail}: within 30 days of {live.at:%Y-%m-%d} (is its DNS record there?).")
    return Check("certificate", PASS, detail + ".")


def budget_check(live: Live) -> Check:
    name = live.state.outputs.get("BudgetName", "")
    if not name:
        return Check("budget", FAIL, "the stack has no BudgetName output: deploy the app stack with its budget.")
    account = aws.client("sts", region=live.target.region).get_caller_identity()["Account"]
    budgets = aws.client("budgets", region="us-east-1")  # a global service with one endpoint
    try:
        budget = budgets.describe_budget(AccountId=account, BudgetName=name)["Budget"]
        notifications = budgets.describe_notifications_for_budget(AccountId=account, BudgetName=name)["Notifications"]
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"describe budget {name}", exc) from exc
    limit = float(budget["BudgetLimit"]["Amount"])
    spend = budget.get("CalculatedSpend", {})
    actual = float(spend.get("ActualSpend", {}).get("Amount", 0))
    forecast = float(spend.get("ForecastedSpend", {}).get("Amount", 0))
    detail = (
        f"{name}: limit {limit:,.0f} USD a month, spent {actual:,.2f}, forecast {forecast:,.2f}, "
        f"{len(notifications)} alerts"
    )
    if not notifications:
        return Check("budget", FAIL, detail + ": nothing alerts.")
    if forecast > limit:
        return Check("budget", WARN, f"{detail}: the forecast is over the limit.")
    return Check("budget", PASS, detail + ".")


# --- through the shop's URL ----------------------------------------------------------------------------------------


def product_cache_check(live: Live, *, pages: int, products: int) -> Check:
    probe = probes.product_cache_probe(base_url=live.url, pages=pages, products=products)
    if probe.broken:
        first = probe.broken[0]
        reason = first.error or f"HTTP {first.status}"
        return Check("product cache", FAIL, f"{first.path} at {live.url}: {reason}.")
    if probe.cold:
        paths = ", ".join(f"{answer.path} {answer.cache or 'no header'}" for answer in probe.cold[:4])
        return Check(
            "product cache",
            WARN,
            f"{len(probe.cold)} of {len(probe.answers)} were not cache hits "
            f"({paths}); those are filled now, run again.",
        )
    return Check(
        "product cache",
        PASS,
        f"{len(probe.answers)} of {len(probe.answers)} answered HIT "
        f"({pages} list pages, {len(probe.answers) - pages} products) at {live.url}.",
    )


def release_check(live: Live) -> Check:
    release = status.release_read(target=live.target)
    if not release:
        return Check("release", FAIL, f"no release: {status.release_parameter_name(live.target)} is not set.")
    version = release.get("version", "")
    refresh = _last_refresh(live)
    if refresh and refresh.get("Status") in FAILED_REFRESHES:
        return Check(
            "release",
            FAIL,
            f"the last instance refresh ({refresh.get('InstanceRefreshId')}) ended "
            f"{refresh['Status']}: {refresh.get('StatusReason', '')}".rstrip(": ")
            + ".",
        )
    answer, answered = probes.health_version(base_url=live.url)
    if answer.status != 200:
        return Check(
            "release",
            FAIL,
            f"{version} is live, but /health at {live.url} answers {answer.error or f'HTTP {answer.status}'}.",
        )
    if answered != version:
        return Check("release", WARN, f"the release parameter says {version}, /health answers {answered!r}.")
    refreshed = f", last refresh {refresh['Status']}" if refresh else ""
    if refresh and refresh.get("Status") != "Successful":
        return Check("release", WARN, f"{version} answers /health{refreshed}.")
    return Check("release", PASS, f"{version} answers /health{refreshed}.")


def image_check(live: Live) -> Check:
    """The image new instances launch from against the live release: an instance beyond the warm pool launched from
    an older image (or the public one) installs the release at boot, minutes instead of seconds (docs/image.md)."""
    age = image.image_age_check(target=live.target)
    if age.warning:
        return Check("image", WARN, age.warning)
    if age.release is None:
        return Check("image", PASS, "no release yet: nothing to compare the image with.")
    return Check("image", PASS, f"{age.image} holds the live release {age.release} (baked {age.baked_at}).")


def _last_refresh(live: Live) -> dict | None:
    """The group's newest instance refresh, or None (none yet, or an endpoint that has no such API)."""
    autoscaling = aws.client("autoscaling", region=live.target.region)
    try:
        refreshes = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=live.state.outputs.get("AutoScalingGroupName", ""), MaxRecords=1
        )["InstanceRefreshes"]
    except aws.aws_errors() as exc:
        if aws.error_code(exc) in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise aws.call_failed("read the last instance refresh", exc) from exc
        return None
    return refreshes[0] if refreshes else None


# --- what it costs ---------------------------------------------------------------------------------------------------


def _costs(live: Live, *, expected_rps: float | None) -> tuple[Cost, Cost, dict]:
    """The month at minimum size and at the peak (the window's capacity or what the expected load needs, whichever
    is larger); PricesMissing when the region or a size has no price."""
    from opsinfra.services import templates
    from opsinfra.services.diff import Resolver

    settings = live.target.settings
    template = templates.template_synthesize(stack="app", stack_settings=settings)
    resources = Resolver(template.data, live.state.parameters, {}).resources
    group = live.group or {}
    shape = costs.stack_shape(resources, settings, instances=group.get("MinSize"))
    peak = max(live.capacity_at or 0, shape.instances)
    if expected_rps and settings.instance_type in capacity.instance_capacity_table()["types"]:
        needed = math.ceil(expected_rps / capacity.instance_requests_per_second(settings.instance_type))
        peak = max(peak, min(needed, group.get("MaxSize", needed)))  # the group runs no more than its max
    minimum = Cost(shape.instances, tuple(costs.monthly_cost(shape)))
    at_peak = Cost(peak, tuple(costs.monthly_cost(shape.at(peak))))
    return minimum, at_peak, costs.usage_prices(shape.region)
