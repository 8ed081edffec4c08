"""Exceptions of the ops toolkit. Commands turn each into a CommandError with the exception's one sentence."""


class OpsError(Exception):
    """Something the operator must fix; str() is one clear sentence."""


class AwsConfigError(OpsError):
    """No credentials, no region, or an unknown profile."""


class AwsCallError(OpsError):
    """AWS refused a call; the message carries its reason."""


class StackNotFound(OpsError):
    """A stack the command needs does not exist."""


class TemplateRejected(OpsError):
    """The synthesized template cannot be deployed (lint errors, wrong region, too large)."""


class StackStuck(OpsError):
    """The stack is in a state that needs the operator's decision before anything else can run."""


class DeployFailed(OpsError):
    """A stack operation ended in a failed or rolled-back state, or did not finish in time."""


class DistributionNotFound(OpsError):
    """The CloudFront distribution is unknown or cannot be found from the outputs file."""


class ReleaseError(OpsError):
    """A release bundle could not be built, found or rolled out."""


class ImageBuildFailed(OpsError):
    """An image bake failed or timed out; the message names the step and what was cleaned up."""


class ScheduleError(OpsError):
    """A sale window was refused (in the past, end before start, unknown name)."""


class StackConfigError(OpsError):
    """Stack settings that cannot be synthesized: an unknown stack or environment, a domain without a zone."""


class OpsRequirementsMissing(StackConfigError):
    """The ops commands' own packages (requirements/ops.txt) are not installed in this environment."""

    def __init__(self, module: str):
        super().__init__(
            f"The ops commands need {module!r}, which is not installed: run `make ops` "
            "(or `pip install -r requirements/ops.txt`)."
        )


def ops_requirements_check() -> None:
    """Raise OpsRequirementsMissing when a package of requirements/ops.txt that synth and lint import is absent."""
    from importlib.util import find_spec

    for module in ("troposphere", "awacs", "cfnlint"):
        if find_spec(module) is None:
            raise OpsRequirementsMissing(module)
