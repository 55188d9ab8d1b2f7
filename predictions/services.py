"""Writes of coins, predictions and corrections. Pages, the API, admin actions and tasks all call these."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from registry.outcomes import NoProductionModel
from registry.services import model_version_mirror
from training.ml import decoding, photo_errors

from . import enqueue, inference, quota, selectors, upload_guard
from .decisions import coin_decide
from .models import Coin, Correction, Prediction
from .roles import can_review

EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",  # a phone's multi-picture JPEG: its first picture is an ordinary JPEG, and browsers show it so
    "PNG": "png",
    "WEBP": "webp",
    "HEIF": "heic",
    "AVIF": "avif",
    "BMP": "bmp",
    "TIFF": "tif",
}
# Lists and the review desk show photos at this size (160 CSS px, twice for dense screens), or down to 0.85 of it
# (decoding.NEAR_RENDITION): a JPEG made from the upload's one decode and stored with it, without the Huffman
# optimisation pass (0.3 ms a photo for 5 % fewer bytes).
THUMBNAIL_PX = 320


@dataclass(frozen=True)
class CheckedPhoto:
    """Photo bytes that passed validation, with what storage needs to know about them."""

    data: bytes
    extension: str
    field: str = ""
    pixels: Any = None  # uint8 C x H x W tensor for `decoded_for`'s config, when the caller scores it right away
    decoded_for: Any = None
    thumbnail: bytes = b""  # the THUMBNAIL_PX JPEG, made from the same decode

    @cached_property
    def sha256(self) -> str:
        """Computed on first use: PhotoFiles hashes in its writer thread, off the request's critical path."""
        return hashlib.sha256(self.data).hexdigest()


def _limits() -> dict[str, Any]:
    """The settings-built limits (settings.COINSITE_PHOTO_LIMITS), as the keyword the decoders take."""
    return {"limits": settings.COINSITE_PHOTO_LIMITS}


def _named(error: photo_errors.ImageError, field: str) -> photo_errors.ImageError:
    error.field = field
    return error


def photo_check(data: bytes, *, field: str) -> CheckedPhoto:
    """Validate one side's photo completely, decoding it once at reduced scale, before anything is written; the
    thumbnail comes from that same decode.

    Raises photo_errors.ImageError naming the field.
    """
    try:
        decoded = decoding.decode(data, target=THUMBNAIL_PX, **_limits())
        thumbnail = decoded.rendition_jpeg(THUMBNAIL_PX, optimize=False)
    except photo_errors.ImageError as error:
        raise _named(error, field) from None
    return CheckedPhoto(data=data, extension=EXTENSIONS.get(decoded.format, "img"), field=field, thumbnail=thumbnail)


def photo_check_header(data: bytes, *, field: str) -> CheckedPhoto:
    """The checks that need no decoding (size, format, dimensions, decode price): enough to start storing the photo
    while it is decoded. photo_decode() finishes the validation; until then the photo may still turn out truncated."""
    try:
        image_format = decoding.decode_plan(data, **_limits()).format  # images.check_header, without torch
    except photo_errors.ImageError as error:
        raise _named(error, field) from None
    return CheckedPhoto(data=data, extension=EXTENSIONS.get(image_format, "img"), field=field)


def photo_decode(photo: CheckedPhoto, config) -> CheckedPhoto:
    """Decode a photo once, straight to the model's input (`config`, a TrainConfig) and its thumbnail: this validates
    it completely, and the pixels are kept so a synchronous prediction decodes each photo once.

    The decode target is the model's (as in images.load_image), so the model sees the very pixels training did."""
    from training.ml import images  # lazy: torch (its tensors) loads only in processes that score

    try:
        decoded = decoding.decode(photo.data, target=2 * config.image_size, **_limits())
        image = decoded.model_image(size=config.image_size, grayscale=config.grayscale)
        thumbnail = decoded.rendition_jpeg(THUMBNAIL_PX, optimize=False)
    except photo_errors.ImageError as error:
        raise _named(error, photo.field) from None
    return replace(photo, pixels=images.image_to_uint8(image), decoded_for=config, thumbnail=thumbnail)


