"""The API's serializers: input serializers parse and check a request, output serializers shape an answer.

Input serializers check the shape of a request (and, for photos, that each one is a valid image within the limits) and
return what the services take; they never write. Every problem is reported with the path of the field it concerns
(`inputs[2].back_image_base64`), which the API's exception handler turns into {"error": ..., "field": ...}.
"""

from __future__ import annotations

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from training.ml import photo_errors

from . import services, verdicts
from .models import YEAR_MAX, YEAR_MIN, Coin, Prediction
from .predict_serializers import (  # noqa: F401 - re-exported: the API's serializers are found here
    BODY_FORMATS,
    DataframeSplitSerializer,
    PredictDetailSerializer,
    PredictInputSerializer,
    PredictItemSerializer,
    PredictOutputSerializer,
    PredictParamsSerializer,
    YearAlternativeSerializer,
)

NO_NUL = "^[^\\u0000]*$"  # a JSON Schema pattern: text without NUL characters


# --- errors ---------------------------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """Every error of the API has this shape."""

    error = serializers.CharField(help_text="What is wrong, in words.")
    field = serializers.CharField(
        allow_null=True, help_text="The field concerned, e.g. `inputs[2].back_image_base64`; null for the request."
    )


# --- coins ----------------------------------------------------------------------------------------------------------


def _photo_part(side: str, *, face: str) -> serializers.FileField:
    """One side's multipart file part, with messages that follow the field name in the API's error shape."""
    return serializers.FileField(
        help_text=f"The coin's {side} ({face}) photo.",
        error_messages={
            "required": f"is missing: upload the coin's {side} photo as {side}_image.",
            "empty": "is empty (zero bytes).",
            "invalid": "is not a file: send it as a multipart/form-data file part.",
        },
    )


@extend_schema_serializer(component_name="CoinUpload")
class CoinCreateInputSerializer(serializers.Serializer):
    """A multipart upload of both photos, read and validated; validated_data holds services.CheckedPhoto objects under
    `front` and `back`."""

    front_image = _photo_part("front", face="obverse")
    back_image = _photo_part("back", face="reverse")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")

    def validate(self, attrs):
        limit = settings.COINSITE_MAX_UPLOAD_BYTES
        checked = {}
        for side in ("front", "back"):
            upload, field = attrs[f"{side}_image"], f"{side}_image"
            if upload.size > limit:  # refused by its size: a huge upload is never read into memory
                raise photo_errors.ImageTooLargeError(
                    f"the image is {filesizeformat(upload.size)}, more than the limit of {filesizeformat(limit)}",
                    field=field,
                )
            upload.seek(0)
            checked[side] = services.photo_check(upload.read(), field=field)
        return {**checked, "notes": attrs.get("notes", "")}


class _CoinUploadSchema(OpenApiSerializerExtension):
    """The schema says what the API enforces on each photo part: not empty, at most COINSITE_MAX_UPLOAD_BYTES."""

    target_class = CoinCreateInputSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        for side in ("front_image", "back_image"):
            schema["properties"][side].update(minLength=1, maxLength=settings.COINSITE_MAX_UPLOAD_BYTES)
        schema["properties"]["notes"]["pattern"] = NO_NUL  # DRF's CharField refuses NUL characters
        return schema


class CoinFilterSerializer(serializers.Serializer):
    year_min = serializers.IntegerField(required=False, min_value=YEAR_MIN, max_value=YEAR_MAX)
    year_max = serializers.IntegerField(required=False, min_value=YEAR_MIN, max_value=YEAR_MAX)
    status = serializers.ChoiceField(required=False, choices=Coin.Status.choices)
    verdict = serializers.ChoiceField(
        required=False,
        choices=verdicts.FILTER_CHOICES,
        help_text="What the model found, as \"My coins\" filters it: dated (a year, the curator's or the model's), "
        "not_a_coin, unreadable, waiting, failed.",
    )

    def to_internal_value(self, data):
        # DRF reads an empty query value of an optional field as no value: `?status=` would list every coin, which
        # is not what the schema says (a status is one of its values).
        for name in self.fields:
            if name in data and data.get(name) == "":
                raise serializers.ValidationError({name: "is empty: give a value, or leave the parameter out."})
        return super().to_internal_value(data)


@extend_schema_serializer(component_name="Prediction")
class AlternativeOutputSerializer(serializers.Serializer):
    year = serializers.IntegerField(help_text="A year the model finds likely.")
    p = serializers.FloatField(help_text="Its probability.")


