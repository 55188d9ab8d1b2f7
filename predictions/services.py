"""Writes of coins, predictions and corrections. Pages, the API, admin actions and tasks all call these."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from training.ml import images

from .models import YEAR_MAX, YEAR_MIN, Coin, Correction
from .roles import can_review

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic", "HEIC": "heic", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class CheckedPhoto:
    """Photo bytes that passed validation, with what storage needs to know about them."""

    data: bytes
    sha256: str
    extension: str
    pixels: Any = None  # uint8 C x H x W tensor for `decoded_for`'s config, when the caller scores it right away
    decoded_for: Any = None


def photo_check(data: bytes, *, field: str, decode_for=None) -> CheckedPhoto:
    """Validate one side's photo before anything is written; raises images.ImageError naming the field.

    With `decode_for` (a TrainConfig), the photo is validated by decoding it straight to the model's input size, and
    the pixels are kept: synchronous prediction then decodes each photo once, not twice (a 12 MP JPEG costs tens of
    ms to decode even at reduced scale).
    """
    limits = {"max_bytes": settings.COINSITE_MAX_UPLOAD_BYTES, "max_pixels": settings.COINSITE_MAX_IMAGE_PIXELS}
    pixels = None
    try:
        if decode_for is None:
            image_format = images.validate_image_bytes(data, **limits)
        else:
            pixels = images.load_uint8(data, decode_for, **limits)
            image_format = images.image_format(data)
    except images.ImageError as error:
        error.field = field
        raise
    return CheckedPhoto(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=EXTENSIONS.get(image_format, "img"),
        pixels=pixels,
        decoded_for=decode_for,
    )


def coin_create(
    *,
    owner,
    front: bytes,
    back: bytes,
    source: str = Coin.Source.UPLOAD,
    verified_year: int | None = None,
    notes: str = "",
    enqueue_prediction: bool = True,
) -> Coin:
    """Store a coin with both photos and their hashes in one transaction, then (after commit) ask for a prediction.

    Photos are validated first, so bad input leaves nothing behind; if the database write fails after the files were
    saved, the files are removed again.
    """
    checked_front = photo_check(front, field="front_image")
    checked_back = photo_check(back, field="back_image")
    return coin_create_checked(
        owner=owner,
        front=checked_front,
        back=checked_back,
        source=source,
        verified_year=verified_year,
        notes=notes,
        enqueue_prediction=enqueue_prediction,
    )


def coin_create_checked(
    *,
    owner,
    front: CheckedPhoto,
    back: CheckedPhoto,
    source: str = Coin.Source.UPLOAD,
    verified_year: int | None = None,
    notes: str = "",
    enqueue_prediction: bool = True,
) -> Coin:
    """coin_create() for photos already checked (the API checks a whole batch before it stores any of it)."""
    coin = Coin(
        owner=owner,
        front_sha256=front.sha256,
        back_sha256=back.sha256,
        source=source,
        verified_year=verified_year,
        verified_at=timezone.now() if verified_year is not None else None,
        notes=notes[:500],
    )
    saved_names: list[str] = []
    try:
        with transaction.atomic():
            coin.front_image.save(f"front.{front.extension}", ContentFile(front.data), save=False)
            saved_names.append(coin.front_image.name)
            coin.back_image.save(f"back.{back.extension}", ContentFile(back.data), save=False)
            saved_names.append(coin.back_image.name)
            coin.full_clean()
            coin.save()
            if enqueue_prediction:
                coin_prediction_enqueue(coin_id=coin.id)
    except BaseException:
        # Only reached when the row was NOT committed (enqueueing is robust, see below): drop the orphaned files.
        storage = Coin._meta.get_field("front_image").storage
        for name in saved_names:
            storage.delete(name)
        raise
    return coin


def coin_prediction_enqueue(*, coin_id: int, force: bool = False) -> None:
    """Ask for a prediction once the coin is committed.

    `robust=True`: a broker or registry failure while enqueueing (or, on the embedded default, while the eager task
    runs) is logged and never undoes or fails an upload that is already stored; the pending sweeper retries it.
    """
    from .tasks import coin_predict_task

    transaction.on_commit(lambda: coin_predict_task.delay(coin_id, force=force), robust=True)


@transaction.atomic
def coin_correct(*, coin: Coin, curator, year: int | None = None, exclude: bool = False) -> Correction:
    """The one way a year becomes a label: confirm or correct it (or mark the photos unusable), with an audit row."""
    if not can_review(curator):
        raise PermissionDenied("Only curators can confirm or correct a coin's year.")
    if not exclude and year is None:
        raise ValidationError({"year": "Give the coin's year, or mark the photos unusable."})
    if year is not None and not YEAR_MIN <= year <= YEAR_MAX:
        raise ValidationError({"year": f"The year must be between {YEAR_MIN} and {YEAR_MAX}."})
    coin = Coin.objects.select_for_update().get(pk=coin.pk)
    correction = Correction(
        coin=coin, curator=curator, old_year=coin.display_year, new_year=year, excluded=exclude
    )
    correction.full_clean()
    correction.save()
    if year is not None:
        coin.verified_year = year
        coin.verified_at = timezone.now()
    coin.excluded_from_training = exclude
    coin.save(update_fields=["verified_year", "verified_at", "excluded_from_training", "updated_at"])
    return correction


def coin_delete(*, coin: Coin) -> None:
    """Delete a coin and its photo files (after the row is gone for good)."""
    names = [coin.front_image.name, coin.back_image.name]
    storage = coin.front_image.storage
    with transaction.atomic():
        coin.delete()
        transaction.on_commit(lambda: [storage.delete(name) for name in names if name])


def coins_requeue_pending(*, older_than_seconds: int = 120) -> int:
    """Enqueue a prediction again for every coin still pending after `older_than_seconds`; returns how many."""
    from datetime import timedelta

    from .tasks import coin_predict_task

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    coin_ids = list(Coin.objects.filter(status=Coin.Status.PENDING, created_at__lte=cutoff).values_list("id", flat=True))
    for coin_id in coin_ids:
        coin_predict_task.delay(coin_id)
    return len(coin_ids)


# ---------------------------------------------------------------------------------------------------------------------
# Appended by the API engineer (issue 5, POST /api/predict); the functions above are the lead's and are unchanged.
# ---------------------------------------------------------------------------------------------------------------------

from .models import Prediction  # noqa: E402  (appended section: the lead owns the imports at the top)


def coin_batch_predict(
    *, owner, pairs: list[tuple[CheckedPhoto, CheckedPhoto]], source: str = Coin.Source.API
) -> list[Prediction]:
    """Predict a batch of already checked photo pairs synchronously and keep every pair as a coin with its prediction.

    The whole batch is scored in one call before anything is written, so a missing Production model
    (inference.NoProductionModel) or a failed forward pass leaves no row and no file. Then all coins and predictions
    are written in one transaction; if that fails, the photo files saved so far are removed again. Returns the
    predictions in the order of `pairs` (each with its `.coin`).
    """
    from training.services import model_version_mirror

    from .inference import predict_checked, prediction_store

    results = predict_checked(pairs)
    for version in {result.version for result in results}:
        model_version_mirror(version=version)  # may ask the registry: do it before the transaction, not inside
    coins: list[Coin] = []
    predictions: list[Prediction] = []
    try:
        with transaction.atomic():
            for (front, back), result in zip(pairs, results, strict=True):
                coin = coin_create_checked(
                    owner=owner, front=front, back=back, source=source, enqueue_prediction=False
                )
                coins.append(coin)
                prediction = prediction_store(coin=coin, result=result)
                prediction.coin = coin
                predictions.append(prediction)
    except BaseException:
        storage = Coin._meta.get_field("front_image").storage
        for coin in coins:
            for name in (coin.front_image.name, coin.back_image.name):
                if name:
                    storage.delete(name)
        raise
    return predictions


@transaction.atomic
def coins_confirm_predicted(*, coins, curator) -> tuple[int, int]:
    """Bulk "confirm predicted year": coin_correct() with each coin's latest predicted year, all or nothing.

    Coins without a prediction or already verified are skipped (returned as the second number): confirming in bulk
    must never overwrite a curator's earlier decision with the model's guess.
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators can confirm or correct a coin's year.")
    confirmed = skipped = 0
    for coin in coins:
        prediction = coin.latest_prediction
        if prediction is None or coin.verified_year is not None:
            skipped += 1
            continue
        coin_correct(coin=coin, curator=curator, year=prediction.year)
        confirmed += 1
    return confirmed, skipped
