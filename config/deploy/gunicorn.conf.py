"""gunicorn settings for the roadwatch web role (roadwatch.web.wsgi:app).

    gunicorn -c /etc/roadwatch/gunicorn.conf.py -b 127.0.0.1:8001 roadwatch.web.wsgi:app

Flask-SocketIO with async_mode="threading" (simple-websocket) is served by gunicorn's
threaded worker, as Flask-SocketIO's deployment notes say: ONE worker process (its
Socket.IO sessions live in that process; gunicorn's own balancing is not sticky), many
threads (every open WebSocket holds a thread for as long as the browser stays). More web
capacity = more of these single-worker processes on other ports behind nginx `ip_hash`
(config/deploy/nginx/roadwatch.conf), sharing ROADWATCH_SOCKETIO_QUEUE (Redis).
"""

import os

workers = 1  # never more: see above
worker_class = "gthread"
# One thread per open WebSocket (command-centre screens, phones' live view) plus the
# ordinary requests in flight. 100 per process; run another process rather than raise it
# far (the GIL is shared by all threads of the process).
threads = int(os.environ.get("ROADWATCH_WEB_THREADS", "100"))
# The bind address comes from the command line (-b 127.0.0.1:%i in the systemd unit).
# Behind nginx on the same host: loopback only. ROADWATCH_TRUSTED_PROXIES=1 then makes
# the app believe nginx's X-Forwarded-* headers (ProxyFix); gunicorn's own
# forwarded_allow_ips is left at its default (127.0.0.1) and does not matter for the app.
#
# SIGTERM (systemctl stop/restart): gunicorn stops accepting, lets requests finish for
# graceful_timeout seconds, then closes what is left. A WebSocket never "finishes": the
# browser reconnects (to another instance, through nginx) and resyncs from its last
# event number, so nothing shown is missing. Keep this below systemd's TimeoutStopSec.
graceful_timeout = 10
# Worker heartbeat; the threaded worker's main loop answers it while threads hold
# WebSockets, so long-lived connections do not trip it.
timeout = 60
keepalive = 5
# Logs to stderr, i.e. the journal under systemd. nginx writes the access log; set
# ROADWATCH_WEB_ACCESS_LOG=/var/log/roadwatch/web-access.log to have gunicorn's too
# (rotated by config/deploy/logrotate/roadwatch, which sends USR1 to reopen it).
errorlog = "-"
accesslog = os.environ.get("ROADWATCH_WEB_ACCESS_LOG") or None
loglevel = os.environ.get("ROADWATCH_LOG_LEVEL", "info").lower()
# Load the app in the worker, not the master: the master stays small and a failed
# start-up (schema behind the code, database down) is logged and retried by systemd.
preload_app = False
proc_name = "roadwatch-web"
# gunicorn >= 25.1 opens a control socket at $HOME/.gunicorn/gunicorn.ctl by default: the
# web instances of one host would fight over that one path. Not needed: systemd controls
# them. (Older gunicorns ignore this name.)
control_socket_disable = True


def worker_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Release the runtime (database pool, broadcaster, Redis listener) on the way out."""
    from roadwatch.web import wsgi

    wsgi.shutdown()