class PhotoFiles:
    """Photo files written by a background thread while the caller goes on (decoding, predicting).

    Every photo is hashed and stored under its final name outside any database transaction, so a slow disk never
    holds the database's write lock. Thumbnails are added once the photos are decoded (add_thumbnails). names()
    and thumbnail_names() wait for the writes; discard() removes whatever was written, so a request that fails
    later leaves no file behind (a process killed in between leaves files the orphan sweep removes).
    """

    _pool: ThreadPoolExecutor | None = None
    _pool_lock = threading.Lock()

    def __init__(self, owner, photos: list[CheckedPhoto]) -> None:
        field = Coin._meta.get_field("front_image")
        self._storage = field.storage
        template = Coin(owner=owner)
        self._template = template
        pool = self._writer_pool()
        self._futures = [
            pool.submit(self._write, photo, field.generate_filename(template, f"photo.{photo.extension}"))
            for photo in photos
        ]
        self._thumbnail_futures: list = []

    @classmethod
    def _writer_pool(cls) -> ThreadPoolExecutor:
        with cls._pool_lock:
            if cls._pool is None:
                cls._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="photo-writer")
            return cls._pool

    def _write(self, photo: CheckedPhoto, name: str) -> str:
        photo.sha256  # noqa: B018  (hash here, while the caller decodes)
        return self._storage.save(name, ContentFile(photo.data))

    def _thumbnail_name(self) -> str:
        return Coin._meta.get_field("front_thumbnail").generate_filename(self._template, "thumb.jpg")

    def add_thumbnails(self, photos: list[CheckedPhoto]) -> None:
        """Store each photo's thumbnail (photos without one get the name "")."""
        pool = self._writer_pool()
        self._thumbnail_futures = [
            pool.submit(self._storage.save, self._thumbnail_name(), ContentFile(photo.thumbnail))
            if photo.thumbnail
            else None
            for photo in photos
        ]

    def names(self) -> list[str]:
        """The stored names, in the order of the photos; raises the first write error."""
        return [future.result() for future in self._futures]

    def thumbnail_names(self) -> list[str]:
        return [future.result() if future is not None else "" for future in self._thumbnail_futures]

    def discard(self) -> None:
        """Wait for every write and remove each file that was written."""
        for future in [*self._futures, *self._thumbnail_futures]:
            if future is None:
                continue
            try:
                name = future.result()
            except BaseException:
                continue
            self._storage.delete(name)


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
    """Store a coin with both photos and their hashes, then (after commit) ask for a prediction.

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


def coin_same_pair(*, owner, front: bytes, back: bytes) -> Coin | None:
    """This collector's coin with exactly these two photos (by SHA-256), if there is one: an upload of the same pair
    opens it instead of making a second coin (and is never decoded again)."""
    front_sha256, back_sha256 = hashlib.sha256(front).hexdigest(), hashlib.sha256(back).hexdigest()
    coins = selectors.coins_of(owner).filter(front_sha256=front_sha256, back_sha256=back_sha256)
    return coins.order_by("id").first()


def photos_check(photos: dict[str, bytes]) -> tuple[dict[str, CheckedPhoto], dict[str, photo_errors.ImageError]]:
    """Check every photo (not only up to the first bad one), so a page can say which one to replace and keep the
    other: (checked photos by field, errors by field)."""
    checked: dict[str, CheckedPhoto] = {}
    errors: dict[str, photo_errors.ImageError] = {}
    for field, data in photos.items():
        try:
            checked[field] = photo_check(data, field=field)
        except photo_errors.ImageError as error:
            errors[field] = error
    return checked, errors


def coin_create_checked(
    *,
    owner,
    front: CheckedPhoto,
    back: CheckedPhoto,
    source: str = Coin.Source.UPLOAD,
    verified_year: int | None = None,
    notes: str = "",
    enqueue_prediction: bool = True,
    stored_names: tuple[str, str] | None = None,
    stored_thumbnails: tuple[str, str] = ("", ""),
) -> Coin:
    """coin_create() for photos already checked (the API checks a whole batch before it stores any of it).

    The files are written first, outside the transaction (or were, by the caller's PhotoFiles: `stored_names`);
    the row is then committed on its own. If the row is not committed, files this call wrote are removed again;
    files the caller wrote are the caller's to discard.
    """
    if not stored_names:  # this call writes the files: it holds the owner's upload mark until the row commits
        with upload_guard.owner_upload(owner.pk):
            return _coin_create_files_then_row(
                owner=owner,
                front=front,
                back=back,
                source=source,
                verified_year=verified_year,
                notes=notes,
                enqueue_prediction=enqueue_prediction,
            )
    return _coin_create_files_then_row(
        owner=owner,
        front=front,
        back=back,
        source=source,
        verified_year=verified_year,
        notes=notes,
        enqueue_prediction=enqueue_prediction,
        stored_names=stored_names,
        stored_thumbnails=stored_thumbnails,
    )


def _coin_create_files_then_row(
    *,
    owner,
    front: CheckedPhoto,
    back: CheckedPhoto,
    source: str,
    verified_year: int | None,
    notes: str,
    enqueue_prediction: bool,
    stored_names: tuple[str, str] | None = None,
    stored_thumbnails: tuple[str, str] = ("", ""),
) -> Coin:
    files = None
    if not stored_names:
        files = PhotoFiles(owner, [front, back])
        files.add_thumbnails([front, back])
    try:
        front_name, back_name = stored_names or files.names()
        front_thumbnail, back_thumbnail = files.thumbnail_names() if files is not None else stored_thumbnails
        coin = Coin(
            owner=owner,
            front_image=front_name,
            back_image=back_name,
            front_thumbnail=front_thumbnail,
            back_thumbnail=back_thumbnail,
            front_sha256=front.sha256,
            back_sha256=back.sha256,
            photo_bytes=len(front.data) + len(back.data),
            source=source,
            verified_year=verified_year,
            verified_at=timezone.now() if verified_year is not None else None,
            notes=notes[:500],
        )
        with transaction.atomic(savepoint=False):  # nested in a batch's transaction: the batch fails as a whole
            quota.storage_quota_check(owner=owner, incoming=coin.photo_bytes, lock=True)
            coin.full_clean(validate_constraints=verified_year is not None)  # the one constraint is on verified_year
            coin.save()
            if enqueue_prediction:
                coin_prediction_enqueue(coin_id=coin.id)
    except BaseException:
        # Only reached when the row was NOT committed (enqueueing is robust, see below): drop the orphaned files.
        if files is not None:
            files.discard()
        raise
    return coin


def coin_prediction_enqueue(*, coin_id: int, force: bool = False) -> None:
    """Ask for a prediction once the coin is committed (enqueue.coin_predict_on_commit: an enqueue failure never fails
    an upload that is already stored; the pending sweeper retries it)."""
    enqueue.coin_predict_on_commit(coin_id=coin_id, force=force)


def coin_correct(
    *, coin: Coin, curator, year: int | None = None, exclude: bool = False, override: bool = False
) -> Correction:
    """Confirm or correct a coin's year (or mark the photos unusable): decisions.coin_decide(), the one way a year
    becomes a label, with its audit row; a coin the model rejected needs `override` for a year."""
    if not exclude and year is None:
        raise ValidationError({"year": "Give the coin's year, or mark the photos unusable."})
    decision = Correction.Decision.UNUSABLE if exclude else Correction.Decision.CORRECT
    return coin_decide(coin=coin, curator=curator, decision=decision, year=year, override=override)


PHOTO_FIELDS = ("front_image", "back_image", "front_thumbnail", "back_thumbnail")


def coin_delete(*, coin: Coin) -> bool:
    """A collector deletes a coin: it is gone for them, but the audit trail and the training labels are never erased.

    A coin that holds a training label (a verified year, by a curator, an import or the demo, not excluded) or a
    curator's decision is hidden, not erased: `deleted_at` is set, collectors' pages and the API never return it
    again (selectors.coins_of), its Corrections stay, and so do its photos while it is a label (training reads them;
    the orphan sweep keeps every file a row names). A hidden coin without a label loses its photos, as the collector
    asked. A coin with nothing to keep is deleted with its photo files. The files go after the commit.
    Returns True when the row was kept (hidden).
    """
    with transaction.atomic():
        coin = Coin.objects.select_for_update().get(pk=coin.pk)  # serialised with a curator's decision on it
        storage = coin.front_image.storage
        names = [getattr(coin, field).name for field in PHOTO_FIELDS]
        labelled = coin.verified_year is not None and not coin.excluded_from_training
        if not labelled and not coin.corrections.exists():
            coin.delete()
            transaction.on_commit(lambda: [storage.delete(name) for name in names if name])
            return False
        coin.deleted_at = timezone.now()
        coin.claimed_by, coin.claimed_until = None, None
        fields = ["deleted_at", "claimed_by", "claimed_until", "updated_at"]
        if not labelled:
            for field in PHOTO_FIELDS:
                setattr(coin, field, "")
            fields += PHOTO_FIELDS
            transaction.on_commit(lambda: [storage.delete(name) for name in names if name])
        coin.save(update_fields=fields)
        return True


def coins_requeue_pending(*, older_than_seconds: int = 120) -> int:
    """Enqueue a prediction again for every coin still pending after `older_than_seconds`; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    coin_ids = list(
        Coin.objects.filter(status=Coin.Status.PENDING, created_at__lte=cutoff).values_list("id", flat=True)
    )
    for coin_id in coin_ids:
        enqueue.coin_predict(coin_id=coin_id)
    return len(coin_ids)


def coin_batch_predict(
    *, owner, pairs: list[tuple[CheckedPhoto, CheckedPhoto]], source: str = Coin.Source.API
) -> list[Prediction]:
    """Predict a batch of photo pairs synchronously and keep every pair as a coin with its prediction.

    `pairs` passed photo_check_header(). While this thread decodes every photo to the model's input (which completes
    its validation) and scores the batch, a writer thread hashes and stores the photo files: storing costs the
    caller almost no time. Any failure (a photo that turns out truncated, no Production model, a failed forward pass,
    a database error) removes the files written so far and leaves no row. All coins and predictions are written in
    one transaction. Returns the predictions in the order of `pairs` (each with its `.coin`).
    """
    from registry.serving import serving_config  # lazy: torch loads only in processes that score

    photos = [photo for pair in pairs for photo in pair]
    quota.storage_quota_check(owner=owner, incoming=sum(len(photo.data) for photo in photos))
    config = serving_config()
    if config is None:  # a photo problem is still the client's 400; otherwise 503, with nothing written
        for photo in photos:
            photo_check(photo.data, field=photo.field)
        raise NoProductionModel()
    with upload_guard.owner_upload(owner.pk):  # until the rows naming the files commit (or the files are gone)
        return _coin_batch_files_then_rows(owner=owner, pairs=pairs, photos=photos, config=config, source=source)


def _coin_batch_files_then_rows(*, owner, pairs, photos, config, source: str) -> list[Prediction]:
    from registry.serving import predict_checked  # lazy: as in coin_batch_predict

    files = PhotoFiles(owner, photos)
    try:
        decoded = [(photo_decode(front, config), photo_decode(back, config)) for front, back in pairs]
        files.add_thumbnails([photo for pair in decoded for photo in pair])
        results = predict_checked(decoded)
        # A version seen for the first time is looked up in the registry: before the transaction, not inside it.
        mirrors = {version: model_version_mirror(version=version) for version in {r.version for r in results}}
        names = files.names()
        thumbnails = files.thumbnail_names()
        predictions: list[Prediction] = []
        with transaction.atomic():
            for index, ((front, back), result) in enumerate(zip(pairs, results, strict=True)):
                coin = coin_create_checked(
                    owner=owner,
                    front=front,
                    back=back,
                    source=source,
                    enqueue_prediction=False,
                    stored_names=(names[2 * index], names[2 * index + 1]),
                    stored_thumbnails=(thumbnails[2 * index], thumbnails[2 * index + 1]),
                )
                prediction = inference.prediction_store(coin=coin, result=result, model_version=mirrors[result.version])
                prediction.coin = coin
                predictions.append(prediction)
    except BaseException:
        files.discard()
        raise
    return predictions


# Bulk confirm accepts the model's year only where the model is sure: an interval this narrow (in years) or narrower.
BULK_CONFIRM_MAX_WIDTH = 2


@dataclass(frozen=True)
class BulkConfirmResult:
    """What a bulk confirm did: how many coins it confirmed, and how many it skipped for each reason."""

    confirmed: int
    skipped_by_reason: dict[str, int]

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())


