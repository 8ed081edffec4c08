"""The instance user data: syntax, shellcheck, and runs with stubbed aws/dnf/systemctl/curl that record each step."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from opsinfra.cfn import userdata

VALUES = {
    "Region": "us-east-1",
    "ReleaseParameter": "/shop/production/release",
    "AllowParameter": "/shop/production/ratelimit-allow-ips",
    "LifecycleHook": "shop-launch",
    "AppPort": "8000",
    "BootTimeout": "300",
    "AllowedHosts": "shop-alb-123.us-east-1.elb.amazonaws.com",
    "AppSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf",
    "DbSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-app-AbCdEf",
    "DbMasterSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-master-AbCdEf",
    "ProxyEndpoint": "shop-proxy.proxy-abc.us-east-1.rds.amazonaws.com",
    "DatabaseName": "shop",
    "CacheEndpoint": "master.shop-redis.abc.use1.cache.amazonaws.com",
    "GunicornWorkers": "4",
    "GunicornThreads": "4",
    "AppLogGroup": "/shop/production/app",
    "ReleaseLogGroup": "/shop/production/release",
    "MetricsLogGroup": "/shop/production/metrics",
    "MetricsNamespace": "shop-app-production",
}
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
INSTANCE_ID = "i-0123456789abcdef0"
GROUP = "shop-app-production-ComputeAutoScalingGroup-ABC"

# Each stub appends its name and arguments to $CALLS, then does the least the script needs.
STUBS = {
    "dnf": "",
    # The public image has none of the packages; BAKED=1 is the baked image, which has them all.
    "rpm": '[ "${BAKED:-0}" = 1 ]',
    "useradd": "",
    "id": "exit 1",
    "amazon-cloudwatch-agent-ctl": "",
    "systemctl": "",
    "sleep": "",
    "install": 'dirs=(); while (($#)); do case "$1" in -m|-o|-g) shift 2;; -d) shift;; *) dirs+=("$1"); shift;; esac;'
    ' done; mkdir -p "${dirs[@]}"',
    "curl": """case "$*" in
  *api/token*) echo token;;
  *meta-data/instance-id*) echo INSTANCE;;
  *meta-data/tags/instance/aws:autoscaling:groupName*) echo GROUP;;
  *127.0.0.1:8000/health*) exit "${HEALTH_EXIT:-0}";;
  *) exit 22;;
esac""".replace("INSTANCE", INSTANCE_ID).replace("GROUP", GROUP),
    "aws": """case "$1 $2" in
  "ssm get-parameter") case "$*" in *ratelimit-allow-ips*) [ -n "${ALLOW_IPS:-}" ] && echo "$ALLOW_IPS";;
    *) cat "$RELEASE_FILE";; esac;;
  "s3 cp") for last; do :; done; cp "$BUNDLE" "$last";;
  "autoscaling complete-lifecycle-action") exit 0;;
  *) exit 2;;
esac""",
    "python3.11": """if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  for tool in pip python; do
    printf '#!/bin/bash\\necho "venv-%s $*" >> "$CALLS"\\n' "$tool" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
