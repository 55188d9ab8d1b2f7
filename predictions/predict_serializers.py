"""The serializers of POST /api/predict: the four bodies `mlflow models serve` takes, parsed into checked photo
pairs with every problem named by its place in the body; and the answer's shape.

Split from predictions.serializers (which re-exports these names) to keep each module readable.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.settings import api_settings
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from training.ml import photo_errors

from . import services

FRONT_BASE64 = "front_image_base64"
BACK_BASE64 = "back_image_base64"
SIDES_BASE64 = (FRONT_BASE64, BACK_BASE64)


def _shown_key(key) -> str:
    """A client's unexpected key, short enough to name without echoing whatever it holds."""
    text = str(key)
    return repr(text if len(text) <= 40 else text[:40] + "…")


# --- POST /api/predict ----------------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.BYTE)
class Base64PhotoField(serializers.CharField):
    """A photo as base64 text. Only a JSON string is accepted (a number is not a photo)."""

    default_error_messages = {
        "invalid": "must be a string holding the photo's bytes in base64.",
        "blank": "is empty (zero bytes): send the photo's bytes in base64.",
        "required": "is missing: every input needs both a front and a back photo.",
        "null": "is null: send the photo's bytes in base64.",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(trim_whitespace=False, **kwargs)  # base64 of a 10 MB photo: do not copy it to strip it
        # CharField's NUL and surrogate validators walk the text in Python, one ord() per character: ~0.5 s for a
        # pair of 12 MP photos (profiled). Base64 decoding rejects any such character anyway, with a clear message.
        self.validators = [
            v
            for v in self.validators
            if not isinstance(v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator)
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return data


@extend_schema_serializer(component_name="PredictInput")
class PredictItemSerializer(serializers.Serializer):
    front_image_base64 = Base64PhotoField(
        help_text="The coin's front (obverse) photo: JPEG, PNG, WebP, HEIC... in base64."
    )
    back_image_base64 = Base64PhotoField(help_text="The coin's back (reverse) photo, in base64.")

    default_error_messages = {
        "invalid": "must be an object with exactly the keys front_image_base64 and back_image_base64.",
    }

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unexpected = [key for key in data if key not in SIDES_BASE64]
            if unexpected:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"has an unexpected key {_shown_key(unexpected[0])}: an input has exactly the keys "
                            "front_image_base64 and back_image_base64."
                        ]
                    }
                )
        return super().to_internal_value(data)


# The four bodies of MLflow's scoring server (mlflow.pyfunc.scoring_server.SUPPORTED_FORMATS), in the order the
# messages name them. Each carries the same rows: a list of {front_image_base64, back_image_base64} objects, or for
# dataframe_split pandas' "split" orient ({"columns": [...], "data": [[...], ...], "index": [...]}).
BODY_FORMATS = ("inputs", "dataframe_records", "dataframe_split", "instances")
ROW_FORMATS = ("inputs", "dataframe_records", "instances")
BODY_SHAPE = '{{"inputs": [{{"front_image_base64": ..., "back_image_base64": ...}}]}}'


def _rows_field(key: str, *, required: bool = False) -> PredictItemSerializer:
    return PredictItemSerializer(
        many=True,
        allow_empty=False,
        required=required,
        help_text=(
            "One object per coin; the answer has one prediction per input, in the same order."
            if key == "inputs"
            else f"The same rows as `inputs` (MLflow's `{key}` body)."
        ),
        error_messages={
            "required": f"is missing: the body must be {BODY_SHAPE} (or dataframe_records, dataframe_split or "
            "instances, as `mlflow models serve` takes them).",
            "null": "is null: it must be a list of inputs.",
            "not_a_list": "must be a list of inputs, not {input_type}.",
            "empty": "is empty: send at least one input.",
        },
    )


@extend_schema_serializer(component_name="DataframeSplit")
class DataframeSplitSerializer(serializers.Serializer):
    """pandas' "split" orient, as MLflow's scoring server reads it: the columns are matched by name, in any order;
    `index` is accepted and ignored (the answer follows the order of `data`)."""

    columns = serializers.ListField(
        child=serializers.ChoiceField(choices=list(SIDES_BASE64)),
        min_length=2,
        max_length=2,
        help_text="Both column names, in the order of each row of `data`.",
        error_messages={
            "required": 'is missing: name the columns, e.g. ["front_image_base64", "back_image_base64"].',
            "not_a_list": "must be a list of the two column names.",
            "min_length": "must name both columns, front_image_base64 and back_image_base64.",
            "max_length": "must name both columns, front_image_base64 and back_image_base64, and no other.",
        },
    )
    data = serializers.ListField(
        child=serializers.ListField(child=Base64PhotoField(), min_length=2, max_length=2),
        allow_empty=False,
        help_text="One row per coin: its two photos in base64, in the order of `columns`.",
        error_messages={
            "required": "is missing: one row of two photos per coin.",
            "not_a_list": "must be a list of rows.",
            "empty": "is empty: send at least one row.",
        },
    )
    # pandas refuses an index of another length than data; the API ignores the index whatever it holds (a schema
    # cannot say "as many labels as rows", and the answer follows the order of data anyway).
    index = serializers.ListField(required=False, help_text="Row labels (ignored).")

    default_error_messages = {"invalid": "must be an object with `columns` and `data` (and optionally `index`)."}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unexpected = [key for key in data if key not in ("columns", "data", "index")]
            if unexpected:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"has an unexpected key {_shown_key(unexpected[0])}: it has `columns`, `data` and "
                            "optionally `index`."
                        ]
                    }
                )
        return super().to_internal_value(data)

    def validate(self, attrs):
        columns = attrs["columns"]
        if len(set(columns)) != 2:
            raise serializers.ValidationError({"columns": f"names {columns[0]} twice: name both columns once."})
        return attrs


