"""`roadwatch chiefs import | provision | devices`: road chiefs, partner units, merchants."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import CommandError, Many, ProgressBar, database, settings_for, setup_logging


@click.group(help="road chiefs, partner units and merchants")
def chiefs() -> None:
    pass


@chiefs.command(
    "import",
    help="dated assignments from CSV/XLSX (columns: segment_id, person_id, person_name, "
    "role, level, valid_from, valid_to, from_chainage_m, to_chainage_m, title, phone)",
)
@click.argument("file")
def import_(file: str) -> int:
    settings = settings_for()
    setup_logging("WARNING")
    from sqlalchemy import select

    from ..network.responsibility import AssignmentImportError, apply_assignments, read_assignments
    from ..store import db, models

    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    made = db.make_sessionmaker(engine)
    with made() as session:
        known = set(
            session.scalars(select(models.Segment.id).where(models.Segment.retired_at.is_(None)))
        )
    if not known:
        raise CommandError(
            "the database has no segments yet; run `roadwatch serve` or "
            "`roadwatch network import` first"
        )
    try:
        rows = read_assignments(Path(file), known, settings.tz)
    except AssignmentImportError as exc:
        raise CommandError(f"{file}: {exc}") from None
    try:
        with made.begin() as session:
            summary = apply_assignments(session, rows)
    except AssignmentImportError as exc:  # a phone number another person already has
        raise CommandError(f"{file}: {exc}") from None
    print(
        f"imported {summary.opened} assignments from {file}: "
        f"{summary.closed} earlier assignments closed, {summary.people_added} people added"
    )
    return 0


@chiefs.command(
    help="phone-app and broker accounts: passwords for new chiefs (shown once), "
    "the Mosquitto password file and ACL"
)
@click.option("--passwd", metavar="FILE", help="write the Mosquitto password file")
@click.option("--acl", metavar="FILE", help="write the Mosquitto ACL file")
@click.option("--export", metavar="CSV", help="write new passwords here instead of stdout")
@click.option("--only", cls=Many, metavar="ID...", help="only these reporters")
@click.option("--reset", cls=Many, metavar="ID...", help="give these chiefs new passwords")
@click.option("--reset-all", is_flag=True, help="new passwords for everyone")
def provision(
    passwd: str | None,
    acl: str | None,
    export: str | None,
    only: tuple[str, ...],
    reset: tuple[str, ...],
    reset_all: bool,
) -> int:
    """Accounts for the phone app and the broker; new passwords are shown once."""
    settings = settings_for()
    setup_logging("WARNING")
    from ..accounts import chiefs as ca
    from ..store import db, models

    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    made = db.make_sessionmaker(engine)
    to_reset = list(reset)
    try:
        with made.begin() as session:
            if reset_all:
                to_reset = list(ca.passwd_lines(session))
            result = ca.provision(session, only=only, reset=to_reset, progress=ProgressBar())
            hashes = ca.passwd_lines(session)
            names = {r.id: r.name for r in session.query(models.Reporter)}
    except LookupError as exc:
        raise CommandError(f"{exc}") from None
    finally:
        engine.dispose()
    platform_user = settings.mqtt_username or settings.mqtt_client_id
    if passwd:
        path = Path(passwd)
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
    if acl:
        ca.write_private(Path(acl), ca.render_acl(settings.mqtt_topic_root, platform_user))
        print(f"wrote {acl} (platform user {platform_user!r}, root {settings.mqtt_topic_root})")
    new = {**result.created, **result.reset}
    for rid in result.skipped:
        print(f"skipped {rid}: not usable as an MQTT username (letters, digits, . _ - only)")
    if export:
        ca.export_csv(Path(export), new, names)
        print(
            f"wrote {len(new)} new passwords to {export} (mode 0600): hand them out, then delete it"
        )
    elif new:
        print("reporter_id,name,password  (shown once: hand them out now)")
        for rid, pw in sorted(new.items()):
            print(f"{rid},{names.get(rid, '')},{pw}")
    print(
        f"{len(result.created)} accounts created, {len(result.reset)} passwords reset, "
        f"{result.total} accounts in all"
    )
    if (passwd or acl) and new:
        print("reload the broker to apply: systemctl reload mosquitto (SIGHUP)")
    return 0


@chiefs.group(help="the phones chiefs are signed in on: list them, revoke them")
def devices() -> None:
    pass


@devices.command("list", help="active devices (with --all, revoked ones too)")
@click.option("--chief", metavar="ID", help="only this chief's devices")
@click.option("--all", "show_all", is_flag=True, help="show revoked devices too")
def list_(chief: str | None, show_all: bool) -> int:
    """The phones chiefs are signed in on (their device credentials), newest last."""
    from ..accounts import chiefs as ca

    settings = settings_for()
    tz = settings.tz
    with database() as made, made() as session:
        found = ca.list_devices(session, chief, include_revoked=show_all)
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
            for d in found
        ]
    if not rows:
        print("no devices" if show_all else "no active devices")
        return 0
    print("device        chief                    signed in         last seen         state")
    for did, rid, signed, seen, state, ua in rows:
        print(f"{did:<13s} {rid:<24s} {signed:<17s} {seen:<17s} {state}  {ua}")
    return 0


@devices.command(help="revoke devices (a lost phone) at once")
@click.argument("device", nargs=-1)
@click.option("--chief", metavar="ID", help="every device of this chief")
def revoke(device: tuple[str, ...], chief: str | None) -> int:
    """Revoke devices at once: their next request is refused and the app asks to sign in."""
    from ..accounts import chiefs as ca
    from ..store import models
    from ..store.audit import cli_actor, record

    if not device and not chief:
        raise CommandError("name a device id or --chief ID") from None
    with database() as made, made.begin() as session:
        # A mistyped id would revoke nothing and look done: the lost phone stays signed in.
        if chief and session.get(models.Reporter, chief) is None:
            raise CommandError(f"no such reporter: {chief}")
        done: list[str] = []
        for did in device or ():
            got = ca.revoke_devices(session, None, "admin", device_id=did)
            if not got:
                print(f"roadwatch: no active device {did}", file=sys.stderr)
            done += got
        if chief:
            done += ca.revoke_devices(session, chief, "admin")
        if done:
            record(session, cli_actor(), "chief.device_revoke", chief, devices=done)
    print(f"{len(done)} devices revoked" + (f": {', '.join(done)}" if done else ""))
    return 0 if done or chief else 1


@chiefs.command(
    help="duty hours for patrol plans: `duty ID 'mon-fri 08:00-18:00; sat 09:00-12:00'` "
    "sets, `duty ID --clear` clears (default Mon–Fri 08–18), `duty --file CSV` imports "
    "(columns reporter_id, duty_hours), `duty` lists"
)
@click.argument("chief", required=False)
@click.argument("spec", required=False)
@click.option("--clear", is_flag=True, help="back to the default hours")
@click.option("--file", "file", metavar="CSV", help="import reporter_id,duty_hours rows")
def duty(chief: str | None, spec: str | None, clear: bool, file: str | None) -> int:
    """A chief's duty hours, the windows their weekly patrol plan may use."""
    import csv

    from sqlalchemy import select

    from ..recurrence import duty as hours
    from ..store import models
    from ..store.audit import cli_actor, record

    rows: list[tuple[str, str | None]] = []
    if file:
        with open(file, encoding="utf-8-sig", newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                rid, text = (row.get("reporter_id") or "").strip(), row.get("duty_hours") or ""
                if not rid:
                    raise CommandError(f"{file}:{n}: no reporter_id")
                rows.append((rid, text.strip() or None))
    elif chief:
        if not clear and not spec:
            raise CommandError("give the hours, e.g. 'mon-fri 08:00-18:00', or --clear")
        rows.append((chief, None if clear else spec))
    with database() as made, made.begin() as session:
        for rid, text in rows:
            try:
                hours.store(session, rid, text, models.utcnow())
            except hours.DutyError as exc:
                raise CommandError(f"{rid}: {exc}") from None
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            record(session, cli_actor(), "chief.duty_hours", rid, spec=text)
        if not rows:
            for r in session.scalars(select(models.ChiefDutyHours)):
                print(f"{r.reporter_id}\t{r.spec}")
            print(f"(others: {hours.DEFAULT_SPEC})")
            return 0
    print(f"duty hours set for {len(rows)} chiefs")
    return 0
