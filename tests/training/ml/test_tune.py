"""The search space, the sampler's and pruner's set-up and the cross-validated objective (Django-free)."""

from __future__ import annotations

import optuna
import pytest

from training.ml import synthetic, tune
from training.ml.config import load_config, parse_overrides, seed_regression
from training.ml.data import CoinSample

SPACE = {
    "fixed": {"folds": 2, "patience": 0},
    "startup_trials": 1,
    "params": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "optimizer": ["adamw", "sgd"],
        "head": ["reader", "regression"],
        "backbone": {"choices": ["mobilenet_v3_small", "resnet18"], "when": {"head": ["regression"]}},
        "epochs": {"type": "int", "low": 1, "high": 3},
        "aug_strength": {"type": "float", "low": 0.0, "high": 2.0},
    },
}


def test_a_conditional_parameter_is_drawn_only_when_its_condition_holds():
    space = tune.SearchSpace.from_dict(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    drawn = [space.suggest(study.ask(), seed_regression()) for _ in range(20)]

    assert {d["head"] for d in drawn} == {"reader", "regression"}
    assert all(("backbone" in d) == (d["head"] == "regression") for d in drawn)
    assert all(1e-4 <= d["lr"] <= 1e-2 and 1 <= d["epochs"] <= 3 for d in drawn)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"seed": [1, 2]}}, "same folds"),
        ({"params": {"folds": [3, 5]}}, "same folds"),
        ({"params": {"learning_rate": [0.1]}}, "not a training config key"),
        ({"params": {"lr": {"low": 0.1, "high": 0.01}}}, "must be below high"),
        ({"params": {"lr": {"low": 0, "high": 0.1, "log": True}}}, "log-uniform range needs low > 0"),
        ({"params": {"backbone": {"choices": ["resnet18"], "when": {"head": ["regression"]}}}}, "not searched before"),
        ({"params": {"lr": [0.1]}, "pruner": "sometimes"}, "pruner must be one of"),
        ({"params": {}}, "non-empty `params:`"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_problem(change, message):
    with pytest.raises(tune.SearchSpaceError, match=message):
        tune.SearchSpace.from_dict({**SPACE, **change})


def test_the_default_configuration_is_clipped_into_the_space():
    space = tune.SearchSpace.from_dict(SPACE)
    base = seed_regression(head="reader", epochs=20, lr=0.5)

    defaults = space.defaults(base)

    assert defaults["epochs"] == 3 and defaults["lr"] == pytest.approx(1e-2)
    assert defaults["aug_strength"] == 1.0 and "backbone" not in defaults  # head is regression's condition
    assert space.max_epochs(base) == 3


def test_aug_strength_scales_the_augmentation_and_zero_turns_it_off():
    space = tune.SearchSpace.from_dict(SPACE)
    base = seed_regression()

    doubled = tune.trial_config(base, space, {"aug_strength": 2.0})
    off = tune.trial_config(base, space, {"aug_strength": 0.0})

    assert doubled.aug_rotation == 2 * base.aug_rotation and doubled.aug_color == 2 * base.aug_color
    assert doubled.folds == 2, "the fixed values apply to every trial"
    assert not off.augment and off.aug_rotation == 0


def test_config_overrides_rebuild_the_trial_configuration_from_the_default_file():
    base = load_config()
    space = tune.SearchSpace.from_dict(SPACE)
    config = tune.trial_config(
        base,
        space,
        {
            "lr": 0.00123,
            "optimizer": "sgd",
            "head": "regression",
            "backbone": "resnet18",
            "epochs": 2,
            "aug_strength": 0.5,
        },
    )

    rebuilt = load_config(overrides=tune.config_overrides(config, base))

    assert rebuilt == config
    assert parse_overrides(tune.config_overrides(config, base))["lr"] == 0.00123


def samples(count: int) -> list[CoinSample]:
    return [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(synthetic.iter_coins(count, seed=5, size=96))
    ]


def test_cv_objective_reports_every_epoch_of_every_fold_on_one_step_scale():
    config = seed_regression(
        head="reader", init_from="base", image_size=128, folds=2, epochs=2, batch_size=8, patience=0, serve_int8=False
    )
    steps = []

    result = tune.cv_objective(config, samples(16), max_epochs=3, report=lambda step, value: steps.append(step))

    assert steps == [1, 2, 4, 5]  # fold 0: epochs 1-2, fold 1 starts at 3 + 1
    assert len(result.fold_maes) == 2 and result.value == pytest.approx(sum(result.fold_maes) / 2)


def test_a_pruned_trial_stops_at_the_epoch_the_pruner_says():
    config = seed_regression(
        head="reader", init_from="base", image_size=128, folds=2, epochs=3, batch_size=8, patience=0, serve_int8=False
    )
    seen = []

    def report(step, value):
        seen.append(step)
        if step == 2:
            raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        tune.cv_objective(config, samples(16), max_epochs=3, report=report)
    assert seen == [1, 2]
