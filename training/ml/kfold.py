"""K-fold training: fit() trains one model per fold and ALWAYS scores the constant baseline (the training folds'
median year) on the same folds: a published model for this task reported an MAE worse than that baseline without
noticing. FitResult.summary() says so loudly when it happens, and shows the spread of the predictions beside the
spread of the true years, so a model that collapsed to the mean cannot hide.

The K fold models form the registered ensemble (ensemble.py), or for the date reader their average when it reads as
well (soup.py); the interval is calibrated here (interval.py for the regression head, reader_calibration.py for the
date reader).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from training.ml.coin_head import curator_split
from training.ml.config import TrainConfig
from training.ml.data import CoinPairDataset, CoinSample
from training.ml.ensemble import CoinYearEnsemble
from training.ml.folds import FoldContext, FoldOutput, FoldPlan, fit_fold, fold_plan
from training.ml.interval import IntervalCalibration, calibrate_interval, interval_halfwidth
from training.ml.metrics import regression_metrics, summarise_folds
from training.ml.reader_calibration import NegativePair, calibrate_reader
from training.ml.soup import SoupDecision, SoupOutput, decide, make_soup
from training.ml.train import OnEpoch, OnModel, ShouldStop, StateDict, select_device


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
    # normalised (front, back) float16 photos of a seeded sample of the coins, for the int8 graph (quantize.py)
    quantization_photos: tuple[np.ndarray, np.ndarray] | None = None
    # date reader, aligned with oof_index: the out-of-fold model's probability (at the calibrated temperature) of the
    # label's year and of its own answer (the most likely year); empty for the regression head, which has no
    # distribution. The curators' "suspect labels" list ranks labels by them (training.services.label_check).
    oof_p_label: np.ndarray = field(default_factory=lambda: np.zeros(0))
    oof_p_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the calibration holdout (aligned with calibration_index), which no fold model saw: the ensemble's answer and,
    # for the date reader, the probabilities of the fold mixture, so that every coin of the run gets a held-out answer
    holdout_pred: np.ndarray = field(default_factory=lambda: np.zeros(0))
    holdout_p_label: np.ndarray = field(default_factory=lambda: np.zeros(0))
    holdout_p_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the weights the version serves when they are not the K fold models: [the fold models' average] (soup.py)
    served_states: list[StateDict] | None = None
    soup: SoupDecision | None = None

    @property
    def combination(self) -> str:
        """How the version combines its fold models: "soup" (one averaged model) or "ensemble" (K models)."""
        return "soup" if self.served_states is not None else "ensemble"

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
        """The registered model: the averaged fold model when it was chosen (soup.py), else the K fold models'
        answers averaged; with the calibrated interval."""
        states = self.served_states if self.served_states is not None else self.fold_states
        return CoinYearEnsemble.from_states(states, self.config, self.calibration)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (what tracking.runs writes as metrics.json)."""
        return {
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "fold_metrics": self.fold_metrics,
            "fold_baseline_metrics": self.fold_baseline_metrics,
            "beats_baseline": self.beats_baseline,
            "collapsed": self.collapsed,
            "combination": self.combination,
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
        if self.soup is not None:
            lines.append(self.soup.reason)
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
    negatives: Sequence[NegativePair] = (),
) -> FitResult:
    """K-fold cross-validated training; the K best fold models are the ensemble that gets registered.

    The folds train one after another here; a fold-parallel training run calls the same fold_plan / fit_fold /
    fit_combine on several workers (training.services.folds). on_epoch(fold, epoch, metrics) is called after every
    epoch (1-based); should_stop() is checked before and after every epoch and raises TrainingCancelled.
    init_state_dict (one state dict, or one per fold) starts from given weights, for fine-tuning; on_model(fold,
    epoch, model) gets the fold's current model after every epoch (in eval mode, e.g. to check a fine-tune on an
    evaluation set and stop through should_stop). ``negatives``: (front, back) photos curators marked not a coin,
    read beside the generated non-coin photos when the coin threshold is calibrated (never a year: they are not in
    ``samples``).
    """
    started = time.perf_counter()
    device = select_device(device)
    samples = list(samples)
    plan = fold_plan(config, len(samples))
    init_states = _per_fold_states(init_state_dict, config.folds)
    if dataset is None:
        dataset = CoinPairDataset(samples, config, train=True)
    elif len(dataset) != len(samples):
        raise ValueError("dataset and samples differ in length")
    dataset.preload(progress=progress)
    context = FoldContext.build(config, dataset, plan, negatives)
    outputs = [
        fit_fold(
            context,
            fold,
            device=device,
            init_state=init_states[fold],
            progress=progress,
            on_epoch=on_epoch,
            on_model=on_model,
            should_stop=should_stop,
        )
        for fold in range(config.folds)
    ]
    return fit_combine(
        config,
        plan,
        context.years,
        outputs,
        quantization_photos=quantization_sample(context.eval_view, len(samples), config),
        soup=make_soup(context, outputs, device=device),
        seconds=time.perf_counter() - started,
        curator_negatives=context.curator_negatives,
    )


