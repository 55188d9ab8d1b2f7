"""Housekeeping services: photo files with no coin row are removed, and coins left pending are asked for again.

Why files can be orphaned: photos are stored (and synced) before the row that points at them commits, so an accepted
upload is never lost; a process killed between the two (`kill -9` during a 16-pair /api/predict left 32 files)
leaves files no row names. Beat runs these every few minutes with Celery; the embedded default runs them on its own
timer (predictions.housekeeping).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import upload_guard
from .models import Coin
from .services import coins_requeue_pending

logger = logging.getLogger(__name__)

PHOTO_ROOT = "coins"
FILE_FIELDS = ("front_image", "back_image", "front_thumbnail", "back_thumbnail")


@dataclass(frozen=True)
class SweepResult:
    files_seen: int
    orphans_removed: int
    pending_requeued: int


def photo_orphans_sweep(*, grace_seconds: int | None = None) -> tuple[int, int]:
    """Remove photo files older than `grace_seconds` that no coin names; returns (files seen, files removed).

    Folder by folder (coins/<owner>/ and its thumbs/): each folder is listed BEFORE the rows that may name its files
    are read (that owner's coins, through the owner index), so a file whose row commits after the read was written
    longer than the grace period ago and never committed, which no live request does. Younger files are left alone,
    so a request that is still between its file writes and its commit keeps its photos, and an owner's folder is
    left alone while an upload of theirs is in flight, however long it takes (upload_guard). Memory holds one folder's
    names at a time: listing every file and every coin at once peaked at 1.86 GB for 1M coins and 4M files.
    """
    grace = settings.COINSITE_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    storage = Coin._meta.get_field("front_image").storage
    cutoff = timezone.now() - timedelta(seconds=grace)
    seen = removed = 0
    for folder, listed in _folders_under(storage, PHOTO_ROOT):
        seen += len(listed)
        owner = folder.removeprefix(f"{PHOTO_ROOT}/").split("/", 1)[0]
        if owner.isdigit():
            with upload_guard.owner_folder_sweep(int(owner)) as free:
                if free:  # else an upload of this owner is in flight: its files may still be committed
                    removed += _remove_orphans(storage, folder, listed, cutoff)
        else:
            removed += _remove_orphans(storage, folder, listed, cutoff)
    if removed:
        logger.info("orphan sweep removed %d photo file(s) with no coin (of %d seen)", removed, seen)
    return seen, removed


def _remove_orphans(storage, folder: str, listed: list[str], cutoff) -> int:
    """Delete the files of `listed` that no row names (read now, after the listing and the owner's mark) and that
    are older than `cutoff`; returns how many."""
    removed = 0
    named = _names_in(folder, listed)
    for name in listed:
        if name in named:
            continue
        try:
            if storage.get_modified_time(name) > cutoff:
                continue
            storage.delete(name)
        except FileNotFoundError:  # removed meanwhile (a coin deleted, another sweep)
            continue
        removed += 1
    return removed


def _names_in(folder: str, listed: list[str]) -> set[str]:
    """The names among `listed` that some coin row names: the folder's owner's coins (coins/<owner id>/...), or for
    any other folder the rows naming those files, a few hundred at a time."""
    owner = folder.removeprefix(f"{PHOTO_ROOT}/").split("/", 1)[0]
    if owner.isdigit():
        rows = Coin.objects.filter(owner_id=int(owner)).values_list(*FILE_FIELDS).iterator(chunk_size=2000)
        return {name for names in rows for name in names if name} & set(listed)
    named: set[str] = set()
    for start in range(0, len(listed), 500):
        batch = listed[start : start + 500]
        match = Q()
        for field in FILE_FIELDS:
            match |= Q(**{f"{field}__in": batch})
        for names in Coin.objects.filter(match).values_list(*FILE_FIELDS):
            named.update(name for name in names if name)
    return named & set(listed)


def housekeeping_run(*, grace_seconds: int | None = None, pending_after_seconds: int = 120) -> SweepResult:
    """Both sweeps: what beat schedules and the embedded default's timer runs."""
    seen, removed = photo_orphans_sweep(grace_seconds=grace_seconds)
    requeued = coins_requeue_pending(older_than_seconds=pending_after_seconds)
    return SweepResult(files_seen=seen, orphans_removed=removed, pending_requeued=requeued)


def _folders_under(storage, folder: str) -> Iterator[tuple[str, list[str]]]:
    """(folder, its files' names) for `folder` and every folder below it, one folder's listing at a time."""
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    if files:
        yield folder, [f"{folder}/{name}" for name in files]
    del files
    for directory in directories:
        yield from _folders_under(storage, f"{folder}/{directory}")
