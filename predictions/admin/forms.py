"""The review page's one form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ..models import YEAR_MAX, YEAR_MIN, Correction


class CoinReviewForm(forms.Form):
    """One form for the whole decision: an empty year confirms `confirm_year`, four digits correct it, "not a coin"
    and "unusable photo" are decisions of their own (checkboxes the N and U keys toggle, or their buttons).

    A coin the model rejected has no year to confirm; a typed year for it needs the override checkbox (the service,
    predictions.decisions.coin_decide, refuses it otherwise, and the error lands on that checkbox).

    The year field has no autofocus: the page's hotkeys (static/admin-review/review.js) work while the focus is on
    the page, and a digit typed there moves into the field; inside the field only digits, Enter and Escape count."""

    year = forms.CharField(
        required=False,
        max_length=4,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "inputmode": "numeric",
                "pattern": "[0-9]{4}",
                "maxlength": 4,
                "size": 6,
                "class": "review-year",
            }
        ),
    )
    not_a_coin = forms.BooleanField(required=False, label="Not a coin: a negative for the coin detector, never a year")
    exclude = forms.BooleanField(required=False, label="Unusable photo: exclude from training")
    override = forms.BooleanField(required=False, label="Give it a year anyway (the model said no coin / unreadable)")
    same_photos = forms.BooleanField(required=False, label="Apply to the coins with the same photos")

    def __init__(self, *args, confirm_year: int | None, rejected: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.confirm_year = confirm_year
        self.rejected = rejected
        self.fields["year"].widget.attrs["placeholder"] = str(confirm_year) if confirm_year else "year"

    def clean_year(self) -> int | None:
        text = self.cleaned_data["year"].strip()
        if not text:
            return None
        if not text.isdigit():
            raise ValidationError(f"Type the year as digits, e.g. 1874 (got {text!r}).")
        year = int(text)
        if not YEAR_MIN <= year <= YEAR_MAX:
            raise ValidationError(f"The year must be between {YEAR_MIN} and {YEAR_MAX} (got {year}).")
        return year

    def clean(self):
        cleaned = super().clean()
        if "year" not in cleaned:
            return cleaned
        year = cleaned["year"]
        if cleaned.get("not_a_coin") and cleaned.get("exclude"):
            raise ValidationError("Choose one: not a coin, or unusable photo.")
        if cleaned.get("not_a_coin"):
            if year is not None:
                self.add_error("year", "A photo that shows no coin has no year: clear the year, or untick not a coin.")
            cleaned["decision"] = Correction.Decision.NOT_A_COIN
        elif cleaned.get("exclude"):
            cleaned["decision"] = Correction.Decision.UNUSABLE
        elif year is None and self.confirm_year is None:
            if self.rejected:
                self.add_error(
                    "year",
                    "The model found no year here: mark it not a coin (N), or type its year and tick the override.",
                )
            else:
                self.add_error("year", "This coin has no predicted year to confirm: type the year.")
        else:
            cleaned["year"] = self.confirm_year if year is None else year
            cleaned["decision"] = Correction.Decision.CORRECT  # the service records a confirmation when it is one
        return cleaned
