"""The served date reader: the fold models averaged into one (training.ml.soup), kept only when it reads the holdout
about as well as their ensemble."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from training.ml import soup
from training.ml.config import load_config
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.folds import FoldContext, FoldOutput, fit_fold, fold_plan
from training.ml.kfold import fit, fit_combine
from training.ml.synthetic import iter_coins
from training.ml.tracking.loading import predictor_from_files
from training.ml.tracking.packaging import write_model_artifacts
from training.ml.train import select_device

# 48 coins, 45 % held out: 22 holdout coins (at least 20 are needed to judge a soup), 26 for 3 folds
OVERRIDES = ["image_size=64", "batch_size=4", "serve_int8=false", "epochs=1", "folds=3", "patience=0"]
HOLDOUT_SHARE = "calibration_share=0.45"


@pytest.fixture(scope="module")
def coins() -> list[CoinSample]:
    return [
        CoinSample(front=front, back=back, year=year, key=str(i))
        for i, (front, back, year) in enumerate(iter_coins(48, seed=21, size=96))
    ]


@pytest.fixture(scope="module")
def fitted(coins):
    config = load_config(overrides=[*OVERRIDES, HOLDOUT_SHARE])
    return fit(config, coins, progress=False, device="cpu")


def test_uniform_soup_averages_floating_tensors_and_keeps_counters():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}

    averaged = soup.uniform_soup([a, b])

    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0]))
    assert averaged["n"].item() == 5 and averaged["n"].dtype == torch.int64


def test_uniform_soup_refuses_models_with_other_parameters():
    with pytest.raises(ValueError, match="cannot be averaged"):
        soup.uniform_soup([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="at least one"):
        soup.uniform_soup([])


@pytest.mark.parametrize(
    ("soup_exact", "soup_mae", "served"),
    [(0.95, 0.40, True), (0.97, 0.20, True), (0.93, 0.40, True), (0.92, 0.40, False), (0.95, 0.95, False)],
)
def test_the_soup_is_served_unless_it_reads_the_holdout_clearly_worse(soup_exact, soup_mae, served):
    decision = soup.decide(
        {"ensemble_exact": soup_exact, "ensemble_mae": soup_mae}, {"ensemble_exact": 0.95, "ensemble_mae": 0.40}
    )

    assert decision.served is served
    assert decision.reason.startswith("serving the averaged model" if served else "serving the ensemble")
    assert decision.metrics()["soup_served"] == float(served)


def test_a_run_with_a_holdout_judges_the_averaged_model_on_it(fitted):
    assert fitted.soup is not None
    metrics = fitted.metrics
    assert {"soup_served", "soup_holdout_exact", "folds_ensemble_holdout_exact"} <= metrics.keys()
    assert fitted.soup.reason in fitted.summary()
    ensemble = fitted.ensemble()
    if fitted.soup.served:
        assert fitted.combination == "soup" and len(ensemble.models) == 1
        # the calibration was fitted on the soup's reads: its holdout figures are the ones reported for the version
        assert metrics["ensemble_exact"] == pytest.approx(metrics["soup_holdout_exact"])
    else:
        assert fitted.combination == "ensemble" and len(ensemble.models) == 3
    assert len(fitted.fold_states) == 3  # the fold models stay: fine-tuning continues them


def _coin_context(config, coins):
    dataset = CoinPairDataset(coins, config, train=True).preload()
    return FoldContext.build(config, dataset, fold_plan(config, len(coins)))


@pytest.fixture(scope="module")
def apart(fitted, coins) -> tuple[FoldContext, list[FoldOutput]]:
    """The same run's folds trained apart (as fold-parallel workers do), on a fresh context, once for the module."""
    context = _coin_context(fitted.config, coins)
    return context, [fit_fold(context, fold, device=select_device("cpu")) for fold in range(fitted.config.folds)]


def _stub(fold, state):
    return FoldOutput(
        fold=fold,
        state=state,
        val_pos=np.zeros(0, dtype=np.int64),
        predicted_years=np.zeros(0),
        metrics={},
        baseline_metrics={},
        fresh_years=np.zeros(0),
    )


def test_a_soup_that_reads_worse_leaves_the_ensemble_served(fitted, apart):
    # given the run's own fold answers, and an averaged model that puts all its mass on the wrong year
    config = fitted.config
    context, outputs = apart
    good = soup.make_soup(context, [_stub(i, s) for i, s in enumerate(fitted.fold_states)], device=select_device("cpu"))
    assert good is not None
    wrong = np.full_like(good.fresh_log_p, -50.0)
    wrong[:, 0] = 0.0  # every coin read as year_min
    bad = dataclasses.replace(good, fresh_log_p=wrong)

    # when the run is combined with it
    result = fit_combine(config, context.plan, context.years, outputs, soup=bad)

    # then the ensemble is served, and the run says why
    assert result.soup is not None and not result.soup.served
    assert result.served_states is None and len(result.ensemble().models) == 3
    assert "serving the ensemble" in result.summary()
    assert result.metrics["soup_holdout_exact"] < result.metrics["folds_ensemble_holdout_exact"]


def test_folds_trained_apart_average_into_the_soup_fit_serves(fitted, apart):
    # given the same run's folds trained apart (as fold-parallel workers do) and averaged by the finaliser
    config = fitted.config
    context, outputs = apart
    combined = fit_combine(
        config,
        context.plan,
        context.years,
        outputs,
        soup=soup.make_soup(context, outputs, device=select_device("cpu")),
    )

    # then it decides and serves as fit() did, with the same weights and calibration
    assert combined.soup == fitted.soup
    assert combined.calibration == fitted.calibration
    if fitted.served_states is not None:
        assert combined.served_states is not None
        mine, theirs = fitted.served_states[0], combined.served_states[0]
        assert all(torch.allclose(mine[k].float(), theirs[k].float(), atol=1e-6) for k in mine)


def test_the_ensemble_combination_never_averages(coins):
    config = load_config(overrides=[*OVERRIDES, HOLDOUT_SHARE, "combine=ensemble"])
    context = _coin_context(config, coins)
    assert not soup.soup_wanted(config, context.plan)


def test_a_served_soup_is_what_the_registered_files_answer_with(fitted, tmp_path):
    # given a run that serves the averaged model (this tiny run's own soup, or one made from its folds)
    served = fitted.served_states or [soup.uniform_soup(fitted.fold_states)]
    result = dataclasses.replace(fitted, served_states=served)

    # when its files are written and loaded back on each backend
    paths = write_model_artifacts(result, tmp_path)
    assert paths["served_states"].is_file()
    files = {key: str(path) for key, path in paths.items()}

    torch_predictor, *_ = predictor_from_files(files, backend="torch")
    onnx_predictor, *_ = predictor_from_files(files, backend="onnx")

    front = torch.randn(3, 3, 64, 64)
    back = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = result.ensemble()(front, back).numpy()

    # then both answer with the one averaged model
    assert len(torch_predictor.ensemble.models) == 1
    assert np.allclose(torch_predictor.predict(front, back), expected, atol=1e-4)
    assert np.allclose(onnx_predictor.predict(front, back)[:, :3], expected[:, :3], atol=1e-2)
