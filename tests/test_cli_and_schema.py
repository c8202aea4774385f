"""CLI subcommands and the schema: migrations and models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from roadwatch.cli import main
from roadwatch.store import db
from roadwatch.store.models import Base


def test_network_info_prints_counts(runner: CliRunner) -> None:
    r = runner.invoke(main, ["network", "info"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "segments: 2495" in out
    assert "loaded in" in out


def test_network_info_bad_file(tmp_path: Path, runner: CliRunner) -> None:
    bad = tmp_path / "x.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    r = runner.invoke(main, ["network", "info", str(bad)])
    assert r.exit_code == 2, r.output
    assert "x.geojson is not a usable network file" in r.stderr
    r = runner.invoke(main, ["network", "info", str(tmp_path / "missing.geojson")])
    assert r.exit_code == 2, r.output
    assert "missing.geojson" in r.stderr


def test_serve_with_unreachable_database_says_so(
    monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    from tests.support.server import free_port

    monkeypatch.setenv(
        "ROADWATCH_DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    )
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err.startswith("roadwatch: cannot use the database (ROADWATCH_DATABASE_URL)")
    assert len(err.splitlines()) == 1


def test_serve_with_a_bad_network_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    bad = tmp_path / "net.geojson"
    bad.write_text("[1, 2]", encoding="utf-8")
    monkeypatch.setenv("ROADWATCH_NETWORK", str(bad))
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("roadwatch: configuration error: ROADWATCH_NETWORK")


def test_db_upgrade_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    r = runner.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0, r.output  # idempotent
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(
        db.alembic_config(db.make_engine("sqlite://"))
    ).get_current_head()
    assert f"database at revision {head}" in r.stdout


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


# -- found in the contract audit: every failure is one line, never a traceback ----------------
def _one_line(text: str) -> str:
    err = text.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_db_upgrade_to_an_unknown_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    r = runner.invoke(main, ["db", "upgrade", "no-such-revision"])
    assert r.exit_code == 2, r.output
    assert "no-such-revision" in _one_line(r.stderr)


def test_network_info_on_a_directory(tmp_path: Path, runner: CliRunner) -> None:
    r = runner.invoke(main, ["network", "info", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert str(tmp_path) in _one_line(r.stderr)


def test_a_missing_input_file_is_named_in_plain_words(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chiefs duty --file` and `chiefs import` with a file that is not there answered
    Python's `[Errno 2] No such file or directory: '…'`; they say it as `network import`
    does."""
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'rw.sqlite3'}")
    missing = tmp_path / "duty.csv"
    r = runner.invoke(main, ["chiefs", "duty", "--file", str(missing)])
    assert r.exit_code == 2, r.output
    assert _one_line(r.stderr) == f"roadwatch: {missing}: no such file; check the path"


def test_devices_revoke_refuses_a_chief_it_does_not_know(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost phone revoked under a mistyped chief id answered "0 devices revoked", exit 0:
    the phone stayed signed in and a script saw success. An unknown id is refused (exit 2);
    a known chief without active devices is still 0 revoked, exit 0."""
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'rw.sqlite3'}")
    r = runner.invoke(main, ["reporters", "add", "zz-jinshui-0421", "--kind", "person"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["chiefs", "devices", "revoke", "--chief", "zz-jinshui-421"])
    assert r.exit_code == 2, r.output
    assert _one_line(r.stderr) == "roadwatch: no such reporter: zz-jinshui-421"
    r = runner.invoke(main, ["chiefs", "devices", "revoke", "--chief", "zz-jinshui-0421"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "0 devices revoked"


def test_chiefs_provision_shows_its_progress(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new account costs a deliberately slow password hash: 14 s for the demo city's
    2,194 chiefs, minutes for a large city, and `chiefs provision` said nothing until the
    end. It shows a progress line on stderr, as `network import` does."""
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'rw.sqlite3'}")
    for rid in ("zz-jinshui-0001", "zz-jinshui-0002", "zz-jinshui-0003"):
        assert runner.invoke(main, ["reporters", "add", rid, "--kind", "person"]).exit_code == 0
    r = runner.invoke(main, ["chiefs", "provision", "--export", str(tmp_path / "new.csv")])
    assert r.exit_code == 0, r.output
    assert re.search(r"^accounts +\[#+\] 100%  3/3$", r.stderr, re.M), r.stderr
    assert "3 accounts created" in r.stdout


