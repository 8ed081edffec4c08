"""Arguments the ops commands share."""

from django.core.management.base import CommandError


def add_target_arguments(parser, *, default_stack: str = "app") -> None:
    """--stack, --env, --stack-name, --region: which stack a command acts on."""
    parser.add_argument("--stack", choices=["bootstrap", "app", "edge", "loadgen", "image"], default=default_stack)
    parser.add_argument("--env", default="staging", help="Settings preset: production or staging.")
    parser.add_argument("--stack-name", help="CloudFormation stack name (default from the preset).")
    parser.add_argument("--region", help="Region (default from the preset).")


def add_no_input(parser, help_text: str) -> None:
    parser.add_argument("--no-input", "--noinput", action="store_false", dest="interactive", help=help_text)


def key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """--parameter K=V / --tag K=V; a malformed pair is a CommandError naming it."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{option} {pair!r} is not KEY=VALUE.")
        result[key.strip()] = value
    return result
