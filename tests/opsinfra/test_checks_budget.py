"""`manage.py check`: the connection budget of each OPSINFRA environment."""

import copy
import subprocess
import sys
from io import StringIO

from django.conf import settings
from django.core.management import call_command

from opsinfra.capacity import db_max_connections
from opsinfra.checks import check_connection_budget


def _with(env: str, **changes):
    config = copy.deepcopy(settings.OPSINFRA)
    config["ENVIRONMENTS"][env].update(changes)
    return config


def test_check_budget_defaults_fit(settings):
    assert check_connection_budget() == []


def test_check_budget_db_t3_medium_allows_about_400():
    assert 390 <= db_max_connections("db.t3.medium") <= 410


def test_check_budget_warns_with_the_numbers(settings):
    # given: 40 instances x 4 workers x 4 threads = 640 clients on db.t3.medium
    settings.OPSINFRA = _with("production", asg_max=40)
    # when
    (warning,) = check_connection_budget()
    # then
    assert warning.id == "opsinfra.W001"
    budget = db_max_connections("db.t3.medium")
    assert "40 instances x 4 gunicorn workers x 4 threads = 640 database clients" in warning.msg
    assert f"the {budget} connections RDS Proxy may open on db.t3.medium" in warning.msg


def test_check_budget_counts_the_proxy_share(settings):
    settings.OPSINFRA = _with("production", proxy_max_connections_percent=50)
    (warning,) = check_connection_budget()
    assert "x 50 %" in warning.msg


def test_check_budget_unknown_instance_class(settings):
    settings.OPSINFRA = _with("staging", db_instance_class="db.x99.huge")
    (warning,) = check_connection_budget()
    assert warning.id == "opsinfra.W002" and "db.x99.huge" in warning.msg


def test_check_budget_runs_in_manage_py_check(settings):
    settings.OPSINFRA = _with("production", gunicorn_threads=8)
    err = StringIO()
    call_command("check", stdout=StringIO(), stderr=err)
    assert "opsinfra.W001" in err.getvalue()


def test_app_code_never_imports_troposphere():
    modules = ["opsinfra.apps", "opsinfra.checks", "opsinfra.stacks", "opsinfra.synth", "shop.urls", "shop.wsgi"]
    code = (
        "import django, sys; django.setup(); import importlib; "
        f"[importlib.import_module(name) for name in {modules!r}]; "
        "from django.core.management import call_command; call_command('check'); "
        "sys.exit(1 if 'troposphere' in sys.modules else 0)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "shop.settings", "DJANGO_SECRET_KEY": "test", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