def fit_combine(
    config: TrainConfig,
    plan: FoldPlan,
    years: np.ndarray,
    outputs: Sequence[FoldOutput],
    *,
    quantization_photos: tuple[np.ndarray, np.ndarray] | None = None,
    soup: SoupOutput | None = None,
    seconds: float = 0.0,
    curator_negatives: int = 0,
) -> FitResult:
    """The run's result from its K fold outputs (in any order): out-of-fold metrics beside the constant baseline,
    the calibrated interval (and the date reader's temperature and coin threshold), the held-out answers.

    With ``soup`` (the fold models averaged, soup.make_soup) the version serves it when it reads the holdout about as
    well as the ensemble; the calibration, the interval's figures and the holdout answers are then the soup's.
    ``curator_negatives``: how many curators' non-coins the run was given (FoldContext.curator_negatives); the
    calibration measures the held-out ones (coin_head.curator_split), the fold metrics say how many trained.

    The steps: gather the out-of-fold answers, choose between the soup and the ensemble, calibrate, answer the
    holdout, then summarise (metrics, interval coverage)."""
    held_out = len(curator_split(config, curator_negatives)[0])
    outputs = sorted(outputs, key=lambda output: output.fold)
    if [output.fold for output in outputs] != list(range(config.folds)):
        raise ValueError(
            f"fit_combine needs one output per fold 0..{config.folds - 1}, got {[o.fold for o in outputs]}"
        )
    oof = _out_of_fold(outputs, len(plan.cv_index))
    decision, reads = _served_reads(config, plan, years, outputs, soup, held_out)
    fresh_matrix = np.stack([output.fresh_years for output in outputs])
    calibrated = _calibrate(config, plan, years, outputs, oof.pred, fresh_matrix, reads, held_out)
    calibration = calibrated.calibration
    oof_p = None if oof.log_p is None else _softmax(oof.log_p / calibration.temperature)
    oof_p_label, oof_p_top = _confidence(oof_p, years[plan.cv_index], config)
    holdout_pred, holdout_p = _holdout_answers(config, plan, fresh_matrix, reads, calibration)
    holdout_p_label, holdout_p_top = _confidence(holdout_p, years[plan.calibration_index], config)
    fold_metrics = [dict(output.metrics) for output in outputs]
    fold_baseline = [dict(output.baseline_metrics) for output in outputs]
    oof_true = years[plan.cv_index]
    summary_metrics = _summary_metrics(
        fold_metrics, oof_true, oof.pred, decision, calibrated, reads, curator_negatives, held_out
    )
    coverage, coverage_source = _interval_coverage(
        summary_metrics, plan, years, fresh_matrix, oof_true - oof.pred, calibration, reads=bool(reads.fresh)
    )
    return FitResult(
        config=config,
        fold_states=[output.state for output in outputs],
        fold_metrics=fold_metrics,
        fold_baseline_metrics=fold_baseline,
        metrics=summary_metrics,
        baseline_metrics=summarise_folds(fold_baseline),
        oof_index=plan.cv_index,
        oof_pred=oof.pred,
        oof_true=oof_true,
        oof_fold=oof.fold,
        calibration_index=plan.calibration_index,
        calibration=calibration,
        interval_coverage=coverage,
        interval_coverage_source=coverage_source,
        history=[row for output in outputs for row in output.history],
        seconds=seconds,
        calibration_fold_pred=fresh_matrix if plan.holdout else np.zeros((config.folds, 0)),
        interval_rows=calibrated.interval_rows,
        quantization_photos=quantization_photos,
        oof_p_label=oof_p_label,
        oof_p_top=oof_p_top,
        holdout_pred=holdout_pred,
        holdout_p_label=holdout_p_label,
        holdout_p_top=holdout_p_top,
        served_states=[soup.state] if soup is not None and decision is not None and decision.served else None,
        soup=decision,
    )


