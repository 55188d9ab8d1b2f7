"""A sweep's admin page in Debian's headless Chromium at 1280 px: the progress, the trials table read from the
Optuna study, and Optuna's three plots loaded from the sweep's MLflow parent run.

Screenshot: test-artifacts/admin-sweep-1280.png (repo root, git-ignored).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import ARTIFACTS
from tests.factories import UserFactory
from tests.training.test_learning_loop import add_coins
from tests.training.test_sweeps import TINY_SPACE, run_sweep
from training.services.sweep_trials import sweep_finalise

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_owner_sees_the_trials_and_the_plots_of_a_sweep(transactional_db, live_server, browser, tmp_path):
    # given a finished 3-trial sweep on 12 coins
    owner = UserFactory(username="owner-sweep", roles=["model_owner"], is_staff=True)
    add_coins(UserFactory(username="collector-sweep"), 12, seed=4)
    space = tmp_path / "tune.yaml"

    space.write_text(TINY_SPACE, encoding="utf-8")
    sweep = sweep_finalise(sweep_id=run_sweep(str(space), trials=3).pk, train_best=False)

    # when its owner opens the sweep's page
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.goto(live_server.url + reverse("admin:training_sweep_changelist"))
    assert "3/3 trials" in page.inner_text("#result_list")
    page.click(f"text=#{sweep.pk}")

    # then the trials table has one row per trial, and the three plots load
    page.wait_for_selector("table.sweep-trials")
    assert page.locator("table.sweep-trials tbody tr").count() == 3
    plots = page.locator("figure.sweep-plot img")
    assert plots.count() == 3
    for index in range(plots.count()):
        plots.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plots.nth(index).element_handle())
    page.screenshot(path=str(ARTIFACTS / "admin-sweep-1280.png"), full_page=True)
