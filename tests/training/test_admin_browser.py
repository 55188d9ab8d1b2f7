"""The model owner's admin in a real browser: the MLflow plots load inline, Promote and Roll back ask for
confirmation and move the production alias. Playwright drives Debian's headless Chromium against a live server.

Screenshots land in test-artifacts/ (repo root, git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def alias_version() -> int | None:
    from training.ml import tracking

    return tracking.get_alias_version(settings.MLFLOW_MODEL_NAME, "production")


def test_model_owner_promotes_and_rolls_back_with_the_plots_in_view(
    transactional_db, live_server, browser, two_versions
):
    current, candidate = two_versions
    UserFactory(username="owner-b", roles=["model_owner"], is_staff=True)

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", "owner-b")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    # given the candidate's page, its plots come from MLflow and load as images
    page.goto(live_server.url + reverse("admin:registry_modelversion_change", args=[candidate.pk]))
    plots = page.locator("img[data-mt-plot]")
    assert plots.count() == 3
    for index in range(3):
        plots.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plots.nth(index).element_handle())
    page.screenshot(path=str(ARTIFACTS / "admin-model-version.png"), full_page=True)

    # when the owner promotes it (and confirms), then Production is the candidate
    page.click("text=Promote to Production")
    page.wait_for_selector("ul.messagelist li.success")
    assert f"Production is now {candidate}" in page.inner_text("ul.messagelist")
    assert questions and f"Promote v{candidate.version}" in questions[-1]
    assert alias_version() == candidate.version

    # when the owner rolls back from the list, then the first version serves again
    page.goto(live_server.url + reverse("admin:registry_modelversion_changelist"))
    page.click(f"text=Roll back to v{current.version}")
    page.wait_for_selector("ul.messagelist li.success")
    assert alias_version() == current.version
    page.goto(live_server.url + reverse("admin:registry_promotion_changelist"))
    assert page.locator("#result_list tbody tr").count() == 3
    page.screenshot(path=str(ARTIFACTS / "admin-promotion-history.png"), full_page=True)
