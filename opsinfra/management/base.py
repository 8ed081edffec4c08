"""The ops commands' base: what they print is for a person; logs are on stderr, and JSON only when asked.

The shop's LOGGING writes JSON lines to stdout for CloudWatch; in a command that would mix botocore's and cfn-lint's
INFO lines into the report a person reads (and into what CI posts on a pull request). While an ops command runs:

- `--log-format text` (the default): warnings and errors of any library, one human line each on stderr;
- `--log-format json`: every record at the configured LOG_LEVEL as the shop's JSON lines, on stderr.

stdout carries only the command's own lines in both.
"""

import logging
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand


class OpsCommand(BaseCommand):
    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--log-format",
            choices=["text", "json"],
            default="text",
            help="Library logs on stderr: warnings as text lines (default), or every record as JSON lines.",
        )
        return parser

    def execute(self, *args, **options):
        with command_logging(log_format=options.get("log_format") or "text", stream=options.get("stderr")):
            return super().execute(*args, **options)

    def bundle_ensure(self, place, version: str, verbosity: int) -> None:
        """Build and upload the release bundle unless the artifacts bucket has it (deploy_app, bake_image)."""
        from opsinfra.services import bundle, release

        url = release.bundle_url(place, version)
        if release.bundle_exists(place=place, version=version):
            self.stdout.write(f"Bundle {url} already exists: using it, not rebuilding.")
            return
        self.stdout.write(f"Building release {version} (project and Linux wheels for Python 3.11)…")
        with tempfile.TemporaryDirectory(prefix="shop-release-") as scratch:
            path = bundle.bundle_build(version=version, destination=Path(scratch))
            if verbosity >= 2:
                self.stdout.write(f"  {path.name}: {path.stat().st_size:,} bytes")
            release.bundle_upload(place=place, version=version, path=path)
        self.stdout.write(f"Uploaded {url}.")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()} ({record.name})"


@contextmanager
def command_logging(*, log_format: str, stream=None):
    """Route the root logger to `stream` (default stderr) for the command's duration, then restore it."""
    from shop.logs import JsonFormatter

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
        handler.setLevel(logging.WARNING)
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
