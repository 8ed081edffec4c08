"""A small IAM policy evaluator: identity policies, an optional permissions boundary, explicit Deny first.

It honours Allow/Deny, Action/NotAction and Resource/NotResource with `*` and `?` wildcards, and the condition
operators the shop's templates use (String*, Arn*, Bool, Null, with IfExists and ForAnyValue/ForAllValues).
An operator it does not know raises UnsupportedCondition rather than guessing. A request whose resource ARN is not
known (UNKNOWN_RESOURCE) is allowed only by a statement on Resource "*", and any Deny that could match it applies.
"""

import re
from dataclasses import dataclass, field
from functools import lru_cache

UNKNOWN_RESOURCE = "?unknown?"


class UnsupportedCondition(ValueError):
    """A policy uses a condition operator the evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    action: str  # service:Action, as IAM spells it
    resource: str  # an ARN, "*" for actions without resource-level permissions, or UNKNOWN_RESOURCE
    context: dict = field(default_factory=dict)  # condition keys (any case) → str or list of str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "allowed", "explicit deny", "no allow", "boundary: no allow", "boundary: explicit deny"
    statement: str = ""  # Sid (or index) of the deciding statement


def statements(document: dict) -> list[dict]:
    found = document.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def _listed(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern:
    # IAM wildcards: * any run of characters (":" and "/" included), ? one character; nothing else is special.
    body = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in glob)
    return re.compile(f"(?s:{body})\\Z", re.IGNORECASE if ignore_case else 0)


def glob_match(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(glob, ignore_case).match(value) is not None


def action_matches(patterns, action: str) -> bool:
    return any(glob_match(pattern, action, ignore_case=True) for pattern in _listed(patterns))


def resource_matches(patterns, resource: str) -> bool:
    if resource == UNKNOWN_RESOURCE:
        return "*" in _listed(patterns)
    return any(glob_match(pattern, resource) for pattern in _listed(patterns))


def _resource_applies(statement: dict, resource: str, *, effect: str) -> bool:
    if "Resource" in statement:
        return resource_matches(statement["Resource"], resource)
    excluded = _listed(statement.get("NotResource"))
    if resource == UNKNOWN_RESOURCE:
        # Unknown: an Allow cannot be proven to cover it, a Deny must be assumed to.
        return effect == "Deny"
    return not any(glob_match(pattern, resource) for pattern in excluded)


def _action_applies(statement: dict, action: str) -> bool:
    if "Action" in statement:
        return action_matches(statement["Action"], action)
    return not action_matches(statement.get("NotAction"), action)


def _context_value(context: dict, key: str):
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return value
    return None


def _compare(base: str, wanted: str, actual: str) -> bool:
    if base in {"StringEquals", "ArnEquals"}:
        return actual == wanted
    if base == "StringEqualsIgnoreCase":
        return actual.lower() == wanted.lower()
    if base in {"StringLike", "ArnLike"}:
        return glob_match(wanted, actual)
    if base == "Bool":
        return actual.lower() == str(wanted).lower()
    raise UnsupportedCondition(base)


NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def condition_matches(operator: str, key: str, wanted, context: dict) -> bool:
    """One operator/key pair of a Condition block against the request context."""
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in {"ForAnyValue", "ForAllValues"}:
            raise UnsupportedCondition(f"{qualifier}:{operator}")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    actual = _context_value(context, key)
    wanted_values = [str(value) for value in _listed(wanted)]
    if base == "Null":
        return (actual is None) == (wanted_values[0].lower() == "true")
    if base not in POSITIVE and base not in NEGATED:
        raise UnsupportedCondition(operator)
    if actual is None:
        if if_exists or qualifier == "ForAllValues":
            return True
        # A missing key makes a positive operator false and a negated one true (IAM's documented behaviour).
        return base in NEGATED
    values = [str(value) for value in _listed(actual)]
    positive = NEGATED.get(base, base)

    def one(value: str) -> bool:
        hit = any(_compare(positive, candidate, value) for candidate in wanted_values)
        return not hit if base in NEGATED else hit

    if qualifier == "ForAllValues":
        return all(one(value) for value in values)
    if qualifier == "ForAnyValue" or len(values) > 1:
        return any(one(value) for value in values)
    return one(values[0])


def conditions_match(block: dict | None, context: dict) -> bool:
    for operator, pairs in (block or {}).items():
        for key, wanted in pairs.items():
            if not condition_matches(operator, key, wanted, context):
                return False
    return True


def statement_applies(statement: dict, request: Request) -> bool:
    effect = statement.get("Effect", "Allow")
    return (
        _action_applies(statement, request.action)
        and _resource_applies(statement, request.resource, effect=effect)
        and conditions_match(statement.get("Condition"), request.context)
    )


def _name(statement: dict, index: int) -> str:
    return statement.get("Sid") or f"#{index}"


def _decide(documents: list[dict], request: Request) -> tuple[str, str]:
    allow = ""
    for document in documents:
        for index, statement in enumerate(statements(document)):
            if statement_applies(statement, request):
                if statement.get("Effect") == "Deny":
                    return "deny", _name(statement, index)
                allow = allow or _name(statement, index)
    return ("allow", allow) if allow else ("none", "")


def evaluate(request: Request, *, identity: list[dict], boundary: list[dict] | None = None) -> Decision:
    """Allowed when an identity statement allows the request, no statement denies it, and, with a boundary, the
    boundary allows it too (the effective permissions are the intersection)."""
    verdict, statement = _decide(identity, request)
    if verdict == "deny":
        return Decision(False, "explicit deny", statement)
    if verdict == "none":
        return Decision(False, "no allow")
    if boundary is not None:
        fence, fence_statement = _decide(boundary, request)
        if fence == "deny":
            return Decision(False, "boundary: explicit deny", fence_statement)
        if fence == "none":
            return Decision(False, "boundary: no allow")
    return Decision(True, "allowed", statement)


def granted_patterns(documents: list[dict]) -> list[tuple[str, str]]:
    """(statement name, action pattern) of every Allow statement's Action entries."""
    found = []
    for document in documents:
        for index, statement in enumerate(statements(document)):
            if statement.get("Effect", "Allow") == "Allow":
                found.extend((_name(statement, index), pattern) for pattern in _listed(statement.get("Action")))
    return found
