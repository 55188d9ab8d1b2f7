"""The bench's HTTP clients: one in the bench process for single-client latency, N processes for throughput.

The concurrent clients are separate processes (multiprocessing, spawn): as threads of one Python process they share
one GIL, and on this 2-core machine 8 client threads sending 13 MB bodies capped the figure of whichever server was
faster. They speak http.client directly (requests costs about 0.3 ms of client CPU per call, taken from the cores
the servers share with them) and, unless asked to keep connections alive, open one connection per request, so that
every request goes to whichever server worker accepts it first: with 8 persistent connections over 2 workers the split
is fixed when they open, may be uneven, and then weighs on the figure for the whole run (`--keep-alive` measures it).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.pool import Pool
from urllib.parse import urlsplit

START_LEAD_SECONDS = 0.5  # the clients start together this long after being handed their job

_bodies: Mapping[str, list[bytes]] = {}  # each client process's copy of the request bodies, by input kind


class BadAnswer(RuntimeError):
    """A server answered something other than 200: the bench stops rather than count failures as throughput."""


@dataclass(frozen=True)
class Target:
    """Where and how to POST: the full URL, the headers, and whether one connection serves all requests."""

    url: str
    headers: Mapping[str, str]
    keep_alive: bool = False


class Client:
    """POSTs bodies to one URL over http.client, one connection per request unless `keep_alive`."""

    def __init__(self, target: Target) -> None:
        parts = urlsplit(target.url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.keep_alive = target.keep_alive
        self.headers = {**target.headers, "Connection": "keep-alive" if target.keep_alive else "close"}
        self._connection: http.client.HTTPConnection | None = None

    def post(self, payload: bytes) -> bytes:
        connection = self._connection or http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.request("POST", self.path, body=payload, headers=self.headers)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            connection.close()
            self._connection = None
            raise
        if response.status != 200:
            connection.close()
            self._connection = None
            raise BadAnswer(f"POST {self.path} answered {response.status}: {answer[:300]!r}")
        if self.keep_alive:
            self._connection = connection
        else:
            connection.close()
        return answer


def timed_posts(target: Target, bodies: list[bytes], count: int) -> list[float]:
    """`count` requests one after the other (bodies in turn); the latency of each in ms. Every answer must carry
    exactly one prediction, so a server that answers 200 with nothing useful is not timed as if it worked."""
    client = Client(target)
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        answer = client.post(bodies[i % len(bodies)])
        latencies.append((time.perf_counter() - started) * 1000)
        predictions = json.loads(answer)["predictions"]
        if len(predictions) != 1:
            raise BadAnswer(f"expected one prediction, got {predictions!r}")
    return latencies


def client_pool(processes: int, bodies: Mapping[str, list[bytes]]) -> Pool:
    """The throughput clients, started once per bench run (spawn, not fork: the bench process holds the model and
    ONNX Runtime's threads, which a forked child must not inherit); each receives the bodies once."""
    return multiprocessing.get_context("spawn").Pool(processes, initializer=_receive_bodies, initargs=(bodies,))


def _receive_bodies(bodies: Mapping[str, list[bytes]]) -> None:
    global _bodies
    _bodies = bodies


def _client_run(job: tuple[Target, str, float, float, int]) -> tuple[int, float]:
    """One client: from `start_at` (time.monotonic, shared by all processes on Linux) POST until `deadline`, closed
    loop; returns (requests answered, when the last one ended)."""
    target, kind, start_at, deadline, offset = job
    bodies = _bodies[kind]
    client = Client(target)
    time.sleep(max(0.0, start_at - time.monotonic()))
    count = 0
    while time.monotonic() < deadline:
        client.post(bodies[(offset + count) % len(bodies)])
        count += 1
    return count, time.monotonic()


def throughput(
    pool: Pool, target: Target, kind: str, *, clients: int, seconds: float, at_start: Callable[[], None]
) -> tuple[int, float]:
    """`clients` concurrent closed-loop clients for about `seconds`: (requests answered, seconds from their common
    start to the end of the last). `at_start` runs in this process at the moment they start (the CPU snapshot)."""
    start_at = time.monotonic() + START_LEAD_SECONDS
    deadline = start_at + seconds
    pending = pool.map_async(_client_run, [(target, kind, start_at, deadline, k) for k in range(clients)])
    time.sleep(max(0.0, start_at - time.monotonic()))
    at_start()
    results = pending.get(timeout=seconds + 300)
    return sum(count for count, _end in results), max(end for _count, end in results) - start_at
