"""Read request bodies in large blocks under gunicorn.

gunicorn's `wsgi.input` (gunicorn.http.body.Body) fills every read() 1 KiB at a time, and each of those steps copies
the rest of an 8 KiB socket chunk back into a buffer (gunicorn issue #2596). A 13 MB /api/predict body (two 12 MP
photos in base64) took about 65 ms of GIL-holding Python this way: more than the model's whole decode + forward
pass on the second core. `LargeBlockInput` hands read(size) straight to the body's length/chunked reader, which
returns whole socket chunks, and lets the socket return up to 256 KiB per recv(); a Content-Length body (what
every client sends) is received straight into one buffer.

Anything the wrapper does not recognise (another server, the test client) is left untouched.
"""

from __future__ import annotations

import io
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
        reader = self._body.reader
        if _is_length_reader(reader):
            return _read_length(reader, size)
        return reader.read(size)

    def readline(self, size: int | None = None) -> bytes:
        return self._body.readline(size)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        return self._body.readlines(hint)

    def __iter__(self):
        return iter(self._body)


def _is_length_reader(reader: Any) -> bool:
    return (
        type(reader).__name__ == "LengthReader"
        and isinstance(getattr(reader, "length", None), int)
        and hasattr(getattr(reader, "unreader", None), "sock")
        and hasattr(reader.unreader.buf, "getvalue")
    )


def _read_length(reader: Any, size: int) -> bytes:
    """A Content-Length body straight from the socket into one buffer (recv_into): no intermediate chunks."""
    size = min(size, reader.length)
    if size <= 0:
        return b""
    unreader = reader.unreader
    buffered = unreader.buf.getvalue()  # what gunicorn read past the headers
    out = bytearray(size)
    view = memoryview(out)
    count = min(len(buffered), size)
    view[:count] = buffered[:count]
    unreader.buf = io.BytesIO()
    unreader.buf.write(buffered[count:])  # a pipelined next request stays for gunicorn
    while count < size:
        received = unreader.sock.recv_into(view[count:])
        if not received:  # the client hung up early: return what came, as gunicorn does
            break
        count += received
    reader.length -= count
    return bytes(view[:count])


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
