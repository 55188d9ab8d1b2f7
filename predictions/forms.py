"""Forms of the collector pages. They only parse input: photo validation is the service's job (photo_check), so pages,
the API and the admin reject the same photos with the same words."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm

from . import verdicts
from .models import YEAR_MAX, YEAR_MIN

SIDE_LABELS = {"front_image": "Front photo", "back_image": "Back photo"}
ACCEPTED_TYPES = "image/jpeg,image/png,image/webp,image/heic,image/heif,.jpg,.jpeg,.png,.webp,.heic,.heif"


class SignUpForm(UserCreationForm):
    """Django's own sign-up form; the post_save signal makes every new user a collector."""

    email = forms.EmailField(
        label="Email (optional)",
        required=False,
        help_text="Only used to send you a link if you forget your password.",
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class CoinUploadForm(forms.Form):
    """Two photo files. Empty files are let through on purpose: the service names that problem like every other one."""

    front_image = forms.FileField(
        label=SIDE_LABELS["front_image"],
        allow_empty_file=True,
        error_messages={"required": "Front photo: no file was chosen. Add a photo of the front of the coin."},
    )
    back_image = forms.FileField(
        label=SIDE_LABELS["back_image"],
        allow_empty_file=True,
        error_messages={"required": "Back photo: no file was chosen. Add a photo of the back of the coin."},
    )

    notes = forms.CharField(
        label="Notes (optional)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Where it came from, what you already know about it"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in SIDE_LABELS:
            self.fields[name].widget.attrs.update({"accept": ACCEPTED_TYPES, "class": "dropzone__input"})

    @property
    def photo_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in SIDE_LABELS]

    def photo_bytes(self, field: str) -> bytes:
        """The uploaded bytes, read at most one byte past the size limit: enough for the service to say "too large"
        without holding a huge upload in memory."""
        upload = self.cleaned_data[field]
        upload.seek(0)
        return upload.read(settings.COINSITE_MAX_UPLOAD_BYTES + 1)


def _year_bound(label: str, *, placeholder: int) -> forms.IntegerField:
    """An optional year within the site's range; the placeholder shows the bound an empty field stands for."""
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=YEAR_MIN,
        max_value=YEAR_MAX,
        widget=forms.NumberInput(attrs={"placeholder": str(placeholder), "inputmode": "numeric"}),
    )


class CoinFilterForm(forms.Form):
    """The GET filters of "my coins". Every field is optional; invalid values become form errors, never a 500."""

    year_min = _year_bound("Year from", placeholder=YEAR_MIN)
    year_max = _year_bound("Year to", placeholder=YEAR_MAX)
    show = forms.ChoiceField(label="Show", required=False, choices=[("", "All"), *verdicts.FILTER_CHOICES])

    def clean(self) -> dict:
        cleaned = super().clean()
        low, high = cleaned.get("year_min"), cleaned.get("year_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError(
                f"“Year from” ({low}) is after “Year to” ({high}): swap them or widen the range."
            )
        return cleaned

    def selector_kwargs(self) -> dict:
        """The filters for selectors.coin_list_for_user (empty when the form is invalid)."""
        if not self.is_valid():
            return {}
        return {
            "year_min": self.cleaned_data.get("year_min"),
            "year_max": self.cleaned_data.get("year_max"),
            "verdict": self.cleaned_data.get("show") or None,
        }

    def error_messages_flat(self) -> list[str]:
        """Each problem as one sentence naming the field, for the message banner."""
        messages = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else None
            for error in errors:
                messages.append(f"{label}: {error}" if label else str(error))
        return messages
