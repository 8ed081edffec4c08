"""The rotation function's Lambda bundle: function.py as rotation.py, with pg8000 and what it imports.

The zip is built from the installed packages (requirements/ops.txt pins them with their hashes) with fixed dates and
modes, so the same checkout always builds the same bytes. Its SHA-256 names it in the artifacts bucket
(`lambda/db-rotation/<sha256>.zip`); the app template's RotationCodeKey defaults to that key, so a change of the code
or of a pinned package shows up in the committed template, and deploy_stack uploads the bundle before it executes a
change set that names it.
"""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

HANDLER = "rotation.lambda_handler"
KEY_PREFIX = "lambda/db-rotation/"
KEY_PATTERN = r"^lambda/db-rotation/[0-9a-f]{64}\.zip$"
# pg8000 and its imports; boto3 is the Lambda runtime's own.
DISTRIBUTIONS = ("pg8000", "scramp", "asn1crypto", "python-dateutil", "six")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.sha256}.zip"


def _package_files(name: str) -> dict[str, bytes]:
    """The distribution's importable files and its licence, as installed from its wheel (no caches, no RECORD)."""
    distribution = metadata.distribution(name)
    found = {}
    for path in distribution.files or []:
        parts = Path(str(path)).parts
        if "__pycache__" in parts or str(path).endswith(".pyc") or parts[0] == ".." or parts[0].endswith(".data"):
            continue
        if parts[0].endswith(".dist-info") and not any(word in parts[-1].upper() for word in ("LICENSE", "COPYING")):
            continue
        found[str(path)] = Path(distribution.locate_file(path)).read_bytes()
    return found


@cache
def rotation_bundle() -> Bundle:
    files = {"rotation.py": Path(__file__).with_name("function.py").read_bytes()}
    for name in DISTRIBUTIONS:
        files.update(_package_files(name))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    data = buffer.getvalue()
    return Bundle(data=data, sha256=hashlib.sha256(data).hexdigest())
