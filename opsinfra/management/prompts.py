"""Asking the operator, shared by the ops commands: never hang on a missing terminal."""

import sys

from django.core.management.base import CommandError


def has_terminal() -> bool:
    return bool(getattr(sys.stdin, "isatty", None)) and sys.stdin.isatty()


def require_terminal(hint: str) -> None:
    """Refuse before anything is written when there is nobody to answer a prompt (CI without --no-input)."""
    if not has_terminal():
        raise CommandError(f"There is no terminal to confirm on: {hint}")


def confirm(stdout, question: str) -> bool:
    """Ask a yes/no question; only "y" or "yes" agrees."""
    stdout.write(f"{question} [y/N] ", ending="")
    stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in {"y", "yes"}


def ask(stdout, question: str) -> str:
    stdout.write(f"{question} ", ending="")
    stdout.flush()
    return sys.stdin.readline().strip()