def _summary_metrics(
    fold_metrics: list[dict[str, float]],
    oof_true: np.ndarray,
    oof_pred: np.ndarray,
    decision: SoupDecision | None,
    calibrated: Calibrated,
    reads: ServedReads,
    curator_negatives: int,
    held_out: int,
) -> dict[str, float]:
    """The run's metrics: the folds' summary, the soup's decision, the date reader's calibration and coin head, and
    the pooled out-of-fold metrics (the interval's figures are added by _interval_coverage)."""
    summary_metrics = summarise_folds(fold_metrics)
    if decision is not None:
        summary_metrics.update(decision.metrics())
    if reads.fresh:
        summary_metrics.update(calibrated.reader_metrics)
        summary_metrics.update(_coin_head_metrics(fold_metrics, curator_negatives, held_out))
        summary_metrics["oof_exact"] = float(np.mean(np.abs(oof_true - oof_pred) <= 1))
    pooled = regression_metrics(oof_true, oof_pred)
    summary_metrics.update({f"oof_{k}": v for k, v in pooled.items() if k != "n"})
    return summary_metrics


@dataclass(frozen=True)
class OutOfFold:
    """Each CV coin's answer from the one fold model that held it out: its year, that fold, and for the date reader
    its log p(year) (len(cv_index), Y)."""

    pred: np.ndarray
    fold: np.ndarray
    log_p: np.ndarray | None


def _out_of_fold(outputs: Sequence[FoldOutput], cv_count: int) -> OutOfFold:
    pred = np.zeros(cv_count)
    fold = np.zeros(cv_count, dtype=np.int64)
    log_p: np.ndarray | None = None
    for output in outputs:
        pred[output.val_pos] = output.predicted_years
        fold[output.val_pos] = output.fold
        if output.log_p is not None:
            if log_p is None:
                log_p = np.zeros((cv_count, output.log_p.shape[1]))
            log_p[output.val_pos] = output.log_p
    return OutOfFold(pred, fold, log_p)


@dataclass(frozen=True)
class ServedReads:
    """The date reader's reads of the fresh coins (log p(year), coin score: one pair per served model) and of the
    negative pairs (one coin-score array per served model): the fold models', or the soup's when it is served.
    Empty for the regression head."""

    fresh: list[tuple[np.ndarray, np.ndarray]]
    negative: list[np.ndarray]


