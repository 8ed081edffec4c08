from datetime import UTC, datetime

from django.core.management.base import CommandError

from opsinfra.errors import OpsError
from opsinfra.management.base import OpsCommand
from opsinfra.management.commands.schedule_peak import utc_time
from opsinfra.management.output import table
from opsinfra.services import deploy, preflight

DAYS_PER_MONTH = 730 / 24
USAGE_UNITS = {
    "nat_gateway_gb": "NAT data, per GB",
    "alb_lcu_hour": "ALB capacity unit, per hour",
    "waf_million_requests": "WAF, per million requests",
    "cloudfront_gb_out": "CloudFront out, per GB (first 10 TB)",
    "cloudfront_10k_https_requests": "CloudFront, per 10,000 HTTPS requests",
}


class Command(OpsCommand):
    help = (
        "Is the live app stack ready for a sale? A checklist (pass / warn / fail) of the stack, its instances, warm "
        "pool, sale windows and capacity, alarms, WAF, certificate, database, cache, budget, the product cache and "
        "the release, then what the stack costs a month. Exit 1 on any fail (with --strict, on any warn too)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--env", default="staging", help="Settings preset: production or staging.")
        parser.add_argument("--region", help="Region (default from the preset).")
        parser.add_argument("--stack-name", help="CloudFormation stack name (default from the preset).")
        parser.add_argument("--expected-rps", type=float, help="Requests/s expected at the origin at the peak.")
        parser.add_argument("--at", help="When the peak comes (ISO 8601; UTC unless an offset). Default: now.")
        parser.add_argument("--url", help="The shop's base URL (default https://<domain> or the distribution's).")
        parser.add_argument("--pages", type=int, default=3, help="List pages the cache check asks for (default 3).")
        parser.add_argument("--products", type=int, default=10, help="Products of the first page it asks for.")
        parser.add_argument("--no-drift", action="store_false", dest="drift", help="Skip drift detection.")
        parser.add_argument("--strict", action="store_true", help="A warn fails too (exit 1).")

    def handle(self, *args, env, region, stack_name, expected_rps, at, url, pages, products, drift, strict, **options):
        now = datetime.now(UTC)
        moment = utc_time(at) if at else None
        if moment is not None and moment < now:
            raise CommandError(f"--at {moment:%Y-%m-%d %H:%M} UTC is in the past: give the time of the coming peak.")
        if expected_rps is not None and not expected_rps > 0:
            raise CommandError(f"--expected-rps {expected_rps:g}: give the expected requests/s, more than 0.")
        if pages < 1 or products < 0:
            raise CommandError("--pages must be 1 or more and --products 0 or more.")
        if url and not url.startswith(("http://", "https://")):
            raise CommandError(f"--url {url!r} is not an http:// or https:// URL.")
        try:
            target = deploy.target_resolve(stack="app", env=env, region=region, stack_name=stack_name)
            report = preflight.preflight_run(
                target=target,
                at=moment,
                expected_rps=expected_rps,
                url=url,
                pages=pages,
                products=products,
                drift=drift,
                now=now,
            )
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        self.show(report, expected_rps=expected_rps)
        failed = report.failed(strict=strict)
        counts = {kind: sum(check.status == kind for check in report.checks) for kind in ("pass", "warn", "fail")}
        summary = f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"
        if failed:
            raise CommandError(f"Not ready: {summary} ({', '.join(check.name for check in failed)}).")
        self.stdout.write(self.style.SUCCESS(f"Ready: {summary}."))

    def show(self, report, *, expected_rps):
        self.stdout.write(
            f"Preflight of {report.target.stack_name} in {report.target.region} for {report.at:%Y-%m-%d %H:%M} UTC"
            + (f", {expected_rps:,.0f} req/s expected" if expected_rps else "")
        )
        styles = {"pass": self.style.SUCCESS, "warn": self.style.WARNING, "fail": self.style.ERROR}
        for line in table(["", "check", "detail"], [(c.status.upper(), c.name, c.detail) for c in report.checks]):
            status = line.split(" ", 1)[0].lower()
            self.stdout.write(styles[status](line) if status in styles else line)
        if report.cost_error:
            self.stdout.write(self.style.WARNING(f"Cost: {report.cost_error}"))
            return
        minimum, peak = report.cost_minimum, report.cost_peak
        extra_day = (peak.total - minimum.total) / DAYS_PER_MONTH
        self.stdout.write(
            f"Monthly cost, on-demand USD: minimum {minimum.instances} instances all month, peak {peak.instances} "
            f"(a day at the peak size costs {extra_day:,.2f} more than a day at the minimum):"
        )
        rows = [
            (low.item, low.detail, f"{low.monthly:,.2f}", f"{high.monthly:,.2f}", "estimated" if low.estimated else "")
            for low, high in zip(minimum.lines, peak.lines, strict=True)
        ]
        rows.append(("total", "", f"{minimum.total:,.2f}", f"{peak.total:,.2f}", ""))
        for line in table(["item", "what", "minimum", "peak", ""], rows):
            self.stdout.write(line)
        usage = ", ".join(f"{USAGE_UNITS[key]} {value:g}" for key, value in report.usage_prices.items())
        self.stdout.write(f"Not included, by traffic: {usage}.")
