from django.core.management.base import CommandError

from opsinfra.errors import OpsError, ReleaseError
from opsinfra.management.base import OpsCommand
from opsinfra.services import bundle, deploy, image, release


class Command(OpsCommand):
    help = (
        "Release the application: build and upload a bundle with its wheels, migrate once on one instance, point "
        "the release parameter at it, and replace the instances with an instance refresh. --release of an earlier "
        "release rolls back to it without rebuilding."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--release",
            dest="release_name",
            metavar="NAME",
            help="Release name (default: `git describe` of a clean work tree).",
        )
        parser.add_argument("--env", default="staging", help="Settings preset: production or staging.")
        parser.add_argument("--no-refresh", action="store_true", help="Do not replace instances (first deploy).")
        parser.add_argument(
            "--bake",
            action="store_true",
            help="Bake the release into the app image (bake_image) before switching: new instances then boot without "
            "installing it. A failed bake switches nothing.",
        )
        parser.add_argument("--wait", action="store_true", help="Follow the instance refresh to its end.")
        parser.add_argument("--timeout", type=float, default=60, metavar="MINUTES", help="Bound on --wait.")
        parser.add_argument("--outputs-file", metavar="PATH", help="The app stack's outputs file.")

    def handle(self, *args, release_name, env, no_refresh, bake, wait, timeout, outputs_file, verbosity, **options):
        if timeout <= 0:
            raise CommandError(f"--timeout {timeout:g}: give a number of minutes above 0.")
        try:
            version = bundle.release_version(release_name)
            target = deploy.target_resolve(stack="app", env=env)
            place = release.release_place(target=target, outputs_file=outputs_file)
            self.bundle_ensure(place, version, verbosity)
            if bake:
                self.bake(place, version, env)
            if place.asg_name:
                self.migrate(place, version)
            else:
                self.stdout.write(
                    f"No app stack yet: nothing to migrate. Its instances will boot release {version}; once it "
                    f"exists, `manage.py deploy_app --env {env} --release {version}` runs the migrations."
                )
            previous = release.release_write(place=place, version=version)
            was = f" (was {previous.get('version')})" if previous else ""
            self.stdout.write(self.style.SUCCESS(f"Release parameter {place.parameter} now names {version}{was}."))
            if no_refresh or not place.asg_name:
                self.stdout.write("No instance refresh: instances pick the release up when they next boot.")
                return
            self.refresh(place, version, previous, wait, timeout)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc

    def bake(self, place, version, env):
        where = image.image_place(env=env, region=place.region)
        self.stdout.write(f"Baking release {version} into an image with {where.recipe_name}…")
        baked = image.image_bake(
            place=where,
            version=version,
            bundle_url=release.bundle_url(place, version),
            on_progress=lambda p: self.stdout.write(f"  {p.status}" + (f" ({p.step})" if p.step else "")),
        )
        self.stdout.write(f"Image {baked.image_id} holds release {version}; {where.image_parameter} now names it.")

    def migrate(self, place, version):
        migration = release.migrations_run(place=place, version=version)
        if migration.status != "Success":
            if migration.output:
                self.stderr.write(migration.output[-2000:])
            raise ReleaseError(
                f"Migrations of {version} ended {migration.status} on {migration.instance_id} (command "
                f"{migration.command_id}): nothing was switched; the instances still run the previous release."
            )
        if not migration.runs_new_release:
            self.stderr.write(
                self.style.WARNING(
                    f"The stack's migration document takes no Version or Bundle parameter: it migrated the release "
                    f"installed on {migration.instance_id}, not necessarily {version}."
                )
            )
            return
        self.stdout.write(f"Migrated with release {version} on {migration.instance_id}.")

    def refresh(self, place, version, previous, wait, timeout):
        refresh_id = release.refresh_start(place=place)
        self.stdout.write(
            f"Instance refresh {refresh_id} started on {place.asg_name}: new instances launch before old ones stop "
            "(100 % healthy minimum, 200 % maximum), rolled back automatically on failure."
        )
        if not wait:
            return
        outcome = release.refresh_follow(
            place=place,
            refresh_id=refresh_id,
            on_progress=lambda r: self.stdout.write(f"  {r.status}: {r.percentage} % {r.reason}".rstrip()),
            timeout_s=timeout * 60,
        )
        if outcome.status == "Successful":
            self.stdout.write(self.style.SUCCESS(f"Release {version} is live on every instance of {place.asg_name}."))
            return
        if outcome.status not in release.REFRESH_DONE:
            raise ReleaseError(
                f"Instance refresh {refresh_id} is still {outcome.status} after {timeout:g} minutes; it goes on in AWS."
            )
        if previous:
            release.release_restore(place=place, previous=previous)
            self.stderr.write(f"Release parameter restored to {previous.get('version')}.")
        raise ReleaseError(
            f"Instance refresh {refresh_id} ended {outcome.status}: {outcome.reason or 'no reason given'}."
        )
