"""`roadwatch web`: the web role under gunicorn (docs/deploy.md, "The web role").

The production server of the web app and Socket.IO: gunicorn's threaded worker (`gthread`),
which is what Flask-SocketIO documents for `async_mode="threading"`, ONE worker per process
(a browser's Socket.IO session lives in one process), with the project's gunicorn settings
(config/deploy/gunicorn.conf.py). No MQTT session, no case jobs, no ranking schedule: those
are `roadwatch worker` and the jobs role. `roadwatch serve` (Werkzeug's development server,
everything in one process) stays for run.sh and the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..settings import PACKAGED_CONFIG_DIR
from .common import Positive, settings_for, setup_logging
from .serve import check_listen, check_photo_dir

GUNICORN_CONF = PACKAGED_CONFIG_DIR / "deploy" / "gunicorn.conf.py"


def gunicorn_app(bind: str, threads: int | None, conf: Path = GUNICORN_CONF) -> Any:
    """A gunicorn application serving roadwatch.web.wsgi:app with the project's settings."""
    from gunicorn.app.base import Application

    class WebRole(Application):
        def init(self, parser: Any, opts: Any, args: Any) -> None:
            return None

        def load_config(self) -> None:
            # The project's file, then what the command line says; never sys.argv (click's).
            self.load_config_from_file(str(conf))
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", 1)  # one per process, whatever a local file says
            if threads:
                self.cfg.set("threads", threads)

        def load(self) -> Any:
            from ..web import wsgi

            return wsgi.app

    return WebRole(usage=None, prog="roadwatch web")


@click.command(help="the web role under gunicorn (one threaded worker; no MQTT, no jobs)")
@click.option("--host", help="address to listen on [ROADWATCH_HOST]")
@click.option("--port", type=int, help="port to listen on [ROADWATCH_PORT]")
@click.option(
    "--threads",
    type=Positive(int),
    help="threads of the worker: open WebSockets plus requests [ROADWATCH_WEB_THREADS, 100]",
)
def web(host: str | None, port: int | None, threads: int | None) -> int:
    settings = settings_for(host=host, port=port)
    setup_logging(settings.log_level)
    check_photo_dir(settings)
    check_listen(settings)
    address = f"[{settings.host}]" if ":" in settings.host else settings.host
    # gunicorn's arbiter exits the process itself (0 after a clean SIGTERM).
    gunicorn_app(f"{address}:{settings.port}", threads).run()
    return 0
