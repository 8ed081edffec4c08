from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def _load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


@pytest.fixture(scope="session")
def workflows() -> dict[str, dict]:
    return {path.stem: _load(path) for path in sorted(WORKFLOWS.glob("*.yml"))}


def jobs(workflows: dict[str, dict]):
    """(workflow.job, job) for every job of every workflow."""
    for workflow_name, workflow in workflows.items():
        for job_name, job in workflow["jobs"].items():
            yield f"{workflow_name}.{job_name}", job
