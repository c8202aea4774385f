"""`roadwatch backup` / `restore` (roadwatch/backup.py): PostgreSQL with pg_dump -Fc and
pg_restore, SQLite with its online backup API, the photos as a tar; a restore into a fresh
database gives back the same reports, cases, events and photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from roadwatch import backup as bk
from roadwatch.cli import main
from roadwatch.network.context import NetworkContext
from roadwatch.runtime import Runtime
from roadwatch.store import models
from tests.conftest import make_settings
from tests.support.examples import contract_example
from tests.test_pipeline import inbound


def _seed(settings: Any, ctx: NetworkContext, n: int = 5) -> None:
    """A few reports through the real pipeline, and two photos on disk."""
    rt = Runtime.build(settings, ctx=ctx)
    try:
        outs = rt.pipeline.process(
            [inbound(contract_example(lon=113.68352 + i * 1e-4)) for i in range(n)]
        )
        assert all(o.status in ("accepted", "needs_review") for o in outs), outs
    finally:
        rt.stop()
    photos = Path(settings.photo_dir)
    (photos / "ab").mkdir(parents=True, exist_ok=True)
    (photos / "ab" / ("ab" + "1" * 62 + ".jpg")).write_bytes(b"\xff\xd8 one")
    (photos / ("cd" + "2" * 62 + ".png")).write_bytes(b"\x89PNG two")


def _snapshot(settings: Any) -> dict[str, Any]:
    """What a restore must give back: every report, case, transition and event, and the
    schema revision, and every photo's bytes."""
    from roadwatch.store import db

    engine = db.make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = {
                model.__tablename__: [
                    tuple(r)
                    for r in conn.execute(
                        select(model.__table__).order_by(*model.__table__.primary_key.columns)
                    )
                ]
                for model in (models.Report, models.Event, models.ReportTransition)
            }
            segments = conn.execute(select(func.count()).select_from(models.Segment)).scalar_one()
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    root = Path(settings.photo_dir)
    photos = {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
    return {
        "rows": rows,
        "segments": segments,
        "revision": revision,
        "photos": photos,
    }


@pytest.mark.integration
def test_postgresql_backup_restores_into_a_fresh_database(
    tmp_path: Path, network_ctx: NetworkContext, request: pytest.FixtureRequest
) -> None:
    if shutil.which("pg_dump") is None:
        pytest.fail("pg_dump not installed (Debian postgresql-client)")
    source_url = request.getfixturevalue("fresh_pg")
    source = make_settings(
        tmp_path / "a", database_url=source_url, photo_dir=str(tmp_path / "a" / "photos")
    )
    _seed(source, network_ctx)
    before = _snapshot(source)
    assert len(before["rows"]["reports"]) == 5 and before["rows"]["events"]

    made = bk.backup(source, tmp_path / "backups")
    manifest = json.loads((made / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["database"] == "postgresql" and manifest["photos"] == 2
    assert (made / "database.pgdump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    # Another fresh database (conftest's fixture again, by hand: one per test otherwise).
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN_URL

    name = f"rw_own_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        target = make_settings(
            tmp_path / "b",
            database_url=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}",
            photo_dir=str(tmp_path / "b" / "photos"),
        )
        bk.restore(target, made)
        assert _snapshot(target) == before
        # Restoring again over it is refused: a restore never mixes two databases.
        with pytest.raises(bk.BackupError, match="not empty"):
            bk.restore(target, made)
        # …unless asked to replace what is there.
        bk.restore(target, made, replace=True)
        assert _snapshot(target) == before
        # The restored database is a working roadwatch database.
        rt = Runtime.build(target, ctx=network_ctx)
        try:
            (out,) = rt.pipeline.process([inbound(contract_example())])
            assert out.status in ("accepted", "needs_review")
        finally:
            rt.stop()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sqlite_backup_restores_and_the_cli_runs_it(
    tmp_path: Path, network_ctx: NetworkContext, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    source = make_settings(tmp_path / "a", photo_dir=str(tmp_path / "a" / "photos"))
    _seed(source, network_ctx, n=3)
    before = _snapshot(source)

    monkeypatch.setenv("ROADWATCH_DATABASE_URL", source.database_url)
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", source.photo_dir)
    r = runner.invoke(main, ["backup", str(tmp_path / "backups")])
    assert r.exit_code == 0, r.output
    (made,) = (tmp_path / "backups").glob("roadwatch-*")
    assert "backup written" in r.stdout

    target_db = tmp_path / "b" / "restored.sqlite3"
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{target_db}")
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "b" / "photos"))
    r = runner.invoke(main, ["restore", str(made)])
    assert r.exit_code == 0, r.output
    target = make_settings(
        tmp_path / "b",
        database_url=f"sqlite:///{target_db}",
        photo_dir=str(tmp_path / "b" / "photos"),
    )
    assert _snapshot(target) == before
    # A second restore into the now full database is refused in plain words.
    r = runner.invoke(main, ["restore", str(made)])
    assert r.exit_code == 2, r.output
    assert "not empty" in r.stderr


def test_a_damaged_backup_is_refused(tmp_path: Path, network_ctx: NetworkContext) -> None:
    source = make_settings(tmp_path / "a", photo_dir=str(tmp_path / "a" / "photos"))
    _seed(source, network_ctx, n=1)
    made = bk.backup(source, tmp_path / "backups")
    with (made / "photos.tar").open("ab") as f:
        f.write(b"x")
    target = make_settings(tmp_path / "b", photo_dir=str(tmp_path / "b" / "photos"))
    with pytest.raises(bk.BackupError, match="photos.tar is damaged"):
        bk.restore(target, made)
    with pytest.raises(bk.BackupError, match="not a roadwatch backup"):
        bk.restore(target, tmp_path)


def test_keep_removes_only_the_oldest_whole_backups(
    tmp_path: Path, network_ctx: NetworkContext
) -> None:
    import datetime as dt

    source = make_settings(tmp_path / "a", photo_dir=str(tmp_path / "a" / "photos"))
    _seed(source, network_ctx, n=1)
    out = tmp_path / "backups"
    (out / ".roadwatch-20260101T000000Z.partial").mkdir(parents=True)  # an interrupted one
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    made = [bk.backup(source, out, keep=2, now=t0 + dt.timedelta(days=i)) for i in range(4)]
    left = sorted(p.name for p in out.glob("roadwatch-*"))
    assert left == [made[2].name, made[3].name]
