"""`manage.py synth_stack`: deterministic templates, written where asked, and --check against templates_cfn/."""

import json
import shutil
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command

from opsinfra import synth
from opsinfra.errors import StackConfigError
from opsinfra.stacks import stack_settings


def _synth(*args) -> str:
    out = StringIO()
    call_command("synth_stack", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def committed_copy(tmp_path, monkeypatch):
    """templates_cfn/ copied to a scratch directory the command reads instead."""
    directory = tmp_path / "templates_cfn"
    shutil.copytree(synth.TEMPLATES_DIR, directory)
    monkeypatch.setattr(synth, "TEMPLATES_DIR", directory)
    return directory


def test_synth_check_committed_templates_match_the_code():
    output = _synth("--check")
    assert f"All {len(synth.COMMITTED)} committed templates match the code." in output
    assert "app-production.json: 135 resources" in output
    assert "bytes compact" in output


def test_synth_check_fails_on_drift_and_writes_nothing(committed_copy):
    # given
    path = committed_copy / "app-staging.json"
    drifted = path.read_text().replace('"MaxSize": "4"', '"MaxSize": "5"')
    path.write_text(drifted)
    # when
    with pytest.raises(CommandError, match=r"differ from the code: app-staging\.json"):
        _synth("--check")
    # then
    assert path.read_text() == drifted


def test_synth_check_fails_on_a_missing_template(committed_copy):
    (committed_copy / "edge-production.json").unlink()
    with pytest.raises(CommandError, match=r"edge-production\.json"):
        _synth("--check")
    assert not (committed_copy / "edge-production.json").exists()


def test_synth_writes_the_committed_file_byte_for_byte(tmp_path):
    target = tmp_path / "app-staging.json"
    output = _synth("--stack", "app", "--env", "staging", "--output", str(target))
    assert target.read_text() == (synth.TEMPLATES_DIR / "app-staging.json").read_text()
    assert "133 resources" in output and "51,200" in output


def test_synth_default_writes_every_committed_template(committed_copy):
    for path in committed_copy.iterdir():
        path.unlink()
    output = _synth()
    assert sorted(path.name for path in committed_copy.iterdir()) == sorted(
        f"{stack}-{env}.json" for stack, env in synth.COMMITTED
    )
    assert {"loadgen-staging.json", "image-production.json"} <= {path.name for path in committed_copy.iterdir()}
    assert output.count("resources") == len(synth.COMMITTED)


def test_synth_region_changes_what_the_app_stack_holds(tmp_path):
    target = tmp_path / "app.json"
    _synth("--stack", "app", "--region", "eu-west-1", "--output", str(target))
    body = json.loads(target.read_text())
    assert body["Metadata"]["Shop"] == {"Stack": "app", "Env": "production", "Region": "eu-west-1"}
    assert "EdgeWebAclArn" in body["Parameters"]
    assert body["Parameters"]["CloudFrontPrefixListId"]["Default"] == "pl-4fa04526"


def test_synth_yaml_uses_long_form_only(tmp_path):
    target = tmp_path / "bootstrap.yaml"
    _synth("--stack", "bootstrap", "--format", "yaml", "--output", str(target))
    text = target.read_text()
    assert "!Ref" not in text and "!Sub" not in text and "!GetAtt" not in text
    assert "BootstrapArtifactsBucket" in yaml.safe_load(text)["Resources"]


def test_synth_unknown_environment_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="Unknown environment 'qa'"):
        _synth("--stack", "app", "--env", "qa", "--output", str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


def test_synth_edge_stack_only_in_us_east_1(tmp_path):
    with pytest.raises(CommandError, match="edge stack always lives in us-east-1"):
        _synth("--stack", "edge", "--region", "eu-west-1", "--output", str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


def test_synth_output_needs_a_stack(tmp_path):
    with pytest.raises(CommandError, match="--output needs --stack"):
        _synth("--output", str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()


def test_stack_settings_domain_needs_a_zone(settings):
    settings.OPSINFRA = {
        **settings.OPSINFRA,
        "ENVIRONMENTS": {"production": {**settings.OPSINFRA["ENVIRONMENTS"]["production"], "domain": "a.example"}},
    }
    with pytest.raises(StackConfigError, match="needs hosted_zone_id"):
        stack_settings(stack="app", env="production")


def test_stack_settings_names_and_release_parameter():
    app = stack_settings(stack="app", env="staging")
    assert (app.stack_name, app.release_parameter_name) == ("shop-app-staging", "/shop/staging/release")
    assert stack_settings(stack="bootstrap", env="production").stack_name == "shop-bootstrap"
    with pytest.raises(StackConfigError, match="Unknown stack"):
        stack_settings(stack="db", env="production")
