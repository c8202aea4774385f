"""Backup and restore of the database and the photos (`roadwatch backup` / `restore`).

A backup is one directory, `roadwatch-<UTC time>/`, holding:

* `database.pgdump`: PostgreSQL, `pg_dump -Fc` (custom format: compressed, consistent
  snapshot of one transaction while the system runs, restored with `pg_restore`), or
  `database.sqlite3`: SQLite, copied with SQLite's online backup API (consistent while
  other connections write);
* `photos.tar`: the photo directory (photos are JPEG/PNG/WebP already: not compressed
  again);
* `manifest.json`: when, what, the schema revision, and each file's size and SHA-256,
  checked again before a restore.

It is written under a hidden `.partial` name and renamed when complete, so a directory
named `roadwatch-…` is always a whole backup. `keep` removes the oldest whole backups
beyond that number. See docs/deploy.md, "Backups".

Restore goes into an EMPTY database (create it first: `createdb`, then `roadwatch restore
DIR`) and writes the photos into the photo directory; `replace=True` drops what the
target database holds first. Photos are content-addressed (SHA-256 names), so restoring
over existing ones changes nothing that was right.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import URL, make_url

from .settings import Settings
from .store import db

FORMAT = 1
PREFIX = "roadwatch-"
PG_DUMP_FILE = "database.pgdump"
SQLITE_FILE = "database.sqlite3"
PHOTOS_FILE = "photos.tar"
MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot be made, in plain words."""


# -- helpers ---------------------------------------------------------------------------------
def _kind(url: URL) -> str:
    name = url.get_backend_name()
    if name in ("postgresql", "postgres"):
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise BackupError(f"ROADWATCH_DATABASE_URL: cannot back up a {name} database")


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI without the password, and an environment carrying it (so it
    never shows in the process list)."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("ROADWATCH_DATABASE_URL: an in-memory SQLite database has no backup")
    return Path(url.database)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found on PATH: install the PostgreSQL client tools "
            "(Debian: apt install postgresql-client) of the server's major version or newer"
        )
    return found


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {reason[-1] if reason else f'exit {done.returncode}'}")


def _sqlite_copy(src: Path, dst: Path) -> None:
    """SQLite's online backup API: a consistent copy while other connections write."""
    with closing(sqlite3.connect(src)) as source, closing(sqlite3.connect(dst)) as target:
        source.backup(target)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _revision(database_url: str) -> str | None:

    engine = db.make_engine(database_url)
    try:
        return db.current_revision(engine)
    finally:
        engine.dispose()


# -- backup ----------------------------------------------------------------------------------
def backup(
    settings: Settings,
    out_dir: str | Path,
    *,
    keep: int | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Back up the database and the photos into a new directory under out_dir; returns it."""
    url = make_url(settings.database_url)
    kind = _kind(url)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot write backups into {out} ({exc.strerror or exc})") from None
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    final = out / f"{PREFIX}{stamp}"
    if final.exists():
        raise BackupError(f"{final} exists already (two backups in the same second?)")
    work = out / f".{PREFIX}{stamp}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        revision = _revision(settings.database_url)
        if kind == "postgresql":
            uri, env = _libpq(url)
            _run(
                [_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(work / PG_DUMP_FILE), uri],
                env,
                "pg_dump",
            )
            db_file = PG_DUMP_FILE
        else:
            src = _sqlite_path(url)
            if not src.exists():
                raise BackupError(f"ROADWATCH_DATABASE_URL: no SQLite database at {src}")
            _sqlite_copy(src, work / SQLITE_FILE)
            db_file = SQLITE_FILE
        photo_dir = Path(settings.photo_dir)
        photos = 0
        with tarfile.open(work / PHOTOS_FILE, "w") as tar:
            if photo_dir.is_dir():
                for path in sorted(photo_dir.rglob("*")):
                    if path.is_file() and not path.name.startswith(".probe-"):
                        tar.add(path, arcname=str(path.relative_to(photo_dir)), recursive=False)
                        photos += 1
        files = {
            name: {"bytes": (work / name).stat().st_size, "sha256": _sha256(work / name)}
            for name in (db_file, PHOTOS_FILE)
        }
        manifest = {
            "format": FORMAT,
            "created": stamp,
            "database": kind,
            "schema_revision": revision,
            "photos": photos,
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if keep is not None:
        prune(out, keep)
    return final


def prune(out_dir: Path, keep: int) -> list[Path]:
    """Remove the oldest whole backups beyond `keep`; returns what was removed."""
    if keep < 1:
        raise BackupError("--keep: must be at least 1")
    whole = sorted(p for p in out_dir.glob(f"{PREFIX}*") if (p / MANIFEST).is_file())
    gone = whole[:-keep]
    for path in gone:
        shutil.rmtree(path)
    return gone


# -- restore ---------------------------------------------------------------------------------
def read_manifest(in_dir: str | Path) -> dict[str, Any]:
    """The manifest of a backup directory, its files checked against it."""
    folder = Path(in_dir)
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder}: not a roadwatch backup (no {MANIFEST})") from None
    except ValueError as exc:
        raise BackupError(f"{folder / MANIFEST}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: backup format {manifest.get('format')!r} is not {FORMAT}")
    for name, meta in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{folder}: {name} is missing")
        if path.stat().st_size != meta["bytes"] or _sha256(path) != meta["sha256"]:
            raise BackupError(f"{folder}: {name} is damaged (size or SHA-256 differs)")
    return manifest


def _tables(database_url: str) -> list[str]:

    engine = db.make_engine(database_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def restore(settings: Settings, in_dir: str | Path, *, replace: bool = False) -> dict[str, Any]:
    """Restore a backup directory into the configured database and photo directory."""
    folder = Path(in_dir)
    manifest = read_manifest(folder)
    url = make_url(settings.database_url)
    kind = _kind(url)
    if manifest["database"] != kind:
        raise BackupError(
            f"{folder}: a {manifest['database']} backup cannot be restored into {kind} "
            "(ROADWATCH_DATABASE_URL)"
        )
    if kind == "sqlite":
        target = _sqlite_path(url)
        in_use = target.exists() and target.stat().st_size > 0
        if in_use and not replace and _tables(settings.database_url):
            raise BackupError(
                f"the database {target} is not empty: restore into a new one, or "
                "--replace to overwrite it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(folder / SQLITE_FILE, target)
    else:
        tables = _tables(settings.database_url)
        if tables and not replace:
            raise BackupError(
                f"the database {url.database} is not empty ({len(tables)} tables): restore "
                "into a new one (createdb), or --replace to drop what it holds first"
            )
        uri, env = _libpq(url)
        cmd = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
        cmd += ["--single-transaction", "-d", uri]
        if replace:
            cmd += ["--clean", "--if-exists"]
        _run([*cmd, str(folder / PG_DUMP_FILE)], env, "pg_restore")
    photo_dir = Path(settings.photo_dir)
    photo_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / PHOTOS_FILE) as tar:
        tar.extractall(photo_dir, filter="data")  # no absolute paths, no "..", no devices
    return manifest
