"""What collectors and curators touch: coins, the predictions made for them, and curators' corrections."""

from __future__ import annotations

import math
import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, OrderBy, Q

from training.ml.answer import REJECT_MESSAGES
from training.ml.years import YEAR_MAX, YEAR_MIN


def year_in_range(field: str, *, name: str) -> models.CheckConstraint:
    """``field`` is NULL (no year yet) or within YEAR_MIN..YEAR_MAX, kept by the database whatever writes the row."""
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": YEAR_MIN, f"{field}__lte": YEAR_MAX}),
        name=name,
    )


def coin_image_path(instance: Coin, filename: str) -> str:
    """Photos live under coins/<owner>/<random>.<ext>: unguessable names, never the client's file name."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "jpg"
    return f"coins/{instance.owner_id}/{uuid.uuid4().hex}.{ext[:5]}"


def coin_thumbnail_path(instance: Coin, filename: str) -> str:
    """Thumbnails live beside their owner's photos, under thumbs/, with random names of their own."""
    return f"coins/{instance.owner_id}/thumbs/{uuid.uuid4().hex}.jpg"


class PortableIndex(models.Index):
    """An index whose NULLS LAST is written on PostgreSQL only: SQLite refuses it in CREATE INDEX (its ORDER BY
    takes it; on SQLite's small databases the index only has to exist)."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            return super().create_sql(model, schema_editor, using, **kwargs)
        plain = [
            OrderBy(item.expression, descending=item.descending) if isinstance(item, OrderBy) else item
            for item in self.expressions
        ]
        return models.Index(*plain, name=self.name, condition=self.condition).create_sql(
            model, schema_editor, using, **kwargs
        )


class Coin(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        API = "api", "API"
        IMPORT = "import", "Import"
        DEMO = "demo", "Demo"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PREDICTED = "predicted", "Predicted"
        FAILED = "failed", "Failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="coins")
    front_image = models.ImageField(upload_to=coin_image_path)
    back_image = models.ImageField(upload_to=coin_image_path)
    # Small JPEGs made once, from the upload's one decode, for lists and the review desk (empty for coins stored
    # before they existed: the photo view makes and stores theirs on first request).
    front_thumbnail = models.FileField(upload_to=coin_thumbnail_path, blank=True, editable=False)
    back_thumbnail = models.FileField(upload_to=coin_thumbnail_path, blank=True, editable=False)
    front_sha256 = models.CharField(max_length=64, db_index=True)
    back_sha256 = models.CharField(max_length=64, db_index=True)
    # Bytes of both photos as uploaded: what the collector's storage quota counts (predictions.quota).
    photo_bytes = models.PositiveBigIntegerField(default=0, editable=False)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.UPLOAD)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_detail = models.CharField(max_length=300, blank=True)
    verified_year = models.PositiveSmallIntegerField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    excluded_from_training = models.BooleanField(default=False)
    # A curator's verdict that the photos show no coin: never a year label, a negative example for the coin detector
    # instead (training.selectors.dataset_negatives puts it beside the generated non-coin photos).
    not_a_coin = models.BooleanField(default=False, help_text="A curator marked the photos as showing no coin.")
    notes = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # A collector's delete hides a coin that holds a label or a curator's decision instead of erasing it: the audit
    # trail and the training label stay (services.coin_delete); collectors' selectors never return such a coin.
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    # The review desk's claim: the curator who opened the coin from the queue has it until `claimed_until`, so two
    # curators working the queue at once never get the same coin (predictions.review).
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The latest prediction's figures that the review queue sorts and filters on, copied onto the coin in the same
    # transaction as the prediction (Prediction.save -> coin_latest_prediction_sync): as correlated subqueries on the
    # predictions table no index could serve them, and the queue's first page took 16-18 s at 1M coins (issue 24);
    # with the partial indexes below it is an index scan that stops after 50 rows. `pred_uncertainty` is the stored
    # entropy, or ln(interval width + 1) for a prediction stored before that figure existed (the same scale);
    # `pred_no_year` is true when the model gave no year (rejected: not a coin, or the date unreadable).
    last_prediction = models.ForeignKey(
        "Prediction", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    pred_year = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    pred_uncertainty = models.FloatField(null=True, blank=True, editable=False)
    pred_rejected = models.CharField(max_length=16, blank=True, default="", editable=False)
    pred_no_year = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("review_coin", "Can review coins and correct their year")]
        indexes = [
            # The awaiting queue (selectors.AWAITING_REVIEW) in each of its orders (admin.filters.QUEUE_ORDERS):
            # most uncertain first, and oldest/newest first (one index read either way).
            PortableIndex(
                F("pred_no_year"),
                F("pred_uncertainty").desc(nulls_last=True),
                F("created_at"),
                F("id"),
                name="coin_queue_uncertain",
                condition=Q(
                    verified_year__isnull=True,
                    excluded_from_training=False,
                    not_a_coin=False,
                    status="predicted",
                    deleted_at__isnull=True,
                ),
            ),
            models.Index(
                fields=["created_at", "id"],
                name="coin_queue_oldest",
                condition=Q(
                    verified_year__isnull=True,
                    excluded_from_training=False,
                    not_a_coin=False,
                    status="predicted",
                    deleted_at__isnull=True,
                ),
            ),
            # The decade filter on the queue: a range of pred_year among the coins the model read.
            models.Index(
                fields=["pred_year"],
                name="coin_queue_year",
                condition=Q(
                    verified_year__isnull=True,
                    excluded_from_training=False,
                    not_a_coin=False,
                    status="predicted",
                    deleted_at__isnull=True,
                    pred_no_year=False,
                ),
            ),
        ]
        constraints = [
            year_in_range("verified_year", name="coin_verified_year_in_range"),
            # A non-coin has no year and is no "unusable photo" either: it is used, as a negative.
            models.CheckConstraint(
                condition=Q(not_a_coin=False) | Q(verified_year__isnull=True, excluded_from_training=False),
                name="coin_not_a_coin_has_no_year",
            ),
        ]

    def __str__(self) -> str:
        return f"Coin #{self.pk}"

    @property
    def latest_prediction(self) -> Prediction | None:
        """The newest prediction; uses the prefetched list when selectors prefetched it."""
        cached = getattr(self, "_prefetched_objects_cache", {}).get("predictions")
        if cached is not None:
            return max(cached, key=lambda p: (p.created_at, p.pk), default=None)
        return self.predictions.order_by("-created_at", "-id").first()

    @property
    def display_year(self) -> int | None:
        """What the coin's year is believed to be now: the curator's if there is one, else the model's (none when the
        model judged the photos not a coin or the date unreadable, or a curator marked them not a coin)."""
        if self.verified_year is not None:
            return self.verified_year
        if self.not_a_coin:
            return None
        prediction = self.latest_prediction
        return prediction.year if prediction and not prediction.rejected else None


def queue_uncertainty(*, uncertainty: float | None, low: int, high: int) -> float:
    """The figure the queue sorts on: the stored entropy, else ln(interval width + 1) (a prediction stored before the
    entropy existed; serving stores the same for a model without a distribution)."""
    return uncertainty if uncertainty is not None else math.log(max(high - low, 0) + 1)


def coin_latest_prediction_sync(coin_id: int) -> None:
    """Copy the coin's latest prediction's queue figures onto the coin (Coin.pred_*): called in the transaction that
    writes the prediction, so the queue never sees one without the other. Two queries: the latest row (the coin's
    few predictions through its foreign-key index) and one UPDATE."""
    latest = (
        Prediction.objects.filter(coin_id=coin_id)
        .order_by("-created_at", "-id")
        .values("pk", "year", "interval_low", "interval_high", "uncertainty", "rejected")
        .first()
    )
    if latest is None:
        fields = {"last_prediction": None, "pred_year": None, "pred_uncertainty": None}
        fields |= {"pred_rejected": "", "pred_no_year": False}
    else:
        fields = {
            "last_prediction_id": latest["pk"],
            "pred_year": latest["year"],
            "pred_uncertainty": queue_uncertainty(
                uncertainty=latest["uncertainty"], low=latest["interval_low"], high=latest["interval_high"]
            ),
            "pred_rejected": latest["rejected"],
            "pred_no_year": bool(latest["rejected"]),
        }
    Coin.objects.filter(pk=coin_id).update(**fields)


class Prediction(models.Model):
    coin = models.ForeignKey(Coin, on_delete=models.CASCADE, related_name="predictions")
    year = models.PositiveSmallIntegerField()
    interval_low = models.PositiveSmallIntegerField()
    interval_high = models.PositiveSmallIntegerField()
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="predictions")
    latency_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # What a date-reading model adds (empty for the seed's regression versions): the interval's level, the most
    # likely years with their probabilities, the scores, and why no year was given (the year then is only the
    # model's best guess, never shown as an answer).
    interval_level = models.FloatField(null=True, blank=True)
    alternatives = models.JSONField(default=list, blank=True)
    coin_score = models.FloatField(
        null=True, blank=True, help_text="How sure the model is that both photos show a coin."
    )
    read_score = models.FloatField(null=True, blank=True, help_text="Probability mass within a year of the answer.")
    rejected = models.CharField(
        max_length=16, blank=True, default="", choices=[("not_a_coin", "not a coin"), ("unreadable", "unreadable")]
    )
    second_look = models.CharField(
        max_length=80,
        blank=True,
        default="",
        help_text="Which second look answered when the first read was unsure (training/ml/second_look.py), e.g. "
        "'front turned 90°, back cropped'; empty when the first read answered.",
    )
    readers = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="Which reader(s) the answer rests on: 'reader' (the learned date reader), 'ocr' (the general OCR "
        "reader, training/ml/ocr.py, overrode it), 'reader+ocr' (both agreed); empty for predictions made before "
        "the OCR reader existed.",
    )
    ocr_reading = models.JSONField(
        null=True,
        blank=True,
        help_text="What the OCR read when it ran (only where the reader was unsure): year (or null), confidence, "
        "path, side, turn, photos (how many of the two photos read that year).",
    )
    uncertainty = models.FloatField(
        null=True,
        blank=True,
        help_text="Entropy (nats) of the model's year distribution: exp() of it is how many years the model hesitates "
        "between. The review queue puts the most uncertain coins first.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Monitoring and movers read one version's predictions by week (model_versions_serving_since's EXISTS,
            # the weekly counts, the movers' pairs): an index range instead of every row of the version.
            models.Index(fields=["model_version", "created_at"], name="prediction_version_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(interval_low__lte=models.F("year")), name="prediction_low_le_year"),
            models.CheckConstraint(condition=Q(interval_high__gte=models.F("year")), name="prediction_high_ge_year"),
        ]

    def __str__(self) -> str:
        return f"{self.year} ({self.interval_low}–{self.interval_high})"

    def save(self, *args, **kwargs) -> None:
        """Write the row and, in the same transaction, the coin's copy of its latest prediction (Coin.pred_*): every
        path that writes a prediction (serving, /api/predict, re-score, tests' factories) goes through here."""
        with transaction.atomic(savepoint=False):
            super().save(*args, **kwargs)
            coin_latest_prediction_sync(self.coin_id)

    @property
    def interval_width(self) -> int:
        return self.interval_high - self.interval_low

    @property
    def alternatives_shown(self) -> list[dict]:
        """The stored alternatives worth a row: at most five, each at least 1 % once rounded (a "1986 0 %" row only
        hides the ones that matter), most likely first."""
        rows = [row for row in self.alternatives or [] if isinstance(row, dict) and "year" in row and "p" in row]
        rows = [row for row in rows if round(float(row["p"]) * 100) >= 1]
        return sorted(rows, key=lambda row: -float(row["p"]))[:5]

    @property
    def rejection_message(self) -> str:
        """What the collector should do when there is no year (empty when there is one)."""
        return REJECT_MESSAGES.get(self.rejected, "")


class Correction(models.Model):
    """An audit trail of curators' decisions: written once, never edited, never deleted (PROTECT: a coin with a
    decision is only ever hidden, see services.coin_delete). An undo is a row of its own that points at the decision
    it undid; the coin's state before each row (prior_*) is what an undo restores.

    `decision` says what the curator decided (rows written before it existed got theirs from their years and
    `excluded` in migration 0009); `override` records a year given to a coin the model had rejected; `applied_from`
    names the decision taken on another coin with the very same photos that this row repeats."""

    class Decision(models.TextChoices):
        CONFIRM = "confirm", "confirmed the year"
        CORRECT = "correct", "corrected the year"
        NOT_A_COIN = "not_a_coin", "not a coin"
        UNUSABLE = "unusable", "unusable photo"
        UNDO = "undo", "undo"

    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="corrections")
    curator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="corrections")
    old_year = models.PositiveSmallIntegerField(null=True, blank=True)
    new_year = models.PositiveSmallIntegerField(null=True, blank=True)
    excluded = models.BooleanField(default=False, help_text="The curator marked the photos unusable for training.")
    decision = models.CharField(max_length=12, choices=Decision.choices, default=Decision.CORRECT)
    not_a_coin = models.BooleanField(default=False, help_text="The coin's not-a-coin mark after this row.")
    override = models.BooleanField(
        default=False,
        help_text="The model judged the photos not a coin (or the date unreadable) and the curator gave a year anyway.",
    )
    applied_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="applied_to",
        help_text="The decision on a coin with the same photos (another collector's) that this row repeats.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    undoes = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="undone_by",
        help_text="The decision this row undid (a decision is undone at most once: the database keeps it unique).",
    )
    prior_verified_year = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    prior_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    prior_excluded = models.BooleanField(default=False, editable=False)
    prior_not_a_coin = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            year_in_range("new_year", name="correction_new_year_in_range"),
            models.CheckConstraint(
                condition=Q(not_a_coin=False) | Q(new_year__isnull=True), name="correction_not_a_coin_has_no_year"
            ),
        ]

    def __str__(self) -> str:
        text = self.summary
        return f"undo: {text}" if self.undoes_id else text

    @property
    def summary(self) -> str:
        """What the row did, in words, with no Python None in it: "confirmed 1874", "corrected 1921 → 1903",
        "corrected (no year) → 1900 (override)", "marked not a coin", "marked unusable"."""
        old = "(no year)" if self.old_year is None else str(self.old_year)
        if self.decision == self.Decision.NOT_A_COIN:
            return "marked not a coin"
        if self.decision == self.Decision.UNUSABLE or (self.excluded and self.decision != self.Decision.UNDO):
            return "marked unusable" + (f" (year {self.new_year})" if self.new_year is not None else "")
        if self.decision == self.Decision.UNDO:
            new = "not a coin" if self.not_a_coin else "unusable" if self.excluded else self.new_year
            return f"{old} → {'(no year)' if new is None else new}"
        text = (
            f"confirmed {self.new_year}"
            if self.decision == self.Decision.CONFIRM
            else f"corrected {old} → {self.new_year}"
        )
        return text + (" (override)" if self.override else "")
