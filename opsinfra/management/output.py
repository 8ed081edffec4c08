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
