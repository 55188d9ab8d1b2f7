"""Writes of the review desk: claims on coins, decisions taken from the desk, and undo of one's own last decisions.

A claim keeps two curators working the queue at once from ever getting the same coin: a curator reaches a coin
only by claiming it (or holding it already), and a claim is taken by one conditional UPDATE (`claimed_by` is empty,
expired or this curator's), which the database applies to one transaction at a time: on PostgreSQL the second
UPDATE waits for the first one's row lock, then re-checks its WHERE on the row as the first one left it, so it
matches nothing. A claim expires (CLAIM_SECONDS) so a curator who walks away holds nothing for long, and a curator
holds one coin at a time (taking a claim releases their others, so a skipped coin goes back to the queue).

An undo is a Correction of its own (`undoes` points at the decision), never a deletion: the audit shows both.
The decisions themselves (what each makes of the coin, the override a rejected coin needs) are predictions.decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, OrderBy, Q, QuerySet
from django.utils import timezone

from . import decisions, selectors
from .models import Coin, Correction
from .roles import can_review

CLAIM_SECONDS = 600
UNDO_SECONDS = 600


def claim_seconds() -> int:
    """How long a claim holds (the COINSITE_REVIEW_CLAIM_SECONDS setting, 10 minutes by default)."""
    return int(getattr(settings, "COINSITE_REVIEW_CLAIM_SECONDS", CLAIM_SECONDS))


def undo_seconds() -> int:
    """How long a curator may undo a decision (the COINSITE_REVIEW_UNDO_SECONDS setting, 10 minutes by default)."""
    return int(getattr(settings, "COINSITE_REVIEW_UNDO_SECONDS", UNDO_SECONDS))


def claimable_by(curator, *, now=None) -> Q:
    """Coins this curator may claim: unclaimed, claimed by them, or whose claim has expired."""
    now = now or timezone.now()
    return Q(claimed_by__isnull=True) | Q(claimed_by=curator) | Q(claimed_until__lte=now)


def claimed_by_other(coin: Coin, curator, *, now=None) -> bool:
    """Whether another curator holds an unexpired claim on `coin` (as loaded)."""
    now = now or timezone.now()
    return (
        coin.claimed_by_id is not None
        and coin.claimed_by_id != curator.pk
        and coin.claimed_until is not None
        and coin.claimed_until > now
    )


def coin_claim(*, coin_id: int, curator) -> bool:
    """Claim a coin for `curator` (or renew their claim); False when another curator holds it.

    One conditional UPDATE decides, so two curators racing for the same coin cannot both win (see the module's
    docstring). Winning releases the curator's claims on other coins.
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators review coins.")
    now = timezone.now()
    with transaction.atomic():
        won = bool(
            Coin.objects.filter(claimable_by(curator, now=now), pk=coin_id).update(
                claimed_by=curator, claimed_until=now + timedelta(seconds=claim_seconds())
            )
        )
        if won:
            Coin.objects.filter(claimed_by=curator).exclude(pk=coin_id).update(claimed_by=None, claimed_until=None)
    return won


def coin_claim_next(*, candidates: Iterable[int], curator) -> int | None:
    """Claim the first coin of `candidates` (ids in queue order) that no other curator holds; returns its id.

    Candidates another curator holds are skipped; one taken between the read and the UPDATE is skipped too (the
    UPDATE then matches nothing), so this never hands out a coin someone else has.
    """
    for coin_id in candidates:
        if coin_claim(coin_id=coin_id, curator=curator):
            return coin_id
    return None


