"""Suspect labels: every training run keeps each coin's held-out answer, and the verified years those answers
contradict with confidence come first on the curators' list (confident learning), each a link to the review desk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from predictions.models import Coin
from predictions.services import coin_correct, coin_create
from tests.factories import CoinFactory, UserFactory
from training.ml import synthetic
from training.models import OutOfFoldPrediction, TrainingRun
from training.services.label_check import out_of_fold_store, suspect_labels_find
from training.services.runs import training_run_execute, training_run_start

# The learning loop's tiny date reader (tests/training/test_learning_loop.py) at the base's own 192 px: at 128 px
# this one-epoch fine-tune misread a third of the coins (a planted coin among them), at 192 px it read them all.
TINY_READER = ["image_size=192", "epochs=1", "folds=2", "batch_size=8", "patience=0", "serve_int8=false"]
SHIFT = 40  # years a planted label is off by


def planted_year(year: int) -> int:
    """The true year moved by SHIFT, inside the reader's 1700..2025."""
    return year + SHIFT if year + SHIFT <= 2025 else year - SHIFT


def precision_at(ranked: list[int], planted: set[int], k: int) -> float:
    return len(set(ranked[:k]) & planted) / k if k else 1.0


def succeeded_run(**fields) -> TrainingRun:
    return TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now(), **fields
    )


def verified_coin(year: int, **fields) -> Coin:
    return CoinFactory(verified_year=year, verified_at=timezone.now(), status=Coin.Status.PREDICTED, **fields)


def add_agreeing_coins(run: TrainingRun, *, count: int) -> TrainingRun:
    """`count` coins whose held-out answer is their label, confidently: what most of a run's coins look like (with
    only contradicted labels, the self-confidence threshold itself would be 0 and nothing would stand out)."""
    for index in range(count):
        year = 1950 + index
        OutOfFoldPrediction.objects.create(
            training_run=run, coin=verified_coin(year), label_year=year, predicted_year=year, p_label=0.9, p_top=0.9
        )
    return run


@pytest.mark.slow
@pytest.mark.django_db
def test_planted_wrong_years_rank_first_after_a_real_training_run(model_name, collector):
    # given 48 generated coins, 6 of them verified with a year 40 years off
    coins, planted = [], set()
    for index, (front, back, year) in enumerate(synthetic.iter_coins(48, seed=23, size=128)):
        label = planted_year(year) if index % 8 == 3 else year
        coin = coin_create(
            owner=collector,
            front=front,
            back=back,
            source=Coin.Source.DEMO,
            verified_year=label,
            enqueue_prediction=False,
        )
        coins.append(coin)
        if label != year:
            planted.add(coin.pk)

    # when a real training run finishes (the date reader from the base, K=2)
    run = training_run_execute(run_id=training_run_start(overrides=TINY_READER, enqueue=False).id)
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error

    # then every coin of its training set has a held-out answer with the reader's probabilities
    trained = {row["coin_id"] for row in run.dataset_version.manifest}
    stored = OutOfFoldPrediction.objects.filter(training_run=run)
    assert set(stored.values_list("coin_id", flat=True)) == trained
    assert not stored.filter(p_label__isnull=True).exists()

    # and the planted labels come first on the list
    report = suspect_labels_find(limit=50)
    ranked = [suspect.coin.pk for suspect in report.suspects]
    in_training = planted & trained
    k = len(in_training)
    figures = {
        "trained": len(trained),
        "planted in training": k,
        "suspects": report.found,
        "precision@k": precision_at(ranked, in_training, k),
        "precision@k by margin alone": precision_at(
            [s.coin.pk for s in sorted(report.suspects, key=lambda s: -s.margin)], in_training, k
        ),
        "precision@1": precision_at(ranked, in_training, 1),
        "recall": len(set(ranked) & in_training) / k,
        "confident suspects": report.found_confident,
        "global threshold": round(report.global_threshold, 3),
        "first rows (planted, p_label, p_answer)": [
            (s.coin.pk in in_training, round(s.p_label, 3), round(s.p_top, 3)) for s in report.suspects[: k + 2]
        ],
    }
    print(f"\nsuspect labels after a real run: {figures}")
    assert report.method == "confident learning" and report.run == run
    assert k >= 3
    assert figures["precision@k"] == 1.0, figures
    assert all(s.predicted_year != s.verified_year for s in report.suspects)


