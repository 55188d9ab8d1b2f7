"""The model versions list at 1280 px, the width of a small laptop screen: every column fits without a horizontal
scroll bar (issue 13: "the model-versions table fits at 1280 px"). Debian's headless Chromium through Playwright.

Screenshot: test-artifacts/admin-model-versions-1280.png (repo root, git-ignored).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import ModelVersion
from tests.conftest import ARTIFACTS
from tests.factories import ModelVersionFactory, UserFactory
from training.models import DatasetVersion, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORT = 1280

# How wide the page and the table are, whether the table's box is wider than the box that holds it, and the table's
# natural width (max-content: the list is width 100 %, so it stretches to its box whenever it fits).
MEASURE = """() => {
  const table = document.querySelector('#result_list');
  const holder = table.closest('.results') || table.parentElement;
  return {
    natural: (() => { const w = table.style.width; table.style.width = 'max-content'; const n = table.scrollWidth; table.style.width = w; return n; })(),
    page: document.documentElement.scrollWidth,
    table: table.scrollWidth,
    holder: holder.clientWidth,
    holder_scroll: holder.scrollWidth,
    columns: [...table.querySelectorAll('thead th')].map(th => [th.className, Math.round(th.getBoundingClientRect().width)]),
  };
}"""


def _metrics(mae: float) -> dict:
    """A run's record as log_result writes it: the widest numbers a 5-fold run shows in the list."""
    return {
        "mae": mae,
        "mae_std": 12.345,
        "r2": -0.123,
        "within_5": 0.123,
        "within_10": 0.456,
        "baseline_mae": 81.234,
        "interval_coverage": 0.953,
        "interval": {"level": 0.95},
    }


def test_model_versions_list_fits_1280_px(transactional_db, live_server, browser, settings):
    # given a handful of versions with every column filled (a long promoter name, verdicts, aliases)
    settings.MLFLOW_MODEL_NAME = "coin-year"
    owner = UserFactory(username="model-owner-with-a-long-name", roles=["model_owner"], is_staff=True)
    verdicts = ["promoted", "recommended", "rejected", "rejected", "recommended", ""]
    for number, verdict in enumerate(verdicts, start=101):
        run = TrainingRun.objects.create(
            status=TrainingRun.Status.SUCCEEDED, verdict=verdict, metrics=_metrics(10 + number / 7)
        )
        ModelVersionFactory(
            version=number,
            training_run=run,
            metrics=_metrics(10 + number / 7),
            aliases=["staging"] if verdict == "recommended" else [],
            promoted_at=timezone.now() - timedelta(days=number - 100),
            promoted_by=owner,
        )
    ModelVersion.objects.filter(version=101).update(is_production=True, aliases=["production", "champion"])

    page = browser.new_page(viewport={"width": VIEWPORT, "height": 900})
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    # when the owner opens the list at 1280 px
    page.goto(live_server.url + reverse("admin:registry_modelversion_changelist"))
    assert page.locator("#result_list tbody tr").count() == len(verdicts)
    sizes = page.evaluate(MEASURE)
    page.screenshot(path=str(ARTIFACTS / "admin-model-versions-1280.png"), full_page=True)
    print(f"\nmodel versions at {VIEWPORT} px: {sizes}")

    # then nothing scrolls sideways: not the page, not the table inside its box
    assert sizes["page"] <= VIEWPORT, sizes
    assert sizes["table"] <= sizes["holder"], sizes
    assert sizes["holder_scroll"] <= sizes["holder"], sizes
    assert sizes["natural"] <= sizes["holder"], sizes


def test_training_runs_list_fits_1280_px_beside_its_filters(transactional_db, live_server, browser):
    # given runs with every column filled: a failed one with its error, a fold-parallel one running, a promoted one
    owner = UserFactory(username="model-owner-with-a-long-name", roles=["model_owner"], is_staff=True)
    dataset = DatasetVersion.objects.create(content_hash="f" * 64, manifest=[], coin_count=12345)
    started = timezone.now() - timedelta(hours=3, minutes=7)
    TrainingRun.objects.create(
        status=TrainingRun.Status.FAILED,
        error="RuntimeError: fold 2: CUDA out of memory",
        dataset_version=dataset,
        requested_by=owner,
        started_at=started,
        finished_at=timezone.now(),
    )
    TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED,
        verdict=TrainingRun.Verdict.PROMOTED,
        dataset_version=dataset,
        requested_by=owner,
        started_at=started,
        finished_at=timezone.now(),
        progress={"fold": 5, "folds": 5, "epoch": 20, "epochs": 20, "stage": "done"},
    )
    TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        dataset_version=dataset,
        requested_by=owner,
        started_at=started,
        progress={"stage": "training", "folds": 5, "epochs": 20, "folds_done": 2, "epochs_done": 57, "val_mae": 12.3},
    )

    page = browser.new_page(viewport={"width": VIEWPORT, "height": 900})
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    # when the owner opens the training runs at 1280 px, the filter bar open beside them
    page.goto(live_server.url + reverse("admin:training_trainingrun_changelist"))
    assert page.locator("#result_list tbody tr").count() == 3
    sizes = page.evaluate(MEASURE)
    page.screenshot(path=str(ARTIFACTS / "admin-training-runs-1280.png"), full_page=True)
    print(f"\ntraining runs at {VIEWPORT} px: {sizes}")

    # then nothing scrolls sideways (an error message may wrap: the list's natural one-line width is not the measure
    # here), and the run's data and duration are still there as second lines
    assert sizes["page"] <= VIEWPORT, sizes
    assert sizes["table"] <= sizes["holder"], sizes
    assert sizes["holder_scroll"] <= sizes["holder"], sizes
    text = page.locator("#result_list").inner_text()
    assert "12345 coins" in text and "2/5 folds done" in text and "3h 07m" in text, text