@extend_schema_serializer(component_name="PredictParams")
class JSONBooleanField(serializers.BooleanField):
    """A JSON `true` or `false` and nothing else: DRF's BooleanField also takes 0, 1, "yes" or "off", which the
    published schema (a boolean) refuses; a live schemathesis run flagged `{"details": 0}` answered 200."""

    default_error_messages = {"invalid": "must be true or false (a JSON boolean)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PredictParamsSerializer(serializers.Serializer):
    """The model's parameters (its MLflow signature's ParamSchema)."""

    details = JSONBooleanField(
        required=False,
        default=False,
        help_text="Accepted for MLflow clients (there it returns the details instead of the years); the API always "
        "answers both `predictions` and `details`.",
    )

    default_error_messages = {"invalid": 'must be an object, e.g. {{"details": true}}.'}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unexpected = [key for key in data if key != "details"]
            if unexpected:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"has an unexpected key {_shown_key(unexpected[0])}: the one parameter is details."
                        ]
                    }
                )
        return super().to_internal_value(data)


@extend_schema_serializer(component_name="Predict")
class PredictInputSerializer(serializers.Serializer):
    """The Model-Serving JSON in any of the bodies `mlflow models serve` takes for this model: {"inputs": [...]},
    {"dataframe_records": [...]}, {"instances": [...]} (each a list of {"front_image_base64", "back_image_base64"}
    objects) or {"dataframe_split": {"columns": [...], "data": [[...], ...]}}; exactly one of them, and optionally
    {"params": {"details": true}}.

    After the shape of every input is checked, every photo's base64 is decoded and its header checked; the bytes are
    kept in `validated_data["pairs"]` (a list of (front, back) services.CheckedPhoto). services.coin_batch_predict()
    decodes the pixels, which completes the check. Every problem names its place in the body the client sent
    (`instances[2].back_image_base64`, `dataframe_split.data[2][1]`). A photo problem raises photo_errors.ImageError with
    that path set (413/415 are not 400s, so it is not a ValidationError).
    """

    inputs = _rows_field("inputs")
    dataframe_records = _rows_field("dataframe_records")
    dataframe_split = DataframeSplitSerializer(required=False)
    instances = _rows_field("instances")
    params = PredictParamsSerializer(required=False)

    # DRF formats these messages: literal braces are doubled.
    default_error_messages = {"invalid": f"The body must be a JSON object: {BODY_SHAPE}."}

    @staticmethod
    def max_inputs() -> int:
        return settings.COINSITE_PREDICT_MAX_INPUTS

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unexpected = [key for key in data if key not in (*BODY_FORMATS, "params")]
            if unexpected:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"The body has an unexpected key {_shown_key(unexpected[0])}: it has one of "
                            f"{', '.join(BODY_FORMATS)} and optionally params."
                        ]
                    }
                )
            given = [key for key in BODY_FORMATS if key in data]
            if len(given) > 1:
                raise serializers.ValidationError(
                    {
                        api_settings.NON_FIELD_ERRORS_KEY: [
                            f"The body has both {given[0]} and {given[1]}: send the coins under exactly one of "
                            f"{', '.join(BODY_FORMATS)}."
                        ]
                    }
                )
            if not given:
                raise serializers.ValidationError(
                    {"inputs": [self.fields["inputs"].error_messages["required"].format()]}
                )
            key = given[0]
            rows = data[key]
            if key == "dataframe_split" and isinstance(rows, Mapping):
                key, rows = "dataframe_split.data", rows.get("data")
            if isinstance(rows, list) and len(rows) > self.max_inputs():
                # Checked before anything else so an oversized batch costs nothing more.
                raise serializers.ValidationError(
                    {key: f"has too many inputs ({len(rows)}): at most {self.max_inputs()} per request."}
                )
        return super().to_internal_value(data)

    def validate(self, attrs):
        if "dataframe_split" in attrs:
            split = attrs["dataframe_split"]
            where = {side: split["columns"].index(side) for side in SIDES_BASE64}
            rows = [
                tuple((row[where[side]], f"dataframe_split.data[{index}][{where[side]}]") for side in SIDES_BASE64)
                for index, row in enumerate(split["data"])
            ]
        else:
            key = next(key for key in ROW_FORMATS if key in attrs)
            rows = [
                tuple((item[side], f"{key}[{index}].{side}") for side in SIDES_BASE64)
                for index, item in enumerate(attrs[key])
            ]
        return {"pairs": [tuple(_photo_from_base64(text, field=field) for text, field in row) for row in rows]}


