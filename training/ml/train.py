"""Training one model: train_one_epoch(), evaluate(), train_fold() (L1 loss with per-sample weights, or the date
reader's loss; AdamW, one-cycle or cosine LR, early stopping on the fold's validation MAE, best checkpoint kept).

kfold.fit() runs train_fold() once per fold and builds the ensemble's calibration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from training.ml.config import TrainConfig
from training.ml.data import CoinPairDataset, make_loader
from training.ml.metrics import regression_metrics
from training.ml.model import CoinDateModel, CoinYearNet, build_model, denormalise_year
from training.ml.pretrain import autocast_dtype
from training.ml.stopping import (
    TrainingCancelled as TrainingCancelled,  # re-exported: callers name train.TrainingCancelled
)

OnEpoch = Callable[[int, int, dict[str, float]], None]
OnModel = Callable[[int, int, nn.Module], None]
ShouldStop = Callable[[], bool]
StateDict = dict[str, torch.Tensor]
BN_RECALIBRATION_PAIRS = 256


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


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (the default), or SGD with Nesterov momentum 0.9 when a config (a sweep's trial) asks for it."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@dataclass
class FoldTraining:
    """What one fold's epochs work with: the model, its optimiser and schedule, and the loaders."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    warmup_epochs: int
    scaler: torch.amp.GradScaler | None
    train_loader: DataLoader
    val_loader: DataLoader
    bn_loader: DataLoader | None  # a sample of the training pairs that re-estimates batch norm statistics


@dataclass
class BestWeights:
    """The lowest validation MAE so far, its epoch and weights, and the epochs since then (early stopping)."""

    mae: float = math.inf
    epoch: int = 0
    state: StateDict | None = None
    stale: int = 0

    def update(self, epoch: int, mae: float, model: nn.Module, *, warming_up: bool) -> None:
        """Keep the model's weights when `mae` is the best yet; else count a stale epoch (not while warming up)."""
        if mae < self.mae:
            self.mae, self.epoch, self.stale = mae, epoch, 0
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif not warming_up:
            self.stale += 1


def fold_training(
    config: TrainConfig,
    train_set: Subset,
    val_set: Subset,
    *,
    fold: int,
    device: torch.device,
    epochs: int,
    init_state: StateDict | None,
) -> FoldTraining:
    """The model (from `init_state` when given) on `device`, its optimiser, schedule and loaders for one fold."""
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = prepare_model(model, device)
    optimizer = build_optimizer(model, config)
    train_loader = make_loader(
        train_set,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed + fold,
        drop_last=len(train_set) > config.batch_size,
    )
    scheduler, warmup_epochs = _lr_scheduler(optimizer, config, len(train_loader), epochs)
    return FoldTraining(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        warmup_epochs=warmup_epochs,
        scaler=torch.amp.GradScaler("cuda") if device.type == "cuda" else None,
        train_loader=train_loader,
        val_loader=make_loader(val_set, batch_size=2 * config.batch_size, shuffle=False),
        bn_loader=_batchnorm_loader(train_set, config, fold, limit=BN_RECALIBRATION_PAIRS),
    )


def train_and_validate(
    run: FoldTraining,
    best: BestWeights,
    config: TrainConfig,
    *,
    fold: int,
    epoch: int,
    device: torch.device,
    progress: bool,
) -> dict[str, float]:
    """One epoch: train, re-estimate batch norm statistics, validate, keep the best weights; the epoch's metrics."""
    lr = run.optimizer.param_groups[0]["lr"]
    train_stats = train_one_epoch(
        run.model,
        run.train_loader,
        run.optimizer,
        device=device,
        scheduler=run.scheduler,
        scaler=run.scaler,
        progress=progress,
        desc=f"fold {fold + 1} epoch {epoch}",
    )
    started = time.perf_counter()
    if run.bn_loader is not None:
        recalibrate_batchnorm(run.model, run.bn_loader, device=device)
    val = evaluate(run.model, run.val_loader, config, device)
    best.update(epoch, val["mae"], run.model, warming_up=epoch <= run.warmup_epochs)
    return {
        "train_loss": train_stats["loss"],
        "val_loss": val["loss"],
        "val_mae": val["mae"],
        "val_mse": val["mse"],
        "val_r2": val["r2"],
        "val_within_5": val["within_5"],
        "val_within_10": val["within_10"],
        "val_pred_std": val["pred_std"],
        "best_val_mae": best.mae,
        "lr": lr,
        "train_seconds": train_stats["seconds"],
        "val_seconds": time.perf_counter() - started,
    }


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
    """Train one model; return it with its best (lowest validation MAE) weights loaded, and a small report.

    The steps: fold_training() builds what the epochs work with, train_and_validate() runs one epoch and keeps the
    best weights (BestWeights), then the best weights are loaded and batch norm re-estimated on the whole fold."""
    epochs = epochs or config.epochs
    _seed_everything(config.seed + 7919 * fold)
    run = fold_training(config, train_set, val_set, fold=fold, device=device, epochs=epochs, init_state=init_state)
    best = BestWeights()
    epoch_bar = range(1, epochs + 1)
    if progress:
        epoch_bar = tqdm(epoch_bar, desc=f"fold {fold + 1}/{config.folds}", unit="epoch")
    trained = 0
    for epoch in epoch_bar:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled before fold {fold + 1} epoch {epoch}")
        metrics = train_and_validate(run, best, config, fold=fold, epoch=epoch, device=device, progress=progress)
        trained = epoch
        if history is not None:
            history.append({"fold": float(fold + 1), "epoch": float(epoch), **metrics})
        if progress:
            epoch_bar.set_postfix(
                loss=f"{metrics['train_loss']:.4f}", val_mae=f"{metrics['val_mae']:.1f}", best=f"{best.mae:.1f}"
            )
        if on_epoch is not None:
            on_epoch(fold + 1, epoch, metrics)
        if on_model is not None:
            on_model(fold + 1, epoch, run.model)  # eval mode, statistics recalibrated: as it would be served
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled after fold {fold + 1} epoch {epoch}")
        if config.patience and best.stale >= config.patience:
            break
    if progress:
        epoch_bar.close()
    if best.state is not None:
        run.model.load_state_dict(best.state)
    final_bn_loader = _batchnorm_loader(train_set, config, fold, limit=None)
    if final_bn_loader is not None:
        recalibrate_batchnorm(run.model, final_bn_loader, device=device)
    return run.model, {"best_epoch": float(best.epoch), "epochs_trained": float(trained), "best_val_mae": best.mae}
