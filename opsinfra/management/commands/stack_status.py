from django.core.management.base import CommandError

from opsinfra.errors import OpsError
from opsinfra.management.arguments import add_target_arguments
from opsinfra.management.base import OpsCommand
from opsinfra.management.output import event_line, table
from opsinfra.services import deploy, status


class Command(OpsCommand):
    help = "Show a shop stack: status, last events, outputs, the live release, and drift with --detect-drift."

    def add_arguments(self, parser):
        add_target_arguments(parser)
        parser.add_argument("--events", type=int, default=10, help="How many of the last events to show.")
        parser.add_argument("--detect-drift", action="store_true", help="Run drift detection and list what differs.")

    def handle(self, *args, stack, env, stack_name, region, events, detect_drift, **options):
        if events < 0:
            raise CommandError(f"--events {events}: give how many of the last events to show, 0 or more.")
        try:
            target = deploy.target_resolve(stack=stack, env=env, region=region, stack_name=stack_name)
            report = status.stack_report(target=target, last_events=events)
            drift = status.stack_drift(target=target) if detect_drift else None
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        state = report.state
        style = self.style.SUCCESS if state.status.endswith("_COMPLETE") and "ROLLBACK" not in state.status else None
        line = f"Stack {state.name} in {target.region}: {state.status}"
        self.stdout.write(style(line) if style else self.style.WARNING(line))
        if state.reason:
            self.stdout.write(f"  reason: {state.reason}")
        self.stdout.write(f"  termination protection: {'on' if state.termination_protection else 'off'}")
        if report.events:
            self.stdout.write("Last events:")
            for event in report.events:
                self.stdout.write(f"  {event_line(event)}")
        if state.outputs:
            for line in table(["output", "value"], sorted(state.outputs.items())):
                self.stdout.write(line)
        if target.stack == "app":
            if report.release:
                self.stdout.write(
                    f"Live release: {report.release.get('version')} ({report.release.get('bundle')}), "
                    f"from {report.release_parameter}."
                )
            else:
                self.stdout.write(f"No release yet: {report.release_parameter} is not set (run deploy_app).")
        if drift is not None:
            self.stdout.write(f"Drift: {drift.status}, {drift.drifted_resources} resource(s) differ.")
            if drift.resources:
                for line in table(["logical id", "type", "drift"], drift.resources):
                    self.stdout.write(line)
