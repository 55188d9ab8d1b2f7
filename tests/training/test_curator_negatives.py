"""Coins curators marked not a coin are negatives for the coin detector, never years: a training dataset freezes them
as negative rows without a year, a retrain reads their photos beside the generated non-coin photos, and photos marked
unusable are in neither."""

from __future__ import annotations

import pytest

from predictions.decisions import coin_decide
from predictions.models import Coin, Correction
from predictions.services import coin_create
from training.ml import negatives, synthetic
from training.models import DatasetVersion, TrainingRun
from training.selectors import manifest_labels, manifest_negatives
from training.services.datasets import dataset_freeze, dataset_negative_pairs, dataset_samples
from training.services.runs import training_run_execute, training_run_start

pytestmark = pytest.mark.django_db

TINY = ["image_size=128", "epochs=1", "folds=2", "batch_size=8", "patience=0", "serve_int8=false"]


def labelled(owner, count: int, *, seed: int) -> list[Coin]:
    return [
        coin_create(
            owner=owner, front=front, back=back, source=Coin.Source.DEMO, verified_year=year, enqueue_prediction=False
        )
        for front, back, year in synthetic.iter_coins(count, seed=seed, size=128)
    ]


def uploaded_non_coin(owner, *, seed: int) -> Coin:
    """A collector's upload of two photos that show no coin (generated: a cat, a landscape, ...)."""
    front, back = (negatives.generate_negative_jpeg(seed + side, size=128) for side in (0, 1))
    return coin_create(owner=owner, front=front, back=back, enqueue_prediction=False)


@pytest.fixture
def decided(collector, curator):
    """Labelled coins, two photos a curator marked not a coin, and one marked unusable (with a year typed)."""
    labels = labelled(collector, 24, seed=5)
    non_coins = [uploaded_non_coin(collector, seed=seed) for seed in (100, 200)]
    for coin in non_coins:
        coin_decide(coin=coin, curator=curator, decision=Correction.Decision.NOT_A_COIN)
    unusable = uploaded_non_coin(collector, seed=300)
    coin_decide(coin=unusable, curator=curator, decision=Correction.Decision.UNUSABLE, year=1900)
    return labels, non_coins, unusable


def test_a_frozen_training_dataset_holds_curator_non_coins_as_negatives_without_a_year(decided):
    labels, non_coins, unusable = decided

    # when the training data is frozen
    dataset = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    evaluation = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)

    # then the non-coins are negative rows without a year; the unusable photos are in no row at all
    negative_rows = manifest_negatives(dataset.manifest)
    assert sorted(row["coin_id"] for row in negative_rows) == sorted(coin.pk for coin in non_coins)
    assert all("year" not in row for row in negative_rows)
    label_ids = {row["coin_id"] for row in manifest_labels(dataset.manifest) + evaluation.manifest}
    assert label_ids == {coin.pk for coin in labels}
    assert unusable.pk not in {row["coin_id"] for row in dataset.manifest + evaluation.manifest}
    assert not manifest_negatives(evaluation.manifest)
    assert dataset.coin_count == len(manifest_labels(dataset.manifest))

    # and the samples a retrain learns years from hold none of them; the negatives' photos are theirs
    sample_keys = {sample.key for sample in dataset_samples(dataset=dataset)}
    assert sample_keys.isdisjoint({str(coin.pk) for coin in [*non_coins, unusable]})
    pairs = dataset_negative_pairs(dataset=dataset)
    assert len(pairs) == 2
    stored = {coin.front_image.path for coin in non_coins}
    assert {str(front) for front, _ in pairs} == stored


@pytest.mark.slow
def test_a_retrain_after_curators_marked_non_coins_reads_them_as_negatives_never_as_years(decided, model_name):
    labels, non_coins, unusable = decided

    # when a retrain runs
    run = training_run_start(overrides=TINY, enqueue=False)
    run = training_run_execute(run_id=run.id)

    # then it succeeded, its frozen dataset names the non-coins as negatives and learned years only from the labels
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    dataset = run.dataset_version
    assert {row["coin_id"] for row in manifest_negatives(dataset.manifest)} == {coin.pk for coin in non_coins}
    trained_on = {row["coin_id"] for row in manifest_labels(dataset.manifest)}
    assert trained_on <= {coin.pk for coin in labels}
    assert trained_on.isdisjoint({coin.pk for coin in [*non_coins, unusable]})
    # and its coin-threshold calibration read the curators' two non-coins beside the generated ones
    assert run.metrics["curator_negatives"] == 2
    assert 0.0 <= run.metrics["curator_not_coin_rejected_share"] <= 1.0
