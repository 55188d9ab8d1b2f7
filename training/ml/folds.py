"""One fold of a K-fold run, on its own: what fit() does per fold, separable so that the folds of one run can train
on different workers (and hosts) and be combined afterwards.

fit() is fold_plan() + fit_fold() for every fold + kfold.fit_combine(); a fold-parallel training run calls the same
three on different machines, with FoldOutput.to_bytes()/from_bytes() carrying a fold's answers in between. The plan is
a pure function of the config's seed and the number of coins, so every worker derives the same split.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from training.ml.coin_head import CoinNegatives, curator_split, fit_coin_head
from training.ml.config import TrainConfig
from training.ml.data import CoinPairDataset, kfold_indices, make_loader
from training.ml.metrics import regression_metrics
from training.ml.model import CoinDateModel, denormalise_year
from training.ml.reader_calibration import NegativePair, negative_loader, reader_outputs
from training.ml.train import OnEpoch, OnModel, ShouldStop, StateDict, predict, train_fold

MIN_CALIBRATION_COINS = 20


@dataclass(frozen=True)
class FoldPlan:
    """Which coins each fold trains and validates on, and the calibration holdout that no fold model sees."""

    n: int
    calibration_index: np.ndarray  # dataset positions held out from every fold (empty when too few coins)
    cv_index: np.ndarray  # dataset positions split into the K folds
    folds: list[tuple[np.ndarray, np.ndarray]]  # per fold: (train positions, validation positions) within cv_index

    @property
    def holdout(self) -> int:
        return len(self.calibration_index)

    @property
    def fresh_index(self) -> np.ndarray:
        """The coins every fold model answers for the interval's calibration: the holdout, else every CV coin."""
        return self.calibration_index if self.holdout else self.cv_index


def fold_plan(config: TrainConfig, n: int) -> FoldPlan:
    """The split of `n` coins for `config` (seeded: the same on every worker).

    A seeded share (config.calibration_share, when that is at least 20 coins) is held out from every fold: the only
    coins on which the fold models' disagreement can be measured honestly, for the interval.
    """
    if n < 2 * config.folds:
        raise ValueError(f"need at least {2 * config.folds} coins for {config.folds}-fold training, got {n}")
    holdout = int(round(n * config.calibration_share))
    if holdout < MIN_CALIBRATION_COINS or n - holdout < 2 * config.folds:
        holdout = 0
    order = np.random.default_rng(config.seed + 1).permutation(n)
    calibration_index = np.sort(order[:holdout])
    cv_index = np.sort(order[holdout:])
    return FoldPlan(n, calibration_index, cv_index, kfold_indices(len(cv_index), config.folds, config.seed))


@dataclass
class FoldOutput:
    """Everything one fold contributes to the run: its best weights and its answers on the coins it did not train on.

    `val_pos` are positions within the plan's cv_index; `log_p` (date reader) the fold model's log p(year) of those
    coins; `fresh_years` its answers on the plan's fresh_index; `fresh_log_p`/`fresh_coin` and `negative_coin` the
    date reader's distribution and coin scores there and on the generated non-coin photos (empty for the regression
    head).
    """

    fold: int
    state: StateDict
    val_pos: np.ndarray
    predicted_years: np.ndarray
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    fresh_years: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    log_p: np.ndarray | None = None
    fresh_log_p: np.ndarray | None = None
    fresh_coin: np.ndarray | None = None
    negative_coin: np.ndarray | None = None
    val_coin: np.ndarray | None = None  # date reader: the coin score of each validation coin (out-of-fold)

    _ARRAYS = (
        "val_pos",
        "predicted_years",
        "fresh_years",
        "log_p",
        "fresh_log_p",
        "fresh_coin",
        "negative_coin",
        "val_coin",
    )

    def to_bytes(self) -> bytes:
        """A torch.save of tensors and plain values only, so that from_bytes can load it with weights_only=True
        (no pickle of arbitrary objects from a shared store)."""
        payload: dict[str, Any] = {
            "fold": self.fold,
            "state": self.state,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "baseline_metrics": {k: float(v) for k, v in self.baseline_metrics.items()},
            "history": [{k: float(v) for k, v in row.items()} for row in self.history],
        }
        for name in self._ARRAYS:
            value = getattr(self, name)
            payload[name] = None if value is None else torch.from_numpy(np.ascontiguousarray(value))
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FoldOutput:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        arrays = {name: None if payload.get(name) is None else payload[name].numpy() for name in cls._ARRAYS}
        return cls(
            fold=int(payload["fold"]),
            state=payload["state"],
            metrics=payload["metrics"],
            baseline_metrics=payload["baseline_metrics"],
            history=payload["history"],
            **arrays,
        )


