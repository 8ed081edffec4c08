"""Gate: cfn-lint (the pinned version) finds nothing in any template shape; suppressions only per resource."""

import json
from pathlib import Path

import pytest
from django.conf import settings

from tests.opsinfra.cfn_cache import VARIANTS, lint_all, template, variant_id


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_cfn_lint_no_errors_or_warnings(variant):
    # when
    findings = lint_all()[variant_id(variant)]
    # then
    assert findings == []


def test_cfn_lint_no_project_wide_configuration():
    for name in (".cfnlintrc", ".cfnlintrc.yaml", ".cfnlintrc.yml", ".cfnlintrc.json"):
        assert not (Path(settings.BASE_DIR) / name).exists()


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_cfn_lint_suppressions_carry_reasons(variant):
    body = template(*variant)
    assert "cfn-lint" not in body.get("Metadata", {})
    for name, resource in body["Resources"].items():
        metadata = resource.get("Metadata", {})
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        reasons = metadata.get("Suppressions", {})
        for rule in ignored:
            assert reasons.get(rule, "").strip(), f"{name} ignores {rule} without a reason"


def test_cfn_lint_committed_templates_are_json():
    for path in sorted((Path(settings.BASE_DIR) / "templates_cfn").glob("*")):
        assert path.suffix == ".json"
        json.loads(path.read_text())
