"""`roadwatch users add | passwd | role | disable | enable | list`: command-centre staff."""

from __future__ import annotations

import sys

import click

from .common import CommandError, database

ROLES = click.Choice(["viewer", "district_staff", "admin"])
password_stdin = click.option("--password-stdin", is_flag=True, help="read the password from stdin")


@click.group(help="command-centre staff accounts")
def users() -> None:
    pass


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ", code=1)
    return first


@users.command(help="add a staff account (the password is asked for)")
@click.argument("name")
@click.option("--role", required=True, type=ROLES)
@click.option("--district", help="district code (required for district_staff)")
@password_stdin
def add(name: str, role: str, district: str | None, password_stdin: bool) -> int:
    from sqlalchemy import select

    from ..accounts.users import UserError, add_user
    from ..store import models
    from ..store.audit import cli_actor

    password = _read_password(password_stdin)
    try:
        with database() as made, made.begin() as session:
            known = set(session.scalars(select(models.District.code))) or None
            user = add_user(session, name, password, role, district, known, cli_actor())
    except UserError as exc:
        raise CommandError(f"{exc}") from None
    where = f" for district {user.district}" if user.district else ""
    print(f"added {user.username} ({user.role}{where})")
    return 0


@users.command(help="set a staff account's password")
@click.argument("name")
@password_stdin
def passwd(name: str, password_stdin: bool) -> int:
    from ..accounts.users import UserError, set_password
    from ..store.audit import cli_actor

    password = _read_password(password_stdin)
    try:
        with database() as made, made.begin() as session:
            set_password(session, name, password, cli_actor())
    except UserError as exc:
        raise CommandError(f"{exc}") from None
    print(f"password of {name} changed")
    return 0


@users.command(help="change a staff account's role (and district)")
@click.argument("name")
@click.option("--role", required=True, type=ROLES)
@click.option("--district", help="district code (required for district_staff)")
def role(name: str, role: str, district: str | None) -> int:
    from sqlalchemy import select

    from ..accounts.users import UserError, set_role
    from ..store import models
    from ..store.audit import cli_actor

    try:
        with database() as made, made.begin() as session:
            known = set(session.scalars(select(models.District.code))) or None
            user = set_role(session, name, role, district, known, cli_actor())
    except UserError as exc:
        raise CommandError(f"{exc}") from None
    where = f" for district {user.district}" if user.district else ""
    print(f"{user.username} is now {user.role}{where}")
    return 0


@users.command(help="disable a staff account (kept, with its history)")
@click.argument("name")
def disable(name: str) -> int:
    return _set_active(name, False)


@users.command(help="enable a staff account (kept, with its history)")
@click.argument("name")
def enable(name: str) -> int:
    return _set_active(name, True)


def _set_active(name: str, active: bool) -> int:
    from ..accounts.users import UserError, set_active
    from ..store.audit import cli_actor

    try:
        with database() as made, made.begin() as session:
            set_active(session, name, active, cli_actor())
    except UserError as exc:
        raise CommandError(f"{exc}") from None
    print(f"{name} {'enabled' if active else 'disabled'}")
    return 0


@users.command("list", help="list staff accounts")
def list_() -> int:
    from ..accounts.users import list_users

    with database() as made, made() as session:
        for u in list_users(session):
            state = "" if u.active else "  (disabled)"
            print(f"{u.username:<24s} {u.role:<15s} {u.district or '-':<6s}{state}")
    return 0
