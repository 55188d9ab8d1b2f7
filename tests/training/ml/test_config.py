"""TrainConfig: one frozen config from configs/default.yaml, with checked --set overrides."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from training.ml.config import DEFAULT_CONFIG_PATH, RETIRED_KEYS, TrainConfig, load_config, seed_regression


def test_default_manifest_is_exactly_the_dataclass_defaults():
    # given the manifest in the repository / when it is loaded / then it is TrainConfig() itself: one source of truth
    assert DEFAULT_CONFIG_PATH.is_file()
    config = load_config()
    assert config == TrainConfig()
    assert (config.head, config.init_from, config.image_size) == ("reader", "base", 192)
    assert (config.epochs, config.folds) == (20, 5)


def test_the_manifest_names_every_field_and_no_other():
    # given the manifest's keys / then every field is written out there (a newcomer reads every knob in one place)
    keys = set(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")))
    assert keys == {field.name for field in dataclasses.fields(TrainConfig)}


def test_seed_regression_is_the_seed_model():
    config = seed_regression()
    assert (config.head, config.init_from, config.backbone, config.mode, config.image_size) == (
        "regression",
        None,
        "mobilenet_v3_small",
        "shared",
        128,
    )


def test_a_stored_config_with_a_retired_key_still_loads_but_a_manifest_naming_it_is_refused(tmp_path):
    # given a run stored before the hard-example keys were retired (settings.HARD_EXAMPLE_* is what is read)
    stored = {**TrainConfig().to_dict(), "hard_example_weight": 1.0, "hard_example_years": 20}
    assert set(RETIRED_KEYS) <= set(stored)
    # then it loads as the config it was
    assert TrainConfig.from_dict(stored) == TrainConfig()
    # but a manifest or an override naming one is a mistake to point out
    path = tmp_path / "old.yaml"
    path.write_text("hard_example_weight: 2.0\n")
    with pytest.raises(ValueError, match="hard_example_weight"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown config key: hard_example_years"):
        load_config(overrides=["hard_example_years=3"])


def test_overrides_are_parsed_to_the_field_types():
    config = load_config(overrides=["epochs=10", "lr=1e-3", "grayscale=true", "weights_path=null", "backbone=resnet18"])
    assert config.epochs == 10 and isinstance(config.epochs, int)
    assert config.lr == pytest.approx(0.001) and isinstance(config.lr, float)
    assert config.grayscale is True
    assert config.weights_path is None
    assert config.backbone == "resnet18"


@pytest.mark.parametrize("override", ["epoch=3", "learning_rate=0.1"])
def test_unknown_override_key_is_an_error_naming_it(override):
    key = override.split("=")[0]
    with pytest.raises(ValueError, match=f"unknown config key: {key}"):
        load_config(overrides=[override])


def test_unknown_key_in_the_manifest_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nbackbon: resnet18\n")
    with pytest.raises(ValueError, match="backbon"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("backbone=vgg16", "backbone"),
        ("mode=triple", "mode"),
        ("folds=1", "folds"),
        ("epochs=many", "epochs"),
        ("epochs=2.5", "epochs"),
        ("grayscale=1", "grayscale"),
        ("interval_level=1.5", "interval_level"),
        ("image_size=16", "image_size"),
        ("lr=0", "lr"),
        ("batch_size=1", "batch_size"),
        ("dropout=1", "dropout"),
        ("year_min=2030", "year_min"),
    ],
)
def test_bad_values_are_errors_naming_the_key(override, key):
    with pytest.raises(ValueError, match=f"config {key}"):
        load_config(overrides=[override])


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ValueError, match="key=value"):
        load_config(overrides=["epochs"])


def test_config_is_frozen_and_replace_validates():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(config, epochs=3).epochs == 3
    with pytest.raises(ValueError, match="config mode"):
        dataclasses.replace(config, mode="both")


def test_dict_and_yaml_round_trips(tmp_path):
    config = load_config(overrides=["backbone=resnet18", "mode=dual", "projection_dim=64", "weights_path=/w.pt"])
    assert TrainConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "run.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
