"""Reads of the training side."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Abs, TruncWeek
from django.utils import timezone

from predictions.models import Coin, Correction, Prediction
from registry.models import ModelVersion, Promotion
from registry.selectors import production_model_version

from .models import DatasetVersion, TrainingRun


def model_version_get(*, version: int, name: str | None = None) -> ModelVersion | None:
    """The mirror row of one version number of the served model (or of `name`)."""
    return ModelVersion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME, version=version).first()


def model_versions_newest_first(*, name: str | None = None) -> QuerySet[ModelVersion]:
    """Every mirrored version of the served model (or of `name`), newest first."""
    return ModelVersion.objects.filter(name=name or settings.MLFLOW_MODEL_NAME).order_by("-version")


def model_version_last_rescored(*, versions: Iterable[ModelVersion]) -> ModelVersion | None:
    """The first of `versions` whose coins a later version of the same model predicted again (a re-score)."""
    for version in versions:
        rescored = Prediction.objects.filter(
            model_version=version,
            coin__predictions__model_version__name=version.name,
            coin__predictions__model_version__version__gt=version.version,
        )
        if rescored.exists():
            return version
    return None


def coins_rescore_candidates(*, scope: str, version: ModelVersion | None = None) -> QuerySet[Coin]:
    """Predicted coins: all of them ("all"), those last predicted by `version` ("version"), or ("stale") those not
    last predicted by Production. Annotated with `latest_version`, the pk of the version of their newest prediction."""
    # The coin's own pointer to its newest prediction (Coin.last_prediction, kept in step with the predictions): a
    # join by primary key, where a correlated subquery per coin cost 9.6 s for the rescore page's count at 1M.
    coins = Coin.objects.filter(status=Coin.Status.PREDICTED).annotate(
        latest_version=F("last_prediction__model_version")
    )
    if scope == "all":
        return coins
    if scope == "version":
        return coins.filter(latest_version=version.pk if version else None)
    production = production_model_version()
    return coins.exclude(latest_version=production.pk) if production else coins


def coins_verified_years(*, coin_ids: Sequence[int]) -> dict[int, int | None]:
    """coin id -> the year a curator verified (None where nobody has)."""
    return dict(Coin.objects.filter(pk__in=list(coin_ids)).values_list("id", "verified_year"))


def training_runs_active() -> QuerySet[TrainingRun]:
    """Runs queued or running: what holds the training queue (and keeps the run pages refreshing)."""
    return TrainingRun.objects.filter(status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING])


def training_runs_using_dataset(*, dataset: DatasetVersion, limit: int = 20) -> list[TrainingRun]:
    """The newest `limit` runs that trained or were evaluated on `dataset`."""
    return list(
        TrainingRun.objects.filter(Q(dataset_version=dataset) | Q(evaluation_dataset=dataset)).order_by("-id")[:limit]
    )


def dataset_versions_with_use_counts(queryset: QuerySet[DatasetVersion]) -> QuerySet[DatasetVersion]:
    """`queryset` annotated with training_uses / evaluation_uses: how many runs learned from, or were judged on, each."""
    return queryset.annotate(
        training_uses=Count("training_runs", distinct=True),
        evaluation_uses=Count("evaluation_runs", distinct=True),
    )


def promotions_with_end(queryset: QuerySet[Promotion]) -> QuerySet[Promotion]:
    """`queryset` with its versions and actor joined and `ended_at`: when the next move of the same model's alias
    ended this one's serving period (None: it serves now)."""
    following = Promotion.objects.filter(name=OuterRef("name")).filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
    )
    return queryset.select_related("from_version", "to_version", "actor").annotate(
        ended_at=Subquery(following.order_by("created_at", "id").values("created_at")[:1])
    )


def promotions_latest(*, limit: int = 30) -> list[Promotion]:
    """The last `limit` moves of the production alias, oldest first (a timeline reads left to right)."""
    return list(Promotion.objects.select_related("to_version").order_by("-created_at", "-id")[:limit])[::-1]


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
    """Hard examples (the model was far off) weigh more in training: from the coin's copy of its latest prediction's
    year (Coin.pred_year), not a prefetch of every prediction (21.8 s and +250 MB at 50k labels)."""
    if coin.pred_year is not None and abs(coin.pred_year - coin.verified_year) > settings.HARD_EXAMPLE_YEARS:
        return float(settings.HARD_EXAMPLE_WEIGHT)
    return 1.0


def curator_negatives() -> QuerySet[Coin]:
    """Coins curators marked not a coin whose photos still exist (a collector's delete removes a non-coin's
    photos): negative examples for the coin detector, never year labels."""
    return (
        Coin.objects.filter(not_a_coin=True, verified_year__isnull=True)
        .exclude(front_image="")
        .exclude(back_image="")
        .order_by("id")
    )