fi""",
}


def _render(**overrides) -> str:
    return userdata.render_text({**VALUES, **overrides})


def test_userdata_has_strict_mode_and_no_trace():
    script = _render()
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    for name in ("user-data.sh", "shop-release.sh", "shop-migrate.sh"):
        commands = [line for line in userdata.read(name).splitlines() if not line.lstrip().startswith("#")]
        assert not [line for line in commands if re.search(r"\bset\s+(-[a-wyz]*x|-o\s+xtrace)", line)], name


def test_userdata_every_placeholder_needs_a_value():
    values = dict(VALUES)
    del values["ProxyEndpoint"]
    with pytest.raises(KeyError, match="ProxyEndpoint"):
        userdata.render_text(values)


def test_userdata_fits_ec2_user_data_limit():
    # EC2 takes at most 16 KB of user data before base64.
    assert len(_render().encode()) < 16 * 1024


def test_userdata_bash_syntax(tmp_path):
    script = tmp_path / "user-data.sh"
    script.write_text(_render())
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["user-data.sh", "shop-release.sh", "shop-migrate.sh"])
def test_userdata_shellcheck(tmp_path, name):
    script = tmp_path / name
    script.write_text(_render() if name == "user-data.sh" else userdata.read(name))
    done = subprocess.run([str(SHELLCHECK), "--severity=style", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_userdata_helper_scripts_compile():
    compile(userdata.read("shop-db-role.py"), "shop-db-role.py", "exec")
    config = json.loads(
        userdata.inline_files(userdata.read("cloudwatch-agent.json")).replace("{{", "").replace("}}", "")
    )
    assert len(config["logs"]["logs_collected"]["files"]["collect_list"]) == 5


@pytest.fixture
def instance(tmp_path):
    """A scratch root, stubs first on PATH, a release bundle and its SSM value."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in STUBS.items():
        stub = stubs / name
        stub.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        stub.chmod(0o755)
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as archive:
        for member, content in {
            "manage.py": b"",
            "requirements/base.txt": b"Django==5.2.19\n",
            "wheels/Django-5.2.19-py3-none-any.whl": b"",
        }.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    root = tmp_path / "root"
    calls = tmp_path / "calls.log"
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "SHOP_ROOT": str(root),
        "CALLS": str(calls),
        "BUNDLE": str(bundle),
        "RELEASE_FILE": str(tmp_path / "release.json"),
        "HOME": str(tmp_path),
    }

    class Instance:
        def __init__(self):
            self.root, self.calls, self.env = root, calls, env

        def release(self, version):
            payload = {"version": version, "bundle": f"s3://shop-artifacts/releases/{version}.tar.gz"}
            (tmp_path / "release.json").write_text(json.dumps(payload))

        def run(self, script: Path, *args: str, **extra):
            self.calls.write_text("")
            return subprocess.run(
                ["bash", str(script), *args], env={**self.env, **extra}, capture_output=True, text=True, timeout=60
            )

        def steps(self) -> list[str]:
            return self.calls.read_text().splitlines()

    first_boot = tmp_path / "user-data.sh"
    first_boot.write_text(_render())
    return Instance(), first_boot


