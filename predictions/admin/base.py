"""What the predictions admin modules share: the read-only mixin (the training admin uses it too) and photo URLs."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from ..models import Coin


def image_url(coin: Coin, side: str, *, thumb: bool = False) -> str:
    """The site's permission-checked photo view (media is never public); curators and staff may use it."""
    url = reverse("coin-image", kwargs={"coin_id": coin.pk, "side": side})
    return f"{url}?size=thumb" if thumb else url


class ReadOnlyMixin:
    """Shown, never written through the admin (by anyone, superusers included): history (predictions, corrections,
    training runs, versions) changes only through the services. Mixed into a ModelAdmin or an inline, here and in
    the training admin."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """A read-only ModelAdmin."""
