"""Training services without training a model: datasets, the training lock, cancellation, permissions, the schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from predictions.models import Coin
from registry.services import model_version_promote
from tests.factories import CoinFactory, PredictionFactory, UserFactory
from training.errors import ERROR_MAX_CHARS, TrainingBusy, TrainingLeaseLost, error_text
from training.models import DatasetVersion, TrainingRun
from training.selectors import dataset_manifest, labelled_coins, new_labels_count
from training.services.datasets import dataset_freeze, dataset_samples
from training.services.lease import lease_acquire, lease_renew, training_run_reap_stale
from training.services.runs import training_run_cancel, training_run_execute, training_run_start
from training.services.schedule import retrain_if_enough_labels

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def owner(collector):
    return collector


def verified_coins(count: int, *, year: int = 1850, **kwargs) -> list[Coin]:
    """Labelled coins of one owner (a new user per coin would spend the test hashing passwords)."""
    owner = kwargs.pop("owner", None) or UserFactory(username="collector1")
    return [
        CoinFactory(owner=owner, verified_year=year + i % 100, verified_at=timezone.now(), **kwargs)
        for i in range(count)
    ]


def ids(dataset: DatasetVersion) -> set[int]:
    return {row["coin_id"] for row in dataset.manifest}


# --- datasets ----------------------------------------------------------------------------------------------------


def test_same_data_frozen_twice_gives_one_dataset_version():
    verified_coins(12)

    first = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    second = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)

    assert first.pk == second.pk
    assert DatasetVersion.objects.filter(kind=DatasetVersion.Kind.TRAINING).count() == 1


def test_new_label_gives_a_new_dataset_version():
    verified_coins(12)
    first = dataset_freeze()

    [new] = verified_coins(1, year=1990)
    second = dataset_freeze()

    # The evaluation share is chosen by coin id, so the new label lands in training or is held out for evaluation:
    # a new training label gives a new version with one coin more; a held-out one leaves the training set (and so its
    # version, found by content hash) as it was. (Asserting only the first case failed whenever the id was held out.)
    if new.id in ids(second):
        assert second.pk != first.pk and second.coin_count == first.coin_count + 1
    else:
        assert second.pk == first.pk
        assert new.id in ids(dataset_freeze(kind=DatasetVersion.Kind.EVALUATION))


def test_evaluation_set_never_overlaps_training_set_and_is_stable_when_coins_are_added(settings):
    settings.EVALUATION_SHARE = 0.3
    verified_coins(40)
    training = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    evaluation = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)
    assert ids(evaluation), "with 40 coins and a 30% share some coins are held out"
    assert not ids(training) & ids(evaluation)
    assert ids(training) | ids(evaluation) == set(labelled_coins().values_list("id", flat=True))

    verified_coins(40, year=1950)
    training_later = dataset_freeze(kind=DatasetVersion.Kind.TRAINING)
    evaluation_later = dataset_freeze(kind=DatasetVersion.Kind.EVALUATION)

    assert ids(evaluation) <= ids(evaluation_later), "a held-out coin stays held out"
    assert ids(training) <= ids(training_later), "a training coin never moves into the evaluation set"
    assert not ids(training_later) & ids(evaluation_later)


def test_only_verified_non_excluded_coins_are_labels_raw_predictions_never_are(owner):
    labelled = verified_coins(3)
    predicted_only = PredictionFactory(year=1901, coin__owner=owner).coin  # a raw prediction, never verified
    excluded = CoinFactory(owner=owner, verified_year=1900, excluded_from_training=True)

    rows = dataset_manifest(kind=DatasetVersion.Kind.TRAINING) + dataset_manifest(kind=DatasetVersion.Kind.EVALUATION)

    assert {row["coin_id"] for row in rows} == {coin.id for coin in labelled}
    assert predicted_only.id not in {row["coin_id"] for row in rows}
    assert excluded.id not in {row["coin_id"] for row in rows}


def test_hard_examples_weigh_more(settings, owner):
    settings.EVALUATION_SHARE = 0.0
    settings.HARD_EXAMPLE_YEARS = 20
    settings.HARD_EXAMPLE_WEIGHT = 3.0
    easy = PredictionFactory(year=1880, coin__verified_year=1885, coin__owner=owner).coin
    hard = PredictionFactory(year=1880, coin__verified_year=1950, coin__owner=owner).coin

    weights = {row["coin_id"]: row["weight"] for row in dataset_freeze().manifest}

    assert weights[hard.id] == 3.0
    assert weights[easy.id] == 1.0


def test_dataset_samples_use_the_frozen_years_and_weights_and_the_stored_photos(settings, owner):
    settings.EVALUATION_SHARE = 0.0
    coin = PredictionFactory(year=1700, coin__verified_year=1900, coin__owner=owner).coin
    dataset = dataset_freeze()
    Coin.objects.filter(pk=coin.pk).update(verified_year=1901)  # changed after the freeze

    [sample] = dataset_samples(dataset=dataset)

    assert sample.year == 1900
    assert sample.weight == settings.HARD_EXAMPLE_WEIGHT
    assert sample.key == str(coin.pk)
    assert sample.front.read_bytes()[:2] == b"\xff\xd8"


# --- starting and cancelling runs -----------------------------------------------------------------------------------


def test_training_run_start_queues_a_run_with_the_validated_config(model_owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = training_run_start(requested_by=model_owner, overrides=["epochs=3", "folds=2"])

    assert run.status == TrainingRun.Status.QUEUED
    assert run.config["epochs"] == 3 and run.config["folds"] == 2
    assert run.requested_by == model_owner
    assert len(callbacks) == 1, "the worker is asked after commit"


def test_training_run_start_with_an_unknown_key_names_it():
    with pytest.raises(ValidationError) as excinfo:
        training_run_start(overrides=["epohcs=3"])

    assert "epohcs" in str(excinfo.value)
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("role", [None, "collector", "curator"])
def test_only_model_owners_start_training(role):
    user = AnonymousUser() if role is None else UserFactory(roles=[role])

    with pytest.raises(PermissionDenied):
        training_run_start(requested_by=user, overrides=["epochs=1"])

    assert not TrainingRun.objects.exists()


def test_cancelling_a_queued_run_cancels_it_at_once(model_owner):
    run = TrainingRun.objects.create(config={})

    run = training_run_cancel(run=run, actor=model_owner)

    assert run.status == TrainingRun.Status.CANCELLED
    assert run.cancel_requested


def test_cancelling_a_running_run_asks_it_to_stop(model_owner):
    run = TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())

    run = training_run_cancel(run=run, actor=model_owner)

    assert run.status == TrainingRun.Status.RUNNING
    assert run.cancel_requested


@pytest.mark.parametrize("role", [None, "collector", "curator"])
def test_only_model_owners_cancel_training(role):
    user = AnonymousUser() if role is None else UserFactory(roles=[role])
    run = TrainingRun.objects.create(config={})

    with pytest.raises(PermissionDenied):
        training_run_cancel(run=run, actor=user)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.QUEUED and not run.cancel_requested


def test_execute_ignores_a_run_that_is_not_queued():
    run = TrainingRun.objects.create(config={}, status=TrainingRun.Status.SUCCEEDED)

    assert training_run_execute(run_id=run.pk).status == TrainingRun.Status.SUCCEEDED


# --- the lock ----------------------------------------------------------------------------------------------------------


def test_second_run_is_refused_while_another_holds_the_lease():
    holder = TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())
    waiting = TrainingRun.objects.create(config={})

    with pytest.raises(TrainingBusy) as excinfo:
        training_run_execute(run_id=waiting.pk)

    assert excinfo.value.holder == holder
    waiting.refresh_from_db()
    assert waiting.status == TrainingRun.Status.QUEUED, "it waits its turn"


def test_database_refuses_two_running_runs():
    from django.db import IntegrityError, transaction

    TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING)


def test_expired_lease_of_a_dead_worker_is_taken_over(settings):
    settings.TRAINING_LEASE_SECONDS = 60
    dead = TrainingRun.objects.create(
        config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    waiting = TrainingRun.objects.create(config={})

    assert lease_acquire(waiting)

    dead.refresh_from_db()
    waiting.refresh_from_db()
    assert dead.status == TrainingRun.Status.FAILED and "worker died" in dead.error
    assert waiting.status == TrainingRun.Status.RUNNING and waiting.heartbeat_at is not None


def test_reaper_marks_only_stale_running_runs_failed(settings):
    settings.TRAINING_LEASE_SECONDS = 60
    stale = TrainingRun.objects.create(
        config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=2)
    )
    queued = TrainingRun.objects.create(config={})

    assert training_run_reap_stale() == [stale.pk]

    stale.refresh_from_db()
    queued.refresh_from_db()
    assert stale.status == TrainingRun.Status.FAILED and "worker died" in stale.error and stale.finished_at
    assert queued.status == TrainingRun.Status.QUEUED


def test_reaper_leaves_a_live_run_alone(settings):
    settings.TRAINING_LEASE_SECONDS = 60
    live = TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())

    assert training_run_reap_stale() == []
    live.refresh_from_db()
    assert live.status == TrainingRun.Status.RUNNING


def test_a_reaped_worker_that_wakes_up_writes_nothing(settings):
    settings.TRAINING_LEASE_SECONDS = 60
    run = TrainingRun.objects.create(config={}, status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now())
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    training_run_reap_stale()

    with pytest.raises(TrainingLeaseLost):
        lease_renew(run.pk, progress={"epoch": 3})

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED and run.progress == {}


def test_error_text_is_short_and_hides_credentials():
    error = RuntimeError("cannot reach postgres://coinsite:s3cret@db.internal/coinsite " + "x" * 2000)

    text = error_text(error)

    assert "s3cret" not in text and "RuntimeError" in text and len(text) <= ERROR_MAX_CHARS


# --- the schedule ------------------------------------------------------------------------------------------------------


def test_retrain_starts_a_run_only_with_enough_new_labels(settings, django_capture_on_commit_callbacks):
    settings.RETRAIN_MIN_NEW_LABELS = 5
    verified_coins(4)
    assert retrain_if_enough_labels() is None

    verified_coins(1, year=1999)
    with django_capture_on_commit_callbacks(execute=False):
        run = retrain_if_enough_labels()

    assert run is not None and run.status == TrainingRun.Status.QUEUED


def test_retrain_counts_only_labels_new_since_the_last_run(settings, django_capture_on_commit_callbacks):
    settings.RETRAIN_MIN_NEW_LABELS = 3
    verified_coins(10)
    TrainingRun.objects.create(
        config={},
        status=TrainingRun.Status.SUCCEEDED,
        dataset_version=dataset_freeze(kind=DatasetVersion.Kind.TRAINING),
        evaluation_dataset=dataset_freeze(kind=DatasetVersion.Kind.EVALUATION),
    )
    verified_coins(2, year=1990)
    assert new_labels_count() == 2
    assert retrain_if_enough_labels() is None

    corrected = Coin.objects.filter(verified_year=1850).first()
    Coin.objects.filter(pk=corrected.pk).update(verified_year=1855)  # a changed year is a new label too
    assert new_labels_count() == 3
    with django_capture_on_commit_callbacks(execute=False):
        assert retrain_if_enough_labels() is not None


def test_retrain_does_nothing_while_a_run_is_queued_or_running(settings):
    settings.RETRAIN_MIN_NEW_LABELS = 1
    verified_coins(5)
    TrainingRun.objects.create(config={})

    assert retrain_if_enough_labels() is None
    assert TrainingRun.objects.count() == 1


def test_beat_schedule_exists_and_points_at_the_retrain_task():
    from django_celery_beat.models import PeriodicTask

    retrain = PeriodicTask.objects.get(task="training.tasks.retrain_if_enough_labels_task")
    reaper = PeriodicTask.objects.get(task="training.tasks.training_run_reap_stale_task")

    assert retrain.enabled and retrain.crontab.hour == "3" and retrain.crontab.minute == "0"
    assert reaper.enabled and reaper.interval.every == 5


def test_fine_tuning_needs_a_production_version(model_owner, settings):
    settings.MLFLOW_MODEL_NAME = "coin-year-never-registered"

    with pytest.raises(ValidationError) as excinfo:
        training_run_start(requested_by=model_owner, fine_tune=True)

    assert "fine_tune" in excinfo.value.error_dict
    assert not TrainingRun.objects.exists()


def test_the_first_model_in_production_predicts_the_coins_that_waited_for_it(
    production_model, model_owner, collector, django_capture_on_commit_callbacks
):
    from registry import serving
    from training.ml import tracking

    tracking.delete_alias("coin-year", "production")  # as on a fresh install: coins uploaded, no model yet
    serving.reset()
    waiting = [CoinFactory(owner=collector) for _ in range(3)]
    assert {coin.status for coin in waiting} == {Coin.Status.PENDING}

    with django_capture_on_commit_callbacks(execute=True):
        model_version_promote(version=production_model, actor=model_owner)

    for coin in waiting:
        coin.refresh_from_db()
        assert coin.status == Coin.Status.PREDICTED
        assert coin.predictions.get().model_version.version == production_model
