"""The model owners' admin: who sees what, who may promote, roll back, start and cancel training, and that every page
renders (with or without a comparison, with or without plots) without a 500.

Promote and roll back run against real registered versions (the session's tiny model, `registered_tiny_versions`) so
the MLflow alias is checked, not a mock of it.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from predictions.models import Coin
from registry.models import ModelVersion, Promotion
from registry.services import model_version_promote
from tests.factories import CoinFactory, ModelVersionFactory, PredictionFactory, UserFactory
from training.models import DatasetVersion, TrainingFold, TrainingRun

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "collector", "curator", "model_owner", "superuser"]
OWNERS = {"model_owner", "superuser"}


@pytest.fixture
def as_role(client, collector, curator, model_owner):
    """A test client signed in with the given role ("anonymous": not signed in)."""

    def sign_in(role: str):
        users = {
            "collector": collector,
            "curator": curator,
            "model_owner": model_owner,
            "superuser": UserFactory(username="root", is_staff=True, is_superuser=True),
        }
        if role != "anonymous":
            client.force_login(users[role])
        return client

    return sign_in


def refused(response, role: str) -> bool:
    """Anonymous visitors and collectors (not staff) are sent to the admin login; staff without the role get 403."""
    if role in ("anonymous", "collector"):
        return response.status_code == 302 and reverse("admin:login") in response["Location"]
    return response.status_code == 403


def comparison_json(candidate: int = 2, production: int | None = 1) -> dict:
    """The shape training.model_version_compare stores on the run."""

    def side(version: int, mae: float) -> dict:
        return {
            "version": version,
            "count": 12,
            "mae": mae,
            "mse": mae**2,
            "r2": 0.8,
            "within_5": 0.4,
            "within_10": 0.7,
            "mae_by_decade": {"1870": mae - 1, "1950": mae + 2},
            "decade_counts": {"1870": 5, "1950": 7},
        }

    return {
        "evaluation_count": 12,
        "margin": 0.5,
        "corrected": {"count": 3, "candidate_mae": 4.5, "production_mae": 9.25},
        "candidate": side(candidate, 6.0),
        "production": side(production, 8.0) if production else None,
        "better": True,
        "delta_mae": -2.0,
        "reason": "candidate MAE 6.00 vs Production 8.00 on 12 held-out coins: better by the margin of 0.5 years",
        "verdict": "recommended",
    }


@pytest.fixture
def evaluated_version(db):
    """A version trained and compared with Production by the learning loop (as the training services store it)."""
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        verdict=TrainingRun.Verdict.RECOMMENDED,
        metrics={
            "mae": 7.25,
            "mae_std": 0.5,
            "baseline_mae": 80.0,
            "r2": 0.91,
            "within_5": 0.4,
            "within_10": 0.75,
            "interval_coverage": 0.81,
            "folds": [{"mae": 7.0, "mse": 60.0, "r2": 0.9, "within_5": 0.4, "within_10": 0.7}] * 2,
        },
        comparison=comparison_json(),
        progress={"fold": 2, "folds": 2, "epoch": 3, "epochs": 3},
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    return ModelVersionFactory(version=2, run_id="0" * 32, training_run=run, metrics={"mae": 7.25})


# ---------------------------------------------------------------------------------------------------------------------
# Who sees the pages
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_model_owners_see_the_model_version_list_and_detail(as_role, role, evaluated_version):
    client = as_role(role)
    pages = [
        reverse("admin:registry_modelversion_changelist"),
        reverse("admin:registry_modelversion_change", args=[evaluated_version.pk]),
        reverse("admin:training_trainingrun_changelist"),
        reverse("admin:training_datasetversion_changelist"),
        reverse("admin:registry_promotion_changelist"),
        reverse("admin:training_trainingrun_start"),
        reverse("admin:registry_modelversion_rescore"),
    ]
    for url in pages:
        response = client.get(url)
        if role in OWNERS:
            assert response.status_code == 200, url
        else:
            assert refused(response, role), (url, response.status_code)


@pytest.mark.parametrize("role", ROLES)
def test_movers_page_is_for_curators_and_model_owners(as_role, role):
    response = as_role(role).get(reverse("admin:registry_modelversion_movers"))
    if role in OWNERS | {"curator"}:
        assert response.status_code == 200
    else:
        assert refused(response, role)


def test_model_owner_sees_promote_button_but_curator_sees_no_training_admin(
    client, model_owner, curator, evaluated_version
):
    ModelVersionFactory(version=1, is_production=True, aliases=["production"])
    detail = reverse("admin:registry_modelversion_change", args=[evaluated_version.pk])
    promote = reverse("admin:registry_modelversion_promote", args=[evaluated_version.pk])

    client.force_login(model_owner)
    assert promote in client.get(detail).content.decode()
    assert "Model versions" in client.get(reverse("admin:index")).content.decode()

    client.force_login(curator)
    index = client.get(reverse("admin:index")).content.decode()
    assert "Model versions" not in index and "Training runs" not in index


def test_model_owner_can_edit_the_beat_schedule(client, model_owner, curator):
    task = PeriodicTask.objects.get(task="training.tasks.retrain_if_enough_labels_task")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])

    client.force_login(model_owner)
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' in page.content.decode()

    client.force_login(curator)
    assert client.get(url).status_code == 403


# ---------------------------------------------------------------------------------------------------------------------
# Promote and roll back, against the session's real registered versions
# ---------------------------------------------------------------------------------------------------------------------


def alias_version() -> int | None:
    from django.conf import settings

    from training.ml import tracking

    return tracking.get_alias_version(settings.MLFLOW_MODEL_NAME, "production")


@pytest.mark.parametrize("role", ROLES)
def test_only_model_owners_promote(as_role, role, two_versions):
    current, candidate = two_versions
    response = as_role(role).post(reverse("admin:registry_modelversion_promote", args=[candidate.pk]))

    if role in OWNERS:
        assert response.status_code == 302
        assert alias_version() == candidate.version
        candidate.refresh_from_db()
        assert candidate.is_production and candidate.promoted_by is not None
        promotion = Promotion.objects.get(action=Promotion.Action.PROMOTE)
        assert (promotion.from_version, promotion.to_version) == (current, candidate)
    else:
        assert refused(response, role)
        assert alias_version() == current.version
        assert ModelVersion.objects.get(is_production=True) == current
        assert not Promotion.objects.filter(action=Promotion.Action.PROMOTE).exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_model_owners_roll_back(as_role, role, two_versions, model_owner):
    current, candidate = two_versions
    model_version_promote(version=candidate.version, actor=model_owner)

    response = as_role(role).post(reverse("admin:registry_modelversion_rollback"))

    if role in OWNERS:
        assert response.status_code == 302
        assert alias_version() == current.version
        assert ModelVersion.objects.get(is_production=True) == current
        assert Promotion.objects.filter(action=Promotion.Action.ROLLBACK, to_version=current).exists()
    else:
        assert refused(response, role)
        assert alias_version() == candidate.version
        assert not Promotion.objects.filter(action=Promotion.Action.ROLLBACK).exists()


def test_promote_and_roll_back_refuse_get(client, model_owner, two_versions):
    _, candidate = two_versions
    client.force_login(model_owner)
    assert client.get(reverse("admin:registry_modelversion_promote", args=[candidate.pk])).status_code == 405
    assert client.get(reverse("admin:registry_modelversion_rollback")).status_code == 405
    assert alias_version() == two_versions[0].version


def test_promote_action_on_the_list_moves_production(client, model_owner, two_versions):
    current, candidate = two_versions
    client.force_login(model_owner)
    response = client.post(
        reverse("admin:registry_modelversion_changelist"),
        {"action": "promote_selected", "_selected_action": [candidate.pk]},
        follow=True,
    )
    assert f"Production is now {candidate}" in response.content.decode()
    assert alias_version() == candidate.version


def test_promote_action_wants_exactly_one_version(client, model_owner, two_versions):
    current, candidate = two_versions
    client.force_login(model_owner)
    response = client.post(
        reverse("admin:registry_modelversion_changelist"),
        {"action": "promote_selected", "_selected_action": [current.pk, candidate.pk]},
        follow=True,
    )
    assert "Select exactly one version" in response.content.decode()
    assert alias_version() == current.version


def test_rollback_action_needs_the_production_version_selected(client, model_owner, two_versions):
    current, candidate = two_versions
    model_version_promote(version=candidate.version, actor=model_owner)
    client.force_login(model_owner)
    changelist = reverse("admin:registry_modelversion_changelist")

    response = client.post(changelist, {"action": "rollback_production", "_selected_action": [current.pk]}, follow=True)
    assert "Select the current Production version" in response.content.decode()
    assert alias_version() == candidate.version

    client.post(changelist, {"action": "rollback_production", "_selected_action": [candidate.pk]})
    assert alias_version() == current.version


def test_rollback_without_history_shows_the_reason_and_changes_nothing(client, model_owner, two_versions):
    current, _ = two_versions
    client.force_login(model_owner)
    response = client.post(reverse("admin:registry_modelversion_rollback"), follow=True)
    assert response.status_code == 200
    assert "no earlier Production version" in response.content.decode()
    assert alias_version() == current.version


def test_promoting_an_unregistered_version_shows_the_error_and_keeps_production(client, model_owner, no_model):
    ghost = ModelVersionFactory(name="coin-year-nothing-registered", version=7)
    client.force_login(model_owner)
    response = client.post(reverse("admin:registry_modelversion_promote", args=[ghost.pk]), follow=True)
    assert response.status_code == 200
    assert "failed" in response.content.decode()
    ghost.refresh_from_db()
    assert not ghost.is_production and not Promotion.objects.exists()


def test_detail_page_shows_the_runs_plots_inline_and_serves_them(client, model_owner, two_versions):
    _, candidate = two_versions
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_change", args=[candidate.pk])).content.decode()
    plot = reverse("admin:registry_modelversion_artifact", args=[candidate.pk, "plots/learning_curves.png"])
    assert plot in page

    image = client.get(plot)
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("artifact", ["../../etc/passwd.png", "metrics.json", "plots/missing.png"])
def test_artifact_view_serves_only_existing_plots_of_the_versions_own_run(client, model_owner, two_versions, artifact):
    _, candidate = two_versions
    client.force_login(model_owner)
    url = reverse("admin:registry_modelversion_artifact", args=[candidate.pk, "x.png"]).replace("x.png", artifact)
    assert client.get(url).status_code == 404


def test_curator_cannot_fetch_plots(client, curator, two_versions):
    _, candidate = two_versions
    client.force_login(curator)
    url = reverse("admin:registry_modelversion_artifact", args=[candidate.pk, "plots/learning_curves.png"])
    assert client.get(url).status_code == 403


# ---------------------------------------------------------------------------------------------------------------------
# The model version page renders whatever the run stored
# ---------------------------------------------------------------------------------------------------------------------


def test_detail_page_shows_folds_metrics_and_comparison_against_production(client, model_owner, evaluated_version):
    client.force_login(model_owner)
    response = client.get(reverse("admin:registry_modelversion_change", args=[evaluated_version.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Against Production (v1)" in page
    assert "recommended" in page
    assert "MAE on corrected coins (3)" in page and "9.2" in page  # production MAE on the corrected coins
    assert "1870s" in page and "1950s" in page  # MAE by decade
    assert page.count('<th scope="row">') >= 2 + 5  # two folds + the comparison rows
    assert "0.09×" in page  # MAE / constant baseline: 7.25 / 80


def test_detail_page_renders_without_comparison_and_with_missing_plots(client, model_owner):
    version = ModelVersionFactory(version=9, run_id="f" * 32, metrics={})
    client.force_login(model_owner)
    response = client.get(reverse("admin:registry_modelversion_change", args=[version.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "No comparison stored" in page
    assert "No per-fold metrics" in page
    plot = reverse("admin:registry_modelversion_artifact", args=[version.pk, "plots/learning_curves.png"])
    assert plot in page
    assert client.get(plot).status_code == 404  # the run does not exist in MLflow: the browser shows a placeholder


def test_detail_page_of_a_version_without_run_id_says_there_are_no_plots(client, model_owner):
    version = ModelVersionFactory(version=8, run_id="")
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert "no MLflow run id" in page


def test_detail_page_reads_flat_mlflow_fold_metrics(client, model_owner):
    version = ModelVersionFactory(
        version=4, metrics={"mae": 9.0, "fold_1_mae": 8.5, "fold_1_r2": 0.7, "fold_2_mae": 9.5, "fold_2_r2": 0.6}
    )
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert "8.50" in page and "9.50" in page and "0.700" in page


@pytest.mark.parametrize(
    ("served", "says"), [(1.0, "folds averaged"), (0.0, "fold ensemble")], ids=["soup", "ensemble"]
)
def test_detail_page_says_how_the_version_combines_its_folds(client, model_owner, served, says):
    metrics = {"mae": 0.4, "soup_served": served, "soup_holdout_exact": 0.974, "folds_ensemble_holdout_exact": 0.967}
    version = ModelVersionFactory(version=5, metrics=metrics)
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert says in page and "averaged 97%, ensemble 97%" in page


def test_detail_page_of_a_version_that_never_compared_shows_no_combination_card(client, model_owner):
    version = ModelVersionFactory(version=6, metrics={"mae": 9.0})
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_change", args=[version.pk])).content.decode()
    assert "folds averaged" not in page and "fold ensemble" not in page


def test_first_version_comparison_without_production_renders(client, model_owner):
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, comparison=comparison_json(1, None))
    version = ModelVersionFactory(version=1, training_run=run)
    client.force_login(model_owner)
    response = client.get(reverse("admin:registry_modelversion_change", args=[version.pk]))
    assert response.status_code == 200
    assert "Against Production" in response.content.decode()


def test_model_version_list_shows_production_badge_and_verdict(client, model_owner, evaluated_version):
    ModelVersionFactory(version=1, is_production=True, aliases=["production"], metrics={"mae": 9.0, "mae_std": 1.0})
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_modelversion_changelist")).content.decode()
    assert "mt-badge--prod" in page
    assert '9.0<small class="mt-cell-note" title="spread over folds">± 1.0</small>' in page  # spread under the mean
    assert "Recommended" in page


def test_history_is_read_only_even_for_superusers(client, evaluated_version):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    promotion = Promotion.objects.create(to_version=evaluated_version, action=Promotion.Action.INITIAL)
    assert client.get(reverse("admin:registry_promotion_add")).status_code == 403
    assert client.post(reverse("admin:registry_promotion_delete", args=[promotion.pk])).status_code == 403
    assert client.get(reverse("admin:registry_modelversion_add")).status_code == 403
    detail = client.get(reverse("admin:registry_modelversion_change", args=[evaluated_version.pk]))
    assert 'name="_save"' not in detail.content.decode()
    client.post(reverse("admin:registry_modelversion_change", args=[evaluated_version.pk]), {"version": 99})
    evaluated_version.refresh_from_db()
    assert evaluated_version.version == 2


# ---------------------------------------------------------------------------------------------------------------------
# Training runs: start, cancel, progress
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_model_owners_start_training(as_role, role):
    response = as_role(role).post(
        reverse("admin:training_trainingrun_start"), {"overrides": "epochs=3", "fine_tune": ""}
    )
    if role in OWNERS:
        run = TrainingRun.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:training_trainingrun_change", args=[run.pk])
        assert run.status == TrainingRun.Status.QUEUED and run.config["epochs"] == 3
        assert run.requested_by is not None
    else:
        assert refused(response, role)
        assert not TrainingRun.objects.exists()


def test_start_training_enqueues_the_run_after_commit(client, model_owner, django_capture_on_commit_callbacks):
    client.force_login(model_owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("admin:training_trainingrun_start"), {"overrides": ""})
    assert TrainingRun.objects.count() == 1
    assert len(callbacks) == 1  # training_run_execute_task, on the training queue


def test_start_training_names_an_unknown_override(client, model_owner):
    client.force_login(model_owner)
    response = client.post(reverse("admin:training_trainingrun_start"), {"overrides": "no_such_key=1"})
    assert response.status_code == 200
    assert "no_such_key" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_start_training_rejects_a_line_that_is_not_key_value(client, model_owner):
    client.force_login(model_owner)
    response = client.post(reverse("admin:training_trainingrun_start"), {"overrides": "epochs 3"})
    assert "is not key=value" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_fine_tune_without_production_is_refused_with_the_reason(client, model_owner, no_model):
    client.force_login(model_owner)
    response = client.post(reverse("admin:training_trainingrun_start"), {"overrides": "", "fine_tune": "on"})
    assert response.status_code == 200
    assert "no version is in production" in response.content.decode()
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_only_model_owners_cancel_training(as_role, role):
    run = TrainingRun.objects.create(status=TrainingRun.Status.QUEUED)
    response = as_role(role).post(reverse("admin:training_trainingrun_cancel", args=[run.pk]))
    run.refresh_from_db()
    if role in OWNERS:
        assert response.status_code == 302
        assert run.status == TrainingRun.Status.CANCELLED and run.cancel_requested
    else:
        assert refused(response, role)
        assert run.status == TrainingRun.Status.QUEUED and not run.cancel_requested


def test_cancel_action_asks_a_running_run_to_stop(client, model_owner):
    running = TrainingRun.objects.create(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    finished = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    client.force_login(model_owner)
    response = client.post(
        reverse("admin:training_trainingrun_changelist"),
        {"action": "cancel_selected", "_selected_action": [running.pk, finished.pk]},
        follow=True,
    )
    assert "cancel requested" in response.content.decode()
    running.refresh_from_db()
    finished.refresh_from_db()
    assert running.cancel_requested and running.status == TrainingRun.Status.RUNNING
    assert not finished.cancel_requested and finished.status == TrainingRun.Status.SUCCEEDED


def test_run_list_shows_progress_and_refreshes_only_while_a_run_is_active(client, model_owner):
    client.force_login(model_owner)
    url = reverse("admin:training_trainingrun_changelist")
    TrainingRun.objects.create(status=TrainingRun.Status.FAILED, error="RuntimeError: boom\nValueError: the reason")
    idle = client.get(url).content.decode()
    assert "data-mt-autorefresh" not in idle
    assert "ValueError: the reason" in idle

    TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        started_at=timezone.now(),
        progress={"fold": 2, "folds": 5, "epoch": 10, "epochs": 20},
    )
    busy = client.get(url).content.decode()
    assert "data-mt-autorefresh" in busy
    assert "fold 2/5 · epoch 10/20" in busy
    assert 'data-mt-width="30.0"' in busy  # (1 fold done + 10/20 epochs) of 5 folds; admin.js sets the width


def test_a_fold_parallel_run_shows_its_folds_side_by_side_with_their_workers_and_attempts(client, model_owner):
    client.force_login(model_owner)
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        started_at=timezone.now(),
        progress={"stage": "training", "folds": 4, "epochs": 5, "folds_done": 1, "epochs_done": 12},
    )
    TrainingFold.objects.create(run=run, index=0, status="done", worker="gpu-a:101", epoch=5, attempts=1)
    TrainingFold.objects.create(run=run, index=1, status="running", worker="gpu-b:202", epoch=4, attempts=2)
    TrainingFold.objects.create(run=run, index=2, status="running", worker="gpu-a:103", epoch=3, attempts=1)
    TrainingFold.objects.create(run=run, index=3)

    listing = client.get(reverse("admin:training_trainingrun_changelist")).content.decode()
    page = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()

    assert "1/4 folds done · 12/20 epochs" in listing and 'data-mt-width="60.0"' in listing
    assert "<td>2</td><td>running</td><td>gpu-b:202</td><td>4</td><td>2</td>" in page
    assert "<td>4</td><td>queued</td><td>—</td><td>0</td><td>0</td>" in page


def test_run_detail_renders_for_every_status(client, model_owner, evaluated_version):
    client.force_login(model_owner)
    for status in TrainingRun.Status.values:
        run = TrainingRun.objects.create(status=status, error="boom" if status == "failed" else "")
        assert client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).status_code == 200
    page = client.get(reverse("admin:training_trainingrun_change", args=[evaluated_version.training_run.pk]))
    assert "Against Production" in page.content.decode()


# ---------------------------------------------------------------------------------------------------------------------
# Datasets, promotion history, re-scoring
# ---------------------------------------------------------------------------------------------------------------------


def test_dataset_page_shows_counts_and_a_manifest_preview(client, model_owner):
    manifest = [
        {"coin_id": i, "front_sha256": "ab" * 32, "back_sha256": "cd" * 32, "year": 1800 + i, "weight": 1.0}
        for i in range(30)
    ]
    dataset = DatasetVersion.objects.create(
        content_hash="e" * 64, manifest=manifest, coin_count=30, year_min=1800, year_max=1829
    )
    client.force_login(model_owner)
    page = client.get(reverse("admin:training_datasetversion_change", args=[dataset.pk])).content.decode()
    assert "1800–1829" in page
    assert "and 5 more rows" in page
    assert "1820s" in page  # coins per decade
    assert client.get(reverse("admin:training_datasetversion_add")).status_code == 403


def test_promotion_history_is_newest_first_with_what_served_until_when(client, model_owner):
    first, second = ModelVersionFactory(version=1), ModelVersionFactory(version=2)
    Promotion.objects.create(to_version=first, action=Promotion.Action.INITIAL)
    Promotion.objects.create(from_version=first, to_version=second, action=Promotion.Action.PROMOTE, actor=model_owner)
    client.force_login(model_owner)
    page = client.get(reverse("admin:registry_promotion_changelist")).content.decode()
    assert page.index("Promote<") < page.index("First version<")
    assert page.count("serving now") == 1
    assert "Which version served when" in page


def test_rescore_sends_the_chosen_coins_to_the_service(client, model_owner, django_capture_on_commit_callbacks):
    old, new = ModelVersionFactory(version=1), ModelVersionFactory(version=2, is_production=True)
    stale = PredictionFactory(model_version=old).coin
    fresh = PredictionFactory(model_version=new).coin
    Coin.objects.filter(pk__in=[stale.pk, fresh.pk]).update(status=Coin.Status.PREDICTED)
    client.force_login(model_owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("admin:registry_modelversion_rescore"), {"scope": "stale"}, follow=True)
    assert "Re-scoring 1 coin " in response.content.decode()
    assert len(callbacks) == 1  # coins_rescore_task, after commit


def test_rescore_page_shows_the_last_rescores_progress(client, model_owner, django_capture_on_commit_callbacks):
    # given two stale coins sent to re-scoring (the tasks not run yet)
    old, new = ModelVersionFactory(version=1), ModelVersionFactory(version=2, is_production=True)
    stale = [PredictionFactory(model_version=old).coin for _ in range(2)]
    Coin.objects.filter(pk__in=[c.pk for c in stale]).update(status=Coin.Status.PREDICTED)
    client.force_login(model_owner)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("admin:registry_modelversion_rescore"), {"scope": "stale"})
    page = reverse("admin:registry_modelversion_rescore")
    assert "0 of 2 coins predicted by Production since (0 %)" in client.get(page).content.decode()

    # when Production predicts one of them
    PredictionFactory(coin=stale[0], model_version=new)

    # then the page says so
    assert "1 of 2 coins predicted by Production since (50 %)" in client.get(page).content.decode()


def test_rescore_by_ids_validates_the_list(client, model_owner):
    ModelVersionFactory(version=1, is_production=True)
    client.force_login(model_owner)
    response = client.post(reverse("admin:registry_modelversion_rescore"), {"scope": "ids", "coin_ids": "12, x"})
    assert response.status_code == 200
    assert "is not a coin id" in response.content.decode()


def test_movers_page_lists_coins_whose_year_moved_most(client, curator):
    old, new = ModelVersionFactory(version=1), ModelVersionFactory(version=2, is_production=True)
    small, big = CoinFactory(), CoinFactory()
    for coin, before, after in ((small, 1900, 1903), (big, 1900, 1850)):
        PredictionFactory(coin=coin, model_version=old, year=before)
        PredictionFactory(coin=coin, model_version=new, year=after)
    client.force_login(curator)
    page = client.get(reverse("admin:registry_modelversion_movers") + "?since=1").content.decode()
    assert page.index(f"Coin #{big.pk}") < page.index(f"Coin #{small.pk}")
    assert "-50" in page and "+3" in page


def test_movers_page_for_an_unknown_version_is_404(client, curator):
    client.force_login(curator)
    assert client.get(reverse("admin:registry_modelversion_movers") + "?since=99").status_code == 404
    assert client.get(reverse("admin:registry_modelversion_movers") + "?since=x").status_code == 404
