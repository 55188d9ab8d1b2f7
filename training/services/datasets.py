"""Freezing labelled data: a DatasetVersion per distinct content, and the samples the ML library trains on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from django.db import IntegrityError, transaction

from predictions.models import Coin
from training.ml.data import CoinSample

from ..models import DatasetVersion
from ..selectors import dataset_manifest


def dataset_freeze(*, kind: str = DatasetVersion.Kind.TRAINING) -> DatasetVersion:
    """Freeze today's labelled data as a DatasetVersion; the same data gives the same (reused) version."""
    manifest = dataset_manifest(kind=kind)
    content_hash = hashlib.sha256(
        json.dumps({"kind": kind, "rows": manifest}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    existing = DatasetVersion.objects.filter(content_hash=content_hash).first()
    if existing:
        return existing
    years = [row["year"] for row in manifest]
    try:
        with transaction.atomic():
            return DatasetVersion.objects.create(
                content_hash=content_hash,
                kind=kind,
                manifest=manifest,
                coin_count=len(manifest),
                year_min=min(years, default=None),
                year_max=max(years, default=None),
            )
    except IntegrityError:  # frozen concurrently by another process: same content, same row
        return DatasetVersion.objects.get(content_hash=content_hash)


def _coin_photo(field) -> Path | bytes:
    """A stored photo as the ML engine wants it: a local path when the storage has one (read lazily, epoch after
    epoch, without holding every photo in memory), else the bytes (object stores)."""
    try:
        return Path(field.path)
    except NotImplementedError:
        with field.open("rb") as handle:
            return handle.read()


def dataset_samples(*, dataset: DatasetVersion | None = None, coins: Iterable[Coin] | None = None) -> list[CoinSample]:
    """CoinSamples (photos, year, weight) of a frozen dataset's rows, or of given labelled coins.

    The year and weight come from the frozen manifest, not from today's coin, so a run trains on exactly what it froze.
    A coin deleted since the freeze is skipped (its photos are gone with it).
    """
    if dataset is not None:
        rows = {row["coin_id"]: row for row in dataset.manifest}
        by_id = Coin.objects.in_bulk(list(rows))
        pairs = [(by_id[coin_id], rows[coin_id]) for coin_id in rows if coin_id in by_id]
    else:
        pairs = [(coin, {"year": coin.verified_year, "weight": 1.0}) for coin in coins or ()]
    return [
        CoinSample(
            front=_coin_photo(coin.front_image),
            back=_coin_photo(coin.back_image),
            year=int(row["year"]),
            weight=float(row.get("weight", 1.0)),
            key=str(coin.id),
        )
        for coin, row in pairs
    ]
