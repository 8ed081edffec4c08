"""`make bench-boot`: an app instance's boot steps timed on this machine, for the public and the baked image.

The user data and shop-release run as in tests/opsinfra/test_userdata.py, under a scratch root, with what an
instance does for real done for real: a real release bundle (bundle_build: the project and a Linux wheel of every
pin), unpacked with tar, a Python 3.11 virtualenv, `pip install --no-index` of its wheels, collectstatic, compileall
and the nginx config render. What needs AWS or root is stubbed and costs nothing here: dnf (the public image's
package install), `aws s3 cp` (a local copy of the bundle), systemctl, the IMDS and /health.

Each stub and wrapper writes a timestamp when it starts; a step lasts until the next one starts. Prints a table
(median of BOOT_REPEATS runs, default 3) and writes bench/results/boot-<timestamp>.json. docs/image.md says which
figures are measured here and which are estimated for AWS.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
django.setup()

from opsinfra.cfn import userdata  # noqa: E402 - after django.setup()
from opsinfra.services import bundle  # noqa: E402

BASE = Path(__file__).resolve().parent.parent
PYTHON311 = shutil.which("python3.11") or sys.executable
VALUES = {
    "Region": "us-east-1",
    "ReleaseParameter": "/shop/production/release",
    "LifecycleHook": "shop-launch",
    "AppPort": "8000",
    "BootTimeout": "300",
    "AllowedHosts": "shop.example.com",
    # Empty: settings would read these secrets at import (collectstatic), and no AWS answers here.
    "AppSecretArn": "",
    "DbSecretArn": "",
    "DbMasterSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master",
    "ProxyEndpoint": "proxy.example.com",
    "DatabaseName": "shop",
    "CacheEndpoint": "cache.example.com",
    "GunicornWorkers": "4",
    "GunicornThreads": "4",
    "AppLogGroup": "/shop/production/app",
    "ReleaseLogGroup": "/shop/production/release",
}
# Steps of the table: the call that starts each, in order.
STEPS = (
    ("packages (rpm check, dnf)", "rpm"),
    ("first-boot files, agent, units", "useradd"),
    ("release parameter", "aws ssm"),
    ("bundle download", "aws s3 cp"),
    ("unpack", "tar"),
    ("virtualenv + wheel install", "python3.11"),
    ("collectstatic", "venv-python-collectstatic"),
    ("compileall", "venv-python-compileall"),
    ("service start (systemctl, nginx render, /health)", "systemctl restart"),
    ("lifecycle complete", "aws autoscaling"),
)


def _stamp(name: str) -> str:
    return f'printf "%s %s\\n" "$(date +%s.%N)" "{name} $*" >> "$CALLS"\n'


def _stubs(directory: Path, *, baked: bool) -> None:
    """Stubs for what needs AWS or root; wrappers that time the real tar and python3.11."""
    directory.mkdir()
    bodies = {
        "rpm": "exit 0" if baked else "exit 1",
        "dnf": "",
        "useradd": "",
        "id": "exit 1",
        "amazon-cloudwatch-agent-ctl": "",
        "systemctl": "",
        "install": 'dirs=(); while (($#)); do case "$1" in -m|-o|-g) shift 2;; -d) shift;; *) dirs+=("$1"); shift;;'
        ' esac; done; mkdir -p "${dirs[@]}"',
        "curl": 'case "$*" in *api/token*) echo t;; *instance-id*) echo i-0;; *groupName*) echo g;; *health*) exit 0;;'
        " *) exit 22;; esac",
        "aws": 'case "$1 $2" in "ssm get-parameter") cat "$RELEASE_FILE";; "s3 cp") for last; do :; done;'
        ' cp "$BUNDLE" "$last";; *) exit 0;; esac',
        "tar": 'exec /usr/bin/tar "$@"',
        # The real interpreter; the virtualenv's python is wrapped so collectstatic and compileall are timed apart.
        "python3.11": f"""{PYTHON311} "$@" || exit $?
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mv "$3/bin/python" "$3/bin/python.real"
  cp "{directory}/venv-python" "$3/bin/python"
