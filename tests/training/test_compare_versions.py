"""An owner compares any two registered versions on the same frozen evaluation coins: metrics, MAE by decade, the
coins whose answer moved, both runs' plots (not only a candidate against Production at training time)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from registry.models import ModelVersion
from registry.services import model_version_mirror
from tests.factories import CoinFactory
from training.models import DatasetVersion
from training.schemas import VersionPair
from training.services import comparison
from training.services.comparison import model_versions_compare

pytestmark = pytest.mark.django_db

COMPARE = "admin:registry_modelversion_compare"


@pytest.fixture
def evaluation(collector) -> DatasetVersion:
    """Eight verified coins with real photos, frozen as an evaluation set."""
    coins = [CoinFactory(owner=collector, verified_year=1850 + 20 * i) for i in range(8)]
    return DatasetVersion.objects.create(
        content_hash="9" * 64,
        kind=DatasetVersion.Kind.EVALUATION,
        manifest=[{"coin_id": coin.pk, "year": coin.verified_year} for coin in coins],
        coin_count=len(coins),
    )


@pytest.fixture
def two_models(registered_tiny_versions, reader_production_model):
    """Mirror rows of two versions that answer differently: the tiny regression model and the tiny date reader."""
    return model_version_mirror(version=registered_tiny_versions[0]), model_version_mirror(
        version=reader_production_model
    )


def test_two_versions_are_scored_on_the_same_coins_with_the_movers_between_them(two_models, evaluation, monkeypatch):
    base, other = two_models

    result = model_versions_compare(base=base.version, other=other.version, evaluation=evaluation)
    pair = VersionPair.from_dict(result)

    a, b = pair.comparison.production, pair.comparison.candidate
    print(f"\nv{base.version} MAE {a.mae:.1f} vs v{other.version} MAE {b.mae:.1f}; {len(pair.movers)} movers")
    assert (pair.base, pair.other) == (base.version, other.version)
    assert a.count == b.count == 8 and pair.comparison.evaluation_count == 8
    assert sum(a.decade_counts.values()) == 8 and a.decade_counts == b.decade_counts
    assert pair.comparison.delta_mae == pytest.approx(b.mae - a.mae)
    assert pair.movers, "two different models moved no answer"
    moves = [abs(mover.move) for mover in pair.movers]
    assert moves == sorted(moves, reverse=True) and all(moves)
    for mover in pair.movers:
        assert mover.move == pytest.approx(mover.other - mover.base)
    years = {row["coin_id"]: row["year"] for row in evaluation.manifest}
    assert all(mover.year == years[mover.coin_id] for mover in pair.movers)

    # the same three ids again: from the cache, nothing scored
    monkeypatch.setattr(comparison, "model_version_evaluate", lambda **kwargs: pytest.fail("scored again"))
    assert model_versions_compare(base=base.version, other=other.version, evaluation=evaluation) == result


def test_the_same_model_under_two_versions_moves_no_coin(registered_tiny_versions, production_model, evaluation):
    first, second = registered_tiny_versions  # both registered from the same fit

    pair = VersionPair.from_dict(model_versions_compare(base=first, other=second, evaluation=evaluation))

    assert pair.movers == () and pair.comparison.delta_mae == 0


def test_owner_sees_metrics_decades_movers_and_both_runs_plots(client, model_owner, two_models, evaluation):
    base, other = two_models
    client.force_login(model_owner)

    page = client.get(reverse(COMPARE), {"a": base.pk, "b": other.pk, "evaluation": evaluation.pk}).content.decode()

    a, b = f"v{base.version}", f"v{other.version}"
    assert f"{b} against {a}" in page
    assert f'<th class="num">{b}</th><th class="num">{a}</th>' in page  # the metrics table, B beside A
    assert "MAE by decade of the true year" in page
    assert 'id="mt-compare-movers"' in page
    for version in (base, other):
        assert reverse("admin:registry_modelversion_artifact", args=[version.pk, "plots/error_by_decade.png"]) in page


def test_the_page_offers_production_against_the_newest_version_before_a_choice(client, model_owner, two_models):
    base, other = two_models
    ModelVersion.objects.exclude(pk=base.pk).update(is_production=False)
    ModelVersion.objects.filter(pk=base.pk).update(is_production=True)
    client.force_login(model_owner)

    form = client.get(reverse(COMPARE)).context["form"]

    assert form.initial["a"].pk == base.pk and form.initial["b"].pk == other.pk


def test_a_version_compared_with_itself_is_refused(client, model_owner, two_models, evaluation):
    base, _ = two_models
    client.force_login(model_owner)

    response = client.get(reverse(COMPARE), {"a": base.pk, "b": base.pk, "evaluation": evaluation.pk})

    assert "Choose another version than A" in response.content.decode()
    assert response.context["pair"] is None


def test_only_model_owners_compare_versions(client, curator):
    client.force_login(curator)
    assert client.get(reverse(COMPARE)).status_code == 403
