"""The monitoring page at 1280 px in Debian's headless Chromium: every cell of both tables sits under its own column
header (issue 21: "258 of 258" showed under the wrong column), nothing scrolls sideways, and the page says how old
its figures are.

Screenshot: test-artifacts/admin-monitoring-1280.png (repo root, git-ignored).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from registry.models import Promotion
from tests.conftest import ARTIFACTS
from tests.factories import ModelVersionFactory, UserFactory
from tests.training.test_monitoring import MONITORING, coin_with, predict, verify
from training.models import DatasetVersion, TrainingRun
from training.services.monitoring_snapshot import monitoring_snapshot_refresh

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORT = 1280

# For every table: each header cell's and each body cell's horizontal extent, so the test can say which cell sits
# under which header; the page's and the tables' widths against their boxes.
MEASURE = """() => {
  const tables = [...document.querySelectorAll('table.mt-table--wide')].map(table => {
    const heads = [...table.querySelectorAll('thead th')].map(th => {
      const r = th.getBoundingClientRect(); return {text: th.innerText.trim(), left: r.left, right: r.right};
    });
    const rows = [...table.querySelectorAll('tbody tr')].map(tr => [...tr.children].map(cell => {
      const r = cell.getBoundingClientRect(); return {text: cell.innerText.trim(), left: r.left, right: r.right};
    }));
    return {id: table.id, heads, rows, width: table.scrollWidth, box: table.parentElement.clientWidth};
  });
  return {page: document.documentElement.scrollWidth, tables};
}"""


def test_monitoring_tables_line_up_under_their_headers_at_1280_px(transactional_db, live_server, browser, settings):
    # given three versions with every column filled: live accuracy, drift, a training set of a few hundred coins
    settings.MLFLOW_MODEL_NAME = "coin-year"
    owner = UserFactory(username="model-owner-with-a-long-name", roles=["model_owner"], is_staff=True)
    collector = UserFactory(username="collector-m")
    training = [coin_with(150, seed=700 + i, owner=collector, thumbnail=True) for i in range(12)]
    dataset = DatasetVersion.objects.create(
        content_hash="e" * 64, manifest=[{"coin_id": coin.pk, "year": 1900} for coin in training], coin_count=12
    )
    now = timezone.now()
    versions = []
    for number in (1, 2, 3):
        run = TrainingRun.objects.create(
            status=TrainingRun.Status.SUCCEEDED, dataset_version=dataset, metrics={"mae": 3.0 - number / 2}
        )
        versions.append(
            ModelVersionFactory(version=number, training_run=run, is_production=number == 3, metrics={"mae": 2.0})
        )
        Promotion.objects.create(to_version=versions[-1], action="initial" if number == 1 else "promote")
    seed = 800
    for weeks_ago, version in ((5, versions[0]), (3, versions[1]), (1, versions[2]), (0, versions[2])):
        for i in range(4):
            seed += 1
            coin = coin_with(60 if weeks_ago == 0 else 150, seed=seed, owner=collector, thumbnail=True)
            at = now - timedelta(weeks=weeks_ago, hours=i)
            predict(coin, version, year=1900 + i, at=at, rejected="not_a_coin" if i == 3 else "")
            verify(coin, 1900 + i // 2, at + timedelta(hours=1))
    monitoring_snapshot_refresh(weeks=12)

    page = browser.new_page(viewport={"width": VIEWPORT, "height": 900})
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", owner.username)
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")

    # when the owner opens the monitoring page at 1280 px
    page.goto(live_server.url + reverse(MONITORING))
    sizes = page.evaluate(MEASURE)
    page.screenshot(path=str(ARTIFACTS / "admin-monitoring-1280.png"), full_page=True)

    # then it says how old its figures are, and both tables are there
    assert "Figures computed less than a minute ago" in page.inner_text("#mt-monitoring-age")
    assert [table["id"] for table in sizes["tables"]] == ["mt-monitoring-versions", "mt-monitoring-weeks"]
    assert sizes["page"] <= VIEWPORT, sizes["page"]
    for table in sizes["tables"]:
        print(f"\n{table['id']}: {table['width']} px in a {table['box']} px box, {len(table['heads'])} columns")
        assert table["width"] <= table["box"], table
        assert table["rows"], table["id"]
        for row in table["rows"]:
            # and every row has one cell per header, each cell's centre under its own header
            assert len(row) == len(table["heads"]), (table["id"], [cell["text"] for cell in row])
            for head, cell in zip(table["heads"], row, strict=True):
                centre = (cell["left"] + cell["right"]) / 2
                assert head["left"] - 1 <= centre <= head["right"] + 1, (table["id"], head, cell)
    versions_table = sizes["tables"][0]
    photos = [head["text"].lower() for head in versions_table["heads"]].index("training photos")
    assert all(row[photos]["text"] == "12 of 12" for row in versions_table["rows"]), versions_table["rows"]