def coin_claim_first(*, queue: QuerySet[Coin], curator) -> int | None:
    """Claim the first coin of `queue` (in its order) that no other curator holds; returns its id.

    `SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1` on the queue as the curator sees it: the database walks the queue's
    index to the first claimable row that no other transaction has locked, so two curators asking at once get two
    coins, and nothing but that one id is read (loading the queue's ids to try them one by one cost 28-36 s at 1M
    coins, issue 24). The claim itself is coin_claim()'s conditional UPDATE, in the same transaction as the lock.
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators review coins.")
    for _attempt in range(3):  # without row locks (SQLite), a coin taken between the read and the UPDATE: next one
        with transaction.atomic():
            coin_id = (
                queue.filter(claimable_by(curator))
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)
                .first()
            )
            if coin_id is None:
                return None
            if coin_claim(coin_id=coin_id, curator=curator):
                return coin_id
    return None


def queue_after(*, queue: QuerySet[Coin], coin_id: int) -> Q | None:
    """The coins that come after `coin_id` in `queue`'s order (a keyset condition on the order's columns), or None
    when that coin is not in the queue (the caller then starts from its beginning). One query: the anchor's values."""
    terms = [_order_term(item) for item in queue.query.order_by]
    anchor = queue.filter(pk=coin_id).values(*[name for name, _desc, _nulls_last in terms]).first()
    if anchor is None:
        return None
    after = Q(pk__in=[])
    equal_so_far = Q()
    for name, descending, nulls_last in terms:
        value = anchor[name]
        if value is None:
            strictly = Q(pk__in=[]) if nulls_last else Q(**{f"{name}__isnull": False})
            equal = Q(**{f"{name}__isnull": True})
        else:
            strictly = Q(**{f"{name}__{'lt' if descending else 'gt'}": value})
            if nulls_last and _nullable(name):
                strictly |= Q(**{f"{name}__isnull": True})
            equal = Q(**{name: value})
        after |= equal_so_far & strictly
        equal_so_far &= equal
    return after


def _order_term(item) -> tuple[str, bool, bool]:
    """(column, descending, nulls last) of one ordering entry: "name", "-name" or F("name").asc/desc(...); nulls
    as PostgreSQL places them unless the entry says (last when ascending, first when descending)."""
    if isinstance(item, str):
        descending = item.startswith("-")
        name = item.lstrip("-")
        nulls_last = not descending
    elif isinstance(item, OrderBy) and isinstance(item.expression, F):
        name = item.expression.name
        descending = item.descending
        nulls_last = bool(item.nulls_last) or (not item.nulls_first and not descending)
    else:
        raise ValueError(f"The queue's order must name columns, not {item!r}.")
    return ("id" if name == "pk" else name), descending, nulls_last


def _nullable(name: str) -> bool:
    try:
        return Coin._meta.get_field(name).null
    except FieldDoesNotExist:  # an annotation (interval width, model version): may be NULL
        return True


def coin_release(*, coin_id: int, curator) -> None:
    """Give a claim back (a no-op when the curator does not hold it)."""
    Coin.objects.filter(pk=coin_id, claimed_by=curator).update(claimed_by=None, claimed_until=None)


@dataclass(frozen=True)
class DeskDecision:
    """What one save on the desk did: the decision on the coin shown, the same decision repeated on coins with the
    same photos (each its own audited row), and the duplicates left alone with the reason."""

    correction: Correction
    applied: list[Correction] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def _duplicate_skip_reason(coin: Coin, curator) -> str:
    """Why "apply to the same photos" leaves this coin alone ("" when it may decide it)."""
    if claimed_by_other(coin, curator):
        return f"{coin.claimed_by} is reviewing it"
    if not Coin.objects.filter(selectors.AWAITING_REVIEW, pk=coin.pk).exists():
        return "already decided (or not awaiting review)"
    return ""


