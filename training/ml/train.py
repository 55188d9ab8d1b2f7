"""K-fold training of CoinYearNet: train_one_epoch(), evaluate(), fit().

fit() trains one model per fold (L1 loss with per-sample weights, AdamW, one-cycle or cosine LR, early stopping on
the fold's validation MAE, best checkpoint kept) and ALWAYS scores the constant baseline (the training folds'
median year) on the same folds: a published model for this task reported an MAE worse than that baseline without
noticing. FitResult.summary() says so loudly when it happens, and shows the spread of the predictions beside the
spread of the true years, so a model that collapsed to the mean cannot hide.

The K fold models form the registered ensemble (ensemble.py). Its interval is calibrated here: see calibrate_interval.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from training.ml.config import TrainConfig
from training.ml.data import CoinPairDataset, CoinSample, kfold_indices, make_loader
from training.ml.model import CoinDateModel, CoinYearNet, build_model, denormalise_year
from training.ml.pretrain import autocast_dtype
from training.ml.reader_calibration import calibrate_reader, negative_loader, reader_outputs

OnEpoch = Callable[[int, int, dict[str, float]], None]
OnModel = Callable[[int, int, nn.Module], None]
ShouldStop = Callable[[], bool]
StateDict = dict[str, torch.Tensor]
METRIC_KEYS = ("mae", "mse", "rmse", "r2", "within_5", "within_10", "pred_std", "true_std")
MIN_CALIBRATION_COINS = 20
BN_RECALIBRATION_PAIRS = 256


class TrainingCancelled(Exception):
    """should_stop() asked to stop; nothing of the run may be used."""


# --- devices -------------------------------------------------------------------------------------------------------


def select_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when available (unless told otherwise), else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device):
    """Mixed precision on CUDA only: on CPU bfloat16 autocast is slower for these small convs."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda")


