"""Release bundles: the project and a wheel of every pinned requirement for the instances' Python, so an instance
installs a release with `pip install --no-index` and never reaches PyPI.

Layout of <version>.tar.gz: the project's tracked files at the top, wheels/ with the wheels, RELEASE.json.
"""

import io
import json
import re
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from opsinfra.errors import ReleaseError

# What the instances run: Amazon Linux 2023 (glibc 2.34) on x86_64 with Python 3.11.
WHEEL_PLATFORM = ("--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp")
REQUIREMENTS = "requirements/base.txt"
# Tracked files an instance never needs.
EXCLUDED_PREFIXES = ("tests/", "loadtests/", "bench/", ".github/", ".ci/", "templates_cfn/")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", *args],  # noqa: S607 - git from PATH, as an operator runs it
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ReleaseError(f"git {' '.join(args)} failed: pass --release to name the release.") from exc
    return done.stdout


def release_version(version: str | None = None) -> str:
    """The given version, or `git describe` of the work tree; a tree with uncommitted changes has no version."""
    if version:
        if not VERSION_PATTERN.match(version):
            raise ReleaseError(f"Version {version!r} may hold only letters, digits and . _ + - (S3 key, SSM value).")
        return version
    described = _git("describe", "--tags", "--always", "--dirty").strip()
    if described.endswith("-dirty"):
        raise ReleaseError(
            "The work tree has uncommitted changes, so git cannot name this release: commit them, or pass --release."
        )
    return described


def bundle_key(version: str) -> str:
    return f"releases/{version}.tar.gz"


def project_files() -> list[str]:
    """The tracked files that ship, as paths relative to the project."""
    listed = _git("ls-files", "-z").split("\0")
    base = Path(settings.BASE_DIR)
    return sorted(
        path for path in listed if path and not path.startswith(EXCLUDED_PREFIXES) and (base / path).is_file()
    )


def pinned_requirements(path: Path) -> dict[str, str]:
    """name → version of every `name==version` line of a lock (hash lines and comments skipped), names normalized
    as wheels spell them."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = (part.strip() for part in line.split("==", 1))
            pins[_normalize(name.split("[")[0])] = version.split()[0]
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheels_download(*, wheelhouse: Path) -> list[Path]:
    """Download (or reuse from `wheelhouse`) a manylinux/CPython 3.11 wheel of every pinned requirement."""
    requirements = Path(settings.BASE_DIR) / REQUIREMENTS
    wheelhouse.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        *WHEEL_PLATFORM,
        "--dest",
        str(wheelhouse),
        "--requirement",
        str(requirements),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own arguments
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or [done.stderr.strip()]
        raise ReleaseError(f"pip could not download a Linux wheel of every requirement: {errors[0]}")
    pins = pinned_requirements(requirements)
    found: dict[str, Path] = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if pins.get(_normalize(name)) == version:
            found[_normalize(name)] = wheel
    missing = sorted(set(pins) - set(found))
    if missing:
        raise ReleaseError(
            f"No Linux wheel for {missing[0]}=={pins[missing[0]]}: every pin needs one for offline installs."
        )
    return sorted(found.values())


def bundle_build(*, version: str, destination: Path) -> Path:
    """Write <destination>/<version>.tar.gz and return its path."""
    base = Path(settings.BASE_DIR)
    wheelhouse = Path(settings.OPSINFRA.get("WHEELHOUSE", base / ".shop" / "wheelhouse"))
    wheels = wheels_download(wheelhouse=wheelhouse)
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / f"{version}.tar.gz"
    release = {
        "version": version,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": "3.11",
        "wheels": [wheel.name for wheel in wheels],
    }
    with tarfile.open(path, "w:gz") as bundle:
        for relative in project_files():
            bundle.add(base / relative, arcname=relative, recursive=False)
        for wheel in wheels:
            bundle.add(wheel, arcname=f"wheels/{wheel.name}", recursive=False)
        data = (json.dumps(release, indent=2) + "\n").encode()
        info = tarfile.TarInfo("RELEASE.json")
        info.size = len(data)
        info.mtime = int(datetime.now(UTC).timestamp())
        bundle.addfile(info, io.BytesIO(data))
    return path
