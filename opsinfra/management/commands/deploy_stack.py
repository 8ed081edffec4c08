import re

from django.core.management.base import CommandError

from opsinfra import aws
from opsinfra.errors import OpsError
from opsinfra.management import prompts
from opsinfra.management.arguments import add_no_input, add_target_arguments, key_values
from opsinfra.management.base import OpsCommand
from opsinfra.management.output import allow_lines, diff_lines, event_line, table
from opsinfra.services import changesets, deploy, loadgen, rotation_code, stackpolicy
from opsinfra.services.events import Outcome

FAILURES_SHOWN = 5
ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$")


class Command(OpsCommand):
    help = (
        "Synthesize, lint and deploy a shop stack through a reviewed CloudFormation change set, following its events "
        "to the end and saving the outputs to a file."
    )

    def add_arguments(self, parser):
        add_target_arguments(parser)
        parser.add_argument("--parameter", action="append", metavar="K=V", help="Template parameter, repeatable.")
        parser.add_argument("--tag", action="append", metavar="K=V", help="Stack tag, repeatable.")
        add_no_input(parser, "Execute the change set without asking.")
        parser.add_argument("--no-execute", action="store_true", help="Create and show the change set only.")
        parser.add_argument("--execute-changeset", metavar="NAME", help="Execute a change set made by --no-execute.")
        parser.add_argument("--changeset-name", metavar="NAME", help="Name the new change set (default: timestamped).")
        parser.add_argument(
            "--delete-changeset", metavar="NAME", help="Delete a change set made for review by --no-execute, and stop."
        )
        parser.add_argument("--disable-rollback", action="store_true", help="Keep what was created on failure.")
        parser.add_argument("--termination-protection", action="store_true", help="Turn termination protection on.")
        parser.add_argument("--rollback-alarm", action="append", metavar="ARN", help="Roll back if it alarms.")
        parser.add_argument("--timeout", type=float, metavar="MINUTES", help="Give up (cancel an update) after it.")
        parser.add_argument("--outputs-file", metavar="PATH", help="Default .shop/outputs-<stack-name>.json.")
        parser.add_argument("--fail-on-empty", action="store_true", help="Exit non-zero when nothing changes.")
        parser.add_argument(
            "--allow-wider-access",
            action="store_true",
            help="With --no-input: execute a change that adds IAM grants or security-group rules (refused otherwise).",
        )
        parser.add_argument(
            "--lift-stack-policy",
            action="store_true",
            help="Let this update replace or delete the database and the cache (refused otherwise); set back after.",
        )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        self.interactive = options["interactive"]
        self.check_arguments(options)
        if self.interactive and not options["no_execute"] and not options["delete_changeset"]:
            prompts.require_terminal("pass --no-input to deploy without asking, or --no-execute to review only.")
        try:
            self.deploy(options)
        except OpsError as exc:
            raise CommandError(str(exc)) from exc

    def check_arguments(self, options):
        """Everything the arguments alone can refuse, before any AWS call (credentials included)."""
        options["overrides"] = key_values(options["parameter"], "--parameter")
        options["tags"] = key_values(options["tag"], "--tag")
        for option in ("changeset_name", "execute_changeset", "delete_changeset"):
            if options[option] and not options[option].startswith("arn:"):  # CloudFormation takes the id too
                try:
                    changesets.changeset_name_check(options[option])
                except OpsError as exc:
                    raise CommandError(f"--{option.replace('_', '-')}: {exc}") from exc
        if options["timeout"] is not None and options["timeout"] <= 0:
            raise CommandError(f"--timeout {options['timeout']:g}: give a number of minutes above 0.")
        for arn in options["rollback_alarm"] or []:
            if not ALARM_ARN.match(arn):
                raise CommandError(
                    f"--rollback-alarm {arn!r} is not a CloudWatch alarm ARN "
                    "(arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME)."
                )
        given = [name for name in ("execute_changeset", "delete_changeset", "no_execute") if options[name]]
        if len(given) > 1:
            names = " and ".join(f"--{name.replace('_', '-')}" for name in given)
            raise CommandError(f"{names} cannot be combined: give one.")
        if options["execute_changeset"] or options["delete_changeset"]:
            unused = [
                f"--{name.replace('_', '-')}"
                for name in ("parameter", "tag", "changeset_name", "rollback_alarm")
                if options[name]
            ]
            if unused:
                raise CommandError(
                    f"{unused[0]} does not apply to an existing change set: it runs or goes as it was made."
                )

    def deploy(self, options):
        target = deploy.target_resolve(
            stack=options["stack"], env=options["env"], region=options["region"], stack_name=options["stack_name"]
        )
        kind = target.stack if target.stack == "bootstrap" else f"{target.stack}, {target.env}"
        if options["delete_changeset"]:
            cfn = aws.client("cloudformation", region=target.region)
            name = options["delete_changeset"]
            if changesets.changeset_discard(cfn=cfn, name=name, stack_name=target.stack_name):
                self.stdout.write(f"Change set {name} of {target.stack_name} deleted.")
            else:
                self.stdout.write(f"Change set {name} of {target.stack_name} does not exist: nothing to delete.")
            return
        self.stdout.write(f"Deploying {target.stack_name} ({kind}) to {target.region}.")
        if options["execute_changeset"]:
            plan = deploy.changeset_find(target=target, name=options["execute_changeset"])
        else:
            template = deploy.deploy_prepare(target=target, overrides=options["overrides"])
            cfn = aws.client("cloudformation", region=target.region)
            existing = self.recover(cfn, target, deploy.stack_preflight(cfn=cfn, target=target))
            plan = deploy.deploy_plan(
                target=target,
                existing=existing,
                overrides=options["overrides"],
                tags=options["tags"],
                rollback_alarms=options["rollback_alarm"],
                change_set_name=options["changeset_name"],
                template=template,
            )
            if self.verbosity >= 2:
                where = f"from {plan.template_url}" if plan.template_url else "inline"
                self.stdout.write(f"Template: {plan.template_size:,} bytes compact, sent {where}.")
                for parameter in plan.parameters:
                    value = "(previous value)" if parameter.get("UsePreviousValue") else parameter["ParameterValue"]
                    self.stdout.write(f"  parameter {parameter['ParameterKey']} = {value}")
            if plan.up_to_date:
                self.stdout.write(self.style.SUCCESS(f"Stack {target.stack_name} is up to date: nothing to deploy."))
                if target.stack == "loadgen":
                    self.allow_fleet(target, deploy.deploy_finish(target=target, outputs_file=options["outputs_file"],
                                                                  termination_protection=False)[0])  # fmt: skip
                if options["fail_on_empty"]:
                    raise CommandError(f"Stack {target.stack_name} had no changes and --fail-on-empty was given.")
                return
        change_set, change_set_type = plan.change_set, plan.change_set_type
        self.show_change_set(change_set)
        self.show_diff(plan)
        if options["no_execute"]:
            self.stdout.write(
                f"Change set {change_set.name} was created and not executed. To execute it:\n"
                f"  {target.command(f'--execute-changeset {change_set.name}')}"
            )
            return
        if plan.diff.widens and not self.interactive and not options["allow_wider_access"]:
            self.refuse_wider_access(target, plan, kept=bool(options["execute_changeset"]))
        question = f"Execute change set {change_set.name}"
        question += ", which widens access?" if plan.diff.widens else "?"
        if self.interactive and not prompts.confirm(self.stdout, question):
            self.stdout.write(
                f"Not executed. To execute it later: {target.command(f'--execute-changeset {change_set.name}')}"
            )
            return
        staged = rotation_code.rotation_code_stage(change_set=change_set, region=target.region)
        if staged and self.verbosity >= 2:
            self.stdout.write(f"Rotation function bundle: {staged}.")
        if target.stack == "loadgen":
            self.stdout.write(f"Load tests uploaded to {loadgen.loadtests_upload(target=target)}.")
        lift = options["lift_stack_policy"]
        with stackpolicy.stack_policy_guard(
            target=target, change_set_type=change_set_type, lift=lift, on_warning=self.show_warning
        ):
            outcome = deploy.deploy_execute(
                target=target,
                change_set=change_set,
                change_set_type=change_set_type,
                on_event=self.show_event,
                on_cancel=self.show_cancel,
                disable_rollback=options["disable_rollback"],
                timeout_minutes=options["timeout"],
            )
        if outcome.status not in {"CREATE_COMPLETE", "UPDATE_COMPLETE"} or outcome.timed_out:
            self.fail(target, outcome, options["timeout"])
        outputs, path = deploy.deploy_finish(
            target=target,
            outputs_file=options["outputs_file"],
            termination_protection=options["termination_protection"],
        )
        self.stdout.write(self.style.SUCCESS(f"Stack {target.stack_name}: {outcome.status}."))
        if options["termination_protection"]:
            self.stdout.write("Termination protection is on.")
        if outputs:
            for line in table(["output", "value"], sorted(outputs.items())):
                self.stdout.write(line)
        self.stdout.write(f"Outputs saved to {path}.")
        if target.stack == "loadgen":
            self.allow_fleet(target, outputs)

    def allow_fleet(self, target, outputs):
        """The fleet's addresses on the app's allow lists (RATELIMIT_ALLOW_IPS and the WAF IP set)."""
        allowed = loadgen.allow_list_apply(target=target, outputs=outputs)
        self.stdout.write(allow_lines(allowed, verb="allowed"))

    def recover(self, cfn, target, existing):
        """Offer the way out of the two states that need a decision; anything else goes back as it is."""
        if existing is None or existing.status not in {"ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"}:
            return existing
        if existing.status == "ROLLBACK_COMPLETE":
            self.stderr.write(
                f"Stack {target.stack_name} is in ROLLBACK_COMPLETE: its first create failed and it holds nothing; "
                "it must be deleted before it can be created again."
            )
            question = f"Delete {target.stack_name} and create it again?"
            hint = "run it again with a terminal to confirm, or delete it with `manage.py destroy_stack "
            hint += f"--stack-name {target.stack_name} --region {target.region} --no-input` first."
            self.require_consent(question, f"Stack {target.stack_name} is in ROLLBACK_COMPLETE: {hint}")
            deploy.stack_delete_rolled_back(cfn=cfn, target=target, on_event=self.show_event)
            self.stdout.write(f"Deleted {target.stack_name}; creating it again.")
            return None
        self.stderr.write(
            f"Stack {target.stack_name} is in UPDATE_ROLLBACK_FAILED: a rollback could not finish and the stack "
            "cannot be updated until it does."
        )
        question = f"Continue the rollback of {target.stack_name}?"
        hint = "run it again with a terminal to confirm continuing the rollback."
        self.require_consent(question, f"Stack {target.stack_name} is in UPDATE_ROLLBACK_FAILED: {hint}")
        deploy.stack_continue_rollback(cfn=cfn, target=target, on_event=self.show_event)
        self.stdout.write(f"Rollback of {target.stack_name} completed; deploying.")
        return deploy.stack_preflight(cfn=cfn, target=target)

    def require_consent(self, question, refusal):
        # --no-input consents to executing the change set, not to deleting or forcing a stack.
        if not self.interactive or not prompts.has_terminal():
            raise CommandError(refusal)
        if not prompts.confirm(self.stdout, question):
            raise CommandError("Nothing was changed.")

    def show_change_set(self, change_set):
        self.stdout.write(f"Change set {change_set.name}: {len(change_set.changes)} change(s).")
        rows = changesets.changeset_rows(change_set)
        risky = {change.logical_id for change in change_set.changes if change.stateful_replacement}
        for line, row in zip(
            table(["action", "logical id", "type", "replacement"], rows), [None, None, *rows], strict=True
        ):
            self.stdout.write(self.style.ERROR(line) if row and row[1] in risky else line)
        for logical_id in sorted(risky):
            self.stderr.write(
                self.style.WARNING(f"{logical_id} holds data and would be replaced: its data would not carry over.")
            )

    def show_diff(self, plan):
        lines = diff_lines(plan.diff, plan.change_set)
        for line in lines:
            style = self.style.WARNING if line.endswith("[widens access]") else None
            self.stdout.write(style(line) if style else line)
        if plan.diff.widens:
            self.stderr.write(
                self.style.WARNING(
                    f"This change widens access ({plan.diff.widening_summary()}): read the access lines above."
                )
            )

    def refuse_wider_access(self, target, plan, *, kept):
        change_set = plan.change_set
        if kept:
            where = f"change set {change_set.name} was kept"
        else:
            cfn = aws.client("cloudformation", region=target.region)
            changesets.changeset_delete(cfn=cfn, change_set_id=change_set.id, stack_name=target.stack_name)
            where = f"change set {change_set.name} was deleted"
        raise CommandError(
            f"The change widens access ({plan.diff.widening_summary()}) and --no-input was given without "
            f"--allow-wider-access: nothing was executed and the {where}. Review the access lines above, then deploy "
            "again with --allow-wider-access, or at a terminal to confirm."
        )

    def show_event(self, event, progress):
        line = event_line(event)
        if progress.total:
            line = f"[{progress.complete}/{progress.total}] {line}"
        self.stdout.write(self.style.ERROR(line) if event.failed else line)

    def show_warning(self, line):
        self.stderr.write(self.style.WARNING(line))

    def show_cancel(self, status):
        self.stderr.write(self.style.WARNING(f"Timeout reached while {status}: cancelling the update (it rolls back)."))

    def fail(self, target, outcome: Outcome, timeout):
        failures = outcome.failures[:FAILURES_SHOWN]
        if failures:
            self.stderr.write("What failed first:")
            for event in failures:
                self.stderr.write(f"  {event.logical_id} ({event.resource_type}): {event.status}: {event.reason}")
        self.stderr.write(f"Final status of {target.stack_name}: {outcome.status}.")
        self.stderr.write(f"Next: {deploy.next_step(target=target, status=outcome.status)}")
        if outcome.timed_out:
            raise CommandError(f"Deploy of {target.stack_name} did not finish within {timeout:g} minutes.")
        raise CommandError(f"Deploy of {target.stack_name} failed: the stack is {outcome.status}.")
