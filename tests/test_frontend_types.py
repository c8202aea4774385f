"""The browser code is native ES modules, type-checked and linted.

The command centre's roadwatch/web/static/live/*.js (loaded by templates/index.html) and
the phone app's roadwatch/web/static/m/*.js (loaded by m/index.html) are ES modules, each
page loading its entry, main.js, as `<script type="module">` and preloading the rest. They
are JavaScript with JSDoc types, each file `// @ts-check`. TypeScript checks them
(`tsc --noEmit -p frontend/tsconfig.json`, checkJs, strict; the phone app's service worker
m/sw.js, a classic worker script, with frontend/tsconfig.sw.json) and ESLint lints them
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
STATIC = ROOT / "roadwatch" / "web" / "static"
LIVE = STATIC / "live"
CASES = STATIC / "cases"  # the case pages (cases.html, case.html): list.js and page.js
TEMPLATE = ROOT / "roadwatch" / "web" / "templates" / "index.html"
PHONE = STATIC / "m"  # the phone app: its page (index.html), modules and service worker
PHONE_PAGE = PHONE / "index.html"
SERVICE_WORKER = PHONE / "sw.js"
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


def _run(command: list[str]) -> str:
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(command)}:\n{out.stdout[-6000:]}{out.stderr[-3000:]}"
    return out.stdout


def _modules(folder: Path) -> list[str]:
    """The ES modules of a page's folder (the phone app's service worker is not one)."""
    return sorted(p.name for p in folder.glob("*.js") if p != SERVICE_WORKER)


def _checked_files(node_bin: Path, config: str) -> set[Path]:
    listed = _run([str(node_bin / "tsc"), "--noEmit", "-p", config, "--listFilesOnly"])
    return {Path(line.strip()).resolve() for line in listed.splitlines() if line.strip()}


def test_live_modules_type_check(node_bin: Path) -> None:
    """Both pages' modules (one project: frontend/tsconfig.json)."""
    _run([str(node_bin / "tsc"), "--noEmit", "-p", "frontend/tsconfig.json"])
    checked = _checked_files(node_bin, "frontend/tsconfig.json")
    for folder in (LIVE, PHONE, CASES):
        missing = [name for name in _modules(folder) if (folder / name).resolve() not in checked]
        assert not missing, f"not type-checked: {missing}"


def test_service_worker_type_checks(node_bin: Path) -> None:
    """The phone app's service worker, with the worker's globals (not the page's)."""
    _run([str(node_bin / "tsc"), "--noEmit", "-p", "frontend/tsconfig.sw.json"])
    assert SERVICE_WORKER.resolve() in _checked_files(node_bin, "frontend/tsconfig.sw.json")
    assert SERVICE_WORKER.read_text(encoding="utf-8").startswith("// @ts-check\n")


def test_live_modules_lint(node_bin: Path) -> None:
    _run(
        [
            str(node_bin / "eslint"),
            "--config",
            "frontend/eslint.config.mjs",
            "--max-warnings",
            "0",
            "roadwatch/web/static/live",
            "roadwatch/web/static/m",
            "roadwatch/web/static/cases",
            "roadwatch/web/static/desk",
        ]
    )


@pytest.mark.parametrize("folder", [LIVE, PHONE], ids=["live", "phone"])
def test_every_module_is_type_checked_and_reachable(folder: Path) -> None:
    """Each module opts in to checking, and each is imported (from main.js, the entry)."""
    modules = _modules(folder)
    assert "main.js" in modules
    imports: dict[str, set[str]] = {}
    for name in modules:
        text = (folder / name).read_text(encoding="utf-8")
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
    # no classic script of the page's own left (the vendored UMD libraries stay classic, and
    # so does live-early.js, the head's script that asks for the first data at once)
    own = re.findall(r"<script src=\"\{\{ url_for\('static', filename='([^']+)'\)", html)
    assert all(name.startswith("vendor/") or name == "live-early.js" for name in own), own
    # every other module is preloaded (fetched at once, not one import level at a time)
    preloaded = re.findall(
        r"<link rel=\"modulepreload\" href=\"\{\{ url_for\('static', filename='live/([^']+)'\)",
        html,
    )
    assert sorted(preloaded) == sorted(p.name for p in LIVE.glob("*.js") if p.name != "main.js")


def test_phone_app_loads_the_entry_module() -> None:
    """The page loads the app's modules as one script, /m/app.js (issue 20: one request on
    a slow link), which holds every module in the order the browser would evaluate them."""
    from roadwatch.web.mobile import bundle_modules

    html = PHONE_PAGE.read_text(encoding="utf-8")
    assert re.search(r'<script type="module" src="/m/app\.js" data-mqtt="[^"]+">', html)
    # no classic script (MQTT.js is loaded by broker.js once the shell is usable)
    assert re.findall(r"<script(?![^>]*type=\"module\")[^>]*>", html) == []
    bundle = bundle_modules(PHONE)
    order = re.findall(r"^// ---- ([\w-]+\.js)$", bundle, re.M)
    assert sorted(order) == _modules(PHONE) and order[-1] == "main.js"
    # each module after what it imports (a cycle aside: the browser breaks it the same way)
    assert order.index("util.js") < order.index("session.js") < order.index("main.js")
    assert not re.search(r"^(import |export )", bundle, re.M)


def test_service_worker_precaches_the_app_shell() -> None:
    """Offline, the app starts from the service worker's cache: it must hold every module,
    and whatever else the page loads (a module missing there breaks the offline start)."""
    sw = SERVICE_WORKER.read_text(encoding="utf-8")
    shell_list = re.search(r"const SHELL = \[(.*?)\];", sw, re.S)
    assert shell_list
    shell = set(re.findall(r'"([^"]+)"', shell_list.group(1)))
    html = PHONE_PAGE.read_text(encoding="utf-8")
    wanted = {"/m/", "/m/app.js"}
    wanted |= set(re.findall(r'(?:href|src|data-mqtt)="(/(?:static|m)/[^"]+)"', html))
    assert wanted - shell == set(), "not precached by sw.js"
    # and nothing that is gone (one missing file fails the worker's whole install)
    gone = [url for url in shell if url.startswith("/static/") and not (STATIC / url[8:]).is_file()]
    assert gone == [], "precached by sw.js but not there"
    assert re.search(r'const CACHE = "rw-m-v\d+";', sw)


def test_tools_are_pinned_exactly() -> None:
    package = json.loads((FRONTEND / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((FRONTEND / "package-lock.json").read_text(encoding="utf-8"))
    for name in TOOLS:
        version = package["devDependencies"][name]
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version!r} is not exact"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_phone_bundle_refuses_two_modules_with_one_top_level_name(tmp_path: Path) -> None:
    from roadwatch.web.mobile import bundle_modules

    (tmp_path / "main.js").write_text('import { a } from "./a.js";\nconst x = a();\n')
    (tmp_path / "a.js").write_text("export function a() { return 1; }\nexport const x = 2;\n")
    with pytest.raises(RuntimeError, match="define x"):
        bundle_modules(tmp_path)
    (tmp_path / "a.js").write_text("export function a() { return 1; }\n")
    assert bundle_modules(tmp_path) == (
        "// ---- a.js\nfunction a() { return 1; }\n// ---- main.js\nconst x = a();\n"
    )
