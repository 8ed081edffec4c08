"""The app instances' user data: user-data.sh with the files it writes inlined, then the stack's values filled in.

Placeholders are `{{Name}}` (a value) and `{{File:name}}` (a file of this directory). A value may be a plain
string or a CloudFormation expression; with expressions the result is an Fn::Join, so the script needs no
escaping of its own `${...}` for Fn::Sub. Comment lines (not `#!` or a shellcheck directive) are left out of the
rendered script: EC2 takes at most 16 KB of user data, and the files keep their comments for readers.
"""

import re
from importlib import resources

_FILE = re.compile(r"\{\{File:([A-Za-z0-9_.-]+)\}\}")
_COMMENT_LINE = re.compile(r"^[ \t]*#(?!!| shellcheck ).*\n", re.M)
ENTRYPOINT = "user-data.sh"


def read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text()


def inline_files(text: str) -> str:
    """user-data.sh with every {{File:name}} replaced by that file (without its trailing newline)."""
    return _FILE.sub(lambda match: read(match.group(1)).rstrip("\n"), text)


def placeholders(text: str) -> list[str]:
    return sorted(set(re.findall(r"\{\{([A-Za-z0-9_]+)\}\}", text)))


def render_parts(values: dict, *, entrypoint: str = ENTRYPOINT) -> list:
    """The script as a list of strings and values, in order; KeyError names a placeholder with no value."""
    text = _COMMENT_LINE.sub("", inline_files(read(entrypoint)))
    missing = set(placeholders(text)) - set(values)
    if missing:
        raise KeyError(f"user data placeholders without a value: {', '.join(sorted(missing))}")
    parts: list = []
    position = 0
    for match in re.finditer(r"\{\{([A-Za-z0-9_]+)\}\}", text):
        parts.append(text[position : match.start()])
        parts.append(values[match.group(1)])
        position = match.end()
    parts.append(text[position:])
    merged: list = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return merged


def render_text(values: dict[str, str], *, entrypoint: str = ENTRYPOINT) -> str:
    """The script with plain string values (tests, previews)."""
    return "".join(render_parts({key: str(value) for key, value in values.items()}, entrypoint=entrypoint))
