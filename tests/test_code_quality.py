"""The code stays ruff- and mypy-clean: a gate in the suite, so CI enforces it.

geo/, the store and the ingest path are also clean under ``mypy --strict``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _strict_paths() -> list[str]:
    """geo/, the store and the ingest path (from the MQTT message to the stored row, and a
    late photo placing it again)."""
    paths = ["geo", "roadwatch/ingest", "roadwatch/pipeline.py", "roadwatch/geolocate.py"]
    paths.append("roadwatch/late_photos.py")
    if (ROOT / "roadwatch" / "store").is_dir():
        paths.append("roadwatch/store")
    else:  # before the store became a package: its modules at the top of roadwatch/
        paths += [f"roadwatch/{name}.py" for name in ("models", "db", "bulk", "jsonbytes")]
        paths.append("roadwatch/embedded_broker.py")  # in roadwatch/ingest/ since then
    return paths


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "roadwatch", "geo"],
        # A cache of its own: sharing one with the run above would invalidate it each time.
        ["mypy", "--strict", "--cache-dir", ".mypy_cache/strict", *_strict_paths()],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "mypy-strict"],
)
def test_clean(command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, f"{' '.join(command)}:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
