"""A machine with only requirements/base.txt gets one sentence naming the install step, not a traceback."""

import importlib.util
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def test_synth_stack_without_ops_requirements_names_make_ops(monkeypatch, tmp_path):
    # given: troposphere cannot be found (as on an app instance, which installs base.txt only)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "troposphere" else real_find_spec(name, *a)
    )
    output = tmp_path / "app.json"

    # when / then
    with pytest.raises(CommandError, match=r"need 'troposphere'.*make ops"):
        call_command("synth_stack", "--stack", "bootstrap", "--output", str(output), stdout=StringIO())
    assert not output.exists()
