from django.core.management.base import CommandError

from opsinfra.errors import OpsError
from opsinfra.management.base import OpsCommand
from opsinfra.services import cdn, deploy


class Command(OpsCommand):
    help = "Invalidate CloudFront paths for the shop distribution (default /api/products*)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", default=list(cdn.DEFAULT_PATHS))
        parser.add_argument("--distribution-id", help="Default: DistributionId from the app stack's outputs file.")
        parser.add_argument("--env", default="staging", help="Settings preset whose app stack's outputs to read.")
        parser.add_argument("--outputs-file", metavar="PATH", help="Default .shop/outputs-<stack-name>.json.")
        parser.add_argument("--wait", action="store_true", help="Block until the invalidation completes.")
        parser.add_argument("--timeout", type=float, default=900, metavar="SECONDS", help="Bound on --wait.")

    def handle(self, *args, paths, distribution_id, env, outputs_file, wait, timeout, verbosity, **options):
        bad = [path for path in paths if not path.startswith("/")]
        if bad:
            raise CommandError(f"CloudFront paths start with '/': {bad[0]!r} does not.")
        if timeout <= 0:
            raise CommandError(f"--timeout {timeout:g}: give a number of seconds above 0.")
        try:
            if not distribution_id:
                target = deploy.target_resolve(stack="app", env=env)
                distribution_id = cdn.distribution_id_find(stack_name=target.stack_name, outputs_file=outputs_file)
            invalidation = cdn.cdn_purge(distribution_id=distribution_id, paths=paths)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Invalidation {invalidation.id} created on {distribution_id} for {len(paths)} path(s)."
                )
            )
            if verbosity >= 2:
                for path in paths:
                    self.stdout.write(f"  {path}")
            if wait:
                invalidation = cdn.cdn_wait(invalidation=invalidation, timeout_s=timeout)
                self.stdout.write(self.style.SUCCESS(f"Invalidation {invalidation.id} completed."))
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