def reader_autocast(device: torch.device):
    """bfloat16 for the date reader where the hardware runs it fast: its plain 3x3 convolutions use this CPU's AMX
    units (3.5 against 6.3 ms per 160 px photo per training step, measured), unlike the depthwise backbones."""
    dtype = autocast_dtype(device)
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _to_device(batch: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    out = [t.to(device, non_blocking=True) for t in batch]
    if device.type == "cpu":
        # channels-last convolutions are about 1.3x faster on CPU for these backbones
        out[0] = out[0].contiguous(memory_format=torch.channels_last)
        out[1] = out[1].contiguous(memory_format=torch.channels_last)
    return out


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move to the device (channels-last on CPU, see _to_device)."""
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


# --- one epoch, evaluation, metrics --------------------------------------------------------------------------------


def weighted_l1(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute error with per-sample weights (hard examples count more): sum(w * |e|) / sum(w)."""
    errors = (prediction.float() - target).abs()
    return (errors * weight).sum() / weight.sum().clamp_min(1e-12)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``loader`` ((front, back, target, weight) batches); returns the mean loss and the pairs seen."""
    model.train()
    total_loss, total_weight, pairs = 0.0, 0.0, 0
    started = time.perf_counter()
    batches = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc=desc, unit="batch", leave=False)
    for batch in batches:
        front, back, target, weight = _to_device(batch, device)
        if isinstance(model, CoinDateModel):
            with reader_autocast(device):
                loss = model.training_loss(front, back, target, weight)
        else:
            with _autocast(device):
                prediction = model(front, back)
            loss = weighted_l1(prediction, target, weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        batch_weight = float(weight.sum())
        total_loss += float(loss.detach()) * batch_weight
        total_weight += batch_weight
        pairs += int(target.shape[0])
    seconds = time.perf_counter() - started
    return {"loss": total_loss / max(total_weight, 1e-12), "pairs": float(pairs), "seconds": seconds}


def predict(model: nn.Module, loader: DataLoader, *, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(normalised predictions, normalised targets) over ``loader``, in eval mode without autograd."""
    model.eval()
    predictions, targets = [], []
    with torch.inference_mode():
        for batch in loader:
            front, back, target, _ = _to_device(batch, device)
            with _autocast(device):
                prediction = model(front, back)
            predictions.append(prediction.float().cpu())
            targets.append(target.float().cpu())
    if not predictions:
        return np.zeros(0), np.zeros(0)
    return torch.cat(predictions).double().numpy(), torch.cat(targets).double().numpy()


def _batchnorm_loader(train_set: Dataset, config: TrainConfig, fold: int, *, limit: int | None) -> DataLoader | None:
    """Un-augmented training coins (a seeded subset of at most ``limit``) for recalibrate_batchnorm."""
    if not (isinstance(train_set, Subset) and isinstance(train_set.dataset, CoinPairDataset)):
        return None
    indices = list(train_set.indices)
    if limit is not None and len(indices) > limit:
        chosen = np.random.default_rng(config.seed + 31 * fold).choice(len(indices), limit, replace=False)
        indices = [indices[i] for i in np.sort(chosen)]
    plain = Subset(train_set.dataset.view(train=False), indices)
    return make_loader(plain, batch_size=2 * config.batch_size, shuffle=False)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model: nn.Module, loader: DataLoader, *, device: torch.device) -> None:
    """Recompute every BatchNorm's running statistics as an exact average over ``loader`` (no augmentation).

    Why: running statistics are an exponential average over past batches, taken while the weights moved fast and
    on augmented photos. A fresh MobileNetV3 has layers whose true variance is near 1e-3 against the initial 1, so
    even at momentum 0.1 eval mode answers a constant for the first ~100 batches, and then lags the weights.
    Measured here: validation MAE jumped between 90 and 440 years from epoch to epoch without this. One pass
    without gradients over (a few hundred) un-augmented training coins gives the statistics of the current weights,
    as torch.optim.swa_utils.update_bn does; it costs about a tenth of an epoch.
    """
    norms = _batchnorms(model)
    if not norms:
        return
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
    model.train()
    with torch.no_grad():
        for batch in loader:
            front, back, _, _ = _to_device(batch, device)
            with _autocast(device):
                model(front, back)
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.eval()


def evaluate(model: nn.Module, loader: DataLoader, config: TrainConfig, device: torch.device) -> dict[str, float]:
    """Metrics in years (MAE, MSE, RMSE, R², within ±5/±10, prediction and truth spread) plus the normalised loss."""
    prediction, target = predict(model, loader, device=device)
    metrics = regression_metrics(denormalise_year(target, config), denormalise_year(prediction, config))
    metrics["loss"] = float(np.mean(np.abs(prediction - target))) if len(target) else float("nan")
    return metrics