def _served_reads(
    config: TrainConfig,
    plan: FoldPlan,
    years: np.ndarray,
    outputs: Sequence[FoldOutput],
    soup: SoupOutput | None,
    held_out: int,
) -> tuple[SoupDecision | None, ServedReads]:
    """Whether the soup is served (decided on the holdout, soup.decide) and the reads of what is served."""
    fresh = [(o.fresh_log_p, o.fresh_coin) for o in outputs if o.fresh_log_p is not None]
    negative = [o.negative_coin for o in outputs if o.negative_coin is not None]
    if not (fresh and soup is not None and plan.holdout):
        return None, ServedReads(fresh, negative)
    truth = years[plan.calibration_index]
    ensemble_metrics = calibrate_reader(
        [r[0] for r in fresh], [r[1] for r in fresh], negative, truth, config, curator_negatives=held_out
    )[1]
    soup_metrics = calibrate_reader(
        [soup.fresh_log_p], [soup.fresh_coin], [soup.negative_coin], truth, config, curator_negatives=held_out
    )[1]
    decision = decide(soup_metrics, ensemble_metrics)
    if decision.served:
        return decision, ServedReads([(soup.fresh_log_p, soup.fresh_coin)], [soup.negative_coin])
    return decision, ServedReads(fresh, negative)


@dataclass(frozen=True)
class Calibrated:
    """The version's calibration; for the date reader also its calibration metrics and interval rows."""

    calibration: IntervalCalibration
    reader_metrics: dict[str, float]
    interval_rows: np.ndarray


def _calibrate(
    config: TrainConfig,
    plan: FoldPlan,
    years: np.ndarray,
    outputs: Sequence[FoldOutput],
    oof_pred: np.ndarray,
    fresh_matrix: np.ndarray,
    reads: ServedReads,
    held_out: int,
) -> Calibrated:
    """The interval from the out-of-fold errors and the folds' spread (interval.py); for the date reader, its
    temperature, coin threshold and interval from the served reads (reader_calibration.py) on top."""
    holdout = plan.holdout
    calibration = calibrate_interval(
        years[plan.cv_index] - oof_pred,
        fresh_matrix,
        level=config.interval_level,
        fresh_truth=years[plan.calibration_index] if holdout else None,
        spread_source="holdout" if holdout else "oof",
        spread_weight=config.interval_spread_weight,
    )
    if not reads.fresh:
        return Calibrated(calibration, {}, np.zeros((0, 4)))
    truth = years[plan.calibration_index] if holdout else years[plan.cv_index]
    reader_calibration, reader_metrics, interval_rows = calibrate_reader(
        [r[0] for r in reads.fresh],
        _threshold_coin_scores(outputs, [r[1] for r in reads.fresh], len(plan.cv_index), holdout=holdout),
        reads.negative,
        truth,
        config,
        curator_negatives=held_out,
    )
    return Calibrated(dataclasses.replace(calibration, **reader_calibration), reader_metrics, interval_rows)


