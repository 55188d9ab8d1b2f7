"""Each collector's storage quota: the bytes of the photos they keep, refused with a 413 past
COINSITE_STORAGE_QUOTA_BYTES before anything is stored (one signed-in collector stored 390 MB in 36 s without it).

Counted from ``Coin.photo_bytes`` (front plus back, written with the coin), over the coins whose photos are still
stored. The check runs twice: early, before any file is written (upload page, POST /api/coins/, POST /api/predict),
and inside the transaction that writes the coin, under a lock on the owner's row, so concurrent uploads cannot
each pass the early check and together go past the quota (the files of the one refused there are discarded).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum

from training.ml.photo_errors import ImageError, human_bytes

from .models import Coin


class StorageQuotaError(ImageError):
    """The collector's photos would take more room than their quota."""

    code = "storage_quota_exceeded"
    http_status = 413


def storage_used(*, owner) -> int:
    """Bytes of the owner's stored photos."""
    used = Coin.objects.filter(owner=owner).exclude(front_image="").aggregate(total=Sum("photo_bytes"))["total"]
    return int(used or 0)


def storage_quota_check(*, owner, incoming: int, lock: bool = False) -> None:
    """Raise StorageQuotaError when ``incoming`` more bytes would take the owner past the quota (0: no quota).

    ``lock``: inside a transaction, lock the owner's row first, so concurrent checks of one owner take turns."""
    quota = settings.COINSITE_STORAGE_QUOTA_BYTES
    if not quota:
        return
    if lock:
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    used = storage_used(owner=owner)
    if used + incoming > quota:
        raise StorageQuotaError(
            f"your photos take {human_bytes(used)} of your {human_bytes(quota)} storage quota, and these "
            f"{human_bytes(incoming)} would go past it; delete coins you no longer need, or ask the site's "
            "administrators for more room"
        )
