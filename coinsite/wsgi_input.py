"""Read request bodies in large blocks under gunicorn.

gunicorn's `wsgi.input` (gunicorn.http.body.Body) fills every read() 1 KiB at a time, and each of those steps copies
the rest of an 8 KiB socket chunk back into a buffer (gunicorn issue #2596). A 13 MB /api/predict body (two 12 MP
photos in base64) took about 65 ms of GIL-holding Python this way: more than the model's whole decode + forward
pass on the second core. `LargeBlockInput` hands read(size) straight to the body's length/chunked reader, which
returns whole socket chunks, and lets the socket return up to 256 KiB per recv().

Anything the wrapper does not recognise (another server, the test client) is left untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

SOCKET_CHUNK_BYTES = 256 * 1024
ALL = 1 << 20  # block size when read() is asked for everything


class LargeBlockInput:
    """A wsgi.input over gunicorn's Body that serves read(size) from the underlying reader in one call."""

    def __init__(self, body: Any) -> None:
        self._body = body
        unreader = getattr(body.reader, "unreader", None)
        if unreader is not None and getattr(unreader, "mxchunk", SOCKET_CHUNK_BYTES) < SOCKET_CHUNK_BYTES:
            unreader.mxchunk = SOCKET_CHUNK_BYTES

    def read(self, size: int | None = -1) -> bytes:
        if self._body.buf.tell():  # readline() left bytes in gunicorn's own buffer: let it serve them, in order
            return self._body.read(size)
        if size is None or size < 0:
            parts = []
            while chunk := self._body.reader.read(ALL):
                parts.append(chunk)
            return b"".join(parts)
        if size == 0:
            return b""
        return self._body.reader.read(size)

    def readline(self, size: int | None = None) -> bytes:
        return self._body.readline(size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._body.readlines(hint)

    def __iter__(self):
        return iter(self._body)


def is_gunicorn_body(stream: Any) -> bool:
    """gunicorn's Body, with the attributes this module relies on (checked, so a gunicorn change falls back)."""
    return (
        type(stream).__module__ == "gunicorn.http.body"
        and type(stream).__name__ == "Body"
        and hasattr(stream, "reader")
        and hasattr(getattr(stream, "buf", None), "tell")
    )


def large_block_input(application: Callable) -> Callable:
    """WSGI middleware: swap gunicorn's wsgi.input for LargeBlockInput; any other server's input is kept."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        if is_gunicorn_body(stream):
            environ["wsgi.input"] = LargeBlockInput(stream)
        return application(environ, start_response)

    return wrapped
