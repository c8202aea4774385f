"""Road chiefs' accounts for the phone app and the broker (`roadwatch chiefs provision`).

A chief signs in to `/m/` over HTTP and then logs in to the broker (MQTT over WebSockets)
with the same id and password. The sign-in gives the phone a device credential (a random
token, kept here only as its SHA-256) that stands in for the password from then on: the
app never stores the password, and a device is revoked on sign-out, on a password reset
and by an admin (`roadwatch chiefs devices`). One hash serves both: Mosquitto's own `$7$` format
(PBKDF2-SHA512, `$7$<iterations>$<base64 salt>$<base64 hash>`, what `mosquitto_passwd`
writes), so the broker's password file is rendered from the database and never needs the
plain passwords. These accounts are separate from the command centre's staff users.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..settings import CONFIG_DIR
from ..store import models

# Mosquitto verifies the hash on every CONNECT in its single thread, so this is a trade:
# mosquitto_passwd's 101 is far too weak for a password file that may leak, and 10,000
# costs about 5 ms per (re)connect, i.e. seconds, not minutes, for a city-wide reconnect.
ITERATIONS = 10_000
SALT_BYTES = 12  # as mosquitto_passwd
# Ids become MQTT usernames and are substituted into the ACL's %u: no topic syntax.
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
ACL_TEMPLATE = CONFIG_DIR / "deploy" / "mosquitto" / "acl.template"
# Unambiguous letters and digits (no 0/O, 1/l/I): read aloud or typed on a phone.
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_password(length: int = 12) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches a `$7$` hash; False for anything malformed."""
    try:
        _, kind, iterations, salt, digest = stored.split("$")
        if kind != "7" or not 1 <= int(iterations) <= 10_000_000:
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def login_id(session: Session, login: str) -> str:
    """The reporter id a sign-in names: the id itself, or the chief whose phone number
    (`chiefs import`, column `phone`) it is. An id wins over a number that is also an id."""
    if session.get(models.ChiefAccount, login) is not None:
        return login
    from ..network.responsibility import normalise_phone

    phone = normalise_phone(login)
    if phone is None:
        return login
    rid = session.scalar(select(models.Reporter.id).where(models.Reporter.phone == phone))
    return rid or login


def authenticate(session: Session, reporter_id: str, password: str) -> models.Reporter | None:
    account = session.get(models.ChiefAccount, reporter_id)
    if account is None or account.disabled:
        # Spend the same time as a real check, so timing does not reveal who has an account.
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, account.password_hash):
        return None
    return session.get(models.Reporter, reporter_id)


_DUMMY_HASH = hash_password(secrets.token_hex(8))


@dataclass(frozen=True)
class Provisioned:
    created: dict[str, str]  # reporter id -> initial password (shown once)
    reset: dict[str, str]
    skipped: list[str]  # ids that cannot be MQTT usernames
    total: int  # accounts in the database afterwards