@pytest.mark.django_db
def test_contradicted_labels_rank_by_their_probability_and_the_confident_ones_are_marked():
    # given a run whose held-out answers agree with 30 labels, misread 4 (unsure) and contradict 5 planted ones
    run = succeeded_run()
    planted, misread = {}, {}
    for index in range(39):
        year = 1800 + (index % 6) * 10  # six years with enough coins for their own thresholds
        coin = verified_coin(year)
        if index < 30:  # read right, confidently
            row = {"predicted_year": year, "p_label": 0.9 - index / 100, "p_top": 0.9 - index / 100}
        elif index < 34:  # read as another year, unsure: the label keeps some probability, the answer little
            row = {"predicted_year": year + 1, "p_label": 0.1 + (index - 30) / 100, "p_top": 0.3}
            misread[coin.pk] = row["p_label"]
        else:  # the label is wrong: the models read another year with confidence; p_label ties, the margin decides
            row = {"predicted_year": year + SHIFT, "p_label": 0.001, "p_top": 0.9 + (index - 33) / 100}
            planted[coin.pk] = row["p_top"]
        OutOfFoldPrediction.objects.create(training_run=run, coin=coin, label_year=year, fold=1 + index % 2, **row)

    # when the list is computed
    report = suspect_labels_find()

    # then the planted labels come first (largest margin first among equal p_label), then the misreads
    ranked = [suspect.coin.pk for suspect in report.suspects]
    assert ranked[:5] == sorted(planted, key=planted.get, reverse=True)
    assert ranked[5:] == sorted(misread, key=misread.get)
    assert [s.confident for s in report.suspects] == [True] * 5 + [False] * 4
    assert report.checked == 39 and report.found == 9 and report.found_confident == 5
    assert all(s.p_label < s.threshold for s in report.suspects)


@pytest.mark.django_db
def test_regression_runs_rank_by_distance_beyond_the_robust_cutoff():
    # given a regression run (no probabilities): answers within a few years, and three 40 years off
    run = succeeded_run()
    planted = []
    for index in range(40):
        coin = verified_coin(1850 + index)
        offset = [SHIFT + 5, -SHIFT, SHIFT][index - 37] if index >= 37 else (index % 5) - 2
        OutOfFoldPrediction.objects.create(
            training_run=run, coin=coin, label_year=1850 + index, predicted_year=1850 + index + offset, fold=1
        )
        if index >= 37:
            planted.append(coin.pk)

    report = suspect_labels_find()

    assert report.method == "distance"
    assert [s.coin.pk for s in report.suspects] == planted  # 45, 40, 40 years off (ties: lower coin id first)
    assert report.cutoff_years is not None and 2 <= report.cutoff_years < SHIFT
    assert report.suspects[0].margin is None and report.suspects[0].distance == SHIFT + 5


@pytest.mark.django_db
def test_a_label_decided_again_or_changed_since_the_run_leaves_the_list(curator):
    run = add_agreeing_coins(succeeded_run(), count=6)
    coins = [verified_coin(1900) for _ in range(3)]
    for coin in coins:
        OutOfFoldPrediction.objects.create(
            training_run=run, coin=coin, label_year=1900, predicted_year=1940, fold=1, p_label=0.0, p_top=0.99
        )
    assert len(suspect_labels_find().suspects) == 3

    # when a curator confirms one (re-checked: the next run trains on it) and another label is corrected
    coin_correct(coin=coins[0], curator=curator, year=1900)
    coin_correct(coin=coins[1], curator=curator, year=1940)

    report = suspect_labels_find()
    assert [s.coin.pk for s in report.suspects] == [coins[2].pk]
    assert report.rechecked == 1 and report.changed == 1


@pytest.mark.django_db
def test_suspect_names_who_verified_the_year(curator):
    # given a year a curator set, then a run that trained on it
    coin = CoinFactory(status=Coin.Status.PREDICTED)
    coin_correct(coin=coin, curator=curator, year=1900)
    run = add_agreeing_coins(succeeded_run(), count=6)
    OutOfFoldPrediction.objects.create(
        training_run=run, coin=coin, label_year=1900, predicted_year=1940, fold=1, p_label=0.0, p_top=0.99
    )
    [suspect] = suspect_labels_find().suspects
    assert suspect.verified_by == curator.username and suspect.verified_at is not None


