from pathlib import Path

import pytest

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


def test_cli_prints_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from roadwatch.cli import main

    monkeypatch.setenv("ROADWATCH_PORT", "not-a-port")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("roadwatch: configuration error: ROADWATCH_PORT")
    assert len(err.splitlines()) == 1