def regression_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict[str, float]:
    """MAE, MSE, RMSE, R², share within ±5 and ±10 years, std of predictions and of the truth, n."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    n = len(y_true)
    if n == 0:
        return {k: float("nan") for k in METRIC_KEYS} | {"n": 0.0}
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    variance = float(np.var(y_true))
    return {
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": 1.0 - mse / variance if variance > 0 else float("nan"),
        "within_5": float(np.mean(np.abs(error) <= 5)),
        "within_10": float(np.mean(np.abs(error) <= 10)),
        "pred_std": float(np.std(y_pred)),
        "true_std": float(np.std(y_true)),
        "n": float(n),
    }


def summarise_folds(fold_metrics: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean over folds under the metric's name, and the std over folds under name + "_std"."""
    result: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = np.array([m[key] for m in fold_metrics if key in m], dtype=np.float64)
        if len(values):
            result[key] = float(np.mean(values))
            result[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return result


# --- interval calibration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntervalCalibration:
    """halfwidth(x) = sqrt(base² + spread_coef * s(x)²), s(x) the std (ddof=1) of the K fold predictions at x.

    Why: on a fresh coin a single fold model errs by r_k = b + v_k and the ensemble by e = b + mean(v_k), v_k being
    the part in which the fold models disagree; so the ensemble is more accurate than any out-of-fold model, and
    the out-of-fold quantile as it is over-covers (measured: 85-87% for a stated 80%). What averaging shrinks must
    be measured on coins that NO fold model trained on (on training coins the models agree too well): the
    calibration holdout. There Var(e)/Var(r) is taken as a ratio on the same coins, which is steady even on a few
    dozen coins, and applied to the n out-of-fold residuals: Var(e) = Var(r_oof) * E[e²]/E[r²] (holdout).
    Without labelled holdout coins, Var(e) = Var(r_oof) - (1 - 1/K) E[s²] (spread of the fold models).
    The ensemble's errors are close to normal (averaging tames single-model blunders), so the halfwidth is
    shape * sqrt(Var(e)) with shape = the normal quantile of the level, or the out-of-fold one if larger.

    Per-coin scaling by the spread is optional (config.interval_spread_weight, 0 by default): fold disagreement is
    dominated by occasional single-model blunders, and scaling every interval by it dropped the coverage of fresh
    coins to 72% in one run; a constant halfwidth held 79-81% in every run measured.
    """

    level: float
    base: float
    spread_coef: float
    shape: float
    oof_rms: float
    mean_spread_var: float
    spread_source: str  # "holdout" (coins no fold model saw) or "oof" (training coins: interval on the wide side)
    ensemble_var: float = 0.0  # estimated Var(e) of the ensemble on fresh coins, years²
    oof_shape: float = 0.0  # level-quantile of |out-of-fold residual| / their rms
    # date reader only (head "reader"): its interval comes from the year distribution, not from residuals
    temperature: float = 1.0  # divides the fold models' log-probabilities (fitted by NLL on unseen coins)
    coin_threshold: float = 0.5  # below: "not a coin"
    read_threshold: float = 0.0  # below (mass within a year of the answer): "unreadable"


def calibrate_interval(
    oof_residuals: np.ndarray,
    fresh_fold_predictions: np.ndarray,
    *,
    level: float,
    fresh_truth: np.ndarray | None = None,
    spread_source: str = "holdout",
    spread_weight: float = 0.0,
) -> IntervalCalibration:
    """Fit the ensemble's interval from out-of-fold residuals and the fold models' predictions on unseen coins.

    fresh_fold_predictions: (K, M) years from each fold model on the same M coins; fresh_truth: their true years
    (when known, Var(e)/Var(r) is measured on them; else it follows from the spread alone). spread_weight in [0, 1]
    moves that share of the ensemble's variance from the constant part to the per-coin spread term.
    """
    residuals = np.asarray(oof_residuals, dtype=np.float64)
    predictions = np.asarray(fresh_fold_predictions, dtype=np.float64)
    k = predictions.shape[0]
    n = len(residuals)
    if n == 0:
        raise ValueError("no out-of-fold residuals to calibrate on")
    if k < 2:
        raise ValueError("the interval needs at least two fold models")
    rms2 = float(np.mean(residuals**2))
    # finite-sample (conformal) quantile: the ceil((n+1) level)-th smallest |residual|
    rank = min(math.ceil((n + 1) * level), n)
    quantile = float(np.sort(np.abs(residuals))[rank - 1])
    oof_shape = quantile / math.sqrt(rms2) if rms2 > 0 else 0.0
    shape = max(NormalDist().inv_cdf((1 + level) / 2), oof_shape)
    spread_var = float(np.mean(np.var(predictions, axis=0, ddof=1))) if predictions.shape[1] else 0.0
    ensemble_var = rms2 - spread_var * (1 - 1 / k)
    if fresh_truth is not None and len(fresh_truth):
        truth = np.asarray(fresh_truth, dtype=np.float64)
        single = float(np.mean((truth[None, :] - predictions) ** 2))
        if single > 0:
            ensemble_var = rms2 * float(np.mean((truth - predictions.mean(0)) ** 2)) / single
    ensemble_var = max(ensemble_var, 0.0)
    base_var = max(ensemble_var - spread_weight * spread_var / k, 0.0)
    return IntervalCalibration(
        level=level,
        base=shape * math.sqrt(base_var),
        spread_coef=shape**2 * spread_weight / k,
        shape=shape,
        oof_rms=math.sqrt(rms2),
        mean_spread_var=spread_var,
        spread_source=spread_source,
        ensemble_var=ensemble_var,
        oof_shape=oof_shape,
    )


def interval_halfwidth(fold_predictions: np.ndarray, calibration: IntervalCalibration) -> np.ndarray:
    """Per-coin halfwidth in years from (K, N) fold predictions (the numpy twin of the ensemble's forward)."""
    spread_var = np.var(np.asarray(fold_predictions, dtype=np.float64), axis=0, ddof=1)
    return np.sqrt(calibration.base**2 + calibration.spread_coef * spread_var)


# --- fit -----------------------------------------------------------------------------------------------------------


@dataclass
class FitResult:
    """Everything a K-fold run produced: fold weights, per-fold and mean metrics, the baseline beside them,
    out-of-fold predictions, the calibrated interval and the learning curves."""

    config: TrainConfig
    fold_states: list[StateDict]
    fold_metrics: list[dict[str, float]]
    fold_baseline_metrics: list[dict[str, float]]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    oof_index: np.ndarray
    oof_pred: np.ndarray
    oof_true: np.ndarray
    oof_fold: np.ndarray
    calibration_index: np.ndarray
    calibration: IntervalCalibration
    interval_coverage: float
    interval_coverage_source: str
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    calibration_fold_pred: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (K, M) years on the holdout
    interval_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # date reader: truth, year, low, high

    @property
    def interval_halfwidth(self) -> float:
        """The typical interval halfwidth in years (at the mean fold spread; the date reader: half its median width)."""
        if "interval_median_width" in self.metrics:
            return float(self.metrics["interval_median_width"] / 2)
        c = self.calibration
        return float(math.sqrt(c.base**2 + c.spread_coef * c.mean_spread_var))

    @property
    def model_name(self) -> str:
        c = self.config
        if c.head == "reader":
            return f"date reader (width {c.reader_width}{', from the base' if c.init_from else ''})"
        return f"{c.backbone} {c.mode}"

    @property
    def beats_baseline(self) -> bool:
        """True when the mean validation MAE over folds is below the constant baseline's on the same folds."""
        return bool(self.metrics["mae"] < self.baseline_metrics["mae"])

    @property
    def collapsed(self) -> bool:
        """Predictions spread less than half as much as the truth: the model answers about the same for everything."""
        return bool(self.metrics["pred_std"] < 0.5 * self.metrics["true_std"])

    @property
    def spread(self) -> dict[str, float]:
        return {"pred_std": self.metrics["pred_std"], "true_std": self.metrics["true_std"]}

    def ensemble(self):
        """The registered model: the K fold models averaged, with the calibrated interval."""
        from training.ml.ensemble import CoinYearEnsemble

        return CoinYearEnsemble.from_states(self.fold_states, self.config, self.calibration)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (what registry.py writes as metrics.json)."""
        return {
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "fold_metrics": self.fold_metrics,
            "fold_baseline_metrics": self.fold_baseline_metrics,
            "beats_baseline": self.beats_baseline,
            "collapsed": self.collapsed,
            "interval": {
                "level": self.calibration.level,
                "halfwidth": self.interval_halfwidth,
                "base": self.calibration.base,
                "spread_coef": self.calibration.spread_coef,
                "coverage": self.interval_coverage,
                "coverage_source": self.interval_coverage_source,
                "spread_source": self.calibration.spread_source,
            },
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """A table of model vs constant baseline per fold, the spread check and the interval; loud when it fails."""
        m, b = self.metrics, self.baseline_metrics
        lines = [
            f"K-fold results ({self.config.folds} folds, {len(self.oof_true)} coins, {self.model_name}, "
            f"{self.config.image_size}px, {self.seconds:.0f}s)",
            f"{'fold':>5} {'MAE':>8} {'base MAE':>9} {'R²':>7} {'±5y':>6} {'±10y':>6} {'epochs':>7}",
        ]
        for i, (fm, fb) in enumerate(zip(self.fold_metrics, self.fold_baseline_metrics, strict=True), start=1):
            lines.append(
                f"{i:>5} {fm['mae']:8.2f} {fb['mae']:9.2f} {fm['r2']:7.3f} {fm['within_5']:6.1%} "
                f"{fm['within_10']:6.1%} {int(fm.get('epochs_trained', 0)):>7}"
            )
        lines += [
            f"model    MAE {m['mae']:.2f} ± {m['mae_std']:.2f}  MSE {m['mse']:.1f}  R² {m['r2']:.3f}  "
            f"±5y {m['within_5']:.1%}  ±10y {m['within_10']:.1%}",
            f"baseline MAE {b['mae']:.2f} ± {b['mae_std']:.2f}  MSE {b['mse']:.1f}  R² {b['r2']:.3f}  "
            f"(always the training folds' median year)",
            f"MAE ratio model/baseline: {m['mae'] / b['mae']:.3f}" if b["mae"] > 0 else "MAE ratio: n/a",
            f"spread: std of predictions {m['pred_std']:.1f} vs std of true years {m['true_std']:.1f}",
            f"interval ({self.calibration.level:.0%}): ± {self.interval_halfwidth:.1f} years typical; "
            f"coverage {self.interval_coverage:.1%} ({self.interval_coverage_source})",
        ]
        if "ensemble_exact" in m:
            lines.append(
                f"date reader on {int(m.get('holdout_n', 0)) or 'the'} unseen coins: exact year {m['ensemble_exact']:.1%}, "
                f"MAE {m['ensemble_mae']:.2f}; interval ({self.config.interval_level:.0%}) coverage "
                f"{m['interval_coverage_reader']:.1%}, median width {m['interval_median_width']:.0f} years "
                f"(temperature {m['calibration_temperature']:.2f}); not a coin: threshold {m['coin_threshold']:.2f}, "
                f"{m['not_coin_rejected_share']:.1%} of generated non-coin photos and {m['coin_rejected_share']:.1%} "
                f"of coins rejected; unreadable {m['unreadable_share']:.1%}"
            )
        if "holdout_mae" in m:
            lines.append(
                f"ensemble on {int(m['holdout_n'])} held-out calibration coins: MAE {m['holdout_mae']:.2f} "
                f"(baseline {m['holdout_baseline_mae']:.2f})"
            )
        if not self.beats_baseline:
            lines.insert(
                0,
                "!!! WARNING: model does NOT beat the constant baseline "
                f"(MAE {m['mae']:.2f} >= baseline {b['mae']:.2f}); do not promote it !!!",
            )
        if self.collapsed:
            lines.insert(
                0,
                "!!! WARNING: predictions collapse toward the mean "
                f"(std {m['pred_std']:.1f} vs true {m['true_std']:.1f}) !!!",
            )
        return "\n".join(lines)


def _lr_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, epochs: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, int]:
    """The LR schedule and the number of warm-up epochs during which early stopping does not count."""
    total = max(1, steps_per_epoch * epochs)
    if config.schedule == "onecycle":
        if total < 4:  # too few steps for a warm-up and an annealing phase (tiny test runs)
            return None, 0
        pct = max(0.25, 1.5 / total)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=pct, div_factor=10.0, final_div_factor=100.0
        )
        return scheduler, math.ceil(pct * epochs)
    if config.schedule == "cosine":
        warmup = max(1, steps_per_epoch)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), 1
    return None, 0


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def train_fold(
    config: TrainConfig,
    train_set: Subset,
    val_set: Subset,
    *,
    fold: int,
    device: torch.device,
    epochs: int | None = None,
    init_state: StateDict | None = None,
    progress: bool = False,
    on_epoch: OnEpoch | None = None,
    on_model: OnModel | None = None,
    should_stop: ShouldStop | None = None,
    history: list[dict[str, float]] | None = None,
) -> tuple[CoinYearNet, dict[str, float]]:
    """Train one model; return it with its best (lowest validation MAE) weights loaded, and a small report."""
    epochs = epochs or config.epochs
    _seed_everything(config.seed + 7919 * fold)
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = prepare_model(model, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_loader = make_loader(
        train_set,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed + fold,
        drop_last=len(train_set) > config.batch_size,
    )
    val_loader = make_loader(val_set, batch_size=2 * config.batch_size, shuffle=False)
    scheduler, warmup_epochs = _lr_scheduler(optimizer, config, len(train_loader), epochs)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None

    bn_loader = _batchnorm_loader(train_set, config, fold, limit=BN_RECALIBRATION_PAIRS)
    best_mae, best_epoch, best_state, stale = math.inf, 0, None, 0
    epoch_bar = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        epoch_bar = tqdm(epoch_bar, desc=f"fold {fold + 1}/{config.folds}", unit="epoch")
    trained = 0
    for epoch in epoch_bar:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled before fold {fold + 1} epoch {epoch}")
        lr = optimizer.param_groups[0]["lr"]
        train_stats = train_one_epoch(
            model,
            train_loader,
            optimizer,
            device=device,
            scheduler=scheduler,
            scaler=scaler,
            progress=progress,
            desc=f"fold {fold + 1} epoch {epoch}",
        )
        started = time.perf_counter()
        if bn_loader is not None:
            recalibrate_batchnorm(model, bn_loader, device=device)
        val = evaluate(model, val_loader, config, device)
        trained = epoch
        if val["mae"] < best_mae:
            best_mae, best_epoch, stale = val["mae"], epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif epoch > warmup_epochs:
            stale += 1
        metrics = {
            "train_loss": train_stats["loss"],
            "val_loss": val["loss"],
            "val_mae": val["mae"],
            "val_mse": val["mse"],
            "val_r2": val["r2"],
            "val_within_5": val["within_5"],
            "val_within_10": val["within_10"],
            "val_pred_std": val["pred_std"],
            "best_val_mae": best_mae,
            "lr": lr,
            "train_seconds": train_stats["seconds"],
            "val_seconds": time.perf_counter() - started,
        }
        if history is not None:
            history.append({"fold": float(fold + 1), "epoch": float(epoch), **metrics})
        if progress:
            epoch_bar.set_postfix(
                loss=f"{train_stats['loss']:.4f}", val_mae=f"{val['mae']:.1f}", best=f"{best_mae:.1f}"
            )
        if on_epoch is not None:
            on_epoch(fold + 1, epoch, metrics)
        if on_model is not None:
            on_model(fold + 1, epoch, model)  # eval mode, statistics recalibrated: as it would be served
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled after fold {fold + 1} epoch {epoch}")
        if config.patience and stale >= config.patience:
            break
    if progress:
        epoch_bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    final_bn_loader = _batchnorm_loader(train_set, config, fold, limit=None)
    if final_bn_loader is not None:
        recalibrate_batchnorm(model, final_bn_loader, device=device)
    return model, {"best_epoch": float(best_epoch), "epochs_trained": float(trained), "best_val_mae": best_mae}


def fit(
    config: TrainConfig,
    samples: Sequence[CoinSample],
    *,
    progress: bool = True,
    on_epoch: OnEpoch | None = None,
    should_stop: ShouldStop | None = None,
    init_state_dict: StateDict | Sequence[StateDict] | None = None,
    on_model: OnModel | None = None,
    device: str | torch.device | None = None,
    dataset: CoinPairDataset | None = None,
) -> FitResult:
    """K-fold cross-validated training; the K best fold models are the ensemble that gets registered.

    A seeded share (config.calibration_share, when that is at least 20 coins) is held out from every fold: the only
    coins on which the fold models' disagreement can be measured honestly, for the interval (see
    IntervalCalibration); the ensemble's MAE and interval coverage on them are reported too.
    on_epoch(fold, epoch, metrics) is called after every epoch (1-based); should_stop() is checked before and after
    every epoch and raises TrainingCancelled. init_state_dict (one state dict, or one per fold) starts from given
    weights, for fine-tuning; on_model(fold, epoch, model) gets the fold's current model after every epoch (in eval
    mode, e.g. to check a fine-tune on an evaluation set and stop through should_stop).
    """
    started = time.perf_counter()
    device = select_device(device)
    samples = list(samples)
    n = len(samples)
    if n < 2 * config.folds:
        raise ValueError(f"need at least {2 * config.folds} coins for {config.folds}-fold training, got {n}")
    init_states = _per_fold_states(init_state_dict, config.folds)

    holdout = int(round(n * config.calibration_share))
    if holdout < MIN_CALIBRATION_COINS or n - holdout < 2 * config.folds:
        holdout = 0
    order = np.random.default_rng(config.seed + 1).permutation(n)
    calibration_index = np.sort(order[:holdout])
    cv_index = np.sort(order[holdout:])

    if dataset is None:
        dataset = CoinPairDataset(samples, config, train=True)
    elif len(dataset) != n:
        raise ValueError("dataset and samples differ in length")
    train_view = dataset if dataset.train else dataset.view(train=True)
    eval_view = dataset.view(train=False)
    dataset.preload(progress=progress)
    years = np.array([s.year for s in samples], dtype=np.float64)

    folds = kfold_indices(len(cv_index), config.folds, config.seed)
    fold_states: list[StateDict] = []
    fold_metrics: list[dict[str, float]] = []
    fold_baseline: list[dict[str, float]] = []
    history: list[dict[str, float]] = []
    oof_pred = np.zeros(len(cv_index))
    oof_fold = np.zeros(len(cv_index), dtype=np.int64)
    fresh_predictions = []  # per fold model: years on the calibration holdout (or on all CV coins, see below)
    fresh_reads: list[tuple[np.ndarray, np.ndarray]] = []  # date reader: (log p(year), coin score) per fold model
    negative_reads: list[np.ndarray] = []  # date reader: coin scores of generated non-coin photos per fold model
    negatives_for_threshold = negative_loader(config) if config.head == "reader" else None
    interval_rows = np.zeros((0, 4))
    fresh_index = calibration_index if holdout else cv_index
    fresh_loader = make_loader(Subset(eval_view, fresh_index.tolist()), batch_size=2 * config.batch_size, shuffle=False)

    for fold, (train_pos, val_pos) in enumerate(folds):
        train_idx, val_idx = cv_index[train_pos], cv_index[val_pos]
        fold_started = time.perf_counter()
        model, report = train_fold(
            config,
            Subset(train_view, train_idx.tolist()),
            Subset(eval_view, val_idx.tolist()),
            fold=fold,
            device=device,
            init_state=init_states[fold],
            progress=progress,
            on_epoch=on_epoch,
            on_model=on_model,
            should_stop=should_stop,
            history=history,
        )
        val_loader = make_loader(Subset(eval_view, val_idx.tolist()), batch_size=2 * config.batch_size, shuffle=False)
        prediction, _ = predict(model, val_loader, device=device)
        predicted_years = denormalise_year(prediction, config)
        oof_pred[val_pos] = predicted_years
        oof_fold[val_pos] = fold
        metrics = regression_metrics(years[val_idx], predicted_years)
        metrics.update(report, seconds=time.perf_counter() - fold_started)
        fold_metrics.append(metrics)
        baseline_year = float(np.median(years[train_idx]))
        fold_baseline.append(regression_metrics(years[val_idx], np.full(len(val_idx), baseline_year)))
        fresh, _ = predict(model, fresh_loader, device=device)
        fresh_predictions.append(denormalise_year(fresh, config))
        if isinstance(model, CoinDateModel):
            fresh_reads.append(reader_outputs(model, fresh_loader, device=device))
            negative_reads.append(reader_outputs(model, negatives_for_threshold, device=device)[1])
        fold_states.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        del model

    oof_true = years[cv_index]
    fresh_matrix = np.stack(fresh_predictions)
    calibration = calibrate_interval(
        oof_true - oof_pred,
        fresh_matrix,
        level=config.interval_level,
        fresh_truth=years[calibration_index] if holdout else None,
        spread_source="holdout" if holdout else "oof",
        spread_weight=config.interval_spread_weight,
    )
    if fresh_reads:
        truth = years[calibration_index] if holdout else years[cv_index]
        reader_calibration, reader_metrics, interval_rows = calibrate_reader(
            [r[0] for r in fresh_reads], [r[1] for r in fresh_reads], negative_reads, truth, config
        )
        calibration = dataclasses.replace(calibration, **reader_calibration)
    summary_metrics = summarise_folds(fold_metrics)
    if fresh_reads:
        summary_metrics.update(reader_metrics)
        summary_metrics["oof_exact"] = float(np.mean(np.abs(oof_true - oof_pred) <= 1))
    pooled = regression_metrics(oof_true, oof_pred)
    summary_metrics.update({f"oof_{k}": v for k, v in pooled.items() if k != "n"})
    baseline_summary = summarise_folds(fold_baseline)

    if holdout:
        ensemble_years = fresh_matrix.mean(axis=0)
        halfwidth = interval_halfwidth(fresh_matrix, calibration)
        truth = years[calibration_index]
        coverage = float(np.mean(np.abs(truth - ensemble_years) <= halfwidth))
        coverage_source = "holdout"
        held = regression_metrics(truth, ensemble_years)
        baseline_year = float(np.median(years[cv_index]))
        summary_metrics.update(
            holdout_mae=held["mae"],
            holdout_r2=held["r2"],
            holdout_n=float(len(truth)),
            holdout_baseline_mae=float(np.mean(np.abs(truth - baseline_year))),
        )
    else:
        # No coin is unseen by all fold models: the spread on training coins is too small, so the interval comes
        # out on the wide side. Report the out-of-fold coverage of the same rule applied to a single model.
        single = calibration.shape * calibration.oof_rms
        coverage = float(np.mean(np.abs(oof_true - oof_pred) <= single))
        coverage_source = "oof"
    if fresh_reads:  # the date reader's interval comes from its distribution: report that one
        coverage = summary_metrics["interval_coverage_reader"]
        coverage_source = "holdout" if holdout else "oof"
    summary_metrics.update(
        interval_halfwidth=float(
            summary_metrics["interval_median_width"] / 2
            if fresh_reads
            else math.sqrt(calibration.base**2 + calibration.spread_coef * calibration.mean_spread_var)
        ),
        interval_coverage=coverage,
    )

    return FitResult(
        config=config,
        fold_states=fold_states,
        fold_metrics=fold_metrics,
        fold_baseline_metrics=fold_baseline,
        metrics=summary_metrics,
        baseline_metrics=baseline_summary,
        oof_index=cv_index,
        oof_pred=oof_pred,
        oof_true=oof_true,
        oof_fold=oof_fold,
        calibration_index=calibration_index,
        calibration=calibration,
        interval_coverage=coverage,
        interval_coverage_source=coverage_source,
        history=history,
        seconds=time.perf_counter() - started,
        calibration_fold_pred=fresh_matrix if holdout else np.zeros((config.folds, 0)),
        interval_rows=interval_rows if fresh_reads else np.zeros((0, 4)),
    )


def _per_fold_states(init: StateDict | Sequence[StateDict] | None, folds: int) -> list[StateDict | None]:
    if init is None:
        return [None] * folds
    if isinstance(init, Mapping):
        return [dict(init)] * folds
    states = list(init)
    if len(states) != folds:
        raise ValueError(f"init_state_dict has {len(states)} states for {folds} folds")
    return states
