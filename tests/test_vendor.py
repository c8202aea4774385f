"""The vendored browser libraries are exactly what frontend/vendor.sh produced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[1] / "roadwatch" / "web" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.sha256"
LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING")


def manifest_entries() -> list[tuple[str, str]]:
    entries = []
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        assert sep and len(digest) == 64, f"not sha256sum format: {line!r}"
        entries.append((digest, name.removeprefix("*")))
    return entries


def package_dirs() -> list[Path]:
    return sorted(p for p in VENDOR.iterdir() if p.is_dir())


def test_manifest_lists_files() -> None:
    entries = manifest_entries()
    assert entries, "MANIFEST.sha256 is empty"
    names = [name for _, name in entries]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("digest,name", manifest_entries(), ids=lambda v: str(v)[:40])
def test_manifest_checksum(digest: str, name: str) -> None:
    path = VENDOR / name
    assert path.resolve().is_relative_to(VENDOR.resolve()), name
    assert path.is_file(), f"{name} is in MANIFEST.sha256 but missing"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{name} was modified"


def test_every_vendored_file_is_in_manifest() -> None:
    listed = {name for _, name in manifest_entries()}
    on_disk = {
        p.relative_to(VENDOR).as_posix()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.parent != VENDOR
    }
    assert on_disk == listed


def test_every_package_has_a_licence() -> None:
    dirs = package_dirs()
    assert dirs, "no vendored packages"
    for d in dirs:
        assert any((d / n).is_file() and (d / n).stat().st_size > 0 for n in LICENCE_NAMES), (
            f"{d.name} has no licence file"
        )


def test_served_builds_present() -> None:
    names = {p.name for d in package_dirs() for p in d.iterdir()}
    assert {"maplibre-gl.js", "maplibre-gl.css", "socket.io.min.js"} <= names