def provision(
    session: Session,
    *,
    only: Sequence[str] = (),
    reset: Iterable[str] = (),
    now: dt.datetime | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Provisioned:
    """Give every person who reports (kinds person, evaluator, covert; or just `only`) an
    account if they lack one.

    Existing passwords are kept unless their id is in `reset`. Returns the new plain
    passwords: they exist nowhere else, so the caller must hand them out now. Each new
    password is a slow hash (milliseconds): `progress(stage, done, total)` is told as it goes.
    """
    now = now or models.utcnow()
    reset = set(reset)
    q = select(models.Reporter)
    if only:
        q = q.where(models.Reporter.id.in_(list(only)))
    else:
        q = q.where(models.Reporter.kind.in_(("person", "evaluator", "covert")))
    people = {r.id: r for r in session.scalars(q)}
    unknown = [i for i in [*only, *reset] if i not in people]
    if unknown:
        raise LookupError("no such reporter: " + ", ".join(sorted(set(unknown))))
    accounts = {a.reporter_id: a for a in session.scalars(select(models.ChiefAccount))}
    created: dict[str, str] = {}
    was_reset: dict[str, str] = {}
    skipped: list[str] = []
    for done, rid in enumerate(sorted(people)):
        if progress is not None:
            progress("accounts", done, len(people))
        if not USERNAME.match(rid):
            skipped.append(rid)
            continue
        account = accounts.get(rid)
        if account is None:
            created[rid] = password = new_password()
            session.add(
                models.ChiefAccount(
                    reporter_id=rid,
                    password_hash=hash_password(password),
                    created_at=now,
                    password_set_at=now,
                    disabled=False,
                )
            )
        elif rid in reset:
            was_reset[rid] = password = new_password()
            account.password_hash = hash_password(password)
            account.password_set_at = now
            revoke_devices(session, rid, "password_reset", now=now)
    if progress is not None and people:
        progress("accounts", len(people), len(people))
    session.flush()
    total = len(accounts) + len(created)
    return Provisioned(created, was_reset, skipped, total)


def passwd_lines(session: Session) -> dict[str, str]:
    """username -> `$7$` hash of every enabled chief account."""
    q = select(models.ChiefAccount).where(models.ChiefAccount.disabled.is_(False))
    return {a.reporter_id: a.password_hash for a in session.scalars(q)}


def render_passwd(
    chiefs: dict[str, str], existing: str = "", platform: dict[str, str] | None = None
) -> str:
    """A Mosquitto password file: the chiefs, plus users of `existing` that are not chiefs.

    Keeping the other users (the platform, monitoring…) means re-running provision for new
    chiefs never locks the platform out of its own broker.
    """
    users: dict[str, str] = {}
    for line in existing.splitlines():
        name, sep, value = line.strip().partition(":")
        if sep and name and not name.startswith("#"):
            users[name] = value
    users.update(platform or {})
    users.update(chiefs)
    return "".join(f"{name}:{value}\n" for name, value in sorted(users.items()))


def render_acl(topic_root: str, platform_user: str, template: str | None = None) -> str:
    """The ACL template with the configured topic root and the platform's username."""
    text = ACL_TEMPLATE.read_text(encoding="utf-8") if template is None else template
    text = text.replace("user roadwatch-platform", f"user {platform_user}")
    return text.replace("roadwatch/v1/", f"{topic_root}/")


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 (hashes and passwords are secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_csv(path: Path, passwords: dict[str, str], names: dict[str, str]) -> None:
    rows = [["reporter_id", "name", "password"]]
    rows += [[rid, names.get(rid, ""), pw] for rid, pw in sorted(passwords.items())]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    write_private(path, buf.getvalue())


# -- devices: the phone's credential instead of the password ---------------------------
TOKEN_BYTES = 32  # 256 bits from secrets: no slow hash is needed to keep it safe at rest


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue_device(
    session: Session, reporter_id: str, user_agent: str | None, now: dt.datetime | None = None
) -> tuple[models.ChiefDevice, str]:
    """A new device for a chief who just proved their password; returns it and its token.

    The token is shown to the phone once; only its hash is stored.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    device = models.ChiefDevice(
        id=secrets.token_hex(6),
        reporter_id=reporter_id,
        token_hash=token_hash(token),
        created_at=now or models.utcnow(),
        last_seen_at=now or models.utcnow(),
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(device)
    session.flush()
    return device, token


def device_for(session: Session, token: str) -> models.ChiefDevice | None:
    """The live device of this token: not revoked, its chief's account enabled, and made
    after the chief's password was last set (so no reset path can leave one alive)."""
    if not token or len(token) > 200:
        return None
    device = session.scalars(
        select(models.ChiefDevice).where(models.ChiefDevice.token_hash == token_hash(token))
    ).first()
    if device is None or device.revoked_at is not None:
        return None
    account = session.get(models.ChiefAccount, device.reporter_id)
    if account is None or account.disabled or device.created_at < account.password_set_at:
        return None
    return device


def revoke_devices(
    session: Session,
    reporter_id: str | None = None,
    reason: str = "admin",
    *,
    device_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Revoke a chief's live devices (or the one `device_id`); returns the ids revoked."""
    q = select(models.ChiefDevice).where(models.ChiefDevice.revoked_at.is_(None))
    if reporter_id is not None:
        q = q.where(models.ChiefDevice.reporter_id == reporter_id)
    if device_id is not None:
        q = q.where(models.ChiefDevice.id == device_id)
    if reporter_id is None and device_id is None:
        raise ValueError("name a chief or a device")
    done = []
    for d in session.scalars(q):
        d.revoked_at = now or models.utcnow()
        d.revoked_reason = reason[:32]
        done.append(d.id)
    session.flush()
    return done


def list_devices(
    session: Session, reporter_id: str | None = None, *, include_revoked: bool = False
) -> list[models.ChiefDevice]:
    q = select(models.ChiefDevice)
    if reporter_id is not None:
        q = q.where(models.ChiefDevice.reporter_id == reporter_id)
    if not include_revoked:
        q = q.where(models.ChiefDevice.revoked_at.is_(None))
    return list(
        session.scalars(q.order_by(models.ChiefDevice.reporter_id, models.ChiefDevice.created_at))
    )
