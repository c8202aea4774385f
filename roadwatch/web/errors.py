"""JSON errors for the API: `{"errors": [{"field", "code", "message"}]}`, never a stack trace.

A page opened in a browser (a GET outside the API that asks for HTML: /rankings/<week>,
/leaders/route?segments=, /reviews/<month>…) gets the same message as a short HTML page
instead of the raw JSON."""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..store.db import is_outage, outage_cause

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, field: str, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.field, self.code, self.message = status, field, code, message
        self.retry_after = retry_after


def error_response(
    status: int, field: str, code: str, message: str, retry_after: float | None = None
) -> tuple[Response, int]:
    res = jsonify({"errors": [{"field": field, "code": code, "message": message}]})
    if retry_after is not None:  # seconds, as HTTP wants them (429 and 503)
        res.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return res, status


_API_PATHS = ("/api/", "/m/api/", "/open311/", "/healthz")
_HEADINGS = {400: "请求有误", 403: "无权查看", 404: "没有找到", 409: "无法完成", 422: "请求有误"}


def _wants_page() -> bool:
    """A browser opening a page (not a script calling the API)."""
    if request.method not in ("GET", "HEAD") or request.path.startswith(_API_PATHS):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def register(app: Flask) -> None:
    @app.before_request
    def _no_nul() -> None:
        """A NUL in a query or path is no text any database compares (PostgreSQL refuses it)."""
        if not request.path.startswith(("/api/", "/m/api/")) and "\x00" not in request.path:
            return
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                field = name.replace("\x00", "") or "query"
                raise ApiError(400, field, "invalid", f"{field} contains a NUL character")
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str) and "\x00" in value:
                raise ApiError(404, name, "not_found", f"no {name} with a NUL character")
        if "\x00" in request.path:
            raise ApiError(404, "request", "not_found", "no such path")

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        if _wants_page() and exc.retry_after is None:
            heading = _HEADINGS.get(exc.status, "无法显示此页")
            html = render_template("error.html", heading=heading, message=exc.message)
            return Response(html, mimetype="text/html"), exc.status
        return error_response(exc.status, exc.field, exc.code, exc.message, exc.retry_after)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int] | HTTPException:
        if not request.path.startswith(_API_PATHS):
            return exc
        if exc.code == 413 and request.path.endswith("/api/photos"):
            limit = current_app.extensions["roadwatch"].settings.max_photo_bytes
            return error_response(
                413, "photo", "too_large", f"the photo is larger than {limit:,} bytes"
            )
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, "request", code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        if is_outage(exc):  # the database is down, restarting or at its connection limit
            words = outage_cause(exc)
            log.error(
                "%s %s: the database is unavailable (%s)", request.method, request.path, words
            )
            return error_response(
                503, "server", "unavailable", "the database is unavailable; retry", retry_after=5
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "server", "internal_error", "the server failed; it is logged")