@pytest.mark.django_db
def test_out_of_fold_store_keeps_one_row_per_training_coin_including_the_calibration_holdout(tiny_fit):
    # given the tiny regression fit's 16 coins stored as coins (its samples' keys are their ids)
    coins = [verified_coin(1800 + i) for i in range(16)]
    samples = [dataclasses.replace(sample, key=str(coin.pk)) for sample, coin in zip(_samples(16), coins, strict=True)]
    # a fit that held 3 coins out of every fold (made from the tiny one: its first 3 CV coins become the holdout)
    holdout = tiny_fit.oof_index[:3]
    result = dataclasses.replace(
        tiny_fit,
        oof_index=tiny_fit.oof_index[3:],
        oof_pred=tiny_fit.oof_pred[3:],
        oof_fold=tiny_fit.oof_fold[3:],
        calibration_index=holdout,
        holdout_pred=np.array([1700.4, 1800.6, 2100.0]),
    )
    run = succeeded_run()

    written = out_of_fold_store(run_id=run.pk, result=result, samples=samples)

    rows = OutOfFoldPrediction.objects.filter(training_run=run)
    assert written == rows.count() == 16
    assert rows.filter(fold__isnull=True).count() == 3  # the holdout, answered by all fold models together
    assert sorted(rows.filter(fold__isnull=True).values_list("predicted_year", flat=True)) == [1700, 1801, 2100]
    assert not rows.filter(p_label__isnull=False).exists()  # the regression head has no distribution
    assert set(rows.values_list("fold", flat=True)) <= {None, 1, 2}
    assert out_of_fold_store(run_id=run.pk, result=result, samples=samples) == 16  # again: replaced, not doubled
    assert rows.count() == 16


def _samples(count: int):
    from training.ml.data import CoinSample

    return [CoinSample(front=b"", back=b"", year=1800 + i, key=str(i)) for i in range(count)]


# -- the page --------------------------------------------------------------------------------------------------------


@pytest.fixture
def suspect_run(db):
    run = add_agreeing_coins(succeeded_run(), count=6)
    for year in (1900, 1910):
        coin = verified_coin(year)
        OutOfFoldPrediction.objects.create(
            training_run=run, coin=coin, label_year=year, predicted_year=year + SHIFT, fold=2, p_label=0.0, p_top=0.97
        )
    return run


def test_curator_sees_the_ranked_suspects_with_photos_and_a_link_to_the_review_desk(client, curator, suspect_run):
    client.force_login(curator)
    response = client.get(reverse("admin:training_trainingrun_suspects"))
    page = response.content.decode()
    assert response.status_code == 200
    coin_ids = list(suspect_run.out_of_fold.filter(p_label=0).values_list("coin_id", flat=True))
    assert len(coin_ids) == 2
    for coin_id in coin_ids:
        assert reverse("admin:predictions_coin_review", kwargs={"coin_id": coin_id}) in page
        assert reverse("coin-image", kwargs={"coin_id": coin_id, "side": "front"}) + "?size=thumb" in page
    assert "97%" in page and "fold 2" in page and "+40 y" in page
    assert f"From training run #{suspect_run.pk}" in page


def test_the_review_queue_links_to_the_suspect_labels(client, curator):
    client.force_login(curator)
    page = client.get(reverse("admin:predictions_coin_changelist")).content.decode()
    assert reverse("admin:training_trainingrun_suspects") in page


def test_model_owner_may_look_too(client, model_owner, suspect_run):
    client.force_login(model_owner)
    assert client.get(reverse("admin:training_trainingrun_suspects")).status_code == 200


def test_collector_cannot_open_the_suspect_labels(client, collector, suspect_run):
    client.force_login(collector)
    response = client.get(reverse("admin:training_trainingrun_suspects"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def test_staff_without_a_role_gets_403(client, suspect_run):
    client.force_login(UserFactory(username="staff-no-role", is_staff=True))
    assert client.get(reverse("admin:training_trainingrun_suspects")).status_code == 403


def test_page_says_when_no_run_kept_held_out_answers(client, curator):
    client.force_login(curator)
    page = client.get(reverse("admin:training_trainingrun_suspects")).content.decode()
    assert "No training run has kept held-out answers yet" in page


def test_re_checking_on_the_review_desk_takes_the_coin_off_the_list(client, curator, suspect_run):
    # given the first suspect, opened from the list on the review desk
    client.force_login(curator)
    first = suspect_labels_find().suspects[0]
    review = reverse("admin:predictions_coin_review", kwargs={"coin_id": first.coin.pk})
    assert client.get(review).status_code == 200

    # when the curator corrects it to the year the held-out models read (an ordinary review decision)
    response = client.post(review, {"year": str(first.predicted_year)})

    # then the coin carries the new year, the audit has the decision, and the list no longer shows it
    assert response.status_code == 302
    first.coin.refresh_from_db()
    assert first.coin.verified_year == first.predicted_year
    assert first.coin.corrections.get().new_year == first.predicted_year
    page = client.get(reverse("admin:training_trainingrun_suspects")).content.decode()
    assert f'data-coin="{first.coin.pk}"' not in page
    assert "1 changed or excluded since" in page
