"""CLI subcommands and the schema: migrations and models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from roadwatch import db
from roadwatch.cli import main
from roadwatch.models import Base


def test_network_info_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network", "info"]) == 0
    out = capsys.readouterr().out
    assert "segments: 2495" in out
    assert "loaded in" in out


def test_network_info_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    assert main(["network", "info", str(bad)]) == 2
    assert "x.geojson is not a usable network file" in capsys.readouterr().err
    assert main(["network", "info", str(tmp_path / "missing.geojson")]) == 2
    assert "missing.geojson" in capsys.readouterr().err


def test_serve_with_unreachable_database_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.server import free_port

    monkeypatch.setenv(
        "ROADWATCH_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    )
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("roadwatch: cannot use the database (ROADWATCH_DATABASE_URL)")
    assert len(err.splitlines()) == 1


def test_serve_with_a_bad_network_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "net.geojson"
    bad.write_text("[1, 2]", encoding="utf-8")
    monkeypatch.setenv("ROADWATCH_NETWORK", str(bad))
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.startswith("roadwatch: configuration error: ROADWATCH_NETWORK")


def test_db_upgrade_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0  # idempotent
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(
        db.alembic_config(db.make_engine("sqlite://"))
    ).get_current_head()
    assert f"database at revision {head}" in capsys.readouterr().out


def _diff(url: str) -> list[Any]:
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_migrations_match_models_sqlite(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.sqlite3'}") == []


@pytest.mark.integration
def test_migrations_match_models_postgresql(pg_database: str, runtime: Any) -> None:
    # `runtime` (on PostgreSQL) has already upgraded pg_database; compare what is there.
    assert _diff(pg_database) == []