def manifest_labels(manifest: list[dict]) -> list[dict]:
    """A frozen manifest's year rows (the labels); its negative rows (`"negative": true`, no year) left out."""
    return [row for row in manifest or [] if not row.get("negative")]


def manifest_negatives(manifest: list[dict]) -> list[dict]:
    """A frozen manifest's negative rows: curators' non-coins, by coin id and image hashes, without a year."""
    return [row for row in manifest or [] if row.get("negative")]


def dataset_manifest(*, kind: str = DatasetVersion.Kind.TRAINING) -> list[dict]:
    """The rows a dataset of this kind holds now: coin id, both image hashes, year and training weight; a training
    dataset then lists the curators' non-coins as negative rows (coin id, image hashes, `"negative": true`, no year),
    so a retrain reads them beside the generated non-coin photos (training.services.datasets)."""
    want_eval = kind == DatasetVersion.Kind.EVALUATION
    rows = []
    for coin in (
        labelled_coins()
        .only("id", "front_sha256", "back_sha256", "verified_year", "pred_year")
        .iterator(chunk_size=2000)
    ):
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
    if not want_eval:
        rows += [
            {"coin_id": coin.id, "front_sha256": coin.front_sha256, "back_sha256": coin.back_sha256, "negative": True}
            for coin in curator_negatives()
        ]
    return rows


def coins_corrected_since(*, version: int) -> list[int]:
    """Labelled coins a curator corrected after `version` was registered: what Production got wrong (or was not sure
    of) since, the coins a candidate should do better on."""
    mirror = ModelVersion.objects.filter(name=settings.MLFLOW_MODEL_NAME, version=version).first()
    since = mirror.created_at if mirror else None
    if mirror and mirror.training_run and mirror.training_run.started_at:
        since = mirror.training_run.started_at
    corrections = Correction.objects.filter(new_year__isnull=False, excluded=False)
    if since is not None:
        corrections = corrections.filter(created_at__gt=since)
    coin_ids = set(corrections.values_list("coin_id", flat=True))
    return list(labelled_coins().filter(id__in=coin_ids).values_list("id", flat=True))


def rescore_movers(*, since_version: int, limit: int = 50) -> list[dict]:
    """Coins whose predicted year moved most between their prediction by `since_version` and their newest
    prediction (Coin.last_prediction) where a later version made it: where curators should look first after a
    promotion.

    One query that sorts in the database and returns at most 2 x `limit` rows (a coin predicted twice by
    `since_version` appears once per prediction; the newest of those is kept): building every prediction of the
    version as an object to show 50 cost 55 s and +832 MB at 1M coins (issue 24).
    """
    name = settings.MLFLOW_MODEL_NAME
    rows = (
        Prediction.objects.filter(
            model_version__name=name,
            model_version__version=since_version,
            coin__last_prediction__model_version__name=name,
            coin__last_prediction__model_version__version__gt=since_version,
        )
        .annotate(
            new_year=F("coin__last_prediction__year"),
            moved=Abs(F("coin__last_prediction__year") - F("year")),
            new_version=F("coin__last_prediction__model_version__version"),
            new_low=F("coin__last_prediction__interval_low"),
            new_high=F("coin__last_prediction__interval_high"),
        )
        .order_by("-moved", "coin_id", "-created_at", "-id")
        .values("coin_id", "year", "new_year", "moved", "new_version", "new_low", "new_high")[: 2 * limit]
    )
    movers: dict[int, dict] = {}
    for row in rows:
        movers.setdefault(
            row["coin_id"],
            {
                "coin_id": row["coin_id"],
                "old_year": row["year"],
                "new_year": row["new_year"],
                "moved": row["moved"],
                "old_version": since_version,
                "new_version": row["new_version"],
                "interval": [row["new_low"], row["new_high"]],
            },
        )
    return list(movers.values())[:limit]


def new_labels_count() -> int:
    """Labels (coin, year) that the last successful run did not train or evaluate on: new coins and changed years."""
    last = (
        TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, dataset_version__isnull=False)
        .select_related("dataset_version", "evaluation_dataset")
        .order_by("-created_at", "-id")
        .first()
    )
    seen: set[tuple[int, int]] = set()
    if last is not None:
        for dataset in (last.dataset_version, last.evaluation_dataset):
            if dataset is not None:
                seen.update((row["coin_id"], row["year"]) for row in manifest_labels(dataset.manifest))
    return sum(1 for pair in labelled_coins().values_list("id", "verified_year") if tuple(pair) not in seen)


# -- the owners' monitoring page ---------------------------------------------------------------------------------------


