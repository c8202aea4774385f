from pathlib import Path

import pytest
from click.testing import CliRunner

from roadwatch.settings import SettingsError, load_settings


def test_defaults_are_valid() -> None:
    s = load_settings(env={})
    assert s.mqtt_topic_root == "roadwatch/v1"
    assert s.port == 5000 and s.host == "127.0.0.1"
    assert s.database_url.startswith("sqlite")
    assert (s.mqtt_host, s.mqtt_port) == ("127.0.0.1", 1883)


def test_env_overrides_toml_overrides_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "rw.toml"
    cfg.write_text('port = 6000\nmqtt_topic_root = "city/v1"\n', encoding="utf-8")
    s = load_settings(env={"ROADWATCH_CONFIG": str(cfg), "ROADWATCH_PORT": "7000"})
    assert s.port == 7000  # env beats the file
    assert s.mqtt_topic_root == "city/v1"  # the file beats the defaults


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ROADWATCH_PORT": "abc"}, "ROADWATCH_PORT"),
        ({"ROADWATCH_PORT": "70000"}, "ROADWATCH_PORT: must be between 1 and 65535"),
        ({"ROADWATCH_MQTT_URL": "http://x"}, "ROADWATCH_MQTT_URL: must look like mqtt://host:port"),
        ({"ROADWATCH_DATABASE_URL": "mysql://x"}, "ROADWATCH_DATABASE_URL"),
        ({"ROADWATCH_TIMEZONE": "Mars/Base"}, "ROADWATCH_TIMEZONE: unknown time zone"),
        ({"ROADWATCH_MQTT_TOPIC_ROOT": "a/#"}, "ROADWATCH_MQTT_TOPIC_ROOT"),
        ({"ROADWATCH_MQTT_PROTOCOL": "4"}, "ROADWATCH_MQTT_PROTOCOL"),
    ],
)
def test_bad_setting_names_itself_in_one_line(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env=env)
    msg = str(exc.value)
    assert expected in msg
    assert "\n" not in msg


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "rw.toml"
    cfg.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="prot .*unknown setting"):
        load_settings(env={"ROADWATCH_CONFIG": str(cfg)})


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 3", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={"ROADWATCH_CONFIG": str(bad)})
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(env={"ROADWATCH_CONFIG": str(tmp_path / "nope.toml")})


def test_config_that_is_not_a_readable_text_file(tmp_path: Path) -> None:
    # once a traceback each: a directory (or no read permission) and bytes that are not UTF-8
    with pytest.raises(SettingsError, match="ROADWATCH_CONFIG: cannot read .*: Is a directory"):
        load_settings(env={"ROADWATCH_CONFIG": str(tmp_path)})
    latin = tmp_path / "latin1.toml"
    latin.write_bytes("timezone = 'Europe/Zürich'\n".encode("latin-1"))
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={"ROADWATCH_CONFIG": str(latin)})


def test_cli_prints_one_line_and_exits_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roadwatch.cli import main

    monkeypatch.setenv("ROADWATCH_PORT", "not-a-port")
    r = runner.invoke(main, ["serve"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert err.startswith("roadwatch: configuration error: ROADWATCH_PORT")
    assert len(err.splitlines()) == 1


# -- found in the contract audit -------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ROADWATCH_SOCKETIO_QUEUE": "bogus://x"}, "ROADWATCH_SOCKETIO_QUEUE: must be"),
        ({"ROADWATCH_DATABASE_URL": "sqlite://"}, "ROADWATCH_DATABASE_URL: "),
        ({"ROADWATCH_DATABASE_URL": "sqlite:///:memory:"}, "ROADWATCH_DATABASE_URL: "),
        ({"ROADWATCH_CASE_SWEEP_S": "0"}, "ROADWATCH_CASE_SWEEP_S: "),
        ({"ROADWATCH_FUTURE_SKEW_S": "172800"}, "ROADWATCH_FUTURE_SKEW_S: must be between 1"),
        ({"ROADWATCH_PHOTO_TYPES": "jpeg,bmp"}, "ROADWATCH_PHOTO_TYPES: "),
        # a misspelt setting would otherwise be ignored and its default used, silently
        ({"ROADWATCH_DATABSE_URL": "postgresql://x/y"}, "ROADWATCH_DATABSE_URL: unknown"),
        ({"ROADWATCH_MQTT_TOPICROOT": "a/b"}, "did you mean ROADWATCH_MQTT_TOPIC_ROOT?"),
    ],
)
def test_more_bad_settings_name_themselves(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env=env)
    assert expected in str(exc.value)
    assert "\n" not in str(exc.value)


def test_other_roadwatch_variables_are_not_settings_and_are_left_alone() -> None:
    """Tools beside the settings use the prefix too (the test suite, run.sh, benchmarks)."""
    env = {"ROADWATCH_REQUIRE_SERVICES": "1", "ROADWATCH_SIM_RATE": "4", "ROADWATCH_TEST_PG": "x"}
    assert load_settings(env=env).port == 5000


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("ROADWATCH_MQTT_URL", "mqtt://platform:s3cret@127.0.0.1:99999"),
        ("ROADWATCH_DATABASE_URL", "mysql://roadwatch:s3cret@db.example/roadwatch"),
        ("ROADWATCH_SOCKETIO_QUEUE", "nats://queue:s3cret@127.0.0.1:4222"),
    ],
)
def test_a_password_in_a_bad_url_is_never_echoed(key: str, url: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env={key: url})
    msg = str(exc.value)
    assert msg.startswith(key) and "s3cret" not in msg and ":***@" in msg


def test_log_level_in_any_case() -> None:
    assert load_settings(env={"ROADWATCH_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_redact_url() -> None:
    from roadwatch.settings import redact_url

    assert redact_url("postgresql://rw:pw@db:5432/rw") == "postgresql://rw:***@db:5432/rw"
    assert redact_url("mqtt://127.0.0.1:1883") == "mqtt://127.0.0.1:1883"
    assert redact_url("redis://:pw@r:6379/0") == "redis://:***@r:6379/0"