class PredictionOutputSerializer(serializers.ModelSerializer):
    """One prediction as the collector's answer card shows it: the year and interval, the most likely years with
    their probabilities, or why there is no year and what to do (then year, interval and alternatives are null and
    empty: what the model stored as its best guess for a non-coin is no year)."""

    year = serializers.IntegerField(allow_null=True, help_text="The minting year; null when `rejected` is set.")
    interval_low = serializers.IntegerField(
        allow_null=True, help_text="Lowest year of the interval; null when rejected."
    )
    interval_high = serializers.IntegerField(
        allow_null=True, help_text="Highest year of the interval; null when rejected."
    )
    interval_level = serializers.FloatField(
        allow_null=True,
        help_text="The share of the model's belief inside the interval (0.95 for the date reader); null when rejected "
        "or for the seed's regression versions.",
    )

    model_version = serializers.IntegerField(
        source="model_version.version", help_text="The model version that made it."
    )
    alternatives = AlternativeOutputSerializer(
        many=True, read_only=True, help_text="The most likely years, most likely first (empty for older models)."
    )
    message = serializers.CharField(
        source="rejection_message",
        read_only=True,
        help_text='When `rejected` is set: what to do ("Photograph one coin, filling most of the picture."); else "".',
    )

    class Meta:
        model = Prediction
        fields = [
            "year",
            "interval_low",
            "interval_high",
            "interval_level",
            "alternatives",
            "rejected",
            "message",
            "model_version",
            "latency_ms",
            "created_at",
        ]

    def to_representation(self, instance: Prediction) -> dict:
        data = super().to_representation(instance)
        if instance.rejected:
            data.update(year=None, interval_low=None, interval_high=None, interval_level=None, alternatives=[])
        return data


@extend_schema_serializer(component_name="Coin")
class CoinOutputSerializer(serializers.ModelSerializer):
    predictions = serializers.SerializerMethodField()
    year = serializers.IntegerField(
        source="display_year", allow_null=True, help_text="The curator's year if verified, else the latest prediction."
    )
    front_image_url = serializers.SerializerMethodField()
    back_image_url = serializers.SerializerMethodField()

    class Meta:
        model = Coin
        fields = [
            "id",
            "status",
            "status_detail",
            "source",
            "year",
            "verified_year",
            "predictions",
            "notes",
            "front_image_url",
            "back_image_url",
            "created_at",
        ]

    @extend_schema_field(PredictionOutputSerializer(many=True))
    def get_predictions(self, coin: Coin):
        """Newest first (uses the list the selector prefetched)."""
        predictions = sorted(coin.predictions.all(), key=lambda p: (p.created_at, p.pk), reverse=True)
        return PredictionOutputSerializer(predictions, many=True).data

    def _image_url(self, coin: Coin, side: str) -> str | None:
        try:
            path = reverse("coin-image", kwargs={"coin_id": coin.pk, "side": side})
        except NoReverseMatch:  # the protected image view is not routed (yet)
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.URLField(allow_null=True, help_text="The front photo (owner only)."))
    def get_front_image_url(self, coin: Coin) -> str | None:
        return self._image_url(coin, "front")

    @extend_schema_field(serializers.URLField(allow_null=True, help_text="The back photo (owner only)."))
    def get_back_image_url(self, coin: Coin) -> str | None:
        return self._image_url(coin, "back")


@extend_schema_serializer(component_name="PaginatedCoinList")
class CoinPageSerializer(serializers.Serializer):
    """The schema of a page of coins (rest_framework.pagination.PageNumberPagination's answer)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CoinOutputSerializer(many=True)


# --- /api/token -----------------------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="TokenCredentials")
class TokenInputSerializer(serializers.Serializer):
    """A username and password, checked by django.contrib.auth.authenticate() in the view."""

    # Not trimmed either: a name with spaces around it is no user's (Django strips names when it creates users), so
    # it is refused like any wrong name, not with a message of its own.
    username = serializers.CharField(
        max_length=150,
        trim_whitespace=False,
        error_messages={"required": "is missing: send your username and password.", "blank": "is empty."},
    )
    # Not trimmed: spaces are part of a password. Bounded: hashing a megabyte of password costs the server, not the
    # guesser.
    password = serializers.CharField(
        max_length=4096,
        trim_whitespace=False,
        style={"input_type": "password"},
        error_messages={"required": "is missing: send your username and password.", "blank": "is empty."},
    )


class _TokenInputSchema(OpenApiSerializerExtension):
    """The schema says what the API enforces: no NUL character (DRF's CharField refuses them)."""

    target_class = TokenInputSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        for name in ("username", "password"):
            schema["properties"][name]["pattern"] = NO_NUL
        return schema


@extend_schema_serializer(component_name="Token")
class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(source="key", help_text="Send it as `Authorization: Token <token>`.")


# --- models ---------------------------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="ModelVersion")
class ModelVersionOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    run_id = serializers.CharField(help_text="The MLflow run that trained it.")
    metrics = serializers.JSONField(help_text="Cross-validated metrics (mae, mse, r2, baseline_mae, ...).")
    aliases = serializers.ListField(child=serializers.CharField())
    promoted_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