def test_network_generate_with_too_few_segments(tmp_path: Path, runner: CliRunner) -> None:
    out = tmp_path / "net.geojson.gz"
    r = runner.invoke(main, ["network", "generate", "--segments", "50", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "50 segments" in _one_line(r.stderr)
    # How many it takes, so the second try is not a guess (it said only "fewer").
    assert re.search(r"they alone make \d+; ask for more", r.stderr), r.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "argv", [["--rate", "0"], ["--count", "-1"], ["--chiefs", "0"], ["--bad-share", "2"]]
)
def test_simulate_refuses_nonsense_numbers(argv: list[str], runner: CliRunner) -> None:
    r = runner.invoke(main, ["simulate", *argv])
    assert r.exit_code == 2, r.output
    assert "Invalid value" in r.stderr


@pytest.fixture
def no_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`serve` must stop before it connects to a broker (or serves anything)."""
    from roadwatch.runtime import Runtime

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("serve started although a setting is bad")

    monkeypatch.setattr(Runtime, "start_ingest", refuse)
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "photos"))


def test_serve_on_a_port_in_use_stops_before_taking_the_mqtt_session(
    no_start: None, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    """A second `serve` by mistake used to connect with the platform's client id first —
    taking the running platform's persistent session — and only then fail to listen."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("ROADWATCH_PORT", str(busy.getsockname()[1]))
        r = runner.invoke(main, ["serve"])
        assert r.exit_code == 2, r.output
    err = _one_line(r.stderr)
    assert err.startswith("roadwatch: configuration error: ROADWATCH_PORT")
    assert "in use" in err


def test_serve_on_a_host_that_does_not_resolve(
    no_start: None, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    monkeypatch.setenv("ROADWATCH_HOST", "no-such-host.invalid")
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    assert _one_line(r.stderr).startswith("roadwatch: configuration error: ROADWATCH_HOST")


def test_serve_with_a_missing_ranking_formula(
    no_start: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: CliRunner,
) -> None:
    monkeypatch.setenv("ROADWATCH_RANKING_FORMULA", str(tmp_path / "nope.toml"))
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    err = _one_line(r.stderr)
    assert err.startswith("roadwatch: configuration error: ROADWATCH_RANKING_FORMULA")


def test_serve_with_a_photo_dir_it_cannot_make(
    no_start: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: CliRunner,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(blocker / "photos"))
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    assert _one_line(r.stderr).startswith("roadwatch: configuration error: ROADWATCH_PHOTO_DIR")


def _no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtime.start_ingest without a broker: MqttIngest does nothing, one seems to listen."""
    import roadwatch.runtime as rtm

    class NoBroker:
        def __init__(self, *a: Any, **k: Any) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    monkeypatch.setattr(rtm, "MqttIngest", NoBroker)
    monkeypatch.setattr(rtm, "is_listening", lambda *a: True)


def test_the_log_never_shows_a_url_password(
    tmp_path: Path, network_ctx: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import logging

    import roadwatch.runtime as rtm
    from tests.conftest import make_settings

    _no_broker(monkeypatch)
    settings = make_settings(tmp_path, mqtt_url="mqtt://platform:s3cret@127.0.0.1:1883")
    runtime = rtm.Runtime.build(settings, ctx=network_ctx)
    try:
        with caplog.at_level(logging.INFO):
            runtime.start_ingest()
    finally:
        runtime.stop()
    assert "platform:***@127.0.0.1" in caplog.text and "s3cret" not in caplog.text


def test_a_process_that_may_share_the_stream_reads_tracks_back(
    tmp_path: Path, network_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a process that alone subscribes stores every patrol: `serve` on a plain
    subscription. On a shared one, `worker`s beside it take part of the chiefs' patrols."""
    import roadwatch.runtime as rtm
    from tests.conftest import make_settings

    _no_broker(monkeypatch)
    cases = (  # share group, serve or worker, reads back
        ("", False, False),
        ("roadwatch", False, True),
        ("", True, True),
        ("roadwatch", True, True),
    )
    for group, ingest_only, reads in cases:
        settings = make_settings(tmp_path, mqtt_url="mqtt://127.0.0.1:1883", mqtt_share_group=group)
        runtime = rtm.Runtime.build(settings, ctx=network_ctx)
        assert runtime.pipeline.reads_stored_tracks  # the web role: built, never ingests MQTT
        try:
            runtime.start_ingest(ingest_only=ingest_only)
            assert runtime.pipeline.reads_stored_tracks is reads, (group, ingest_only)
        finally:
            runtime.stop()


@pytest.mark.parametrize("rid", ["bad id", "张三", "a" * 65, "x\ty"])
def test_reporters_add_refuses_an_id_no_report_could_carry(
    rid: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: CliRunner,
) -> None:
    """A reporter id is the reporter_id of its reports and its MQTT topic level: one that no
    report may carry (letters, digits, '.', '_', '-'; at most 64) was added and then useless."""
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    r = runner.invoke(main, ["reporters", "add", rid, "--kind", "evaluator"])
    assert r.exit_code == 2, r.output
    assert "reporter id" in _one_line(r.stderr)


def test_serve_with_a_broker_address_it_can_neither_reach_nor_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: CliRunner
) -> None:
    """Nothing listens at ROADWATCH_MQTT_URL and the embedded broker cannot bind there
    (another machine's address): one line naming the setting, not a traceback."""
    monkeypatch.setenv("ROADWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("ROADWATCH_PHOTO_DIR", str(tmp_path / "photos"))
    monkeypatch.setenv("ROADWATCH_MQTT_URL", "mqtt://192.0.2.1:1883")  # TEST-NET-1
    monkeypatch.setenv("ROADWATCH_EMBEDDED_WS_PORT", "0")
    from tests.support.server import free_port

    monkeypatch.setenv("ROADWATCH_PORT", str(free_port()))
    monkeypatch.setattr("roadwatch.runtime.is_listening", lambda *a: False)
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    err = _one_line(r.stderr)
    assert err.startswith("roadwatch: configuration error: ROADWATCH_MQTT_URL")


@pytest.mark.integration
def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (systemd, docker stop) stops `serve` as Ctrl-C does: the runtime is stopped
    (ingest, case jobs, the notice outbox's notices in flight, the embedded broker) and the
    exit code is 0. It was Python's default: killed at once, exit 143, nothing settled."""
    import signal
    import subprocess
    import sys

    from tests.support.mosquitto import free_port
    from tests.test_web_role import _env, wait_healthy

    port = free_port()
    env = {
        **_env(tmp_path, f"sqlite:///{tmp_path / 'rw.sqlite3'}"),
        "ROADWATCH_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",  # the embedded broker
        "ROADWATCH_LEADERS_REFRESH_S": "0",
        "ROADWATCH_PORT": str(port),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roadwatch.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, log)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "stopping: ingest, case jobs, notices in flight" in text
    assert "embedded MQTT broker" in text and text.rstrip().endswith("stopped"), text[-3000:]
