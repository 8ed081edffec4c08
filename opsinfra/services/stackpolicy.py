"""The app stack's stack policy: no update may replace or delete the database or the cache.

deploy_stack sets it on every deploy of the app stack, before an update runs and after a create completes. With
--lift-stack-policy the update it runs may replace them (a new engine major version, a changed subnet group): the
policy allows everything for that one update and is set back afterwards, whatever the outcome. CloudFormation's
ExecuteChangeSet takes no policy override, so the lift is a SetStackPolicy on each side of the execution.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opsinfra import aws
from opsinfra.errors import AwsCallError
from opsinfra.services import stacks
from opsinfra.services.deploy import Target

# Logical ids of the resources whose replacement or deletion would lose data.
PROTECTED = ("DatabaseInstance", "CacheReplicationGroup")
PROTECTING = {
    "Statement": [
        {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": ["Update:Replace", "Update:Delete"],
            "Principal": "*",
            "Resource": [f"LogicalResourceId/{name}" for name in PROTECTED],
        },
    ]
}
LIFTED = {"Statement": [{"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}]}
# SetStackPolicy needs a stack that exists and is not being created or deleted.
SETTABLE = stacks.UPDATABLE | {"UPDATE_ROLLBACK_FAILED"}


def protects(target: Target) -> bool:
    return target.stack == "app"


def _set(cfn, *, stack_name: str, policy: dict) -> None:
    try:
        cfn.set_stack_policy(StackName=stack_name, StackPolicyBody=json.dumps(policy, sort_keys=True))
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"set the stack policy of {stack_name}", exc) from exc


def stack_policy_before(*, target: Target, change_set_type: str, lift: bool) -> None:
    """Before an update: the protecting policy, or the lifted one for this update only. A create has no stack yet."""
    if not protects(target) or change_set_type != "UPDATE":
        return
    cfn = aws.client("cloudformation", region=target.region)
    _set(cfn, stack_name=target.stack_name, policy=LIFTED if lift else PROTECTING)


def stack_policy_after(*, target: Target, on_warning: Callable[[str], None]) -> None:
    """After a create or an update, whatever its outcome: the protecting policy (again). A failure to set it is a
    warning, so it never hides why the deploy itself failed."""
    if not protects(target):
        return
    cfn = aws.client("cloudformation", region=target.region)
    state = stacks.stack_get(cfn=cfn, name=target.stack_name)
    if state is None or state.status not in SETTABLE:
        return
    try:
        _set(cfn, stack_name=state.stack_id, policy=PROTECTING)
    except AwsCallError as exc:
        on_warning(f"{exc} The database and the cache are not protected: run deploy_stack again to set it.")


@contextmanager
def stack_policy_guard(
    *, target: Target, change_set_type: str, lift: bool, on_warning: Callable[[str], None]
) -> Iterator[None]:
    """Around the execution of a change set: the policy before (lifted if asked), the protecting one after."""
    stack_policy_before(target=target, change_set_type=change_set_type, lift=lift)
    try:
        yield
    finally:
        stack_policy_after(target=target, on_warning=on_warning)


def stack_policy_get(*, cfn, stack_name: str) -> dict | None:
    try:
        body = cfn.get_stack_policy(StackName=stack_name).get("StackPolicyBody")
    except aws.aws_errors() as exc:
        raise aws.call_failed(f"read the stack policy of {stack_name}", exc) from exc
    return json.loads(body) if body else None
