"""What the review desk shows, in words: the decision's message and the coins with the same photos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import selectors
from ..models import Coin
from ..review import DeskDecision


@dataclass(frozen=True)
class SamePhotos:
    """Another coin with exactly these photos, as the desk links it."""

    coin: Coin
    url: str
    other_collector: bool
    awaiting: bool
    state: str


def coin_state(coin: Coin) -> str:
    """A coin's review state in a few words (no Python None in them)."""
    if coin.not_a_coin:
        text = "marked not a coin"
    elif coin.excluded_from_training:
        text = "marked unusable"
    elif coin.verified_year is not None:
        text = f"verified {coin.verified_year}"
    elif coin.status == Coin.Status.PREDICTED:
        text = "awaiting review"
    else:
        text = coin.get_status_display().lower()
    return text + (" · deleted by its collector" if coin.deleted_at is not None else "")


def same_photos(coin: Coin, *, url: Callable[[Coin], str]) -> list[SamePhotos]:
    """The other coins with this coin's very photos, each with its desk URL and whether a decision here may be
    applied to it (it awaits review)."""
    awaiting = set(
        Coin.objects.filter(selectors.AWAITING_REVIEW, front_sha256=coin.front_sha256, back_sha256=coin.back_sha256)
        .exclude(pk=coin.pk)
        .values_list("pk", flat=True)
    )
    return [
        SamePhotos(
            coin=other,
            url=url(other),
            other_collector=other.owner_id != coin.owner_id,
            awaiting=other.pk in awaiting,
            state=coin_state(other),
        )
        for other in selectors.coins_same_photos(coin)
    ]


def decision_message(result: DeskDecision) -> str:
    """The message, e.g. "Coin #308: corrected (no year) → 1900 (override).", and for a decision applied to the same photos, which
    other coins got it and which did not, with the reason."""
    correction = result.correction
    text = f"Coin #{correction.coin_id}: {correction.summary}."
    if result.applied:
        ids = ", ".join(f"#{applied.coin_id}" for applied in result.applied)
        text += f" The same decision for the coins with the same photos: {ids}."
    for coin_id, reason in result.skipped.items():
        text += f" Coin #{coin_id} (same photos) left as it was: {reason}."
    return text