def test_userdata_first_boot_installs_writes_units_and_starts_the_release_unit(instance):
    box, script = instance
    # when
    done = box.run(script)
    # then
    assert done.returncode == 0, done.stderr
    steps = box.steps()
    assert steps[:2] == [
        "rpm -q python3.11 python3.11-pip amazon-cloudwatch-agent nginx",
        "dnf install -y python3.11 python3.11-pip amazon-cloudwatch-agent nginx",
    ]
    assert "useradd --system --home-dir /opt/shop --no-create-home --shell /sbin/nologin shop" in steps
    assert steps[-3:] == [
        "systemctl daemon-reload",
        "systemctl enable shop-release.service",
        "systemctl start --no-block shop-release.service",
    ]
    assert any(step.startswith("amazon-cloudwatch-agent-ctl -a fetch-config") for step in steps)
    app_env = (box.root / "etc/shop/app.env").read_text()
    assert f"DATABASE_URL=postgres://{VALUES['ProxyEndpoint']}:5432/shop\n" in app_env
    assert "DATABASE_PROXY=rds\n" in app_env
    assert f"REDIS_URL=rediss://{VALUES['CacheEndpoint']}:6379/0\n" in app_env
    # CloudFront, the ALB and nginx each append one address to X-Forwarded-For.
    assert "TRUSTED_PROXY_COUNT=3\n" in app_env
    # the app's EMF records, in the file the agent ships to the metrics log group, under the stack's namespace
    assert f"METRICS_NAMESPACE={VALUES['MetricsNamespace']}\n" in app_env
    assert "METRICS_EMF_FILE=/var/log/shop/metrics.log\n" in app_env
    assert "GUNICORN_BIND" not in app_env and "GUNICORN_FORWARDED_ALLOW_IPS" not in app_env
    assert f"APP_SECRET_ARN={VALUES['AppSecretArn']}\n" in app_env
    assert f"DB_SECRET_ARN={VALUES['DbSecretArn']}\n" in app_env
    # ARNs only: no secret value, and the master secret is not in the app's environment.
    assert "PASSWORD" not in app_env.upper() and "SECRET_KEY" not in app_env
    assert VALUES["DbMasterSecretArn"] not in app_env
    service = (box.root / "etc/systemd/system/shop.service").read_text()
    assert "User=shop\n" in service
    assert "--config shop/gunicorn.conf.py" in service
    assert "EnvironmentFile=/etc/shop/release.env" in service
    assert "--bind unix:/run/shop/gunicorn.sock" in service and "RuntimeDirectory=shop\n" in service
    front = (box.root / "etc/systemd/system/shop-nginx.service").read_text()
    assert 'ExecStart=/usr/sbin/nginx -c /etc/shop/nginx.conf -g "daemon off;"' in front
    assert "Nice=-5" in front and "RuntimeDirectory=shop-nginx\n" in front
    release_unit = (box.root / "etc/systemd/system/shop-release.service").read_text()
    assert "WantedBy=multi-user.target" in release_unit and "Type=oneshot" in release_unit
    agent = json.loads((box.root / "opt/aws/amazon-cloudwatch-agent/etc/shop.json").read_text())
    groups = {entry["log_group_name"] for entry in agent["logs"]["logs_collected"]["files"]["collect_list"]}
    assert groups == {"/shop/production/app", "/shop/production/release", "/shop/production/metrics"}
    assert os.access(box.root / "usr/local/sbin/shop-release", os.X_OK)


def _boot(box):
    return box.root / "usr/local/sbin/shop-release"


