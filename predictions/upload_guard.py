"""The orphan sweep never deletes a file that an upload still in flight may commit (issue 23's race).

Photos are stored before the row that names them commits (an accepted upload is never lost); a request that takes
longer than the sweep's grace period between the two (a slow decode, a loaded database) used to have its files
deleted by the sweep and then committed its coin without photos. An upload holds its owner's mark from before its
first file write until its row is committed or its files discarded; the sweep skips the folder of an owner whose
mark is held (coins/<owner>/: an owner's uploads write only there) and reads that folder's rows only after taking
the mark itself, so a row committed just before is seen.

On PostgreSQL the mark is a session advisory lock keyed by the owner (shared for uploads, so one collector's
concurrent uploads never wait on each other; the sweep only tries the exclusive lock, never waits): it holds across
every web and worker process, and dies with a killed process's connection, so the killed request's files are
swept at the next pass. Elsewhere (the embedded default: one process) a count per owner in this process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

NAMESPACE = 24_0001  # the first key of the two-key advisory locks: photo uploads by owner
_local = Counter()
_local_lock = threading.Lock()


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def owner_upload(owner_id: int) -> Iterator[None]:
    """Hold `owner_id`'s upload mark for the block: its file writes and the commit of the rows naming them."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(%s, %s)", [NAMESPACE, owner_id])
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_shared(%s, %s)", [NAMESPACE, owner_id])
            except DatabaseError:  # inside a caller's failed transaction: closing the session releases the lock
                connection.close()
        return
    with _local_lock:
        _local[owner_id] += 1
    try:
        yield
    finally:
        with _local_lock:
            _local[owner_id] -= 1


@contextmanager
def owner_folder_sweep(owner_id: int) -> Iterator[bool]:
    """True (and the mark held for the block) when no upload of `owner_id` is in flight; False: leave the folder."""
    if _postgresql():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, owner_id])
            (held,) = cursor.fetchone()
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [NAMESPACE, owner_id])
        return
    with _local_lock:  # uploads of this process wait the few milliseconds a folder's sweep takes
        yield _local[owner_id] == 0
