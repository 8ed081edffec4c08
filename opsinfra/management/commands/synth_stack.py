from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from opsinfra.errors import StackConfigError
from opsinfra.management.base import OpsCommand
from opsinfra.stacks import STACKS
from opsinfra.synth import COMMITTED, template_path, template_synth, templates_drifted


class Command(OpsCommand):
    help = "Synthesize the CloudFormation templates into templates_cfn/, or check that the committed ones match."

    def add_arguments(self, parser):
        parser.add_argument("--stack", choices=STACKS, help="One stack; default: every committed template.")
        parser.add_argument("--env", default="production", help="Environment preset (production, staging).")
        parser.add_argument("--region", help="Region the template is for (default: OPSINFRA['REGION']).")
        parser.add_argument("--format", choices=("json", "yaml"), default="json", dest="fmt")
        parser.add_argument("--output", help="File to write (default: templates_cfn/<stack>-<env>.<format>).")
        parser.add_argument(
            "--check", action="store_true", help="Exit non-zero when a committed template differs from the code."
        )

    def handle(self, *args, stack, env, region, fmt, output, check, **options):
        try:
            if check:
                self._check()
                return
            targets = [(stack, env)] if stack else list(COMMITTED)
            if output and len(targets) > 1:
                raise CommandError("--output needs --stack: it names one file.")
            for target_stack, target_env in targets:
                result = template_synth(stack=target_stack, env=target_env, region=region, fmt=fmt)
                path = Path(output).resolve() if output else template_path(target_stack, target_env, fmt)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(result.text)
                shown = path.relative_to(settings.BASE_DIR) if path.is_relative_to(settings.BASE_DIR) else path
                self.stdout.write(self.style.SUCCESS(f"{shown} ({result.region}): {result.summary()}."))
        except StackConfigError as exc:
            raise CommandError(str(exc)) from exc

    def _check(self):
        drifted = templates_drifted()
        for stack, env in COMMITTED:
            result = template_synth(stack=stack, env=env)
            self.stdout.write(f"{template_path(stack, env).name}: {result.summary()}.")
        if drifted:
            names = ", ".join(path.name for path in drifted)
            raise CommandError(
                f"Committed templates differ from the code: {names}. Run `manage.py synth_stack` and commit them."
            )
        self.stdout.write(self.style.SUCCESS(f"All {len(COMMITTED)} committed templates match the code."))