@dataclass
class FoldContext:
    """What every fold of one run shares on one worker: the dataset views and the loaders of the coins every fold
    model answers (built once per worker; fit() builds it once for all K folds)."""

    config: TrainConfig
    plan: FoldPlan
    train_view: CoinPairDataset
    eval_view: CoinPairDataset
    years: np.ndarray
    fresh_loader: DataLoader
    negatives: DataLoader | None
    curator_negatives: int = 0  # curators' non-coins given to the run; the held-out ones end `negatives`
    coin_negatives: CoinNegatives | None = None  # what the coin head trains against (curators' non-coins only)

    @classmethod
    def build(
        cls, config: TrainConfig, dataset: CoinPairDataset, plan: FoldPlan, negatives: Sequence[NegativePair] = ()
    ) -> FoldContext:
        """``negatives``: (front, back) photos curators marked not a coin (reader head only: the regression head has
        no coin score). A seeded share (coin_head.curator_split) ends the calibration's non-coin loader, after the
        generated photos; the rest trains every fold's coin head, beside generated non-coins of other seeds."""
        train_view = dataset if dataset.train else dataset.view(train=True)
        eval_view = dataset.view(train=False)
        fresh = make_loader(
            Subset(eval_view, plan.fresh_index.tolist()), batch_size=2 * config.batch_size, shuffle=False
        )
        years = np.array([s.year for s in dataset.samples], dtype=np.float64)
        reader = config.head == "reader"
        if not reader:
            return cls(config, plan, train_view, eval_view, years, fresh, None)
        held_out, trained = curator_split(config, len(negatives))
        loader = negative_loader(config, extra=[negatives[i] for i in held_out])
        coin_negatives = CoinNegatives.build(config, [negatives[i] for i in trained]) if len(trained) else None
        return cls(config, plan, train_view, eval_view, years, fresh, loader, len(negatives), coin_negatives)


def fit_fold(
    context: FoldContext,
    fold: int,
    *,
    device: torch.device,
    init_state: StateDict | None = None,
    progress: bool = False,
    on_epoch: OnEpoch | None = None,
    on_model: OnModel | None = None,
    should_stop: ShouldStop | None = None,
) -> FoldOutput:
    """Train fold `fold` (0-based) of the plan and answer its validation coins, the fresh coins and, for the date
    reader, the non-coin photos. Raises TrainingCancelled when should_stop() says so (checked every epoch)."""
    config, plan = context.config, context.plan
    train_pos, val_pos = plan.folds[fold]
    train_idx, val_idx = plan.cv_index[train_pos], plan.cv_index[val_pos]
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    model, report = train_fold(
        config,
        Subset(context.train_view, train_idx.tolist()),
        Subset(context.eval_view, val_idx.tolist()),
        fold=fold,
        device=device,
        init_state=init_state,
        progress=progress,
        on_epoch=on_epoch,
        on_model=on_model,
        should_stop=should_stop,
        history=history,
    )
    coin_head = _fit_coin_head(context, model, train_idx, fold=fold, device=device)
    val_loader = make_loader(
        Subset(context.eval_view, val_idx.tolist()), batch_size=2 * config.batch_size, shuffle=False
    )
    log_p = fresh_log_p = fresh_coin = negative_coin = val_coin = None
    if isinstance(model, CoinDateModel):
        # One pass gives the distribution and the answer (its most likely year, as forward() answers it).
        log_p, val_coin = reader_outputs(model, val_loader, device=device)
        predicted_years = (config.year_min + log_p.argmax(1)).astype(np.float64)
    else:
        prediction, _ = predict(model, val_loader, device=device)
        predicted_years = denormalise_year(prediction, config)
    years = context.years
    metrics = regression_metrics(years[val_idx], predicted_years)
    metrics.update(report, **coin_head, seconds=time.perf_counter() - started)
    baseline_year = float(np.median(years[train_idx]))
    baseline = regression_metrics(years[val_idx], np.full(len(val_idx), baseline_year))
    fresh, _ = predict(model, context.fresh_loader, device=device)
    if isinstance(model, CoinDateModel):
        fresh_log_p, fresh_coin = reader_outputs(model, context.fresh_loader, device=device)
        negative_coin = reader_outputs(model, context.negatives, device=device)[1]
    return FoldOutput(
        fold=fold,
        state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        val_pos=np.asarray(val_pos),
        predicted_years=predicted_years,
        metrics=metrics,
        baseline_metrics=baseline,
        fresh_years=denormalise_year(fresh, config),
        history=history,
        log_p=log_p,
        fresh_log_p=fresh_log_p,
        fresh_coin=fresh_coin,
        negative_coin=negative_coin,
        val_coin=val_coin,
    )


def _fit_coin_head(
    context: FoldContext, model: torch.nn.Module, train_idx: np.ndarray, *, fold: int, device: torch.device
) -> dict[str, float]:
    """Refit the date reader's coin head against the curators' non-coins (coin_head.py), positives the photos of
    the fold's training coins; nothing (the head stays as the base trained it) without curator non-coins."""
    if context.coin_negatives is None or not isinstance(model, CoinDateModel):
        return {}
    cache = context.eval_view.cache
    cache.ensure(train_idx.tolist())
    index = torch.as_tensor(train_idx, dtype=torch.int64)
    positives = torch.cat([cache.fronts.index_select(0, index), cache.backs.index_select(0, index)])
    return fit_coin_head(
        model, positives, context.coin_negatives, context.config, device=device, seed=context.config.seed + 97 * fold
    )
