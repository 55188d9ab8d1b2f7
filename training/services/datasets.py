"""Freezing labelled data: a DatasetVersion per distinct content, and the samples the ML library trains on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from predictions.models import Coin
from training.ml.labels import CoinSample

from ..models import DatasetVersion
from ..selectors import dataset_manifest, manifest_labels, manifest_negatives

if TYPE_CHECKING:  # an annotation only: reader_calibration imports torch
    from training.ml.reader_calibration import NegativePair


def dataset_freeze(*, kind: str = DatasetVersion.Kind.TRAINING) -> DatasetVersion:
    """Freeze today's labelled data as a DatasetVersion; the same data gives the same (reused) version.

    A training dataset also freezes the curators' non-coins (negative rows, no year): `coin_count` and the year
    range count the labels only."""
    manifest = dataset_manifest(kind=kind)
    content_hash = hashlib.sha256(
        json.dumps({"kind": kind, "rows": manifest}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    existing = DatasetVersion.objects.filter(content_hash=content_hash).first()
    if existing:
        return existing
    labels = manifest_labels(manifest)
    years = [row["year"] for row in labels]
    try:
        with transaction.atomic():
            return DatasetVersion.objects.create(
                content_hash=content_hash,
                kind=kind,
                manifest=manifest,
                coin_count=len(labels),
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
    A coin deleted since the freeze is skipped (its photos are gone with it). Negative rows (curators' non-coins) are
    never samples: they have no year (dataset_negative_pairs gives their photos).
    """
    if dataset is not None:
        rows = {row["coin_id"]: row for row in manifest_labels(dataset.manifest)}
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


def dataset_negative_pairs(*, dataset: DatasetVersion | None) -> list[NegativePair]:
    """The (front, back) photos of a frozen training dataset's negative rows, the coins curators marked not a coin,
    for the coin threshold's calibration beside the generated non-coin photos (training.ml.reader_calibration).

    What was frozen counts, as for the labels (a curator's later decision changes the next dataset, not this one);
    a coin whose photos its collector deleted since is left out."""
    if dataset is None:
        return []
    rows = {row["coin_id"]: row for row in manifest_negatives(dataset.manifest)}
    coins = Coin.objects.filter(pk__in=list(rows)).exclude(front_image="").exclude(back_image="")
    return [
        (_coin_photo(coin.front_image), _coin_photo(coin.back_image))
        for coin in coins.order_by("id")
        if (coin.front_sha256, coin.back_sha256) == (rows[coin.pk]["front_sha256"], rows[coin.pk]["back_sha256"])
    ]
