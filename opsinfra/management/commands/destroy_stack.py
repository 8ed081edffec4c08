from django.core.management.base import CommandError

from opsinfra.errors import OpsError
from opsinfra.management import prompts
from opsinfra.management.arguments import add_no_input, add_target_arguments
from opsinfra.management.base import OpsCommand
from opsinfra.management.output import allow_lines, event_line
from opsinfra.services import deploy, destroy, loadgen


class Command(OpsCommand):
    help = "Delete a shop stack after confirmation, saying what survives it, and follow the deletion to the end."

    def add_arguments(self, parser):
        add_target_arguments(parser)
        add_no_input(parser, "Delete without asking; needs --stack-name, so defaults never pick what is deleted.")
        parser.add_argument(
            "--disable-termination-protection",
            action="store_true",
            help="Turn termination protection off first (the command refuses a protected stack otherwise).",
        )
        parser.add_argument("--outputs-file", metavar="PATH", help="The outputs file to remove with the stack.")

    def handle(self, *args, stack, env, stack_name, region, interactive, **options):
        if not interactive and not stack_name:
            raise CommandError("--no-input needs --stack-name NAME: name the stack to delete explicitly.")
        if interactive:
            prompts.require_terminal("pass --no-input with --stack-name to delete without asking.")
        try:
            target = deploy.target_resolve(stack=stack, env=env, region=region, stack_name=stack_name)
            state, survivors, protected = destroy.destroy_check(
                target=target, disable_termination_protection=options["disable_termination_protection"]
            )
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Stack {target.stack_name} in {target.region} ({state.status}) will be deleted.")
        if survivors:
            self.stdout.write("These survive the deletion:")
            for survivor in survivors:
                self.stdout.write(f"  {survivor.describe()}")
        else:
            self.stdout.write("Nothing in it is retained: every resource goes with the stack.")
        if protected:
            self.stdout.write(
                "Deletion protection keeps these: the deletion stops at them (DELETE_FAILED, the rest of the stack "
                "stays) until it is lifted, with:"
            )
            for resource in protected:
                self.stdout.write(f"  {resource.logical_id} ({resource.resource_type} {resource.physical_id}):")
                self.stdout.write(f"    {resource.lift_command(target.region)}")
        if interactive:
            answer = prompts.ask(self.stdout, f"Type the stack name ({target.stack_name}) to delete it:")
            if answer != target.stack_name:
                raise CommandError("The name did not match: nothing was deleted.")
        try:
            outcome = destroy.stack_destroy(target=target, state=state, on_event=self.show_event)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc
        if outcome.status != "DELETE_COMPLETE":
            for event in outcome.failures[:5]:
                self.stderr.write(f"  {event.logical_id} ({event.resource_type}): {event.reason}")
            if protected:
                self.stderr.write("Lift the deletion protection named above, then run destroy_stack again.")
            raise CommandError(f"Deleting {target.stack_name} ended in {outcome.status}; see the events above.")
        destroy.outputs_forget(target=target, outputs_file=options["outputs_file"])
        self.stdout.write(self.style.SUCCESS(f"Stack {target.stack_name} deleted."))
        if target.stack == "loadgen":
            try:
                removed = loadgen.allow_list_remove(target=target, addresses=loadgen.fleet_addresses(state.outputs))
            except OpsError as exc:
                raise CommandError(f"The stack is gone but its addresses are still allowed: {exc}") from exc
            self.stdout.write(allow_lines(removed, verb="no longer allowed"))

    def show_event(self, event, progress):
        line = event_line(event)
        self.stdout.write(self.style.ERROR(line) if event.failed else line)