def _photo_from_base64(text: str, *, field: str) -> services.CheckedPhoto:
    """Decode one photo's base64 (bounded by the upload limit) and check what needs no pixel decoding; the service
    decodes it to the model's input, which completes the check, while it stores the photo."""
    from training.ml import images  # lazy: it imports torch, which this request loads to score anyway

    try:
        data = images.decode_base64(text, max_bytes=settings.COINSITE_MAX_UPLOAD_BYTES)
    except photo_errors.ImageError as error:
        error.field = field
        raise
    return services.photo_check_header(data, field=field)


@extend_schema_serializer(component_name="Predictions")
class YearAlternativeSerializer(serializers.Serializer):
    year = serializers.IntegerField()
    p = serializers.FloatField(help_text="The model's probability for this year.")


@extend_schema_serializer(component_name="OcrReading")
class OcrReadingSerializer(serializers.Serializer):
    year = serializers.IntegerField(allow_null=True, help_text="The year the OCR read; null when it read none.")
    confidence = serializers.FloatField(help_text="The OCR recogniser's confidence in that text line.")
    path = serializers.ChoiceField(choices=["detector", "none"], help_text="How the OCR found the date.")
    side = serializers.CharField(help_text="The photo the year was read on: front or back (empty when none).")
    turn = serializers.IntegerField(help_text="Degrees the photo was turned when the year was read.")
    photos = serializers.IntegerField(help_text="How many of the two photos read that year.")


@extend_schema_serializer(component_name="PredictionDetail")
class PredictDetailSerializer(serializers.Serializer):
    """Either an answer (year, low, high, level, coin_score, alternatives) or a rejection (rejected, message)."""

    year = serializers.IntegerField(required=False, help_text="The most likely minting year.")
    low = serializers.IntegerField(required=False, help_text="Lowest year of the interval.")
    high = serializers.IntegerField(required=False, help_text="Highest year of the interval.")
    level = serializers.FloatField(
        required=False,
        help_text="The share of the model's belief inside low..high: the version's interval_level, 0.95 for the date "
        "reader (configs/default.yaml).",
    )
    coin_score = serializers.FloatField(required=False, help_text="How sure the model is that both photos show a coin.")
    read_score = serializers.FloatField(required=False, help_text="Probability mass within a year of the answer.")
    alternatives = YearAlternativeSerializer(many=True, required=False, help_text="The most likely years, best first.")
    rejected = serializers.ChoiceField(
        choices=["not_a_coin", "unreadable"], required=False, help_text="Why this input got no year."
    )
    message = serializers.CharField(required=False, help_text="What to do about it (retake the photo...).")
    second_look = serializers.CharField(
        required=False,
        help_text="Present when the first read was unsure and a second look answered: the photos cropped to the coin "
        "and/or turned, e.g. 'front turned 90°, back cropped'.",
    )
    readers = serializers.ChoiceField(
        choices=["reader", "ocr", "reader+ocr"],
        required=False,
        help_text="Which reader(s) the answer rests on: the learned date reader, the general OCR reader (which runs "
        "only where the reader is unsure), or both in agreement.",
    )
    ocr = OcrReadingSerializer(required=False, help_text="What the OCR read, where it ran.")


class PredictOutputSerializer(serializers.Serializer):
    predictions = serializers.ListField(
        child=serializers.IntegerField(allow_null=True, help_text="The minting year; null when rejected."),
        help_text="One year per input, in the order of the inputs; null where details says why there is none.",
    )
    details = PredictDetailSerializer(many=True, help_text="One entry per input, in the order of the inputs.")


class _PredictItemSchema(OpenApiSerializerExtension):
    """The schema says what the API enforces: no keys beyond the two photos."""

    target_class = PredictItemSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class _PredictInputSchema(OpenApiSerializerExtension):
    """The schema says what the API enforces: exactly one of the four bodies (each with 1 to
    COINSITE_PREDICT_MAX_INPUTS rows), optional params, no other key."""

    target_class = PredictInputSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        schema.pop("required", None)
        properties = schema["properties"]
        limit = PredictInputSerializer.max_inputs()
        for key in ROW_FORMATS:
            properties[key].update(minItems=1, maxItems=limit)
        split = auto_schema.resolve_serializer(DataframeSplitSerializer, direction)
        schema["oneOf"] = [{"required": [key]} for key in BODY_FORMATS]
        properties["dataframe_split"] = split.ref
        return schema


class _DataframeSplitSchema(OpenApiSerializerExtension):
    """No keys beyond columns, data and index; 1 to COINSITE_PREDICT_MAX_INPUTS rows of two photos."""

    target_class = DataframeSplitSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        schema["properties"]["data"].update(minItems=1, maxItems=PredictInputSerializer.max_inputs())
        schema["properties"]["columns"]["uniqueItems"] = True
        return schema


class _PredictParamsSchema(OpenApiSerializerExtension):
    target_class = PredictParamsSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema
