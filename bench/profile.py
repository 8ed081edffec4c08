"""Where a worker's time goes: py-spy's collapsed stacks ("frame;frame;... count", from `--format raw`)
summed per function, inclusive (on the stack) and self (at the top of it), as shares of all samples."""

import re
from collections import Counter
from dataclasses import dataclass

_LINE_NUMBER = re.compile(r":\d+\)$")
_SITE_PACKAGES = re.compile(r"\(.*/site-packages/")


@dataclass
class Profile:
    samples: int
    inclusive: Counter
    own: Counter


def function_name(frame: str) -> str:
    """`get (django/core/cache/backends/redis.py)`: the frame without its line number or install prefix."""
    return _SITE_PACKAGES.sub("(", _LINE_NUMBER.sub(")", frame.strip()))


def summarize(collapsed: str) -> Profile:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        weight = int(count)
        frames = [function_name(frame) for frame in stack.split(";") if frame]
        samples += weight
        for name in set(frames):
            inclusive[name] += weight
        own[frames[-1]] += weight
    return Profile(samples=samples, inclusive=inclusive, own=own)


def format_profile(profile: Profile, top: int = 15) -> str:
    if not profile.samples:
        return "no samples"
    lines = [f"{profile.samples} samples; share of samples with the function on the stack (inclusive) / on top (self)"]
    for title, counter in (("inclusive", profile.inclusive), ("self", profile.own)):
        lines.append(f"-- {title}")
        for name, weight in counter.most_common(top):
            lines.append(f"{100 * weight / profile.samples:6.1f}%  {name}")
    return "\n".join(lines)
