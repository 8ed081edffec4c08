from django.core.management.base import CommandError

from opsinfra.errors import OpsError
from opsinfra.management.base import OpsCommand
from opsinfra.services import bundle, deploy, image, release


class Command(OpsCommand):
    help = (
        "Bake an app image with EC2 Image Builder: OS packages, service user, units and the release's wheels, no "
        "configuration. Publishes the AMI in the image parameter the app stack's launch templates resolve at each "
        "launch. Needs the image stack (deploy_stack --stack image)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--release",
            dest="release_name",
            metavar="NAME",
            help="Release to bake in (default: `git describe` of a clean work tree); its bundle is built and uploaded "
            "when the artifacts bucket does not have it yet.",
        )
        parser.add_argument("--env", default="staging", help="Settings preset: production or staging.")
        parser.add_argument(
            "--timeout", type=float, default=image.BUILD_TIMEOUT_S / 60, metavar="MINUTES", help="Bound on the build."
        )

    def handle(self, *args, release_name, env, timeout, verbosity, **options):
        if timeout <= 0:
            raise CommandError(f"--timeout {timeout:g}: give a number of minutes above 0.")
        try:
            version = bundle.release_version(release_name)
            place = image.image_place(env=env)
            target = deploy.target_resolve(stack="app", env=env)
            where = release.release_place(target=target)
            self.bundle_ensure(where, version, verbosity)
            self.stdout.write(f"Baking release {version} into an image with {place.recipe_name}…")
            baked = image.image_bake(
                place=place,
                version=version,
                bundle_url=release.bundle_url(where, version),
                on_progress=self.show_progress,
                timeout_s=timeout * 60,
            )
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        was = f" (was {baked.previous_image})" if baked.previous_image else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Image {baked.image_id} holds release {baked.release} on {baked.parent_image}; "
                f"{place.image_parameter} now names it{was}."
            )
        )
        self.stdout.write(
            "New instances launch from it; an instance refresh (deploy_app) replaces the running ones. The app stack "
            f"resolves it once `manage.py deploy_stack --stack app --env {env}` has passed the image parameter."
        )

    def show_progress(self, progress):
        step = f" ({progress.step})" if progress.step else ""
        self.stdout.write(f"  {progress.status}{step}")
