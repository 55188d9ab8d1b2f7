"""The review page's one form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ..models import YEAR_MAX, YEAR_MIN


class CoinReviewForm(forms.Form):
    """One field for the whole decision: empty confirms `confirm_year`, four digits correct it.

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
    exclude = forms.BooleanField(required=False, label="Unusable photo: exclude from training")

    def __init__(self, *args, confirm_year: int | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.confirm_year = confirm_year
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
        if "year" in cleaned and cleaned["year"] is None and not cleaned.get("exclude"):
            if self.confirm_year is None:
                self.add_error("year", "This coin has no predicted year to confirm: type the year.")
            else:
                cleaned["year"] = self.confirm_year
        return cleaned
