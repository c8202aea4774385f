"""The command centre's front end is native ES modules, type-checked and linted.

roadwatch/web/static/live/*.js (loaded by index.html as `<script type="module">`) are
JavaScript with JSDoc types, each file `// @ts-check`. TypeScript checks them
(`tsc --noEmit -p frontend/tsconfig.json`, checkJs, strict) and ESLint lints them
(frontend/eslint.config.mjs); both are pinned exactly in frontend/package.json and
package-lock.json and installed with `npm ci --ignore-scripts` into frontend/node_modules
(./test.sh does it; so does this test when that folder is missing or older than the lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
LIVE = ROOT / "roadwatch" / "web" / "static" / "live"
TEMPLATE = ROOT / "roadwatch" / "web" / "templates" / "index.html"
TOOLS = ("typescript", "eslint", "@eslint/js")


def _installed_stamp() -> Path:
    return FRONTEND / "node_modules" / ".package-lock.json"  # written by npm ci


def _up_to_date() -> bool:
    stamp = _installed_stamp()
    lock = FRONTEND / "package-lock.json"
    return stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime


@pytest.fixture(scope="module")
def node_bin() -> Iterator[Path]:
    """frontend/node_modules/.bin with the pinned tools (npm ci if needed)."""
    if not (shutil.which("node") and shutil.which("npm")):
        message = "node and npm are not installed (./test.sh installs Debian's nodejs npm as root)"
        if os.environ.get("ROADWATCH_REQUIRE_SERVICES") == "1":
            pytest.fail(message + ": required under ./test.sh and in CI", pytrace=False)
        pytest.skip(message)
    # One install at a time (parallel test workers share the folder).
    key = hashlib.sha256(str(FRONTEND).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"roadwatch-npm-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _up_to_date():
            out = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                cwd=FRONTEND,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert out.returncode == 0, f"npm ci failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    yield FRONTEND / "node_modules" / ".bin"


def _run(command: list[str]) -> None:
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(command)}:\n{out.stdout[-6000:]}{out.stderr[-3000:]}"


def test_live_modules_type_check(node_bin: Path) -> None:
    _run([str(node_bin / "tsc"), "--noEmit", "-p", "frontend/tsconfig.json"])


def test_live_modules_lint(node_bin: Path) -> None:
    _run(
        [
            str(node_bin / "eslint"),
            "--config",
            "frontend/eslint.config.mjs",
            "--max-warnings",
            "0",
            "roadwatch/web/static/live",
        ]
    )


def test_every_module_is_type_checked_and_reachable() -> None:
    """Each module opts in to checking, and each is imported (from main.js, the entry)."""
    modules = sorted(p.name for p in LIVE.glob("*.js"))
    assert "main.js" in modules
    imports: dict[str, set[str]] = {}
    for name in modules:
        text = (LIVE / name).read_text(encoding="utf-8")
        assert text.startswith("// @ts-check\n"), f"{name} does not start with // @ts-check"
        imports[name] = set(re.findall(r'^import [^;]*? from "\./([\w-]+\.js)";', text, re.M))
        assert imports[name] <= set(modules), f"{name} imports a missing module"
    seen, todo = set(), ["main.js"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imports[name])
    assert seen == set(modules), f"not imported by anything: {sorted(set(modules) - seen)}"


def test_page_loads_the_entry_module() -> None:
    html = TEMPLATE.read_text(encoding="utf-8")
    assert re.search(
        r"<script type=\"module\" src=\"\{\{ url_for\('static', filename='live/main.js'\) \}\}\">",
        html,
    )
    # no classic script of the page's own left (the vendored UMD libraries stay classic)
    own = re.findall(r"<script src=\"\{\{ url_for\('static', filename='([^']+)'\)", html)
    assert all(name.startswith("vendor/") for name in own), own
    # every other module is preloaded (fetched at once, not one import level at a time)
    preloaded = re.findall(
        r"<link rel=\"modulepreload\" href=\"\{\{ url_for\('static', filename='live/([^']+)'\)",
        html,
    )
    assert sorted(preloaded) == sorted(p.name for p in LIVE.glob("*.js") if p.name != "main.js")


def test_tools_are_pinned_exactly() -> None:
    package = json.loads((FRONTEND / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((FRONTEND / "package-lock.json").read_text(encoding="utf-8"))
    for name in TOOLS:
        version = package["devDependencies"][name]
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version!r} is not exact"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
