"""gunicorn's own error answers in the API's error shape, instead of its HTML page.

gunicorn answers some requests before Django sees them: a request line over `limit_request_line` bytes, too many or
too large header fields, a malformed request line. Its answer was an HTML page (`text/html`, "<h1>Bad Request</h1>"),
which an API client cannot read as the JSON every other 4xx is. gunicorn writes it with `gunicorn.util.write_error`,
called through the module at the moment of the error; gunicorn.conf.py's post_fork points that name at
`json_write_error` in each worker process. Django-free: it runs in gunicorn's worker before any request is parsed.
"""

from __future__ import annotations

import json

from gunicorn import util


def json_write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write gunicorn's error answer as {"error": "...", "field": null}, closing the connection as gunicorn does."""
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason, "field": None}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode("latin1")
    util.write_nonblock(sock, head + body)


def json_errors_install() -> None:
    """Make this process's gunicorn worker answer its own errors in JSON (called by post_fork, in the worker)."""
    util.write_error = json_write_error