def _bulk_skip_reason(coin: Coin, curator, *, max_width: int, now) -> str:
    """Why bulk confirm leaves this coin alone ("" when it may confirm it)."""
    prediction = coin.latest_prediction
    if coin.verified_year is not None or coin.excluded_from_training or coin.not_a_coin:
        return "already decided"
    if coin.deleted_at is not None:
        return "deleted by its collector"
    if coin.claimed_by_id not in (None, curator.pk) and coin.claimed_until and coin.claimed_until > now:
        return "being reviewed by another curator"
    if prediction is None:
        return "no prediction"
    if prediction.rejected:
        return "no year: " + prediction.get_rejected_display()
    if prediction.interval_width > max_width:
        return f"not confident (interval wider than {max_width} years)"
    return ""


@transaction.atomic
def coins_confirm_predicted(*, coins, curator) -> BulkConfirmResult:
    """Bulk "confirm predicted year": coin_correct() with each coin's latest predicted year, all or nothing, for the
    coins whose prediction is confident only.

    A year confirmed in bulk becomes a training label nobody looked at, so only a narrow interval (at most
    BULK_CONFIRM_MAX_WIDTH years, or the COINSITE_BULK_CONFIRM_MAX_WIDTH setting) qualifies; coins without a
    prediction, with a rejected one (not a coin, unreadable), already decided (bulk must never overwrite a curator's
    earlier decision with the model's guess), deleted, or claimed by another curator are skipped, each with its reason.
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators can confirm or correct a coin's year.")
    max_width = getattr(settings, "COINSITE_BULK_CONFIRM_MAX_WIDTH", BULK_CONFIRM_MAX_WIDTH)
    now = timezone.now()
    confirmed = 0
    skipped: dict[str, int] = {}
    for coin in coins:
        reason = _bulk_skip_reason(coin, curator, max_width=max_width, now=now)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        coin_correct(coin=coin, curator=curator, year=coin.latest_prediction.year)
        confirmed += 1
    return BulkConfirmResult(confirmed=confirmed, skipped_by_reason=skipped)


# Formats every browser shows as they are; anything else (HEIC, TIFF, BMP) is sent as a JPEG rendition.
BROWSER_FORMATS = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
}
DISPLAY_PX = 2048
RENDITION_CACHE_SECONDS = 86400


@dataclass(frozen=True)
class PhotoRendition:
    """What the photo view sends: an open file or bytes, its content type and the extension of its download name."""

    content: Any
    content_type: str
    extension: str


def coin_photo_rendition(*, coin: Coin, side: str, thumbnail: bool) -> PhotoRendition:
    """One side of a coin as browsers can show it: the stored thumbnail, the photo itself, or a JPEG rendition.

    A coin stored before thumbnails existed gets its thumbnail made (one bounded decode) and stored on first request.
    Raises FileNotFoundError when the photo is missing, photo_errors.ImageError when it cannot be decoded.
    """
    photo = coin.front_image if side == "front" else coin.back_image
    if not photo.name:  # a coin hidden without its label loses its photos (coin_delete): the field is empty
        raise FileNotFoundError(f"coin {coin.pk} has no {side} photo any more")
    thumbnail_field = f"{side}_thumbnail"
    if thumbnail:
        stored = getattr(coin, thumbnail_field)
        if stored:
            return PhotoRendition(stored.open("rb"), "image/jpeg", "jpg")
        data = _rendition(photo, THUMBNAIL_PX)
        name = Coin._meta.get_field(thumbnail_field).generate_filename(coin, "thumb.jpg")
        name = photo.storage.save(name, ContentFile(data))
        if not Coin.objects.filter(pk=coin.pk, **{thumbnail_field: ""}).update(**{thumbnail_field: name}):
            photo.storage.delete(name)  # another request stored one first (or the coin is gone)
        return PhotoRendition(data, "image/jpeg", "jpg")
    extension = photo.name.rsplit(".", 1)[-1].lower() if "." in photo.name else ""
    if extension in BROWSER_FORMATS:
        return PhotoRendition(photo.open("rb"), BROWSER_FORMATS[extension], extension)
    return PhotoRendition(_display_rendition(coin, side, photo), "image/jpeg", "jpg")


def _display_rendition(coin: Coin, side: str, photo) -> bytes:
    """The full-size JPEG of a photo browsers cannot show, decoded once and kept in the shared cache under the
    photo's content hash (the view checked who may see it; the same bytes are the same JPEG for anyone): a 36 MP TIFF
    cost 362 ms of CPU on every view before. A few hundred KB per photo, for a day after its last decode."""
    digest = (coin.front_sha256 if side == "front" else coin.back_sha256) or hashlib.sha256(
        photo.name.encode()
    ).hexdigest()
    key = f"photo-rendition:{digest}:{DISPLAY_PX}"
    data = cache.get(key)
    if data is None:
        data = _rendition(photo, DISPLAY_PX)
        cache.set(key, data, timeout=RENDITION_CACHE_SECONDS)
    return data


def _rendition(photo, max_px: int) -> bytes:
    with photo.open("rb") as handle:
        data = handle.read()
    return decoding.decode(data, target=min(max_px, 1024), **_limits()).rendition_jpeg(max_px)
