"""The rules of CloudWatch's Embedded Metric Format that a record must keep for CloudWatch to extract its metrics.

From the specification (docs.aws.amazon.com, CloudWatch_Embedded_Metric_Format_Specification): the log event is
one JSON object; its root holds `_aws` with `Timestamp` (epoch milliseconds) and `CloudWatchMetrics`, an array of
directives; each directive has `Namespace` (1-255 characters), `Dimensions` (an array of dimension sets, each at
most 30 names, each name a string member of the root) and `Metrics` (at most 100 definitions, each a `Name` that
is a member of the root, an optional `Unit` from CloudWatch's list, an optional `StorageResolution` of 1 or 60).
A metric's member is a number, an array of at most 100 numbers, or a distribution `{"Values", "Counts", "Max",
"Min", "Count", "Sum"}` (as the CloudWatch agent writes it) whose Values and Counts have the same length, at most
100, and whose Counts add up to Count. An event is at most 1 MB.
"""

import json
import math
import numbers

UNITS = frozenset(
    "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits Gigabits "
    "Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second Terabytes/Second "
    "Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None".split()
)
MAX_EVENT_BYTES = 1_048_576
MAX_DIMENSIONS = 30
MAX_METRICS = 100
MAX_VALUES = 100
DISTRIBUTION = frozenset(["Values", "Counts", "Max", "Min", "Count", "Sum"])


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _name(value) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 255


def _metric_value_errors(name: str, value) -> list[str]:
    if _number(value):
        return []
    if isinstance(value, list):
        if not value or len(value) > MAX_VALUES or not all(_number(item) for item in value):
            return [f"{name}: an array of 1-{MAX_VALUES} numbers, not {value!r}"]
        return []
    if isinstance(value, dict):
        if set(value) != DISTRIBUTION:
            return [f"{name}: a distribution has exactly {sorted(DISTRIBUTION)}, not {sorted(value)}"]
        values, counts = value["Values"], value["Counts"]
        errors = []
        same_length = isinstance(values, list) and isinstance(counts, list) and len(values) == len(counts)
        if not (same_length and 1 <= len(values) <= MAX_VALUES):
            return [f"{name}: Values and Counts of the same length, 1-{MAX_VALUES}"]
        if not all(_number(item) for item in values + counts) or any(count <= 0 for count in counts):
            errors.append(f"{name}: Values are numbers and Counts positive numbers")
        if not all(_number(value[key]) for key in ("Max", "Min", "Count", "Sum")):
            errors.append(f"{name}: Max, Min, Count and Sum are numbers")
        elif sum(counts) != value["Count"] or value["Min"] > value["Max"]:
            errors.append(f"{name}: Counts add up to Count, and Min <= Max")
        return errors
    return [f"{name}: a number, an array of numbers or a distribution, not {value!r}"]


def record_errors(line: str) -> list[str]:
    """What makes `line` (one log event) an invalid EMF record; [] when CloudWatch accepts it."""
    if len(line.encode()) > MAX_EVENT_BYTES:
        return ["the event is over 1 MB"]
    try:
        root = json.loads(line)
    except ValueError as exc:
        return [f"not one JSON object: {exc}"]
    if not isinstance(root, dict):
        return ["not a JSON object"]
    metadata = root.get("_aws")
    if not isinstance(metadata, dict):
        return ["no _aws object"]
    errors = []
    timestamp = metadata.get("Timestamp")
    if not (isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp > 0):
        errors.append(f"_aws.Timestamp is not epoch milliseconds: {timestamp!r}")
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*errors, "_aws.CloudWatchMetrics is not a non-empty array"]
    for index, directive in enumerate(directives):
        where = f"CloudWatchMetrics[{index}]"
        if not isinstance(directive, dict):
            errors.append(f"{where} is not an object")
            continue
        if not _name(directive.get("Namespace")) or directive["Namespace"].startswith("AWS/"):
            errors.append(f"{where}.Namespace is not 1-255 characters outside AWS/: {directive.get('Namespace')!r}")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list) or not dimension_sets:
            errors.append(f"{where}.Dimensions is not a non-empty array of dimension sets")
        else:
            for dimensions in dimension_sets:
                if not isinstance(dimensions, list) or len(dimensions) > MAX_DIMENSIONS:
                    errors.append(f"{where}: a dimension set is an array of at most {MAX_DIMENSIONS} names")
                    continue
                for dimension in dimensions:
                    if not _name(dimension) or not _name(root.get(dimension)):
                        errors.append(f"{where}: dimension {dimension!r} has no string member on the root")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or not 1 <= len(metrics) <= MAX_METRICS:
            errors.append(f"{where}.Metrics is not an array of 1-{MAX_METRICS} definitions")
            continue
        for definition in metrics:
            name = definition.get("Name") if isinstance(definition, dict) else None
            if not _name(name):
                errors.append(f"{where}: a metric definition without a Name: {definition!r}")
                continue
            if "Unit" in definition and definition["Unit"] not in UNITS:
                errors.append(f"{where}: {name} has an unknown Unit {definition['Unit']!r}")
            if definition.get("StorageResolution", 60) not in (1, 60):
                errors.append(f"{where}: {name} has a StorageResolution other than 1 or 60")
            if name not in root:
                errors.append(f"{where}: metric {name} has no member on the root")
            else:
                errors.extend(_metric_value_errors(name, root[name]))
    return errors


def metrics_of(line: str) -> list[tuple[str, str, dict]]:
    """(namespace, metric name, {dimension: value}) for every metric a valid record publishes."""
    root = json.loads(line)
    found = []
    for directive in root["_aws"]["CloudWatchMetrics"]:
        for dimensions in directive["Dimensions"]:
            for definition in directive["Metrics"]:
                found.append((directive["Namespace"], definition["Name"], {d: root[d] for d in dimensions}))
    return found