def test_userdata_every_boot_switches_release_then_completes_lifecycle(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    box.release("v1")
    # when
    done = box.run(_boot(box))
    # then
    assert done.returncode == 0, done.stderr
    steps = box.steps()
    release_dir = box.root / "opt/shop/releases/v1"
    expected = [
        "aws ssm get-parameter --region us-east-1 --name /shop/production/release --query Parameter.Value "
        "--output text",
        "aws ssm get-parameter --region us-east-1 --name /shop/production/ratelimit-allow-ips --query "
        "Parameter.Value --output text",
        "aws s3 cp --only-show-errors --region us-east-1 s3://shop-artifacts/releases/v1.tar.gz ",
        f"python3.11 -m venv {release_dir}/venv",
        f"venv-pip install --quiet --no-index --find-links {release_dir}/wheels -r {release_dir}/requirements/base.txt",
        f"venv-python {release_dir}/manage.py collectstatic --noinput --verbosity 0",
        f"venv-python -m compileall -q {release_dir}",
        "systemctl restart shop.service",
        "venv-python -m shop.nginx render --listen 8000 --upstream unix:/run/shop/gunicorn.sock --run-dir "
        "/run/shop-nginx --log-dir /var/log/shop --workers 4 --threads 4 --user nginx",
        "systemctl reload-or-restart shop-nginx.service",
    ]
    for step, want in zip(steps, expected, strict=False):
        assert step.startswith(want), (step, want)
    assert (box.root / "etc/shop/nginx.conf").exists()
    assert "curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8000/health" in steps
    assert steps[-1] == (
        f"aws autoscaling complete-lifecycle-action --region us-east-1 --lifecycle-hook-name shop-launch "
        f"--auto-scaling-group-name {GROUP} --instance-id {INSTANCE_ID} --lifecycle-action-result CONTINUE"
    )
    assert os.readlink(box.root / "opt/shop/current") == "releases/v1"
    assert (box.root / "etc/shop/release.env").read_text() == "SHOP_VERSION=v1\n"
    assert not any("pypi" in step.lower() for step in steps)


def test_userdata_boot_with_the_current_release_only_starts_the_app(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    box.release("v1")
    assert box.run(_boot(box)).returncode == 0
    # when: the instance leaves the warm pool with the same release
    done = box.run(_boot(box))
    # then
    assert done.returncode == 0, done.stderr
    steps = box.steps()
    assert not any(step.startswith(("aws s3 cp", "python3.11")) for step in steps)
    assert "systemctl start shop.service" in steps
    assert "systemctl reload-or-restart shop-nginx.service" in steps
    assert steps[-1].endswith("--lifecycle-action-result CONTINUE")


def test_userdata_boot_reads_the_fleet_allow_list_and_restarts_the_app_when_it_changes(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    box.release("v1")
    assert box.run(_boot(box)).returncode == 0
    allow_env = box.root / "etc/shop/allow.env"
    assert allow_env.read_text() == "RATELIMIT_ALLOW_IPS=\n"  # no fleet: no parameter, nothing allowed
    # when: a loadgen fleet exists (its deploy wrote the parameter), on the same release
    done = box.run(_boot(box), ALLOW_IPS="203.0.113.7/32,198.51.100.9/32")
    # then: the app restarts with it
    assert done.returncode == 0, done.stderr
    assert allow_env.read_text() == "RATELIMIT_ALLOW_IPS=203.0.113.7/32,198.51.100.9/32\n"
    assert "systemctl restart shop.service" in box.steps()
    # when: the same list again: only started
    assert box.run(_boot(box), ALLOW_IPS="203.0.113.7/32,198.51.100.9/32").returncode == 0
    assert "systemctl start shop.service" in box.steps() and "systemctl restart shop.service" not in box.steps()
    # when: the value is not a list of addresses, nothing is allowed
    assert box.run(_boot(box), ALLOW_IPS="1.2.3.4/32 $(reboot)").returncode == 0
    assert allow_env.read_text() == "RATELIMIT_ALLOW_IPS=\n"
    service = (box.root / "etc/systemd/system/shop.service").read_text()
    assert "EnvironmentFile=-/etc/shop/allow.env" in service


def test_userdata_keeps_the_previous_release_only(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    for version in ("v1", "v2", "v3"):
        box.release(version)
        assert box.run(_boot(box)).returncode == 0
    assert sorted(path.name for path in (box.root / "opt/shop/releases").iterdir()) == ["v2", "v3"]


def test_userdata_health_never_answers_abandons_the_launch(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    instance_env = box.root / "etc/shop/instance.env"
    instance_env.write_text(instance_env.read_text().replace("SHOP_BOOT_TIMEOUT=300", "SHOP_BOOT_TIMEOUT=0"))
    box.release("v1")
    # when
    done = box.run(_boot(box), HEALTH_EXIT="7")
    # then
    assert done.returncode == 1
    assert box.steps()[-1].endswith("--lifecycle-action-result ABANDON")


def test_userdata_refuses_a_release_name_that_is_a_path(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    box.release("../../etc")
    # when
    done = box.run(_boot(box))
    # then
    assert done.returncode == 1
    steps = box.steps()
    assert not any(step.startswith(("aws s3 cp", "python3.11", "systemctl")) for step in steps)
    assert steps[-1].endswith("--lifecycle-action-result ABANDON")
    assert not (box.root / "opt/shop/current").exists()


def test_userdata_migrate_installs_the_new_release_beside_the_running_one(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    box.release("v1")
    assert box.run(_boot(box)).returncode == 0
    migrate = box.root / "usr/local/sbin/shop-migrate"
    # when: deploy_app migrates v2 before any instance switches
    done = box.run(migrate, "v2", "s3://shop-artifacts/releases/v2.tar.gz")
    # then
    assert done.returncode == 0, done.stderr
    steps = box.steps()
    release_dir = box.root / "opt/shop/releases/v2"
    assert any(
        step.startswith("aws s3 cp --only-show-errors --region us-east-1 s3://shop-artifacts/releases/v2")
        for step in steps
    )
    assert "venv-python manage.py migrate --noinput" in steps
    assert steps[-1] == f"venv-python {box.root}/usr/local/sbin/shop-db-role"
    assert (release_dir / ".installed").exists()
    assert os.readlink(box.root / "opt/shop/current") == "releases/v1"
    assert not any(step.startswith("systemctl") for step in steps[-8:])
    # and: the refresh's new instance, or this one on its next boot, switches without installing again
    box.release("v2")
    assert box.run(_boot(box)).returncode == 0
    assert not any(step.startswith(("aws s3 cp", "python3.11")) for step in box.steps())
    assert os.readlink(box.root / "opt/shop/current") == "releases/v2"


def test_userdata_migrate_refuses_a_release_name_that_is_a_path(instance):
    box, script = instance
    assert box.run(script).returncode == 0
    migrate = box.root / "usr/local/sbin/shop-migrate"
    done = box.run(migrate, "../../etc", "s3://shop-artifacts/releases/x.tar.gz")
    assert done.returncode != 0
    assert not any(step.startswith(("aws s3 cp", "venv-python")) for step in box.steps())


def _bake(box, version):
    """What the image's components leave on disk: shop-release installed and `shop-release install` run without any
    of the stack's configuration (no /etc/shop/*.env)."""
    sbin = box.root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    (sbin / "shop-release").write_text(userdata.read("shop-release.sh"))
    (sbin / "shop-release").chmod(0o755)
    return box.run(sbin / "shop-release", "install", version, f"s3://shop-artifacts/releases/{version}.tar.gz",
                   AWS_REGION="us-east-1")  # fmt: skip


def test_userdata_bake_installs_the_release_without_configuration(instance):
    box, _ = instance
    # when
    done = _bake(box, "v1")
    # then
    assert done.returncode == 0, done.stderr
    assert (box.root / "opt/shop/releases/v1/.installed").exists()
    assert not (box.root / "etc/shop").exists()
    assert not (box.root / "opt/shop/current").exists()
    assert not any(step.startswith("systemctl") for step in box.steps())


def test_userdata_on_the_baked_image_skips_packages_and_the_release_it_has(instance):
    box, script = instance
    assert _bake(box, "v1").returncode == 0
    box.release("v1")
    # when
    first = box.run(script, BAKED="1")
    first_steps = box.steps()
    boot = box.run(_boot(box), BAKED="1")
    # then
    assert first.returncode == 0, first.stderr
    assert boot.returncode == 0, boot.stderr
    assert not any(step.startswith("dnf") for step in first_steps)
    assert not any(step.startswith(("aws s3 cp", "python3.11")) for step in box.steps())
    assert os.readlink(box.root / "opt/shop/current") == "releases/v1"
    assert box.steps()[-1].endswith("--lifecycle-action-result CONTINUE")


def test_userdata_on_the_baked_image_installs_a_newer_release_at_boot(instance):
    box, script = instance
    assert _bake(box, "v1").returncode == 0
    box.release("v2")
    assert box.run(script, BAKED="1").returncode == 0
    # when
    done = box.run(_boot(box), BAKED="1")
    # then
    assert done.returncode == 0, done.stderr
    steps = box.steps()
    assert any(step.startswith("aws s3 cp --only-show-errors --region us-east-1 s3://shop-artifacts/releases/v2")
               for step in steps)  # fmt: skip
    assert os.readlink(box.root / "opt/shop/current") == "releases/v2"
    # The image's release is not the previous one of a running instance: it goes.
    assert sorted(path.name for path in (box.root / "opt/shop/releases").iterdir()) == ["v2"]
