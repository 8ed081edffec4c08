"""Plain-text tables and event lines the ops commands print."""

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns as wide as their widest cell, a rule under the header."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(str(cell))) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)]


def event_line(event) -> str:
    """time, logical id, status, reason: one stack event."""
    reason = f"  {event.reason}" if event.reason else ""
    return f"{event.timestamp:%H:%M:%S}  {event.logical_id}  {event.status}{reason}"


def diff_lines(diff, change_set) -> list[str]:
    """What a change set changes, under its table: parameters old → new, the properties of each modified resource,
    and the IAM grants and security-group rules that come or go."""
    from opsinfra.services.diff import shown

    lines: list[str] = []
    if diff.parameters:
        lines.append("Parameters:")
        width = max(len(change.name) for change in diff.parameters)
        for change in diff.parameters:
            lines.append(f"  {change.name.ljust(width)}  {_value(change.old)} → {_value(change.new)}")
    modified = [change for change in change_set.changes if change.action == "Modify"]
    if modified:
        lines.append("Properties:")
        for change in sorted(modified, key=lambda change: change.logical_id):
            lines.append(f"  {change.logical_id} ({change.resource_type})")
            properties = diff.properties.get(change.logical_id, ())
            for item in properties:
                lines.append(f"    {item.path}: {shown(item.old)} → {shown(item.new)}")
            if not properties:
                lines.append("    no property of its own: it takes a value from a resource that changes")
    if diff.access:
        lines.append("Access (IAM and security groups):")
        for change in diff.access:
            sign = "+" if change.added else "-"
            mark = "  [widens access]" if change.widens else ""
            lines.append(f"  {sign} {change.logical_id} {change.kind}: {change.text}{mark}")
    return lines


def _value(value: str | None) -> str:
    if value is None:
        return "(none)"
    return value if value else '""'


def allow_lines(allowed, *, verb: str) -> str:
    """What deploy_stack and destroy_stack say about the fleet's addresses on the allow lists."""
    addresses = ", ".join(allowed.addresses) or "no address"
    lines = [f"Fleet addresses {addresses} {verb}:", f"  RATELIMIT_ALLOW_IPS: SSM parameter {allowed.parameter}"]
    if allowed.web_acl_stack:
        lines.append(f"  WAF rate rule: allow-list IP set of {allowed.web_acl_stack}")
    else:
        lines.append("  WAF rate rule: no web ACL stack found in us-east-1, nothing to change")
    if allowed.refresh:
        lines.append(f"  app instances: instance refresh {allowed.refresh} of {allowed.app_group} reads the new list")
    elif not allowed.changed:
        lines.append("  app instances: the parameter already held this list, nothing to refresh")
    else:
        lines.append("  app instances: no app stack in this region to refresh; instances read the list at boot")
    return "\n".join(lines)
