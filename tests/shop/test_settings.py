import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from shop import env


def _import_settings(**overrides: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "APP_SECRET_ARN", "DJANGO_DEBUG")}
    environ.update(overrides)
    return subprocess.run(
        [sys.executable, "-c", "import shop.settings"], env=environ, capture_output=True, text=True, timeout=60
    )


def test_settings_without_secret_key_refuse_to_start_with_one_line():
    # when
    result = _import_settings(DJANGO_DEBUG="0")
    # then
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "shop: DJANGO_SECRET_KEY (or django_secret_key in APP_SECRET_ARN) is required when DJANGO_DEBUG is off."
    ]


def _manage(*args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "APP_SECRET_ARN", "DJANGO_DEBUG")}
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.run(
        [sys.executable, str(manage), *args], env=environ, capture_output=True, text=True, timeout=120
    )


def test_runserver_without_secret_key_refuses_to_start():
    result = _manage("runserver", "127.0.0.1:1", "--noreload")
    assert result.returncode != 0
    assert result.stderr.strip().endswith("is required when DJANGO_DEBUG is off.")


def test_ops_commands_need_no_secret_key():
    result = _manage("synth_stack", "--check")
    assert result.returncode == 0, result.stderr
    assert "match the code" in result.stdout


def test_settings_in_debug_start_without_secret_key():
    assert _import_settings(DJANGO_DEBUG="1").returncode == 0


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False), ("False", False)])
def test_flag_accepts_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert env.flag("SOME_FLAG") is expected


def test_flag_rejects_other_words(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env.flag("SOME_FLAG")


def test_items_split_on_commas_and_drop_blanks(monkeypatch):
    monkeypatch.setenv("SOME_LIST", " a.example, b.example ,,")
    assert env.items("SOME_LIST") == ["a.example", "b.example"]
