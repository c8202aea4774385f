"""The wheel alone runs the platform (issue 16, acceptance c).

Build the wheel from a copy of the source, install it with --no-deps into an empty venv that
sees the dependencies already installed for the tests (nothing is downloaded), and run
`roadwatch serve` from a directory outside the checkout: `/healthz` must answer. A file the
code reads at run time but the wheel lacks (config/, geo/data, templates, static, migrations)
makes this fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parent.parent
# Not part of the wheel's sources: environments, build output, caches, the front end's tooling.
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    "test-artifacts",
)


# What of the test interpreter's site-packages the wheel's venv must NOT see: the project
# itself (the editable install and its finder) and the installers.
def is_dependency(name: str) -> bool:
    top = name.split("-", 1)[0].split(".", 1)[0]
    return not (
        name.endswith(".pth")
        or top in ("roadwatch", "geo", "pip", "_distutils_hack", "__pycache__")
        or name.startswith("__editable__")
    )


def build_wheel(out: Path) -> Path:
    src = out / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=SKIP)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out / "dist"), str(src)],
        check=True,
        env=env,
        cwd=out,
        timeout=300,
    )
    (wheel,) = (out / "dist").glob("roadwatch-*.whl")
    return wheel


def venv_with_dependencies(where: Path) -> Path:
    """An empty venv (no pip, no roadwatch) that sees this interpreter's dependencies.

    The dependencies are linked one by one into a directory of their own that a .pth file
    adds to the venv's path; .pth files among them are not run, so the editable install's
    finder cannot put the checkout back on the path.
    """
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = where / "dependencies"
    deps.mkdir()
    paths = sysconfig.get_paths()
    for ours in dict.fromkeys(Path(paths[k]) for k in ("purelib", "platlib")):
        for entry in ours.iterdir():
            if is_dependency(entry.name) and not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (Path(purelib) / "dependencies.pth").write_text(f"{deps}\n")
    return python


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float) -> tuple[int, dict]:
    """/healthz's answer once it says ok (the broker connects a moment after start)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            last = (exc.code, exc.read()[:2000])
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    stop(proc)
    out, _ = proc.communicate(timeout=30)
    pytest.fail(f"roadwatch serve did not answer {url} with 200 ({last}); it said:\n{out[-4000:]}")


@pytest.mark.slow
def test_installed_wheel_serves_healthz(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "build")
    python = venv_with_dependencies(tmp_path / "venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROADWATCH_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + [str(wheel)],
        check=True,
        env=env,
        timeout=300,
    )

    run_dir = tmp_path / "run"  # outside the checkout: nothing of it is on the path
    run_dir.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import roadwatch, geo; print(roadwatch.__file__, geo.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=run_dir,
    ).stdout.split()
    site = tmp_path / "venv"
    assert all(Path(p).is_relative_to(site) for p in where), where

    http_port, mqtt_port, ws_port = free_port(), free_port(), free_port()
    env.update(
        ROADWATCH_DATABASE_URL=f"sqlite:///{run_dir / 'roadwatch.sqlite3'}",
        ROADWATCH_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
        ROADWATCH_EMBEDDED_BROKER="always",
        ROADWATCH_EMBEDDED_WS_PORT=str(ws_port),
        ROADWATCH_ADMIN_PASSWORD="wheel-test-password",
    )
    proc = subprocess.Popen(
        [str(tmp_path / "venv" / "bin" / "roadwatch"), "serve", "--port", str(http_port)],
        cwd=run_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        status, body = wait_healthy(f"http://127.0.0.1:{http_port}/healthz", proc, timeout=180)
        assert status == 200, body
        assert body.get("status") == "ok", body
    finally:
        stop(proc)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stop(proc, signal.SIGKILL)
            proc.communicate()


def test_lock_pins_every_dependency_exactly() -> None:
    """requirements.lock (what ./test.sh and CI install) covers pyproject.toml, all with ==.

    A dependency added to pyproject.toml without `.ci/lock` fails here, not in a fresh clone.
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for r in project["optional-dependencies"]["test"]]
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version.strip(), f"requirements.lock: not pinned with ==: {line}"
        pins[canonicalize_name(name.split("[", 1)[0])] = version.strip()
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"{req.name} is in pyproject.toml but not in requirements.lock: run .ci/lock"
        )
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock: {req.name}=={pins[name]} is outside {req.specifier}: run .ci/lock"
        )
