"""The live feed's log filter: a client that hangs up while being written to is one line
of INFO, not an ERROR with tracebacks; every other server error still gets through."""

from __future__ import annotations

import logging

import pytest

from roadwatch.web.live import _ClosedByClient

RENDERED = """Error on request:
Traceback (most recent call last):
  File "/x/simple_websocket/ws.py", line 78, in send
    raise ConnectionClosed(self.close_reason, self.close_message)
simple_websocket.errors.ConnectionClosed: Connection closed: 1005

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/x/engineio/async_drivers/_websocket_wsgi.py", line 30, in send
    raise OSError()
OSError"""


def _record(msg: str, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("werkzeug", logging.ERROR, __file__, 1, msg, (), exc_info)  # type: ignore[arg-type]


def test_a_client_gone_during_the_websocket_upgrade_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="roadwatch.web.live"):
        assert _ClosedByClient().filter(_record(RENDERED)) is False
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "closed its connection" in caplog.records[0].getMessage()


def test_a_closed_connection_raised_with_exc_info_is_one_info_line() -> None:
    class ConnectionClosed(Exception):
        pass

    try:
        try:
            raise ConnectionClosed("1005")
        except ConnectionClosed:
            raise OSError() from None
    except OSError as exc:
        exc.__context__ = ConnectionClosed("1005")
        record = _record("Error on request", (OSError, exc, None))
    assert _ClosedByClient().filter(record) is False


@pytest.mark.parametrize(
    "msg",
    [
        "Error on request:\nTraceback (most recent call last):\nZeroDivisionError: by zero",
        "code 400, message Bad request syntax",
    ],
)
def test_other_server_errors_still_get_through(msg: str) -> None:
    assert _ClosedByClient().filter(_record(msg)) is True