def week_of(moment: datetime | date) -> date:
    """The Monday of `moment`'s week, in the site's time zone for an aware datetime (TruncWeek's values, already
    Mondays, stay what they are)."""
    if isinstance(moment, datetime):
        moment = (timezone.localtime(moment) if timezone.is_aware(moment) else moment).date()
    return moment - timedelta(days=moment.weekday())


def model_versions_serving_since(*, since: datetime, name: str | None = None) -> list[ModelVersion]:
    """Versions of the served model (or of `name`) that predicted since `since`, and Production: newest first."""
    name = name or settings.MLFLOW_MODEL_NAME
    # One EXISTS per version (a handful), each an index probe on (model_version, created_at): the IN over every
    # prediction since `since` was materialised five times (293k rows at 1M coins).
    predicted = Prediction.objects.filter(model_version=OuterRef("pk"), created_at__gte=since)
    return list(
        ModelVersion.objects.filter(name=name)
        .filter(Q(Exists(predicted)) | Q(is_production=True))
        .select_related("training_run__dataset_version")
        .order_by("-version")
    )


def predictions_weekly_counts(
    *, version_ids: Sequence[int], since: datetime
) -> dict[tuple[int, date], tuple[int, int]]:
    """(version pk, week) -> (predictions made, of which rejected: not a coin or unreadable)."""
    rows = (
        Prediction.objects.filter(model_version_id__in=list(version_ids), created_at__gte=since)
        .annotate(week=TruncWeek("created_at"))
        .values("model_version_id", "week")
        .annotate(made=Count("id"), rejected=Count("id", filter=~Q(rejected="")))
    )
    counts: dict[tuple[int, date], tuple[int, int]] = {}
    for row in rows:
        key = (row["model_version_id"], week_of(row["week"]))
        made, rejected = counts.get(key, (0, 0))
        counts[key] = (made + row["made"], rejected + row["rejected"])
    return counts


def predictions_verified_after(*, version_ids: Sequence[int], since: datetime) -> list[dict]:
    """Predictions since `since` whose coin a curator verified later: the model's answer could not have seen the
    label, so these are live accuracy. One row per (version, coin), its newest such prediction (a re-score repeats a
    coin), with the week the prediction was made in: {version_id, coin_id, week, year, low, high, rejected, truth}."""
    rows = (
        Prediction.objects.filter(
            model_version_id__in=list(version_ids),
            created_at__gte=since,
            coin__verified_year__isnull=False,
            coin__verified_at__gt=F("created_at"),
        )
        .order_by("created_at", "id")
        .values_list(
            "model_version_id",
            "coin_id",
            "created_at",
            "year",
            "interval_low",
            "interval_high",
            "rejected",
            "coin__verified_year",
        )
    )
    latest: dict[tuple[int, int], dict] = {}
    for version_id, coin_id, created_at, year, low, high, rejected, truth in rows:
        latest[(version_id, coin_id)] = {
            "version_id": version_id,
            "coin_id": coin_id,
            "week": week_of(created_at),
            "year": year,
            "low": low,
            "high": high,
            "rejected": rejected,
            "truth": truth,
        }
    return list(latest.values())


def coins_served_by_week(*, version_id: int, since: datetime) -> dict[date, list[int]]:
    """week -> the distinct coins `version_id` predicted that week (the photos it was served)."""
    rows = (
        Prediction.objects.filter(model_version_id=version_id, created_at__gte=since)
        .annotate(week=TruncWeek("created_at"))
        .values_list("week", "coin_id")
        .distinct()
    )
    weeks: dict[date, set[int]] = {}
    for week, coin_id in rows:
        weeks.setdefault(week_of(week), set()).add(coin_id)
    return {week: sorted(ids) for week, ids in sorted(weeks.items())}


def model_version_training_coins(*, version: ModelVersion) -> tuple[list[int], str]:
    """The coins `version` learned from and where that list comes from: its training run's frozen dataset; for a
    version registered outside a run (`manage.py train`), the newest training dataset frozen before it; else the
    labelled coins that existed when it was registered."""
    run = version.training_run
    dataset = run.dataset_version if run is not None else None
    if dataset is None:
        dataset = (
            DatasetVersion.objects.filter(kind=DatasetVersion.Kind.TRAINING, created_at__lte=version.created_at)
            .order_by("-created_at", "-id")
            .first()
        )
        if dataset is not None:
            return [
                row["coin_id"] for row in manifest_labels(dataset.manifest)
            ], f"{dataset} (frozen before it; it has no run)"
        ids = list(labelled_coins().filter(created_at__lte=version.created_at).values_list("id", flat=True))
        return ids, f"{len(ids)} labelled coins that existed when it was registered"
    return [row["coin_id"] for row in manifest_labels(dataset.manifest)], str(dataset)
