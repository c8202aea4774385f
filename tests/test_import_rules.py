"""Import rules of the layout (README "Layout"), checked on every run.

The contracts live in pyproject.toml ([tool.importlinter]) and are run by import-linter:
geo imports nothing of roadwatch, Flask, SQLAlchemy or paho; nothing below the web layer
imports it; cases, ranking and the store do not import the pipeline; the store is the
bottom. import-linter cannot see *which names* are imported, so one more rule is checked
here with the AST: no module imports a private (underscore) name of another package.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("roadwatch", "geo")


def test_import_contracts_are_kept() -> None:
    # In a process of its own: import-linter configures logging with
    # disable_existing_loggers, which silenced every roadwatch logger of later tests.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "0 broken" in out


def _module_of(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _private_imports(path: Path, source: str | None = None) -> list[str]:
    """`from other.package import _name` in this file, `other.package` not its own package."""
    module, is_pkg = _module_of(path)
    own_package = module if is_pkg else module.rpartition(".")[0]
    found = []
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text, str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = own_package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith(PACKAGES):
            continue
        for alias in node.names:
            name = alias.name
            if not name.startswith("_") or name.startswith("__"):
                continue
            # the package the private name belongs to: the module's parent package
            full = f"{target}.{name}"
            target_package = (
                target
                if (ROOT / full.replace(".", "/")).exists()
                else (
                    target.rpartition(".")[0]
                    if (ROOT / (target.replace(".", "/") + ".py")).exists()
                    else target
                )
            )
            if target_package != own_package:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name} from {target}")
    return found


def test_no_module_imports_a_private_name_of_another_package() -> None:
    files = [
        p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "migrations" not in p.parts
    ]
    assert len(files) > 50
    bad = [line for p in files for line in _private_imports(p)]
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def test_the_private_name_check_sees_a_violation() -> None:
    """The check above is not vacuous: a cross-package private import is found, a
    same-package one is allowed."""
    probe = ROOT / "roadwatch" / "cases" / "probe.py"
    found = _private_imports(probe, "from ..ingest.payloads import _helper\n")
    assert found == ["roadwatch/cases/probe.py:1: _helper from roadwatch.ingest.payloads"]
    assert _private_imports(probe, "from .workflow import _helper\n") == []
    assert _private_imports(probe, "from roadwatch.store import _x, models\n") == [
        "roadwatch/cases/probe.py:1: _x from roadwatch.store"
    ]
