"""The layers import only downwards: routes and pages over services, services over db, domain,
simulation and schemas; domain over nothing of the app. Read from each module's own imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

APP = ROOT / "app"
# What each package may import of the app and of the web framework (README, "Layout").
ALLOWED: dict[str, set[str]] = {
    "domain": {"app.domain"},
    "simulation": {"app.domain", "app.simulation"},
    "db": {"app.db", "app.domain"},
    "schemas": {"app.schemas", "app.domain"},
    "services": {"app.services", "app.db", "app.domain", "app.simulation", "app.schemas"},
}
FRAMEWORK = ("fastapi", "starlette")


def imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth of its code."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_imports_of_a_file_are_read_at_any_depth(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\ndef g():\n    from fastapi import HTTPException\n"
                 "    import app.web.pages\n")
    assert imports(f) == ["os", "fastapi", "app.web.pages"]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_below_it(package: str) -> None:
    files = sorted((APP / package).rglob("*.py"))
    assert files, f"app/{package} has no modules"
    bad = []
    for f in files:
        for mod in imports(f):
            top = ".".join(mod.split(".")[:2])
            if mod == "app" or (mod.startswith("app.") and top not in ALLOWED[package]) \
                    or mod.split(".")[0] in FRAMEWORK:
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_modelviews_is_gone_and_routes_use_services() -> None:
    assert not (APP / "modelviews.py").exists() and not (APP / "db" / "views.py").exists()
    for f in ("api/routes/hosts.py", "api/routes/simulation.py", "web/pages.py",
              "web/model_pages.py"):
        assert any(m.startswith("app.services") for m in imports(APP / f)), f
