"""`roadwatch rank`: weekly red and black flags (红黑旗): draft, publish, verify."""

from __future__ import annotations

import click

from .common import CommandError, settings_for, setup_logging


@click.command(help="weekly red and black flags (红黑旗): draft, publish, verify")
@click.option("--week", "week_text", help="ISO week, e.g. 2026-W47 (default: the last closed week)")
@click.option("--publish", is_flag=True, help="freeze and publish the week (once)")
@click.option(
    "--formula", "formula_file", help="formula file (default: ROADWATCH_RANKING_FORMULA or v1)"
)
@click.option("--what-if", metavar="FILE", help="compare with another formula version")
@click.option("--verify", is_flag=True, help="check a published week's hashes")
@click.option("--json", "as_json", is_flag=True, help="print the full content as JSON")
@click.option("--by", help="who publishes (kept in the ranking; default cli:<os user>, as audited)")
def rank(
    week_text: str | None,
    publish: bool,
    formula_file: str | None,
    what_if: str | None,
    verify: bool,
    as_json: bool,
    by: str | None,
) -> int:
    import json

    from sqlalchemy import func, select

    settings = settings_for()
    setup_logging("WARNING")
    from ..categories import load_categories
    from ..ranking import publish as pub
    from ..ranking.formula import FormulaError, load_formula
    from ..ranking.gather import snapshot
    from ..ranking.schedule import due_week
    from ..ranking.week import Week
    from ..store import db, models
    from ..store.audit import cli_actor

    tz = settings.tz
    codes = load_categories().codes
    try:
        asked = Week.parse(week_text, tz) if week_text else None
        formula = load_formula(formula_file or settings.ranking_formula or None, codes)
        other = load_formula(what_if, codes) if what_if else None
    except (ValueError, FormulaError) as exc:
        raise CommandError(f"{exc}") from None
    now = models.utcnow()
    week = asked or due_week(now, tz, settings.ranking_contest_hours)
    as_of = min(now, pub.default_as_of(week, settings.ranking_contest_hours))
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(models.Segment)).scalar_one() == 0:
            raise CommandError(
                "the database has no segments yet; run `roadwatch serve` or "
                "`roadwatch network import --apply` first"
            )
    try:
        if verify:
            v = pub.verify(engine, formula, week)
            print(f"{week}: " + ("verified: content, chain and events agree" if v.ok else "FAILED"))
            for problem in v.problems:
                print(f"  - {problem}")
            return 0 if v.ok else 1
        if other is not None:
            with snapshot(engine) as conn:  # both formulas over the same data
                diff = pub.what_if(conn, formula, other, week, as_of)
            if as_json:
                print(json.dumps(diff, ensure_ascii=False, indent=1))
                return 0
            print(
                f"{week}: {diff['base']} → {diff['other']}: {diff['rank_changes']} ranks move, "
                f"{len(diff['flag_changes'])} flags change"
            )
            for c in diff["flag_changes"]:
                print(f"  {c['kind']} {c['id']} {c['name']}: {c['flag'][0]} → {c['flag'][1]}")
            return 0
        if publish:
            actor = cli_actor()
            done = pub.publish(engine, formula, week, as_of, by or actor.name, now, None, actor)
            state = "published" if done.created else "was already published"
            print(f"{week} {state}: sha256 {done.content_sha256}, chain {done.chain_sha256}")
            if done.events and settings.socketio_queue:
                from flask_socketio import SocketIO

                from ..live.broadcast import Broadcaster

                Broadcaster(SocketIO(message_queue=settings.socketio_queue)).publish(done.events)
            return 0
        with snapshot(engine) as conn:  # one snapshot: figures and drill-downs agree
            content = pub.compute(conn, formula, week, as_of)
    except pub.RankingError as exc:
        raise CommandError(f"{exc}") from None
    finally:
        engine.dispose()
    if as_json:
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
