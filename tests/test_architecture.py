"""docs/architecture.md stays true: every path it names exists, every module of the apps is named in it, and every
dotted name it gives (in its text and its diagrams) imports."""

import importlib
import re

import pytest
from django.conf import settings

APPS = ("shop", "catalog", "checkout", "opsinfra")
# Folders of an app that hold no modules of their own to describe.
NOT_MODULES = {"migrations", "templates", "static", "__pycache__"}
APP = "|".join(APPS)
PATH = re.compile(rf"`((?:{APP})/[\w./-]*)`")
DOTTED = re.compile(rf"\b((?:{APP})(?:\.\w+)+)")


@pytest.fixture(scope="module")
def page() -> str:
    return (settings.BASE_DIR / "docs" / "architecture.md").read_text()


def app_modules() -> set[str]:
    """Each app's top-level modules and packages, and its management commands, as the page names them."""
    found = set()
    for app in APPS:
        root = settings.BASE_DIR / app
        for entry in root.iterdir():
            if entry.name == "management" and not _own_modules(entry):
                continue  # only commands/ in it
            if entry.is_dir() and entry.name not in NOT_MODULES and (entry / "__init__.py").exists():
                found.add(f"{app}/{entry.name}/")
            elif entry.suffix == ".py" and entry.name != "__init__.py":
                found.add(f"{app}/{entry.name}")
        if (root / "management" / "commands").is_dir():
            found.add(f"{app}/management/commands/")
    return found


def _own_modules(package) -> list:
    return [path for path in package.glob("*.py") if path.name != "__init__.py"]


def test_every_path_named_exists(page):
    named = set(PATH.findall(page))
    assert named, "the page names no module"
    assert {path for path in named if not (settings.BASE_DIR / path).exists()} == set()


def test_every_module_of_the_apps_is_named(page):
    assert app_modules() - set(PATH.findall(page)) == set()


def test_every_command_is_named(page):
    commands = {path.stem for app in APPS for path in (settings.BASE_DIR / app).glob("management/commands/*.py")} - {
        "__init__"
    }
    assert {command for command in commands if f"`{command}`" not in page} == set()


def test_every_dotted_name_imports(page):
    unresolved = set()
    for name in set(DOTTED.findall(page)):
        parts = name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attribute in parts[split:]:
                target = getattr(target, attribute, None)
            if target is None:
                unresolved.add(name)
            break
        else:
            unresolved.add(name)
    assert unresolved == set()