def _holdout_answers(
    config: TrainConfig,
    plan: FoldPlan,
    fresh_matrix: np.ndarray,
    reads: ServedReads,
    calibration: IntervalCalibration,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The served answer on each held-out coin (year, and the date reader's p(year)): the fold models' mean year,
    or the date reader's mixture at the calibrated temperature and its top year."""
    if not plan.holdout:
        return np.zeros(0), None
    if not reads.fresh:
        return fresh_matrix.mean(axis=0), None
    holdout_p = np.mean([_softmax(r[0] / calibration.temperature) for r in reads.fresh], axis=0)
    return (config.year_min + holdout_p.argmax(1)).astype(np.float64), holdout_p


def _interval_coverage(
    summary_metrics: dict[str, float],
    plan: FoldPlan,
    years: np.ndarray,
    fresh_matrix: np.ndarray,
    oof_errors: np.ndarray,
    calibration: IntervalCalibration,
    *,
    reads: bool,
) -> tuple[float, str]:
    """How often the interval holds the true year, and on which coins ("holdout" or "oof"); adds the holdout's
    metrics and the interval's figures to ``summary_metrics``."""
    if plan.holdout:
        ensemble_years = fresh_matrix.mean(axis=0)
        halfwidth = interval_halfwidth(fresh_matrix, calibration)
        truth = years[plan.calibration_index]
        coverage = float(np.mean(np.abs(truth - ensemble_years) <= halfwidth))
        coverage_source = "holdout"
        held = regression_metrics(truth, ensemble_years)
        baseline_year = float(np.median(years[plan.cv_index]))
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
        coverage = float(np.mean(np.abs(oof_errors) <= single))
        coverage_source = "oof"
    if reads:  # the date reader's interval comes from its distribution: report that one
        coverage = summary_metrics["interval_coverage_reader"]
        coverage_source = "holdout" if plan.holdout else "oof"
    summary_metrics.update(
        interval_halfwidth=float(
            summary_metrics["interval_median_width"] / 2
            if reads
            else math.sqrt(calibration.base**2 + calibration.spread_coef * calibration.mean_spread_var)
        ),
        interval_coverage=coverage,
    )
    return coverage, coverage_source


def _threshold_coin_scores(
    outputs: Sequence[FoldOutput], fresh_coin: list[np.ndarray], cv_count: int, *, holdout: int
) -> list[np.ndarray]:
    """The coin scores the coin threshold is calibrated on: the fresh coins' (the holdout's, else every CV coin's).

    Without a holdout the fresh coins are the CV coins, and a coin head refitted on curators' non-coins (coin_head.py)
    took each of them as a positive in the folds that trained on it: its in-fold scores are optimistic (measured on 40
    coins: 2.5 % rejected in-fold against 17 % of fresh coins). Then each coin's score comes from the one fold model
    that held it out, as the out-of-fold year answers do."""
    trained = any("coin_head_loss" in output.metrics for output in outputs)
    if holdout or not trained or any(output.val_coin is None for output in outputs):
        return fresh_coin
    oof_coin = np.zeros(cv_count)
    for output in outputs:
        oof_coin[output.val_pos] = output.val_coin
    return [oof_coin]


def _coin_head_metrics(fold_metrics: Sequence[Mapping[str, float]], given: int, held_out: int) -> dict[str, float]:
    """The curators' non-coins given, trained on and held out, and the coin head's refit loss (mean over folds,
    before and after the refit); empty without curator non-coins (the head was not trained)."""
    if not given:
        return {}
    metrics = {"curator_negatives": float(given), "curator_negatives_held_out": float(held_out)}
    for key in ("curator_negatives_trained", "coin_head_loss_before", "coin_head_loss"):
        values = [m[key] for m in fold_metrics if key in m]
        if values:
            metrics[key] = float(np.mean(values))
    metrics.setdefault("curator_negatives_trained", 0.0)
    return metrics


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _confidence(p: np.ndarray | None, truth: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(p(label's year), p(most likely year)) per coin of p (N, Y); a label outside the reader's year range has
    probability 0. Empty without a distribution (the regression head)."""
    if p is None:
        return np.zeros(0), np.zeros(0)
    index = np.round(truth).astype(np.int64) - config.year_min
    inside = (index >= 0) & (index < p.shape[1])
    p_label = np.where(inside, p[np.arange(len(p)), np.clip(index, 0, p.shape[1] - 1)], 0.0)
    return p_label, p.max(axis=1)


QUANTIZATION_PAIRS = 96


def quantization_sample(
    eval_view: CoinPairDataset, n: int, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to QUANTIZATION_PAIRS coins as served (normalised), float16: 96 pairs at 192 px are 42 MB."""
    if not config.serve_int8:
        return None
    chosen = np.sort(np.random.default_rng(config.seed + 2).permutation(n)[:QUANTIZATION_PAIRS])
    front, back, _target, _weight = eval_view.batch(chosen.tolist())
    return front.to(torch.float16).numpy(), back.to(torch.float16).numpy()


def _per_fold_states(init: StateDict | Sequence[StateDict] | None, folds: int) -> list[StateDict | None]:
    if init is None:
        return [None] * folds
    if isinstance(init, Mapping):
        return [dict(init)] * folds
    states = list(init)
    if len(states) != folds:
        raise ValueError(f"init_state_dict has {len(states)} states for {folds} folds")
    return states
