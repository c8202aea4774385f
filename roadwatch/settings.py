"""Settings: defaults (config/defaults.toml) → TOML file (ROADWATCH_CONFIG) → ROADWATCH_* env.

Validated once, at start-up. A bad value raises SettingsError whose message is one
line naming the setting and where it came from, so `roadwatch serve` can print it and
stop instead of failing later somewhere deep in a thread.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

# The configuration files live in the project's top-level config/, where they are edited.
# roadwatch/_config is a link to it in a checkout and a copy of it in the wheel (package data),
# so one path serves an editable install and an installed wheel alike.
PACKAGED_CONFIG_DIR = (Path(__file__).resolve().parent / "_config").resolve()
CONFIG_DIR = Path(os.environ.get("ROADWATCH_CONFIG_DIR") or PACKAGED_CONFIG_DIR)
ENV_PREFIX = "ROADWATCH_"
OPEN311_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")
OPEN311_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,55}$")


SECRET_SETTINGS = frozenset({"secret_key", "admin_password", "open311_api_keys"})
# Settings that are URLs and may carry a password (user:password@host): shown without it.
URL_SETTINGS = frozenset({"database_url", "mqtt_url", "socketio_queue", "rate_limit_storage"})
PHOTO_TYPES = ("jpeg", "png", "webp", "gif", "heic")
MAX_FUTURE_SKEW = dt.timedelta(days=1)  # the most a phone's clock may be ahead


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs, errors and /healthz."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return parts._replace(netloc=f"{user}:***@{host}").geturl()
    except ValueError:
        # not even a URL (a bad setting): hide whatever stands between :// and @
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message is meant for the operator."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str
    mqtt_url: str
    mqtt_topic_root: str
    mqtt_client_id: str
    mqtt_protocol: int
    mqtt_session_expiry_s: int
    mqtt_receive_maximum: int
    embedded_broker: Literal["auto", "always", "never"]
    network: str
    basemap: str
    timezone: str
    city_bounds: str
    observed_window_days: int
    future_skew_s: int
    max_payload_bytes: int
    max_note_chars: int
    max_photo_bytes: int
    photo_types: str
    photo_dir: str
    snap_max_distance_m: float
    snap_ambiguity_m: float
    snap_min_confidence: float
    snap_distance_only_min_confidence: float
    ingest_batch_max: int
    ingest_batch_wait_ms: int
    case_sweep_s: float
    socketio_queue: str
    secret_key: str
    admin_password: str
    open311_api_keys: str
    open311_location_precision_m: float
    # HTTP intake (issue 15): per-identity rate limits, their storage, the reporter cache
    intake_rate_limit: str
    rate_limit_storage: str
    reporter_cache_s: float
    host: str
    port: int
    mobile_mqtt_ws_url: str
    embedded_ws_port: int
    patrol_interval_s: float
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    # weekly red and black flags (roadwatch.ranking)
    ranking_formula: str
    ranking_contest_hours: float
    ranking_schedule_s: float
    # reverse proxies in front of the web server whose X-Forwarded-* headers are believed
    trusted_proxies: int
    # database timeouts of the long-running roles (roadwatch.store.db.engine_for; 0 = none)
    db_connect_timeout_s: float
    db_statement_timeout_ms: int
    # several ingest workers on one stream (issue 18): MQTT 5 shared subscription group,
    # this worker's name (part of its client id), its /healthz port, parked messages' age
    mqtt_share_group: str
    worker_instance: str
    worker_health_port: int
    park_max_age_s: float

    @field_validator("mqtt_share_group", "worker_instance")
    @classmethod
    def _mqtt_word(cls, v: str) -> str:
        # part of a topic filter ($share/<group>/…) or of a client id: no wildcards, no "/"
        if not re.fullmatch(r"[A-Za-z0-9_.\-]{0,32}", v):
            raise ValueError("must be at most 32 letters, digits, '_', '.' or '-'")
        return v

    @field_validator("worker_health_port")
    @classmethod
    def _health_port(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError("must be 0 (none) or a port between 1 and 65535")
        return v

    @field_validator("park_max_age_s")
    @classmethod
    def _park_age(cls, v: float) -> float:
        if not 0 < v <= 86400:
            raise ValueError("must be between 1 second and a day")
        return v

    # notices to chiefs beyond the app: WeCom/DingTalk group robots (roadwatch.cases.notifiers)
    notify_webhook_url: str
    notify_webhook_district_urls: str
    notify_webhook_format: Literal["wecom", "dingtalk"]
    # leaders' hot-spot/forecast analysis (roadwatch.recurrence.stored): seconds between
    # checks that this week's is stored, by `jobs` and `serve` (0 = none in this process)
    leaders_refresh_s: float

    @field_validator("leaders_refresh_s")
    @classmethod
    def _leaders_refresh(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"is not a database URL ({exc})") from None
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError(
                "must name a database file, e.g. sqlite:///var/roadwatch.sqlite3 (an in-memory "
                "SQLite database is not shared by the platform's threads)"
            )
        return v

    @field_validator("socketio_queue")
    @classmethod
    def _socketio_queue(cls, v: str) -> str:
        if v and (urlsplit(v).scheme not in ("redis", "rediss") or not urlsplit(v).hostname):
            raise ValueError('must be "" (one process) or a redis:// or rediss:// URL')
        return v

    @field_validator("intake_rate_limit")
    @classmethod
    def _intake_rate_limit(cls, v: str) -> str:
        from limits import parse_many

        try:
            parsed = parse_many(v) if v.strip() else []
        except ValueError:
            parsed = []
        if not parsed:
            raise ValueError(
                'must be one or more limits such as "300/minute;3000/hour" '
                "(a number per second, minute, hour or day, separated by ';')"
            )
        return v

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage(cls, v: str) -> str:
        parts = urlsplit(v)
        if (
            v
            and v != "memory://"
            and (parts.scheme not in ("redis", "rediss") or not parts.hostname)
        ):
            raise ValueError(
                'must be "" (Redis of socketio_queue if set, else memory), "memory://" '
                "or a redis:// or rediss:// URL"
            )
        return v

    @field_validator("reporter_cache_s")
    @classmethod
    def _reporter_cache(cls, v: float) -> float:
        if not 0 < v <= 3600:
            raise ValueError("must be more than 0 and at most 3600 seconds")
        return v

    @field_validator("db_connect_timeout_s", "db_statement_timeout_ms")
    @classmethod
    def _db_timeout(cls, v: float) -> float:
        if not 0 <= v < 86400 * 1000:
            raise ValueError("must be 0 (none) or more")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("case_sweep_s")
    @classmethod
    def _sweep(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be more than 0 seconds")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port ({exc})") from None
        return v

    @field_validator("mqtt_topic_root")
    @classmethod
    def _topic_root(cls, v: str) -> str:
        if not v or v.startswith("/") or v.endswith("/") or any(c in v for c in "+#"):
            raise ValueError("must be a plain topic prefix such as roadwatch/v1")
        return v

    @field_validator("mqtt_client_id")
    @classmethod
    def _client_id(cls, v: str) -> str:
        if not v or len(v) > 128:
            raise ValueError("must be 1-128 characters")
        return v

    @field_validator("mqtt_protocol")
    @classmethod
    def _protocol(cls, v: int) -> int:
        if v not in (3, 5):
            raise ValueError("must be 5 (MQTT 5) or 3 (MQTT 3.1.1)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone (use an IANA name like Asia/Shanghai)") from None
        return v

    @field_validator("city_bounds")
    @classmethod
    def _city_bounds(cls, v: str) -> str:
        if not v.strip():
            return ""
        try:
            w, s, e, n = (float(x) for x in v.split(","))
        except ValueError:
            raise ValueError("must be minLon,minLat,maxLon,maxLat (four numbers)") from None
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError("must be minLon,minLat,maxLon,maxLat with min < max")
        return v

    @field_validator("photo_types")
    @classmethod
    def _photo_types(cls, v: str) -> str:
        kinds = [x.strip().lower() for x in v.split(",") if x.strip()]
        unknown = [k for k in kinds if k not in PHOTO_TYPES]
        if not kinds or unknown:
            raise ValueError(
                f"must be a comma-separated list of {', '.join(PHOTO_TYPES)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else "")
            )
        return ",".join(dict.fromkeys(kinds))

    @field_validator("basemap")
    @classmethod
    def _basemap(cls, v: str) -> str:
        if not v.strip():
            return ""
        from .maps.basemap import Basemap, BasemapError

        try:
            Basemap.open(v).close()
        except BasemapError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("admin_password")
    @classmethod
    def _admin_password(cls, v: str) -> str:
        if v and len(v) < 8:
            raise ValueError("must have at least 8 characters (or be empty for a random one)")
        return v

    @field_validator("open311_location_precision_m")
    @classmethod
    def _open311_precision(cls, v: float) -> float:
        if not (math.isfinite(v) and 0 <= v <= 10_000):
            raise ValueError(
                "must be between 0 (exact positions) and 10000 metres (the grid Open311 "
                "rounds positions to)"
            )
        return v

    @field_validator("open311_api_keys")
    @classmethod
    def _open311_keys(cls, v: str) -> str:
        if not v.strip():
            return ""
        keys: set[str] = set()
        for pair in v.split(","):
            key, sep, owner = (x.strip() for x in pair.partition(":"))
            if not sep or not OPEN311_KEY.match(key) or not OPEN311_OWNER.match(owner):
                raise ValueError(
                    "must be key1:owner1,key2:owner2 (keys: 8-128 letters, digits, '_', '-'; "
                    "owners: 1-56 letters, digits, '.', '_', '-')"
                )
            if key in keys:
                raise ValueError(f"key {key[:4]}… is listed twice")
            keys.add(key)
        return v

    @field_validator("snap_min_confidence", "snap_distance_only_min_confidence")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError("must be a probability from 0 to below 1")
        return v

    @field_validator("mobile_mqtt_ws_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if v in ("", "auto"):
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError('must be "", "auto" or a ws:// or wss:// URL')
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: int) -> int:
        if not 0 <= v <= 5:
            raise ValueError(
                "must be 0 (no proxy: X-Forwarded-* headers are ignored) or the number of "
                "reverse proxies in front of roadwatch, at most 5"
            )
        return v

    @field_validator("notify_webhook_url")
    @classmethod
    def _webhook_url(cls, v: str) -> str:
        if v and (urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname):
            raise ValueError('must be "" (none) or an http:// or https:// URL')
        return v

    @field_validator("embedded_ws_port")
    @classmethod
    def _ws_port(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError("must be 0 (no WebSocket listener) or a port up to 65535")
        return v

    @field_validator("patrol_interval_s")
    @classmethod
    def _patrol_interval(cls, v: float) -> float:
        if not 0.2 <= v <= 300:
            raise ValueError("must be between 0.2 and 300 seconds")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 1 <= v <= 65535:
            raise ValueError("must be between 1 and 65535")
        return v

    @field_validator("future_skew_s")
    @classmethod
    def _skew(cls, v: int) -> int:
        # a phone clock a day ahead is broken, not skewed (and the weekly ranking counts
        # on it: it reads the reopenings from MAX_FUTURE_SKEW before its week began)
        limit = int(MAX_FUTURE_SKEW.total_seconds())
        if not 0 < v <= limit:
            raise ValueError(f"must be between 1 and {limit} seconds (a day)")
        return v

    @field_validator(
        "observed_window_days",
        "max_payload_bytes",
        "max_note_chars",
        "max_photo_bytes",
        "ingest_batch_max",
        "mqtt_receive_maximum",
        "mqtt_session_expiry_s",
    )
    @classmethod
    def _positive_int(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive number")
        return v

    @field_validator(
        "snap_max_distance_m",
        "snap_ambiguity_m",
        "ingest_batch_wait_ms",
        "ranking_contest_hours",
        "ranking_schedule_s",
    )
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must not be negative")
        return v

    # Derived values -------------------------------------------------------------
    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def mqtt_username(self) -> str | None:
        """The platform's broker login, from mqtt://user:password@host:port (if any)."""
        return urlsplit(self.mqtt_url).username or None

    @property
    def mqtt_password(self) -> str | None:
        return urlsplit(self.mqtt_url).password or None

    @property
    def photo_kinds(self) -> list[str]:
        """The photo types uploads may have (jpeg, png, …), in the configured order."""
        return self.photo_types.split(",")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def open311_keys(self) -> dict[str, str]:
        """Open311 api_key → the owner it stands for (reports arrive as open311-{owner})."""
        out: dict[str, str] = {}
        for pair in self.open311_api_keys.split(","):
            key, sep, owner = (x.strip() for x in pair.partition(":"))
            if sep and key and owner:
                out[key] = owner
        return out

    @property
    def notify_webhook_urls_by_district(self) -> dict[str, str]:
        """District code → its group robot's URL ("code=URL,code=URL")."""
        out: dict[str, str] = {}
        for pair in self.notify_webhook_district_urls.split(","):
            code, sep, url = (x.strip() for x in pair.partition("="))
            if sep and code and url:
                out[code] = url
        return out

    @property
    def rate_limit_storage_uri(self) -> str:
        """Where HTTP intake counts requests: the setting, else Redis of socketio_queue
        (shared by every web process), else this process's memory."""
        return self.rate_limit_storage or self.socketio_queue or "memory://"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        return self.model_copy(update=changes)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"ROADWATCH_CONFIG: file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"ROADWATCH_CONFIG: {path} is not valid TOML ({exc})") from None
    except OSError as exc:  # a directory, no read permission, ...
        raise SettingsError(
            f"ROADWATCH_CONFIG: cannot read {path}: {exc.strerror or exc}"
        ) from None


