"""One home per idea: no block of code is written twice.

Python: pylint's duplicate-code check (R0801) and nothing else, configured in pyproject.toml
([tool.pylint.*]): eight similar lines or more, not counting comments, docstrings, imports
and function signatures, over roadwatch/, geo/, bench/ and app.py; the migrations (history,
left as written) and tests/ are not checked. JavaScript and CSS of the browser pages
(roadwatch/web/static/, not vendor/): jscpd, pinned exactly in frontend/package.json,
eight lines or more. A finding names both places: move the logic into one function and
call it from both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.test_frontend_types import node_bin  # noqa: F401  (the pinned npm tools)

ROOT = Path(__file__).resolve().parent.parent
MIN_LINES = 8
PYTHON_PATHS = ["roadwatch", "geo", "bench", "app.py"]
JSCPD_VERSION = "5.4.2"


def _run(command: list[str]) -> None:
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (
        f"duplicate code ({' '.join(command)}):\n{out.stdout[-6000:]}{out.stderr[-2000:]}"
    )


def test_python_has_no_duplicate_code() -> None:
    _run([sys.executable, "-m", "pylint", *PYTHON_PATHS])


def test_pylint_checks_eight_lines_and_leaves_out_only_the_migrations() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pylint = pyproject["tool"]["pylint"]
    assert pylint["messages control"] == {"disable": ["all"], "enable": ["duplicate-code"]}
    assert pylint["similarities"]["min-similarity-lines"] == MIN_LINES
    assert pylint["main"]["ignore-paths"] == ["^roadwatch/(store/)?migrations/"]


@pytest.mark.usefixtures("node_bin")
def test_browser_code_has_no_duplicates() -> None:
    jscpd = ROOT / "frontend" / "node_modules" / ".bin" / "jscpd"
    _run(
        [
            str(jscpd),
            "--min-lines",
            str(MIN_LINES),
            "--format",
            "javascript,css",
            "--ignore",
            "**/vendor/**",
            "--exit-code",
            "1",
            "--no-tips",
            "--no-colors",
            "roadwatch/web/static",
        ]
    )


def test_jscpd_is_pinned_exactly() -> None:
    package = json.loads((ROOT / "frontend" / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text(encoding="utf-8"))
    assert package["devDependencies"]["jscpd"] == JSCPD_VERSION
    assert lock["packages"]["node_modules/jscpd"]["version"] == JSCPD_VERSION
