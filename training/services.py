"""Writes of the training side: freezing datasets, running training, comparing and promoting model versions."""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from predictions.models import Coin

from .models import DatasetVersion, ModelVersion


def coin_in_evaluation_set(*, front_sha256: str, back_sha256: str, share: float | None = None) -> bool:
    """Whether a coin belongs to the held-out evaluation set.

    Decided by the coin's own image hashes, not by a random draw over today's coins: a coin never moves between the
    sets as new coins arrive, so candidates and Production are always compared on the same coins.
    """
    share = settings.EVALUATION_SHARE if share is None else share
    digest = hashlib.sha256(f"eval:{front_sha256}:{back_sha256}".encode()).hexdigest()
    return int(digest[:8], 16) / 0x1_0000_0000 < share


def labelled_coins() -> QuerySet[Coin]:
    """Training labels: curator-verified (or imported/demo verified) years only; raw predictions never are."""
    return Coin.objects.filter(verified_year__isnull=False, excluded_from_training=False).order_by("id")


def _sample_weight(coin: Coin) -> float:
    """Hard examples (the model was far off) weigh more in training."""
    prediction = coin.latest_prediction
    if prediction is not None and abs(prediction.year - coin.verified_year) > settings.HARD_EXAMPLE_YEARS:
        return float(settings.HARD_EXAMPLE_WEIGHT)
    return 1.0


def dataset_manifest(*, kind: str = DatasetVersion.Kind.TRAINING) -> list[dict]:
    """The rows a dataset of this kind holds now: coin id, both image hashes, year and training weight."""
    want_eval = kind == DatasetVersion.Kind.EVALUATION
    rows = []
    for coin in labelled_coins().prefetch_related("predictions"):
        if coin_in_evaluation_set(front_sha256=coin.front_sha256, back_sha256=coin.back_sha256) != want_eval:
            continue
        rows.append(
            {
                "coin_id": coin.id,
                "front_sha256": coin.front_sha256,
                "back_sha256": coin.back_sha256,
                "year": coin.verified_year,
                "weight": 1.0 if want_eval else _sample_weight(coin),
            }
        )
    return rows


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


def model_version_mirror(*, version: int, name: str | None = None) -> ModelVersion:
    """The mirror row of a registered MLflow version, created from the registry when first seen in this database
    (a version may be registered by another host, e.g. a training worker or `manage.py train` elsewhere)."""
    name = name or settings.MLFLOW_MODEL_NAME
    existing = ModelVersion.objects.filter(name=name, version=version).first()
    if existing:
        return existing
    from training.ml import registry

    from .mlflow_access import mlflow_ready

    mlflow_ready()
    info = registry.version_info(name, version)
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                name=name,
                version=version,
                run_id=info.get("run_id", ""),
                metrics=info.get("metrics", {}),
                aliases=info.get("aliases", []),
                is_production="production" in info.get("aliases", []),
            )
    except IntegrityError:
        return ModelVersion.objects.get(name=name, version=version)