# ROADWATCH_* variables that are not settings (other tools share the prefix).
NOT_SETTINGS = frozenset({"CONFIG", "CONFIG_DIR"})


def _refuse_misspelt(env: Mapping[str, str], values: Mapping[str, Any]) -> None:
    """A ROADWATCH_ variable that is nearly a setting's name is a typo: its default would be
    used instead, silently. Other ROADWATCH_ names belong to other tools and are left alone."""
    import difflib

    names = [k.upper() for k in values]
    for env_key in env:
        if not env_key.startswith(ENV_PREFIX):
            continue
        name = env_key[len(ENV_PREFIX) :]
        if name in names or name in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.85)
        if close:
            raise SettingsError(
                f"{env_key}: unknown setting (did you mean {ENV_PREFIX}{close[0]}?)"
            )


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults, the optional TOML file, the environment and overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = _read_toml(CONFIG_DIR / "defaults.toml")
    source: dict[str, str] = dict.fromkeys(values, "defaults")

    config_file = env.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        for key, value in _read_toml(Path(config_file)).items():
            if key not in values:
                raise SettingsError(f"{key} (in {config_file}): unknown setting")
            values[key] = value
            source[key] = config_file

    for key in list(values):
        env_key = f"{ENV_PREFIX}{key.upper()}"
        if env_key in env:
            values[key] = env[env_key]
            source[key] = "environment"
    _refuse_misspelt(env, values)
    for key, value in (overrides or {}).items():
        if key not in values:
            raise SettingsError(f"{key}: unknown setting")
        values[key] = value
        source[key] = "command line"

    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "?"
        name = f"{ENV_PREFIX}{key.upper()}" if source.get(key) == "environment" else key
        msg = err["msg"].removeprefix("Value error, ")
        # Secrets are never echoed: the line goes to logs and terminals.
        got = "a hidden value" if key in SECRET_SETTINGS else repr(values.get(key))
        if key in URL_SETTINGS and isinstance(values.get(key), str):
            got = repr(redact_url(values[key]))
        raise SettingsError(f"{name}: {msg} (got {got} from {source.get(key, '?')})") from None