fi""",
    }
    # The virtualenv's python, wrapped so collectstatic and compileall are timed apart (pip runs python.real).
    (directory / "venv-python").write_text(
        "#!/bin/bash\n"
        'case "$*" in *collectstatic*) step=collectstatic;; *compileall*) step=compileall;; *) step=other;; esac\n'
        + _stamp("venv-python-$step")
        + 'exec "$(dirname "$0")/python.real" "$@"\n'
    )
    (directory / "venv-python").chmod(0o755)
    for name, body in bodies.items():
        stub = directory / name
        stub.write_text("#!/bin/bash\n" + _stamp(name) + body + "\n")
        stub.chmod(0o755)


def _bake(root: Path, env: dict, version: str) -> None:
    """What the image's components leave: shop-release installed and the release installed, no configuration."""
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True)
    (sbin / "shop-release").write_text(userdata.read("shop-release.sh"))
    (sbin / "shop-release").chmod(0o755)
    _run(
        ["bash", str(sbin / "shop-release"), "install", version, f"s3://b/releases/{version}.tar.gz"],
        {**env, "AWS_REGION": "us-east-1"},
    )


def _run(command: list[str], env: dict) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{command[-1]} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def boot(*, work: Path, bundle_path: Path, image: str, boot_release: str, baked_release: str) -> dict[str, float]:
    """One cold boot on a fresh root: the user data, then shop-release; seconds per step."""
    stubs, root, calls = work / "stubs", work / "root", work / "calls.log"
    _stubs(stubs, baked=image == "baked")
    release_file = work / "release.json"
    bundle_url = f"s3://b/releases/{boot_release}.tar.gz"
    release_file.write_text(json.dumps({"version": boot_release, "bundle": bundle_url}))
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "SHOP_ROOT": str(root),
        "CALLS": str(calls),
        "BUNDLE": str(bundle_path),
        "RELEASE_FILE": str(release_file),
        "HOME": str(work),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if image == "baked":
        _bake(root, env, baked_release)
    calls.write_text("")
    script = work / "user-data.sh"
    script.write_text(userdata.render_text(VALUES))
    start = time.time()
    _run(["bash", str(script)], env)
    _run(["bash", str(root / "usr/local/sbin/shop-release")], env)
    end = time.time()
    events = [(float(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in calls.read_text().splitlines()]
    starts = []
    for label, prefix in STEPS:
        found = next((stamp for stamp, call in events if call.startswith(prefix)), None)
        starts.append((label, found))
    result = {}
    present = [(label, stamp) for label, stamp in starts if stamp is not None]
    for index, (label, stamp) in enumerate(present):
        following = present[index + 1][1] if index + 1 < len(present) else end
        result[label] = following - stamp
    for label, _ in starts:
        result.setdefault(label, 0.0)
    result["total (user data start to lifecycle complete)"] = end - start
    return result


def main() -> None:
    repeats = int(os.environ.get("BOOT_REPEATS", "3"))
    scenarios = (
        ("public image", "public", "v1", ""),
        ("baked image, same release", "baked", "v1", "v1"),
        ("baked image, newer release at boot", "baked", "v2", "v1"),
    )
    with tempfile.TemporaryDirectory(prefix="shop-boot-") as scratch:
        scratch = Path(scratch)
        print("Building a real release bundle (project and Linux wheels)…", flush=True)
        built = bundle.bundle_build(version="bench", destination=scratch / "bundle")
        print(f"  {built.stat().st_size / 1e6:.1f} MB", flush=True)
        results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in scenarios}
        for repeat in range(repeats):
            for name, image, boot_release, baked_release in scenarios:
                work = scratch / f"{repeat}-{image}-{boot_release}"
                work.mkdir()
                results[name].append(
                    boot(
                        work=work,
                        bundle_path=built,
                        image=image,
                        boot_release=boot_release,
                        baked_release=baked_release,
                    )
                )
                shutil.rmtree(work)
        medians = {
            name: {label: statistics.median(run[label] for run in runs) for label in runs[0]}
            for name, runs in results.items()
        }
        size = built.stat().st_size
    labels = list(next(iter(medians.values())))
    width = max(len(label) for label in labels)
    print(f"\n{'step':<{width}}  " + "  ".join(f"{name:>34}" for name in medians))
    for label in labels:
        print(f"{label:<{width}}  " + "  ".join(f"{medians[name][label]:>33.2f}s" for name in medians))
    out = BASE / "bench" / "results" / f"boot-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"repeats": repeats, "bundle_bytes": size, "cpus": os.cpu_count(), "median_s": medians}, indent=2)
    )
    print(f"\nbundle {size:,} bytes; {repeats} runs each, median; {out.relative_to(BASE)}")


if __name__ == "__main__":
    main()
