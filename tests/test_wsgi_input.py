"""coinsite.wsgi_input: gunicorn request bodies read in large blocks, byte for byte what gunicorn itself returns."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.unreader import SocketUnreader

from coinsite.wsgi_input import LargeBlockInput, is_gunicorn_body, large_block_input

ROOT = Path(__file__).resolve().parent.parent


class _Sender:
    """The client side of a socket pair, sending in a thread; close() waits for it first."""

    def __init__(self, client: socket.socket, send) -> None:
        self.client = client
        self.thread = threading.Thread(target=send, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.client.close()


def _body_over_socket(payload: bytes, *, chunked: bool) -> tuple[Body, _Sender]:
    server, client = socket.socketpair()

    def send() -> None:
        if chunked:
            pieces = [payload[i : i + 70_001] for i in range(0, len(payload), 70_001)]
            wire = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
        else:
            wire = payload
        client.sendall(wire + b"NEXT REQUEST")  # bytes past the body must stay unread
        client.shutdown(socket.SHUT_WR)

    sender = _Sender(client, send)
    unreader = SocketUnreader(server)
    reader = ChunkedReader(object(), unreader) if chunked else LengthReader(unreader, len(payload))
    return Body(reader), sender


@pytest.mark.parametrize("chunked", [False, True])
def test_reads_of_any_size_return_the_exact_body(chunked):
    payload = random.Random(7).randbytes(3_000_017)
    body, sender = _body_over_socket(payload, chunked=chunked)
    stream = LargeBlockInput(body)
    rng = random.Random(1)
    parts = [stream.read(rng.choice([1, 100, 8192, 65_536, 1_000_003])) for _ in range(6)]
    parts.append(stream.read())
    assert b"".join(parts) == payload
    assert stream.read(10) == b""
    if not chunked:
        rest = b""
        while piece := body.reader.unreader.read():
            rest += piece
        assert rest == b"NEXT REQUEST"
    sender.close()


def test_a_client_that_hangs_up_early_gives_what_it_sent():
    server, client = socket.socketpair()
    client.sendall(b"x" * 50)
    client.shutdown(socket.SHUT_WR)
    stream = LargeBlockInput(Body(LengthReader(SocketUnreader(server), 100)))
    assert stream.read(100) == b"x" * 50
    assert stream.read(100) == b""
    client.close()
    server.close()


def test_readline_then_read_keeps_the_order():
    payload = b"first line\nsecond line\n" + os.urandom(200_000)
    body, sender = _body_over_socket(payload, chunked=False)
    stream = LargeBlockInput(body)
    assert stream.readline() == b"first line\n"
    assert stream.read(5) == b"secon"
    assert stream.read() == payload[len(b"first line\nsecon") :]
    sender.close()


def test_only_gunicorn_bodies_are_wrapped():
    import io

    seen = {}

    def app(environ, start_response):
        seen["input"] = environ["wsgi.input"]
        return [b""]

    plain = io.BytesIO(b"x")
    large_block_input(app)({"wsgi.input": plain}, None)
    assert seen["input"] is plain and not is_gunicorn_body(plain)
    body, sender = _body_over_socket(b"abc", chunked=False)
    large_block_input(app)({"wsgi.input": body}, None)
    assert isinstance(seen["input"], LargeBlockInput)
    sender.close()


ECHO_APP = '''
import hashlib
from coinsite.wsgi_input import large_block_input

def echo(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()]

application = large_block_input(echo)
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_gunicorn_serves_large_bodies_intact(tmp_path):
    """A real gunicorn (gthread, as in production) behind the middleware: plain and chunked 13 MB bodies arrive whole,
    twice on one keep-alive connection (so nothing of one body leaks into the next request)."""
    (tmp_path / "echo_app.py").write_text(ECHO_APP, encoding="utf-8")
    (tmp_path / "gunicorn.conf.py").write_text("", encoding="utf-8")  # not the project's (it loads the model)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--config", str(tmp_path / "gunicorn.conf.py"), "echo_app:application",
            "--bind", f"127.0.0.1:{port}", "--threads", "2", "--graceful-timeout", "3",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    session = requests.Session()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                session.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.2)
        payload = os.urandom(13_000_000)
        expected = f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
        for _ in range(2):
            assert session.post(f"http://127.0.0.1:{port}/", data=payload, timeout=30).text == expected
        chunks = (payload[i : i + 1_000_000] for i in range(0, len(payload), 1_000_000))
        assert session.post(f"http://127.0.0.1:{port}/", data=chunks, timeout=30).text == expected
    finally:
        session.close()
        server.terminate()
        server.wait(timeout=20)
