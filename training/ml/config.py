"""One frozen TrainConfig for a training run, read from a YAML manifest.

The whole config is logged as MLflow params and saved with the model, so a registered version can always be
rebuilt and its preprocessing repeated exactly (no train/serve skew). Everything that changes what the model
learns lives here; nothing is read from the environment.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.ml.years import YEAR_MAX, YEAR_MIN

BACKBONES = ("mobilenet_v3_small", "resnet18")
HEADS = ("reader", "regression")
MODES = ("shared", "dual")
SCHEDULES = ("onecycle", "cosine", "constant")
OPTIMIZERS = ("adamw", "sgd")
COMBINATIONS = ("soup", "ensemble")
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
# The seed's regression model (kept available and measured: docs/model.md), as overrides of the defaults.
SEED_REGRESSION = {"head": "regression", "init_from": None, "image_size": 128, "lr": 3e-3, "interval_level": 0.8}
# Keys earlier versions had and stored (TrainingRun.config, a sweep's base, a registered model's config.json) and
# nothing reads any more: a stored config that carries them still loads; a manifest or --set naming them is refused.
# hard_example_*: the hard-example weighting is settings.HARD_EXAMPLE_WEIGHT/YEARS (training.selectors).
RETIRED_KEYS = frozenset({"hard_example_weight", "hard_example_years"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. The defaults are configs/default.yaml's (what `make run`, train and
    retrain use: the date reader, fine-tuned from the pretrained base; a test keeps the two equal);
    seed_regression() gives the seed's regression model."""

    # model
    head: str = "reader"  # reader: the date reader (training.ml.reader); regression: the seed's CoinYearNet
    reader_width: int = 64
    init_from: str | None = "base"  # "base": start from the pretrained date reader (training/ml/base/)
    backbone: str = "mobilenet_v3_small"
    mode: str = "shared"
    grayscale: bool = False
    image_size: int = 192
    projection_dim: int = 0
    head_hidden: int = 256
    dropout: float = 0.1
    weights_path: str | None = None
    serve_int8: bool = True  # register an int8 ONNX graph beside float32, served when it agrees (training.ml.quantize)
    combine: str = "soup"  # date reader: serve the fold models averaged (training.ml.soup) or their "ensemble"
    # optimisation
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    optimizer: str = "adamw"  # adamw | sgd (Nesterov momentum 0.9): one of the choices a sweep searches
    patience: int = 5
    folds: int = 5
    seed: int = 42
    # augmentation (train only, never flips)
    augment: bool = True
    aug_rotation: float = 10.0
    aug_scale: float = 0.1
    aug_translate: float = 0.05
    aug_color: float = 0.2
    aug_blur: float = 0.2
    # labels and the interval
    year_min: int = YEAR_MIN
    year_max: int = YEAR_MAX
    interval_level: float = 0.95
    interval_spread_weight: float = 0.0
    calibration_share: float = 0.1
    fine_tune_epochs: int = 3

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            object.__setattr__(
                self, field.name, _coerce(field.name, _field_types()[field.name], getattr(self, field.name))
            )
        self._validate()

    def _validate(self) -> None:
        _choice("head", self.head, HEADS)
        _check("reader_width", self.reader_width >= 16, "must be >= 16")
        if self.init_from is not None:
            _check("init_from", self.init_from == "base", "must be base or null")
        _choice("backbone", self.backbone, BACKBONES)
        _choice("mode", self.mode, MODES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("combine", self.combine, COMBINATIONS)
        _check("image_size", self.image_size >= 32, "must be at least 32 (the backbones downsample 32x)")
        _check("projection_dim", self.projection_dim >= 0, "must be >= 0 (0 = no projection layer)")
        _check("head_hidden", self.head_hidden >= 1, "must be >= 1")
        _check("dropout", 0.0 <= self.dropout < 1.0, "must be in [0, 1)")
        _check("epochs", self.epochs >= 1, "must be >= 1")
        _check("batch_size", self.batch_size >= 2, "must be >= 2 (batch norm needs two samples)")
        _check("lr", self.lr > 0, "must be > 0")
        _check("weight_decay", self.weight_decay >= 0, "must be >= 0")
        _check("patience", self.patience >= 0, "must be >= 0 (0 = no early stopping)")
        _check("folds", self.folds >= 2, "must be >= 2 (K-fold cross-validation)")
        _check("aug_rotation", 0 <= self.aug_rotation <= 45, "must be in [0, 45] degrees")
        _check("aug_scale", 0 <= self.aug_scale < 0.5, "must be in [0, 0.5)")
        _check("aug_translate", 0 <= self.aug_translate < 0.5, "must be in [0, 0.5)")
        _check("aug_color", 0 <= self.aug_color < 1, "must be in [0, 1)")
        _check("aug_blur", 0 <= self.aug_blur <= 1, "must be a probability in [0, 1]")
        _check("year_min", self.year_min < self.year_max, f"must be below year_max ({self.year_max})")
        _check("interval_level", 0 < self.interval_level < 1, "must be in (0, 1)")
        _check("interval_spread_weight", 0 <= self.interval_spread_weight <= 1, "must be in [0, 1]")
        _check("calibration_share", 0 <= self.calibration_share < 0.5, "must be in [0, 0.5)")
        _check("fine_tune_epochs", self.fine_tune_epochs >= 1, "must be >= 1")
        if self.weights_path is not None:
            _check("weights_path", bool(self.weights_path.strip()), "must be a file path or null")

    @property
    def in_channels(self) -> int:
        """1 for grayscale photos, 3 for RGB."""
        return 1 if self.grayscale else 3

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (what MLflow logs as params and what is saved beside the weights)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a stored mapping; an unknown key raises ValueError naming it (a typo must never be ignored),
        a retired one (RETIRED_KEYS) is dropped."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a config must be a mapping of key: value, got {type(data).__name__}")
        data = {key: value for key, value in data.items() if key not in RETIRED_KEYS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))

    def to_yaml(self) -> str:
        """The config as a YAML manifest that load_config reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def seed_regression(**overrides: Any) -> TrainConfig:
    """The seed's regression model (SEED_REGRESSION), with `overrides`."""
    return TrainConfig(**{**SEED_REGRESSION, **overrides})


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML manifest (configs/default.yaml when path is None) and apply "key=value" overrides.

    Values of overrides are parsed as YAML ("epochs=10" is an int, "weights_path=null" is None), then checked
    against the field's type. Unknown keys and bad values raise ValueError naming the key.
    """
    data: dict[str, Any] = {}
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {error}") from error
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of key: value")
        retired = sorted(RETIRED_KEYS & set(loaded))
        if retired:
            raise ValueError(
                f"config file {path}: {', '.join(retired)} no longer exist (see RETIRED_KEYS); remove them"
            )
        data.update(loaded)
    data.update(parse_overrides(overrides))
    return TrainConfig.from_dict(data)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ["epochs=10", "backbone=resnet18"] into a dict; each value parsed as YAML."""
    if isinstance(overrides, str):
        overrides = [overrides]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value")
        if key not in known:
            raise ValueError(f"unknown config key: {key} (known: {', '.join(sorted(known))})")
        try:
            result[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as error:
            raise ValueError(f"value of {key} is not valid YAML: {raw!r}") from error
    return result


# --- type checking -----------------------------------------------------------------------------------------------


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Check (and gently convert) a value to the field's type: "1e-3" -> 0.001, 3 -> 3.0; never bool <-> number."""
    allows_none = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
    if value is None:
        if allows_none:
            return None
        raise ValueError(f"config {name} must not be null")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config {name} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError(f"config {name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"config {name} must be an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError(f"config {name} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise ValueError(f"config {name} must be a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ValueError(f"config {name} must be a string, got {value!r}")
    return value  # pragma: no cover - every field has one of the types above


def _choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"config {name} must be one of {', '.join(choices)}; got {value!r}")


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"config {name} {message}")