@transaction.atomic
def coin_review_decide(
    *,
    coin: Coin,
    curator,
    decision: str,
    year: int | None = None,
    override: bool = False,
    same_photos: bool = False,
) -> DeskDecision:
    """A decision taken on the review desk: decisions.coin_decide(), refused when another curator holds the coin;
    the curator's claim on it is released (it has left the queue).

    With `same_photos`, the same decision goes to every other coin with the very same photos that still awaits
    review and no other curator holds: one Correction per coin, each naming the decision it repeats
    (`applied_from`), all in this transaction (a duplicate the decision does not hold for is skipped with the reason,
    e.g. a year without the override where that copy's prediction was rejected).
    """
    locked = Coin.objects.select_for_update(of=("self",)).select_related("claimed_by").filter(pk=coin.pk).first()
    if locked is None:
        raise ValidationError("This coin was deleted by its collector meanwhile.")
    if claimed_by_other(locked, curator):
        raise ValidationError(
            f"{locked.claimed_by} is reviewing this coin (claimed until "
            f"{timezone.localtime(locked.claimed_until):%H:%M}): it was not changed."
        )
    correction = decisions.coin_decide(coin=locked, curator=curator, decision=decision, year=year, override=override)
    result = DeskDecision(correction=correction)
    if same_photos:
        for other in selectors.coins_same_photos(locked):
            reason = _duplicate_skip_reason(other, curator)
            if not reason:
                try:
                    with transaction.atomic():
                        result.applied.append(
                            decisions.coin_decide(
                                coin=other,
                                curator=curator,
                                decision=decision,
                                year=year,
                                override=override,
                                applied_from=correction,
                            )
                        )
                except ValidationError as error:
                    reason = " ".join(error.messages)
            if reason:
                result.skipped[other.pk] = reason
    coin_release(coin_id=locked.pk, curator=curator)
    return result


@transaction.atomic
def correction_undo(*, correction_id: int, curator) -> Correction:
    """Take back one of the curator's own decisions of the last UNDO_SECONDS: the coin's verified year, its
    verification time and its exclusion are restored to what they were before the decision, and a new Correction
    records the undo (pointing at the decision). The coin is claimed for the curator, who usually decides it again.

    Refused (ValidationError) for someone else's decision, an undo, a decision already undone, one older than the
    window, or one that is no longer the coin's latest (undoing it would drop the decision taken after it).
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators can confirm or correct a coin's year.")
    decision = Correction.objects.filter(pk=correction_id).first()
    if decision is None or decision.curator_id != curator.pk:
        raise ValidationError("You can only undo your own decisions.")
    coin = Coin.objects.select_for_update().get(pk=decision.coin_id)  # serialises undos and decisions on the coin
    if decision.undoes_id is not None:
        raise ValidationError("An undo cannot be undone: decide the coin again instead.")
    if Correction.objects.filter(undoes=decision).exists():
        raise ValidationError(f"This decision on coin #{coin.pk} was undone already.")
    if decision.created_at < timezone.now() - timedelta(seconds=undo_seconds()):
        raise ValidationError(
            f"Decisions can be undone for {undo_seconds() // 60} minutes only: decide coin #{coin.pk} again instead."
        )
    if Correction.objects.filter(coin=coin, pk__gt=decision.pk).exists():
        raise ValidationError(f"Coin #{coin.pk} was decided again since: decide it again instead.")
    undo = Correction(
        coin=coin,
        curator=curator,
        decision=Correction.Decision.UNDO,
        old_year=coin.display_year,
        new_year=decision.prior_verified_year,
        excluded=decision.prior_excluded,
        not_a_coin=decision.prior_not_a_coin,
        undoes=decision,
        prior_verified_year=coin.verified_year,
        prior_verified_at=coin.verified_at,
        prior_excluded=coin.excluded_from_training,
        prior_not_a_coin=coin.not_a_coin,
    )
    undo.full_clean()
    undo.save()
    coin.verified_year = decision.prior_verified_year
    coin.verified_at = decision.prior_verified_at
    coin.excluded_from_training = decision.prior_excluded
    coin.not_a_coin = decision.prior_not_a_coin
    coin.save(update_fields=["verified_year", "verified_at", "excluded_from_training", "not_a_coin", "updated_at"])
    coin_claim(coin_id=coin.pk, curator=curator)
    return undo
