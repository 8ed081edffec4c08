"""Gate: checkov (its own virtualenv, created by .ci/run) fails no check unless the resource skips it with a reason."""

import json
import subprocess
from functools import cache
from pathlib import Path

import pytest
from django.conf import settings

from tests.opsinfra.cfn_cache import VARIANTS, compact, template, variant_id

CHECKOV = Path(settings.BASE_DIR) / ".venv-checkov" / "bin" / "checkov"


@cache
def _checkov_report(directory: str) -> dict:
    done = subprocess.run(
        [str(CHECKOV), "--directory", directory, "--framework", "cloudformation", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout)
    return report if isinstance(report, dict) else {"results": {"failed_checks": [], "skipped_checks": []}}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory):
    if not CHECKOV.exists():
        pytest.skip(
            f"checkov is not installed in {CHECKOV.parent.parent} (CI creates it: python3.11 -m venv .venv-checkov "
            "&& .venv-checkov/bin/pip install -r requirements/checkov.txt)"
        )
    directory = tmp_path_factory.mktemp("checkov")
    (directory / "shipped").mkdir()
    (directory / "bare").mkdir()
    for variant in VARIANTS:
        (directory / "shipped" / f"{variant_id(variant)}.json").write_text(compact(*variant))
        # The same template without its skips: shows which checks each skip really silences.
        bare = template(*variant)
        for resource in bare["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
        (directory / "bare" / f"{variant_id(variant)}.json").write_text(json.dumps(bare))
    return _checkov_report(str(directory))


def _checks(report: dict, kind: str, folder: str) -> set[tuple[str, str, str]]:
    return {
        (Path(check["file_path"]).name, check["resource"].split(".")[-1], check["check_id"])
        for check in report["results"][kind]
        if f"/{folder}/" in check["file_path"]
    }


def test_checkov_no_failed_check(checkov_report):
    assert _checks(checkov_report, "failed_checks", "shipped") == set()


def test_checkov_every_skip_silences_a_real_finding(checkov_report):
    # A skip for a check that would pass anyway only hides the check from the next reader.
    assert _checks(checkov_report, "skipped_checks", "shipped") == _checks(checkov_report, "failed_checks", "bare")


def test_checkov_scanned_every_resource(checkov_report):
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 100


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_checkov_skips_carry_reasons(variant):
    for name, resource in template(*variant)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV"), name
            assert len(skip.get("comment", "").split()) >= 4, f"{name} skips {skip['id']} without a written reason"
