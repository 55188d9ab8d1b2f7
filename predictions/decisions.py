"""A curator's decision on a coin, the one way a coin's verdict changes: confirm the year, correct it, "not a coin",
or "unusable photo". Each writes one Correction (the audit row), in one transaction, after full_clean().

What each decision makes of the coin:

| decision   | verified_year | excluded_from_training | not_a_coin | in training                                   |
| ---------- | ------------- | ---------------------- | ---------- | --------------------------------------------- |
| confirm    | the year      | no                     | no         | a year label                                  |
| correct    | the year      | no                     | no         | a year label                                  |
| not a coin | none          | no                     | yes        | a negative for the coin detector, never a year |
| unusable   | kept          | yes                    | no         | nothing                                       |

A coin the model rejected (its latest prediction says "not a coin" or "unreadable") gets a year only with an
explicit override, which the audit row records (`override`): the curator asserts the model was wrong. Without it the
service refuses, so no page, API or action can turn a holiday snapshot into a year label by a stray Enter.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .models import YEAR_MAX, YEAR_MIN, Coin, Correction
from .roles import can_review

Decision = Correction.Decision
YEAR_DECISIONS = (Decision.CONFIRM, Decision.CORRECT)


def model_rejection(coin: Coin) -> str:
    """Why the model gave this coin no year ("not_a_coin", "unreadable"), "" when it gave one (or has not answered)."""
    prediction = coin.latest_prediction
    return prediction.rejected if prediction is not None else ""


@transaction.atomic
def coin_decide(
    *,
    coin: Coin,
    curator,
    decision: str,
    year: int | None = None,
    override: bool = False,
    applied_from: Correction | None = None,
) -> Correction:
    """Record a curator's decision on `coin` (see the module's table) and return its audit row.

    `decision` is CONFIRM or CORRECT with a `year` (which of the two is recorded follows from the year shown before:
    the same year is a confirmation), NOT_A_COIN, or UNUSABLE (with an optional year, kept for the record but never a
    label). A year for a coin the model rejected needs `override=True`; the row records override only where it was
    one. `applied_from` is the decision on another coin with the same photos that this one repeats.
    Raises PermissionDenied for a non-curator, ValidationError (keyed by field) for a decision that does not hold.
    """
    if not can_review(curator):
        raise PermissionDenied("Only curators can confirm or correct a coin's year.")
    if decision not in Decision.values or decision == Decision.UNDO:
        raise ValidationError({"decision": f"Unknown decision {decision!r}."})
    if decision in YEAR_DECISIONS and year is None:
        raise ValidationError({"year": "Give the coin's year, or mark the photos unusable or not a coin."})
    if decision == Decision.NOT_A_COIN and year is not None:
        raise ValidationError({"year": "A photo that shows no coin has no year: clear the year, or don't mark it."})
    if year is not None and not YEAR_MIN <= year <= YEAR_MAX:
        raise ValidationError({"year": f"The year must be between {YEAR_MIN} and {YEAR_MAX}."})
    coin = Coin.objects.select_for_update().get(pk=coin.pk)
    rejected = model_rejection(coin)
    gives_year = decision in YEAR_DECISIONS
    if gives_year and rejected and not override:
        verdict = "not a coin" if rejected == "not_a_coin" else "unreadable"
        raise ValidationError(
            {
                "override": f"The model judged these photos {verdict}: tick “give it a year anyway” to label coin "
                f"#{coin.pk} {year}, or mark it not a coin."
            }
        )
    old_year = coin.display_year
    if gives_year:
        decision = Decision.CONFIRM if year == old_year else Decision.CORRECT
    correction = Correction(
        coin=coin,
        curator=curator,
        decision=decision,
        old_year=old_year,
        new_year=year,
        excluded=decision == Decision.UNUSABLE,
        not_a_coin=decision == Decision.NOT_A_COIN,
        override=bool(gives_year and rejected),
        applied_from=applied_from,
        prior_verified_year=coin.verified_year,  # what an undo restores (predictions.review.correction_undo)
        prior_verified_at=coin.verified_at,
        prior_excluded=coin.excluded_from_training,
        prior_not_a_coin=coin.not_a_coin,
    )
    correction.full_clean()
    correction.save()
    if year is not None:
        coin.verified_year, coin.verified_at = year, timezone.now()
    elif decision == Decision.NOT_A_COIN:
        coin.verified_year, coin.verified_at = None, None
    coin.excluded_from_training = correction.excluded
    coin.not_a_coin = correction.not_a_coin
    coin.validate_constraints()  # a non-coin with a year never reaches the database
    coin.save(update_fields=["verified_year", "verified_at", "excluded_from_training", "not_a_coin", "updated_at"])
    return correction
