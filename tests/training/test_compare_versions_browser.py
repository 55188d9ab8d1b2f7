"""The compare page in Debian's headless Chromium at 1280 px: the owner picks two versions in the form, and sees the
metrics side by side, the decade columns, the movers and each run's plots loaded from MLflow, left A and right B.

Screenshot: test-artifacts/admin-compare-versions-1280.png (repo root, git-ignored).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from registry.services import model_version_mirror
from tests.conftest import ARTIFACTS
from tests.factories import CoinFactory, UserFactory
from training.models import DatasetVersion

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_owner_picks_two_versions_and_sees_them_side_by_side(
    transactional_db, live_server, browser, registered_tiny_versions, reader_production_model
):
    # given two versions that answer differently and a frozen evaluation set
    base = model_version_mirror(version=registered_tiny_versions[0])
    other = model_version_mirror(version=reader_production_model)
    owner = UserFactory(username="owner-compare", roles=["model_owner"], is_staff=True)
    collector = UserFactory(username="collector-compare")
    coins = [CoinFactory(owner=collector, verified_year=1850 + 20 * i) for i in range(8)]
    evaluation = DatasetVersion.objects.create(
        content_hash="8" * 64,
        kind=DatasetVersion.Kind.EVALUATION,
        manifest=[{"coin_id": coin.pk, "year": coin.verified_year} for coin in coins],
        coin_count=len(coins),
    )

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    # when the owner opens the compare page from a version's page and picks A and B
    page.goto(live_server.url + reverse("admin:registry_modelversion_change", args=[other.pk]))
    page.click("text=Compare with…")
    page.select_option("#id_a", str(base.pk))
    page.select_option("#id_b", str(other.pk))
    page.select_option("#id_evaluation", str(evaluation.pk))
    page.click("#mt-compare-form button[type=submit]")
    page.wait_for_selector("#comparison")

    # then the metrics, decades and movers are there, B against A, and every plot loads
    a, b = f"v{base.version}", f"v{other.version}"
    assert f"{b} against {a}" in page.inner_text("#comparison h2")
    assert page.locator("#comparison .mt-columns__group").count() >= 4
    assert page.locator("#mt-compare-movers tbody tr").count() >= 1
    plots = page.locator("img[data-mt-plot]")
    assert plots.count() == 6
    for index in range(plots.count()):
        plots.nth(index).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plots.nth(index).element_handle())
    page.screenshot(path=str(ARTIFACTS / "admin-compare-versions-1280.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
