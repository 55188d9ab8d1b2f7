"""The forms of the training admin's own pages: which coins to re-score, how to start a training run, which two
versions to compare."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from predictions.models import Coin
from registry.models import ModelVersion
from training.models import DatasetVersion
from training.selectors import coins_rescore_candidates

# More ids than this in one range is a typo (an extra digit), not a re-score anyone meant.
MAX_RANGE = 100_000


class RescoreForm(forms.Form):
    SCOPES = [
        ("stale", "Predicted coins whose latest prediction is not from Production"),
        ("all", "All predicted coins"),
        ("version", "Coins whose latest prediction came from one version"),
        ("ids", "These coin ids"),
    ]
    scope = forms.ChoiceField(choices=SCOPES, initial="stale", widget=forms.RadioSelect)
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.all(), required=False, empty_label="(choose)")
    coin_ids = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "12, 15, 40-45"}),
        help_text="Comma or space separated; ranges like 40-45.",
    )

    def clean_coin_ids(self) -> list[int]:
        ids: list[int] = []
        for token in re.split(r"[\s,;]+", self.cleaned_data["coin_ids"].strip()):
            if not token:
                continue
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
            if not match:
                raise ValidationError(f"“{token}” is not a coin id or a range like 40-45.")
            low, high = int(match.group(1)), int(match.group(2) or match.group(1))
            if high < low or high - low > MAX_RANGE:
                raise ValidationError(f"“{token}” is not a sensible range.")
            ids.extend(range(low, high + 1))
        return ids

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("scope") == "version" and not data.get("version"):
            self.add_error("version", "Choose the version whose coins to re-score.")
        if data.get("scope") == "ids" and not data.get("coin_ids"):
            self.add_error("coin_ids", "Give at least one coin id.")
        return data

    def coin_ids_selected(self) -> list[int]:
        """The coins the chosen scope covers today."""
        data = self.cleaned_data
        if data["scope"] == "ids":
            coins = Coin.objects.filter(pk__in=data["coin_ids"])
        else:
            coins = coins_rescore_candidates(scope=data["scope"], version=data.get("version"))
        return list(coins.order_by("id").values_list("id", flat=True))


class StartTrainingForm(forms.Form):
    overrides = forms.CharField(
        required=False,
        label="Overrides (--set)",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "epochs=10\nbackbone=resnet18", "spellcheck": "false"}),
        help_text="One key=value per line, like `manage.py retrain --set key=value`; values are read as YAML.",
    )
    fine_tune = forms.BooleanField(
        required=False,
        label="Fine-tune Production",
        help_text="Start from Production's weights for a few epochs, checking the evaluation set after each; "
        "a regression stops the run and discards the candidate.",
    )

    # Which form field a key of the service's ValidationError belongs to.
    SERVICE_FIELDS = {"config": "overrides", "overrides": "overrides", "fine_tune": "fine_tune"}

    def clean_overrides(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["overrides"].splitlines() if line.strip()]
        for line in lines:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*\s*=.*", line):
                raise ValidationError(f"“{line}” is not key=value.")
        return [re.sub(r"\s*=\s*", "=", line, count=1) for line in lines]

    def add_service_error(self, error: ValidationError) -> None:
        """Show a ValidationError of training_run_start under the field it is about (the whole form otherwise)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, errors in error.error_dict.items():
            self.add_error(self.SERVICE_FIELDS.get(key), errors)


class CompareVersionsForm(forms.Form):
    """Two registered versions (A, the one compared against, and B) and the frozen evaluation set to score them on."""

    a = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Version A", empty_label="(choose)")
    b = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), label="Version B", empty_label="(choose)")
    evaluation = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.none(),
        label="Evaluation set",
        empty_label=None,
        help_text="Frozen held-out coins, newest first: both versions are scored on exactly these.",
    )

    def __init__(self, *args: Any, name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = ModelVersion.objects.filter(name=name).order_by("-version")
        self.fields["a"].queryset = versions
        self.fields["b"].queryset = versions
        self.fields["evaluation"].queryset = DatasetVersion.objects.filter(kind=DatasetVersion.Kind.EVALUATION)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("a") is not None and data.get("a") == data.get("b"):
            raise ValidationError({"b": "Choose another version than A: a version compared with itself shows nothing."})
        return data
