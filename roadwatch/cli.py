"""`roadwatch` command line (README, "Command line")."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from .accounts.reporters import KINDS
from .settings import Settings, SettingsError, load_settings, redact_url

log = logging.getLogger("roadwatch")


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(overrides={k: v for k, v in overrides.items() if v is not None})


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("amqtt", "transitions", "werkzeug", "engineio", "socketio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


# -- serve / worker ----------------------------------------------------------------
def _check_listen(settings: Settings) -> None:
    """Can serve listen where it is told to? Checked before anything starts: a second
    `serve` by mistake must not take the running platform's MQTT session and then fail."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SettingsError(
            f"ROADWATCH_HOST: cannot listen on {settings.host!r} ({exc.strerror or exc})"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            if exc.errno == errno.EADDRINUSE:
                raise SettingsError(
                    f"ROADWATCH_PORT: cannot listen on {where}: the port is in use by another "
                    "program (another roadwatch serve?); stop it or choose another port"
                ) from None
            name = "ROADWATCH_PORT" if exc.errno == errno.EACCES else "ROADWATCH_HOST"
            raise SettingsError(
                f"{name}: cannot listen on {where} ({exc.strerror or exc})"
            ) from None


def _check_photo_dir(settings: Settings) -> None:
    folder = Path(settings.photo_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(
            f"ROADWATCH_PHOTO_DIR: cannot store photos in {folder} ({exc.strerror or exc})"
        ) from None


def _check_formula(settings: Settings) -> None:
    """The ranking schedule loads the formula in a thread: a bad file must stop start-up."""
    if not settings.ranking_formula:
        return
    from .categories import load_categories
    from .ranking.formula import FormulaError, load_formula

    try:
        load_formula(settings.ranking_formula, load_categories().codes)
    except FormulaError as exc:
        raise SettingsError(f"ROADWATCH_RANKING_FORMULA: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, host=args.host, port=args.port)
    _logging(settings.log_level)
    _check_photo_dir(settings)
    _check_formula(settings)
    from .runtime import Runtime
    from .web import create_app

    t0 = time.perf_counter()
    runtime = Runtime.build(settings)
    try:
        _check_listen(settings)  # before the MQTT session is taken
    except SettingsError:
        runtime.engine.dispose()
        raise
    app, socketio = create_app(runtime)
    runtime.broadcaster.emitter = socketio  # this process's browsers get the live events
    try:
        runtime.start_ingest()
    except SettingsError:
        runtime.stop()
        raise
    runtime.start_ranking()
    sim_thread = None
    if args.simulate:
        from .accounts.reporters import KNOWN
        from .demo.lifecycle import for_runtime
        from .simulate import Simulator

        # The simulated chiefs are the network's road chiefs, registered reporters that the
        # pipeline lets in (a disabled one is left out): real identities, as on phones.
        directory = runtime.pipeline.reporters
        directory.reload()
        sim = Simulator(
            runtime.ctx.network,
            runtime.categories,
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            topic_root=settings.mqtt_topic_root,
            chiefs=args.simulate,
            rate=args.rate,
            may_report=lambda rid: directory.status(rid) == KNOWN,
            lifecycle=for_runtime(runtime, lambda rid: directory.status(rid) == KNOWN),
        )
        sim_thread = threading.Thread(
            target=sim.run, kwargs={"progress": None}, name="simulator", daemon=True
        )
        sim_thread.start()
        log.info("simulator: %d road chiefs, %.1f reports/s", args.simulate, args.rate)
    _first_admin(runtime)
    log.info(
        "roadwatch ready in %.1f s: http://%s:%d/  (database %s)",
        time.perf_counter() - t0,
        settings.host,
        settings.port,
        redact_url(settings.database_url),
    )
    try:
        socketio.run(
            app,
            host=settings.host,
            port=settings.port,
            allow_unsafe_werkzeug=True,
            use_reloader=False,
            log_output=False,
        )
    finally:
        runtime.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    from flask_socketio import SocketIO

    from .runtime import Runtime

    emitter = SocketIO(message_queue=settings.socketio_queue) if settings.socketio_queue else None
    if emitter is None:
        log.warning("worker: no ROADWATCH_SOCKETIO_QUEUE, so no live events reach browsers")
    # Handlers first: a SIGTERM during start-up must still stop the case service too.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _check_formula(settings)
    runtime = Runtime.build(settings, emitter=emitter)
    try:
        runtime.start_ingest(case_process=True)
    except SettingsError:
        runtime.stop()
        raise
    runtime.start_ranking()
    log.info("worker: ingesting from %s", redact_url(settings.mqtt_url))
    stop.wait()
    runtime.stop()
    return 0


# -- db / network ------------------------------------------------------------------
def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging(settings.log_level)
    from alembic.util import CommandError

    from .store import db

    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine, args.revision)
    except CommandError as exc:
        print(f"roadwatch: cannot upgrade to {args.revision!r}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"database at revision {db.current_revision(engine)}")
    return 0


def cmd_network_generate(args: argparse.Namespace) -> int:
    from geo.demo import generate_demo_network
    from geo.network import save_network

    from .network.context import DEMO_NETWORK

    out = Path(args.out) if args.out else DEMO_NETWORK
    t0 = time.perf_counter()
    try:
        net = generate_demo_network(seed=args.seed, target_segments=args.segments)
    except ValueError as exc:
        print(f"roadwatch: cannot generate the network: {exc}", file=sys.stderr)
        return 2
    save_network(net, out)
    print(f"wrote {len(net.segments)} segments to {out} in {time.perf_counter() - t0:.1f} s")
    _print_info(net.info())
    return 0


def cmd_network_info(args: argparse.Namespace) -> int:
    from geo.network import load_network

    from .network.context import network_path

    path = Path(args.path) if args.path else network_path(_settings(args))
    t0 = time.perf_counter()
    try:
        net = load_network(path)
    except ValueError as exc:
        print(f"roadwatch: {path} is not a usable network file: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        raise
    except OSError as exc:
        print(f"roadwatch: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{path} (loaded in {time.perf_counter() - t0:.2f} s)")
    _print_info(net.info())
    return 0


class _ProgressBar:
    """`stage  [#######.......]  48%  120,000/250,000` on one line of stderr."""

    def __init__(self, out: Any = sys.stderr, width: int = 30) -> None:
        self.out, self.width = out, width
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        final = total > 0 and done >= total
        changed = stage != self.stage
        if not changed and not final and now - self.last < 0.2:
            return
        self.stage, self.last = stage, now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * self.width)
        line = f"{stage:<10s} [{bar:<{self.width}s}] {frac:4.0%}  {done:,}/{total:,}"
        if self.out.isatty():
            self.out.write("\r" + line + ("\n" if final else ""))
        elif final or changed:
            self.out.write(line + "\n")
        self.out.flush()


def _bounds(text: str) -> tuple[float, float, float, float] | None:
    if not text.strip():
        return None
    parts = [float(x) for x in text.split(",")]
    return (parts[0], parts[1], parts[2], parts[3])


def cmd_network_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    from geo.importer import FieldMapping, NetworkImportError, read_segment_layer
    from geo.network import load_network, save_network
    from geo.segmentize import network_from_osm

    src = Path(args.file)
    out = (
        Path(args.out)
        if args.out
        else Path("var/networks") / (src.name.split(".")[0] + ".geojson.gz")
    )
    bounds = _bounds(args.bounds) if args.bounds is not None else _bounds(settings.city_bounds)
    progress = _ProgressBar()
    t0 = time.perf_counter()
    try:
        if src.name.endswith(".pbf"):
            previous = load_network(out) if out.exists() else None
            net = network_from_osm(
                src,
                bounds=bounds,
                min_length_m=args.min_length,
                target_count=args.target_count,
                id_prefix=args.id_prefix,
                previous=previous,
                pair_carriageways=not args.separate_carriageways,
            )
        else:
            if args.mapping:
                mapping = FieldMapping.from_toml(args.mapping)
            else:
                mapping = FieldMapping.from_options(
                    id=args.id_field,
                    name=args.name_field,
                    road=args.road_field,
                    from_road=args.from_field,
                    to_road=args.to_field,
                    district=args.district_field,
                    chief=args.chief_field,
                    chief_name=args.chief_name_field,
                    road_class=args.road_class_field,
                )
            net = read_segment_layer(
                src,
                mapping,
                layer=args.layer,
                bounds=bounds,
                district_layer=args.districts,
                progress=progress,
                crs=args.crs,
                district_crs=args.districts_crs or args.crs,
            )
    except NetworkImportError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"roadwatch: cannot import {src}: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    save_network(net, tmp)
    tmp.replace(out)  # atomic: a failed import leaves the previous file in place
    print(
        f"imported {len(net.segments):,} segments in {len(net.districts)} districts from {src} "
        f"in {time.perf_counter() - t0:.1f} s -> {out}"
    )
    if args.apply:
        import hashlib

        from .network.sync import sync
        from .store import db, models

        engine = db.make_engine(settings.database_url)
        db.upgrade(engine)
        with db.make_sessionmaker(engine).begin() as session:
            summary = sync(session, net, settings.tz)
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
            session.merge(models.Meta(key="network_digest", value=digest))
        print(f"database: {summary}")
    print(f"use it with: ROADWATCH_NETWORK={out} roadwatch serve")
    return 0


def _print_info(info: dict[str, Any], indent: str = "  ") -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_info(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


# -- chiefs ------------------------------------------------------------------------
def cmd_chiefs_import(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    from sqlalchemy import select

    from .network.responsibility import AssignmentImportError, apply_assignments, read_assignments
    from .store import db, models

    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    with sessions() as session:
        known = set(
            session.scalars(select(models.Segment.id).where(models.Segment.retired_at.is_(None)))
        )
    if not known:
        print(
            "roadwatch: the database has no segments yet; run `roadwatch serve` or "
            "`roadwatch network import` first",
            file=sys.stderr,
        )
        return 2
    try:
        rows = read_assignments(Path(args.file), known, settings.tz)
    except AssignmentImportError as exc:
        print(f"roadwatch: {args.file}: {exc}", file=sys.stderr)
        return 2
    with sessions.begin() as session:
        summary = apply_assignments(session, rows)
    print(
        f"imported {summary.opened} assignments from {args.file}: "
        f"{summary.closed} earlier assignments closed, {summary.people_added} people added"
    )
    return 0


# -- reporters (evaluators, covert checkers) -----------------------------------------
def cmd_reporters_add(args: argparse.Namespace) -> int:
    from .accounts.reporters import ReporterError, save_reporter

    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            saved = save_reporter(session, args.id, args.kind, args.name)
    except ReporterError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    if saved.created:
        print(f"added {saved.id} ({saved.kind})")
    elif saved.previous_kind:
        print(f"{saved.id} is now {saved.kind} (was {saved.previous_kind})")
    else:
        print(f"{saved.id} was already {saved.kind}")
    return 0


def cmd_reporters_list(args: argparse.Namespace) -> int:
    from .accounts.reporters import list_reporters

    with _sessions(args) as sessions, sessions() as session:
        people = [(p.id, p.kind, p.name) for p in list_reporters(session, args.kind)]
    for pid, kind, name in people:
        print(f"{pid}\t{kind}\t{name}")
    print(f"{len(people)} reporters", file=sys.stderr)
    return 0


def cmd_reporters_disable(args: argparse.Namespace) -> int:
    from .accounts.reporters import set_disabled

    disable = args.reporters_command == "disable"
    with _sessions(args) as sessions, sessions.begin() as session:
        found = set_disabled(session, args.id, disable)
    if not found:
        print(f"roadwatch: no reporter {args.id!r}", file=sys.stderr)
        return 2
    state = "disabled: its messages are refused" if disable else "enabled again"
    print(f"{args.id} is {state} (every process within reporter_cache_s)")
    return 0


# -- API keys (HTTP intake) -------------------------------------------------------------
def cmd_apikeys_add(args: argparse.Namespace) -> int:
    from .accounts.apikeys import ApiKeyError, add_key

    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            new = add_key(session, reporter=args.reporter, system=args.system, label=args.label)
    except ApiKeyError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    what = "city system" if new.system else "reporter"
    print(
        f"API key {new.id} for {what} {new.reporter_id} (shown only now; keep it secret):",
        file=sys.stderr,
    )
    print(new.key)
    return 0


def cmd_apikeys_list(args: argparse.Namespace) -> int:
    from .accounts.apikeys import list_keys

    with _sessions(args) as sessions, sessions() as session:
        rows = [
            (k.id, k.prefix, k.reporter_id, k.system, k.label, k.created_at, k.revoked_at)
            for k in list_keys(session, include_revoked=args.all)
        ]
    for kid, prefix, rid, system, label, created, revoked in rows:
        state = f"revoked {revoked.isoformat(timespec='seconds')}" if revoked else "active"
        kind = "system" if system else "reporter"
        print(
            f"{kid}\t{prefix}…\t{kind}\t{rid}\t{label or ''}\t"
            f"{created.isoformat(timespec='seconds')}\t{state}"
        )
    print(f"{len(rows)} keys", file=sys.stderr)
    return 0


def cmd_apikeys_revoke(args: argparse.Namespace) -> int:
    from .accounts.apikeys import revoke_key

    with _sessions(args) as sessions, sessions.begin() as session:
        done = revoke_key(session, args.id)
    if not done:
        print(f"roadwatch: no active API key {args.id}", file=sys.stderr)
        return 2
    print(f"API key {args.id} revoked")
    return 0


# -- users (command-centre staff) ----------------------------------------------------
def _first_admin(runtime: Any) -> None:
    """On a database without staff accounts, make `admin` so a newcomer can log in."""
    from .accounts.users import ensure_first_admin

    configured = runtime.settings.admin_password
    with runtime.sessions.begin() as session:
        password = ensure_first_admin(session, configured)
    if password and configured:
        log.warning(
            "first start: created the command-centre login 'admin' (ROADWATCH_ADMIN_PASSWORD)"
        )
    elif password:
        log.warning(
            "first start: created the command-centre login 'admin' with the password %s "
            "(shown only now; change it with `roadwatch users passwd admin`)",
            password,
        )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("roadwatch: the two passwords differ")
    return first


@contextmanager
def _sessions(args: argparse.Namespace) -> Iterator[Any]:
    """A sessionmaker on the configured (upgraded) database; the engine is closed after."""
    settings = _settings(args)
    _logging("WARNING")
    from .store import db

    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        yield db.make_sessionmaker(engine)
    finally:
        engine.dispose()


def cmd_users_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from .accounts.users import UserError, add_user
    from .store import models
    from .store.audit import cli_actor

    password = _read_password(args)
    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            known = set(session.scalars(select(models.District.code))) or None
            user = add_user(
                session, args.name, password, args.role, args.district, known, cli_actor()
            )
    except UserError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    where = f" for district {user.district}" if user.district else ""
    print(f"added {user.username} ({user.role}{where})")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from .accounts.users import UserError, set_password
    from .store.audit import cli_actor

    password = _read_password(args)
    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            set_password(session, args.name, password, cli_actor())
    except UserError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    print(f"password of {args.name} changed")
    return 0


def cmd_users_role(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from .accounts.users import UserError, set_role
    from .store import models
    from .store.audit import cli_actor

    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            known = set(session.scalars(select(models.District.code))) or None
            user = set_role(session, args.name, args.role, args.district, known, cli_actor())
    except UserError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    where = f" for district {user.district}" if user.district else ""
    print(f"{user.username} is now {user.role}{where}")
    return 0


def cmd_users_active(args: argparse.Namespace) -> int:
    from .accounts.users import UserError, set_active
    from .store.audit import cli_actor

    active = args.users_command == "enable"
    try:
        with _sessions(args) as sessions, sessions.begin() as session:
            set_active(session, args.name, active, cli_actor())
    except UserError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} {'enabled' if active else 'disabled'}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from .accounts.users import list_users

    with _sessions(args) as sessions, sessions() as session:
        for u in list_users(session):
            state = "" if u.active else "  (disabled)"
            print(f"{u.username:<24s} {u.role:<15s} {u.district or '-':<6s}{state}")
    return 0


def cmd_chiefs_provision(args: argparse.Namespace) -> int:
    """Accounts for the phone app and the broker; new passwords are shown once."""
    settings = _settings(args)
    _logging("WARNING")
    from .accounts import chiefs as ca
    from .store import db, models

    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    reset = list(args.reset or [])
    try:
        with sessions.begin() as session:
            if args.reset_all:
                reset = list(ca.passwd_lines(session))
            result = ca.provision(session, only=args.only or (), reset=reset)
            hashes = ca.passwd_lines(session)
            names = {r.id: r.name for r in session.query(models.Reporter)}
    except LookupError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    platform_user = settings.mqtt_username or settings.mqtt_client_id
    if args.passwd:
        path = Path(args.passwd)
        existing = path.read_text(encoding="utf-8") if path.exists() else ""
        platform: dict[str, str] = {}
        if settings.mqtt_password:
            platform[platform_user] = ca.hash_password(settings.mqtt_password)
        elif f"\n{platform_user}:" not in f"\n{existing}":
            print(
                f"roadwatch: warning: {path} has no entry for the platform user "
                f"{platform_user!r}; give ROADWATCH_MQTT_URL as "
                f"mqtt://{platform_user}:PASSWORD@host:port and run this again",
                file=sys.stderr,
            )
        ca.write_private(path, ca.render_passwd(hashes, existing, platform))
        print(
            f"wrote {path}: {len(hashes)} road chiefs" + (" and the platform" if platform else "")
        )
    if args.acl:
        ca.write_private(Path(args.acl), ca.render_acl(settings.mqtt_topic_root, platform_user))
        print(
            f"wrote {args.acl} (platform user {platform_user!r}, root {settings.mqtt_topic_root})"
        )
    new = {**result.created, **result.reset}
    for rid in result.skipped:
        print(f"skipped {rid}: not usable as an MQTT username (letters, digits, . _ - only)")
    if args.export:
        ca.export_csv(Path(args.export), new, names)
        print(
            f"wrote {len(new)} new passwords to {args.export} (mode 0600): "
            "hand them out, then delete it"
        )
    elif new:
        print("reporter_id,name,password  (shown once: hand them out now)")
        for rid, pw in sorted(new.items()):
            print(f"{rid},{names.get(rid, '')},{pw}")
    print(
        f"{len(result.created)} accounts created, {len(result.reset)} passwords reset, "
        f"{result.total} accounts in all"
    )
    if (args.passwd or args.acl) and new:
        print("reload the broker to apply: systemctl reload mosquitto (SIGHUP)")
    return 0


def cmd_chiefs_devices_list(args: argparse.Namespace) -> int:
    """The phones chiefs are signed in on (their device credentials), newest last."""
    from .accounts import chiefs as ca

    settings = _settings(args)
    tz = settings.tz
    with _sessions(args) as sessions, sessions() as session:
        devices = ca.list_devices(session, args.chief, include_revoked=args.all)
        rows = [
            (
                d.id,
                d.reporter_id,
                d.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                d.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if d.last_seen_at else "-",
                f"revoked {d.revoked_at.astimezone(tz):%Y-%m-%d %H:%M} ({d.revoked_reason})"
                if d.revoked_at
                else "active",
                (d.user_agent or "")[:60],
            )
            for d in devices
        ]
    if not rows:
        print("no devices" if args.all else "no active devices")
        return 0
    print("device        chief                    signed in         last seen         state")
    for did, rid, made, seen, state, ua in rows:
        print(f"{did:<13s} {rid:<24s} {made:<17s} {seen:<17s} {state}  {ua}")
    return 0


def cmd_chiefs_devices_revoke(args: argparse.Namespace) -> int:
    """Revoke devices at once: their next request is refused and the app asks to sign in."""
    from .accounts import chiefs as ca
    from .store.audit import cli_actor, record

    if not args.device and not args.chief:
        print("roadwatch: name a device id or --chief ID", file=sys.stderr)
        return 2
    with _sessions(args) as sessions, sessions.begin() as session:
        done: list[str] = []
        for did in args.device or ():
            got = ca.revoke_devices(session, None, "admin", device_id=did)
            if not got:
                print(f"roadwatch: no active device {did}", file=sys.stderr)
            done += got
        if args.chief:
            done += ca.revoke_devices(session, args.chief, "admin")
        if done:
            record(session, cli_actor(), "chief.device_revoke", args.chief, devices=done)
    print(f"{len(done)} devices revoked" + (f": {', '.join(done)}" if done else ""))
    return 0 if done or args.chief else 1


# -- simulate ----------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _logging("WARNING")
    from geo.network import load_network

    from .categories import load_categories
    from .network.context import network_path
    from .simulate import Simulator

    sim = Simulator(
        load_network(network_path(settings)),
        load_categories(),
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        topic_root=settings.mqtt_topic_root,
        chiefs=args.chiefs,
        rate=args.rate,
        seed=args.seed,
        bad_share=args.bad_share,
    )
    signal.signal(signal.SIGINT, lambda *_: sim.stop())
    sim.run(duration=args.duration, count=args.count)
    return 0


# -- rank (weekly red and black flags) ---------------------------------------------
def cmd_rank(args: argparse.Namespace) -> int:
    import json

    from sqlalchemy import func, select

    settings = _settings(args)
    _logging("WARNING")
    from .categories import load_categories
    from .ranking import publish as pub
    from .ranking.formula import FormulaError, load_formula
    from .ranking.gather import snapshot
    from .ranking.schedule import due_week
    from .ranking.week import Week
    from .store import db, models
    from .store.audit import cli_actor

    tz = settings.tz
    codes = load_categories().codes
    try:
        week = Week.parse(args.week, tz) if args.week else None
        formula = load_formula(args.formula or settings.ranking_formula or None, codes)
        other = load_formula(args.what_if, codes) if args.what_if else None
    except (ValueError, FormulaError) as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    now = models.utcnow()
    week = week or due_week(now, tz, settings.ranking_contest_hours)
    as_of = min(now, pub.default_as_of(week, settings.ranking_contest_hours))
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(models.Segment)).scalar_one() == 0:
            print(
                "roadwatch: the database has no segments yet; run `roadwatch serve` or "
                "`roadwatch network import --apply` first",
                file=sys.stderr,
            )
            return 2
    try:
        if args.verify:
            v = pub.verify(engine, formula, week)
            print(f"{week}: " + ("verified: content, chain and events agree" if v.ok else "FAILED"))
            for problem in v.problems:
                print(f"  - {problem}")
            return 0 if v.ok else 1
        if other is not None:
            with snapshot(engine) as conn:  # both formulas over the same data
                diff = pub.what_if(conn, formula, other, week, as_of)
            if args.json:
                print(json.dumps(diff, ensure_ascii=False, indent=1))
                return 0
            print(
                f"{week}: {diff['base']} → {diff['other']}: {diff['rank_changes']} ranks move, "
                f"{len(diff['flag_changes'])} flags change"
            )
            for c in diff["flag_changes"]:
                print(f"  {c['kind']} {c['id']} {c['name']}: {c['flag'][0]} → {c['flag'][1]}")
            return 0
        if args.publish:
            actor = cli_actor()
            done = pub.publish(
                engine, formula, week, as_of, args.by or actor.name, now, None, actor
            )
            state = "published" if done.created else "was already published"
            print(f"{week} {state}: sha256 {done.content_sha256}, chain {done.chain_sha256}")
            if done.events and settings.socketio_queue:
                from flask_socketio import SocketIO

                from .live.broadcast import Broadcaster

                Broadcaster(SocketIO(message_queue=settings.socketio_queue)).publish(done.events)
            return 0
        with snapshot(engine) as conn:  # one snapshot: figures and drill-downs agree
            content = pub.compute(conn, formula, week, as_of)
    except pub.RankingError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.json:
        print(pub.canonical(content))
        return 0
    print(f"{week} (draft, as of {content['as_of']}, formula {formula.version})")
    for lg in content["leagues"]:
        if lg["kind"] != "segment" and not lg["findings"]:
            continue
        names = {s["id"]: s["name"] for s in lg["scores"]}
        head = f"  {lg['district_name']} {lg['kind']} ({lg['mode']}, {lg['findings']} findings)"
        if lg["insufficient"]:
            print(f"{head}: {lg['insufficient']}")
            continue
        print(
            f"{head}: red {len(lg['red'])}/{lg['red_quota']}, black {len(lg['black'])}/"
            f"{lg['black_quota']}"
        )
        for flag in ("red", "black"):
            for uid in lg[flag]:
                print(f"    {'红旗' if flag == 'red' else '黑旗'} {uid} {names[uid]}")
    return 0


# -- bench -------------------------------------------------------------------------
BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"


def _benchmarks() -> dict[str, tuple[Path, str]]:
    """name → (script, its one-line summary), from the source checkout's bench/ folder."""
    import ast

    found = {}
    for script in sorted(BENCH_DIR.glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        found[script.stem.removeprefix("bench_")] = (script, (doc.splitlines() or [""])[0])
    return found


def cmd_bench(args: argparse.Namespace) -> int:
    """Run one of the repository's benchmark scripts; they print their own figures."""
    import subprocess

    benches = _benchmarks() if BENCH_DIR.is_dir() else {}
    if not benches:
        print(
            f"roadwatch: the benchmarks are scripts of a source checkout (bench/), and there is "
            f"none beside this installation ({BENCH_DIR}); clone the repository and install it "
            "with `pip install -e '.[test]'`",
            file=sys.stderr,
        )
        return 2
    if args.list or args.name == "list":
        width = max(map(len, benches))
        for name, (_script, summary) in benches.items():
            print(f"{name:{width}s}  {summary}")
        return 0
    if args.name not in benches:
        print(
            f"roadwatch: no benchmark {args.name!r}; there are: {', '.join(benches)}",
            file=sys.stderr,
        )
        return 2
    script = benches[args.name][0]
    # A child process, as the scripts run on their own (`python bench/bench_x.py …`): they
    # start brokers and workers of their own and must not share this process's state.
    return subprocess.call([sys.executable, str(script), *args.args], cwd=BENCH_DIR.parent)


def _positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number above 0 (a rate of 0 would publish without any pause)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roadwatch", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="everything in one process (web, live feed, MQTT ingest)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument(
        "--simulate", type=int, metavar="N", default=0, help="also run N simulated road chiefs"
    )
    s.add_argument(
        "--rate", type=_positive(float), default=5.0, help="simulated reports per second"
    )
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="MQTT ingest only (live events via ROADWATCH_SOCKETIO_QUEUE)")
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("db", help="database schema")
    dsub = d.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("upgrade", help="apply migrations")
    du.add_argument("revision", nargs="?", default="head")
    du.set_defaults(func=cmd_db_upgrade)

    n = sub.add_parser("network", help="segment networks")
    nsub = n.add_subparsers(dest="network_command", required=True)
    ng = nsub.add_parser("generate", help="(re)generate the bundled Zhengzhou demo network")
    ng.add_argument("--out", help="output file (default: the bundled demo file)")
    ng.add_argument("--seed", type=int, default=20180501)
    ng.add_argument("--segments", type=int, default=2495)
    ng.set_defaults(func=cmd_network_generate)
    nimp = nsub.add_parser(
        "import",
        help="a city's segment layer (GeoJSON, GeoPackage, Shapefile, FlatGeobuf; any CRS) "
        "or an OpenStreetMap .osm.pbf cut into segments",
    )
    nimp.add_argument("file")
    nimp.add_argument("--out", help="network file to write (default var/networks/NAME.geojson.gz)")
    nimp.add_argument(
        "--apply", action="store_true", help="also write it into the database now (history is kept)"
    )
    nimp.add_argument(
        "--bounds",
        help="minLon,minLat,maxLon,maxLat of the city "
        "(default: ROADWATCH_CITY_BOUNDS; '' for no check)",
    )
    nimp.add_argument("--layer", help="layer name in a multi-layer file")
    nimp.add_argument("--mapping", help="TOML file with a [fields] table naming the attributes")
    for attr in (
        "id",
        "name",
        "road",
        "from",
        "to",
        "district",
        "chief",
        "chief-name",
        "road-class",
    ):
        nimp.add_argument(
            f"--{attr}-field",
            metavar="ATTR",
            help=f"the attribute holding the segment's {attr.replace('-', ' ')}",
        )
    nimp.add_argument(
        "--crs",
        help="the coordinate system the layer was drawn in, when the file does not say or says "
        "wrong (a GeoJSON always says WGS84): an EPSG code such as EPSG:4547, or GCJ02 "
        "(Amap, Tencent) / BD09 (Baidu)",
    )
    nimp.add_argument(
        "--districts",
        help="district polygons (fields code or adcode, and name; a bare JSON array of "
        "GeoJSON features, as DataV/GeoAtlas writes them, is read too)",
    )
    nimp.add_argument("--districts-crs", help="the district layer's CRS (default: --crs)")
    nimp.add_argument(
        "--min-length", type=float, default=80.0, help="OSM: merge pieces shorter than this (m)"
    )
    nimp.add_argument("--target-count", type=int, help="OSM: aim at this many segments")
    nimp.add_argument("--id-prefix", default="SEG", help="OSM: prefix of new segment ids")
    nimp.add_argument(
        "--separate-carriageways",
        action="store_true",
        help="OSM: keep the two carriageways of a dual carriageway as separate segments",
    )
    nimp.set_defaults(func=cmd_network_import)
    ni = nsub.add_parser("info", help="counts of a network file (default: the configured one)")
    ni.add_argument("path", nargs="?")
    ni.set_defaults(func=cmd_network_info)

    c = sub.add_parser("chiefs", help="road chiefs, partner units and merchants")
    csub = c.add_subparsers(dest="chiefs_command", required=True)
    ci = csub.add_parser(
        "import",
        help="dated assignments from CSV/XLSX (columns: segment_id, person_id, person_name, "
        "role, level, valid_from, valid_to, from_chainage_m, to_chainage_m, title)",
    )
    ci.add_argument("file")
    ci.set_defaults(func=cmd_chiefs_import)
    cp = csub.add_parser(
        "provision",
        help="phone-app and broker accounts: passwords for new chiefs (shown once), "
        "the Mosquitto password file and ACL",
    )
    cp.add_argument("--passwd", metavar="FILE", help="write the Mosquitto password file")
    cp.add_argument("--acl", metavar="FILE", help="write the Mosquitto ACL file")
    cp.add_argument("--export", metavar="CSV", help="write new passwords here instead of stdout")
    cp.add_argument("--only", nargs="+", metavar="ID", help="only these reporters")
    cp.add_argument("--reset", nargs="+", metavar="ID", help="give these chiefs new passwords")
    cp.add_argument("--reset-all", action="store_true", help="new passwords for everyone")
    cp.set_defaults(func=cmd_chiefs_provision)
    cd = csub.add_parser(
        "devices", help="the phones chiefs are signed in on: list them, revoke them"
    )
    cdsub = cd.add_subparsers(dest="devices_command", required=True)
    cdl = cdsub.add_parser("list", help="active devices (with --all, revoked ones too)")
    cdl.add_argument("--chief", metavar="ID", help="only this chief's devices")
    cdl.add_argument("--all", action="store_true", help="show revoked devices too")
    cdl.set_defaults(func=cmd_chiefs_devices_list)
    cdr = cdsub.add_parser("revoke", help="revoke devices (a lost phone) at once")
    cdr.add_argument("device", nargs="*", help="device ids (from `chiefs devices list`)")
    cdr.add_argument("--chief", metavar="ID", help="every device of this chief")
    cdr.set_defaults(func=cmd_chiefs_devices_revoke)

    r = sub.add_parser(
        "reporters",
        help="reporters holding no segment: evaluators (第三方测评), covert checks (暗访)",
    )
    rsub = r.add_subparsers(dest="reporters_command", required=True)
    ra = rsub.add_parser(
        "add",
        help="add a reporter or change its kind (the ranking weighs evaluator and covert "
        "findings more: formula [sources])",
    )
    ra.add_argument("id", help="the reporter id (its MQTT username and topic level)")
    ra.add_argument("--kind", required=True, choices=list(KINDS))
    ra.add_argument("--name", help="display name")
    ra.set_defaults(func=cmd_reporters_add)
    rl = rsub.add_parser("list", help="list reporters")
    rl.add_argument("--kind", choices=list(KINDS))
    rl.set_defaults(func=cmd_reporters_list)
    for verb, words in (
        ("disable", "refuse this reporter's messages on every transport (MQTT, HTTP)"),
        ("enable", "accept this reporter's messages again"),
    ):
        rd = rsub.add_parser(verb, help=words)
        rd.add_argument("id", help="the reporter id")
        rd.set_defaults(func=cmd_reporters_disable)

    k = sub.add_parser(
        "apikeys",
        help="API keys for HTTP intake (POST /api/reports, /api/photos): one reporter each",
    )
    ksub = k.add_subparsers(dest="apikeys_command", required=True)
    ka = ksub.add_parser("add", help="a new key (printed once) for one reporter or city system")
    who = ka.add_mutually_exclusive_group(required=True)
    who.add_argument("--reporter", metavar="ID", help="a registered reporter the key files as")
    who.add_argument(
        "--system",
        metavar="NAME",
        help="a city system: registered as a reporter of kind system, the key files as it",
    )
    ka.add_argument("--label", help="what the key is for (shown by list)")
    ka.set_defaults(func=cmd_apikeys_add)
    kl = ksub.add_parser("list", help="list keys (never the keys themselves)")
    kl.add_argument("--all", action="store_true", help="revoked keys too")
    kl.set_defaults(func=cmd_apikeys_list)
    kr = ksub.add_parser("revoke", help="revoke a key for good")
    kr.add_argument("id", type=int, help="the key's number (from list)")
    kr.set_defaults(func=cmd_apikeys_revoke)

    u = sub.add_parser("users", help="command-centre staff accounts")
    usub = u.add_subparsers(dest="users_command", required=True)
    ua = usub.add_parser("add", help="add a staff account (the password is asked for)")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=["viewer", "district_staff", "admin"])
    ua.add_argument("--district", help="district code (required for district_staff)")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    ua.set_defaults(func=cmd_users_add)
    up = usub.add_parser("passwd", help="set a staff account's password")
    up.add_argument("name")
    up.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    up.set_defaults(func=cmd_users_passwd)
    ur = usub.add_parser("role", help="change a staff account's role (and district)")
    ur.add_argument("name")
    ur.add_argument("--role", required=True, choices=["viewer", "district_staff", "admin"])
    ur.add_argument("--district", help="district code (required for district_staff)")
    ur.set_defaults(func=cmd_users_role)
    for verb in ("disable", "enable"):
        uv = usub.add_parser(verb, help=f"{verb} a staff account (kept, with its history)")
        uv.add_argument("name")
        uv.set_defaults(func=cmd_users_active)
    usub.add_parser("list", help="list staff accounts").set_defaults(func=cmd_users_list)

    m = sub.add_parser("simulate", help="simulated road chiefs publishing reports over MQTT")
    m.add_argument("--chiefs", type=_positive(int), default=50)
    m.add_argument("--rate", type=_positive(float), default=5.0, help="reports per second in total")
    m.add_argument("--duration", type=_positive(float), help="seconds (default: until Ctrl-C)")
    m.add_argument("--count", type=_positive(int), help="stop after this many messages")
    m.add_argument("--seed", type=int)
    m.add_argument(
        "--bad-share", type=_share, default=0.02, help="share of malformed messages (0 to 1)"
    )
    m.set_defaults(func=cmd_simulate)

    rk = sub.add_parser("rank", help="weekly red and black flags (红黑旗): draft, publish, verify")
    rk.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: the last closed week)")
    rk.add_argument("--publish", action="store_true", help="freeze and publish the week (once)")
    rk.add_argument("--formula", help="formula file (default: ROADWATCH_RANKING_FORMULA or v1)")
    rk.add_argument("--what-if", metavar="FILE", help="compare with another formula version")
    rk.add_argument("--verify", action="store_true", help="check a published week's hashes")
    rk.add_argument("--json", action="store_true", help="print the full content as JSON")
    rk.add_argument(
        "--by", help="who publishes (kept in the ranking; default cli:<os user>, as audited)"
    )
    rk.set_defaults(func=cmd_rank)

    from .demo.cli import add_parser as add_demo_parser

    add_demo_parser(sub)

    b = sub.add_parser(
        "bench",
        help="run a benchmark script of the repository (bench/): ingest, snap, rank, …",
        description="Runs bench/bench_NAME.py with the arguments that follow it, e.g. "
        "`roadwatch bench ingest --count 5000`, `roadwatch bench rank --help`; "
        "`roadwatch bench --list` names them all.",
    )
    b.add_argument("name", nargs="?", default="ingest", help="which benchmark (default: ingest)")
    b.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the script")
    b.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    b.set_defaults(func=cmd_bench)

    from .backup import add_commands as add_backup_commands

    add_backup_commands(sub)  # roadwatch backup OUT / roadwatch restore DIR
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"roadwatch: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"roadwatch: {exc}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(
            f"roadwatch: cannot use the database (ROADWATCH_DATABASE_URL): {reason}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
