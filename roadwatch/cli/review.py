"""`roadwatch review`: the monthly review pack (月讲评): draft, publish, verify, PDF, XLSX."""

from __future__ import annotations

import click

from .common import CommandError, settings_for, setup_logging


@click.command(help="the monthly review pack (月讲评): draft, publish, verify, PDF and XLSX")
@click.option("--month", "month_text", required=True, help="the month, e.g. 2026-11")
@click.option("--publish", is_flag=True, help="freeze and publish the month (once)")
@click.option("--verify", is_flag=True, help="check a published month's hashes")
@click.option("--pdf", "pdf_file", metavar="FILE", help="write the pack as PDF")
@click.option("--xlsx", "xlsx_file", metavar="FILE", help="write the pack as XLSX")
@click.option("--json", "as_json", is_flag=True, help="print the full content as JSON")
@click.option("--by", help="who publishes (default cli:<os user>, as audited)")
def review(
    month_text: str,
    publish: bool,
    verify: bool,
    pdf_file: str | None,
    xlsx_file: str | None,
    as_json: bool,
    by: str | None,
) -> int:
    from pathlib import Path

    from ..monthly import pack, render
    from ..ranking.publish import canonical
    from ..store import db, models
    from ..store.audit import cli_actor

    settings = settings_for()
    setup_logging("WARNING")
    try:
        month = pack.Month.parse(month_text, settings.tz)
    except pack.ReviewError as exc:
        raise CommandError(f"{exc}") from None
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    try:
        if verify:
            problems = pack.verify(engine, month)
            print(
                f"{month.label}: "
                + ("verified: content and chain agree" if not problems else "FAILED")
            )
            for p in problems:
                print(f"  - {p}")
            return 1 if problems else 0
        if publish:
            done = pack.publish(
                engine,
                month,
                by=by or cli_actor().name,
                now=models.utcnow(),
                contest_hours=settings.ranking_contest_hours,
            )
            state = "published" if done.created else "was already published"
            print(f"{month.label} {state}: sha256 {done.content_sha256}, chain {done.chain_sha256}")
        content, meta = pack.load(engine, month)
    except pack.ReviewError as exc:
        raise CommandError(f"{exc}") from None
    finally:
        engine.dispose()
    if pdf_file:
        Path(pdf_file).write_bytes(render.pdf(content, meta, settings.photo_dir))
    if xlsx_file:
        from ..web.spreadsheet import xlsx_row

        Path(xlsx_file).write_bytes(render.xlsx(content, cells=xlsx_row))
    if as_json:
        print(canonical(content))
    elif not publish:
        state = "published" if meta["published"] else "draft"
        print(f"{month.label} ({state})")
        for row in render.rows(content):
            print("  " + " ".join("—" if v is None else str(v) for v in row))
    return 0
