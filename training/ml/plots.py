"""The figures logged with every training run (learning curves, predicted vs true, error by decade) and those of the
owners' monitoring page (live accuracy, rejections and input drift by week, beside which version served when).

Matplotlib only, through `matplotlib.figure.Figure` (the object API, never pyplot): no global figure registry, no
GUI backend, safe in worker threads; `Figure.savefig` renders with Agg. Inputs are plain numbers so the plots can
be drawn from a FitResult, from an evaluation in the Django process, or from a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from training.ml.years import YEAR_MAX, YEAR_MIN

# History of one fold: one dict per epoch, e.g. {"epoch": 1, "train_loss": 0.3, "val_mae": 25.1}.
FoldHistory = Sequence[Mapping[str, Any]]

TRAIN_LOSS_KEYS = ("train_loss", "loss", "train_mae_loss")
VAL_MAE_KEYS = ("val_mae", "mae", "valid_mae", "val_mae_years")


def _first_key(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> str | None:
    rows = list(rows)
    for key in keys:
        if any(key in row for row in rows):
            return key
    return None


def normalise_history(history: Any) -> dict[int, list[dict]]:
    """Per-fold epoch rows from the shapes a history comes in.

    Accepts {fold: [row, ...]}, [[row, ...] per fold] or a flat [row, ...] where each row carries its "fold".
    Rows without an "epoch" get their position (1-based).
    """
    folds: dict[int, list[dict]] = {}
    if not history:
        return folds
    if isinstance(history, Mapping):
        items = [(int(k), list(v)) for k, v in history.items()]
    elif all(isinstance(item, Mapping) for item in history):
        grouped: dict[int, list] = {}
        for row in history:
            grouped.setdefault(int(row.get("fold", 0)), []).append(row)
        items = list(grouped.items())
    else:
        items = [(i, list(rows)) for i, rows in enumerate(history)]
    for fold, rows in items:
        clean = []
        for position, row in enumerate(rows, start=1):
            row = dict(row)
            row.setdefault("epoch", position)
            clean.append(row)
        folds[fold] = sorted(clean, key=lambda r: r["epoch"])
    return dict(sorted(folds.items()))


def learning_curves(history: Any, *, title: str = "Learning curves") -> Figure:
    """Train loss and validation MAE (years) against epoch, one line per fold."""
    folds = normalise_history(history)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_mae = fig.subplots(1, 2)
    all_rows = [row for rows in folds.values() for row in rows]
    loss_key = _first_key(all_rows, TRAIN_LOSS_KEYS)
    mae_key = _first_key(all_rows, VAL_MAE_KEYS)
    for fold, rows in folds.items():
        epochs = [row["epoch"] for row in rows]
        if loss_key:
            ax_loss.plot(epochs, [row.get(loss_key, np.nan) for row in rows], marker="o", label=f"fold {fold}")
        if mae_key:
            ax_mae.plot(epochs, [row.get(mae_key, np.nan) for row in rows], marker="o", label=f"fold {fold}")
    ax_loss.set(title=f"train loss ({loss_key or 'missing'})", xlabel="epoch", ylabel="loss")
    ax_mae.set(title="validation MAE", xlabel="epoch", ylabel="years")
    for ax in (ax_loss, ax_mae):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if not folds:
        ax_loss.text(0.5, 0.5, "no epochs recorded", ha="center", va="center", transform=ax_loss.transAxes)
    fig.suptitle(title)
    return fig


def predicted_vs_true(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    *,
    year_min: int = YEAR_MIN,
    year_max: int = YEAR_MAX,
    title: str = "Out-of-fold predictions",
) -> Figure:
    """Scatter of predicted against true year with the identity line; the title carries MAE and n."""
    true = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.plot([year_min, year_max], [year_min, year_max], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.scatter(true, pred, s=12, alpha=0.6, label="coin")
    mae = float(np.mean(np.abs(pred - true))) if true.size else float("nan")
    ax.set(
        title=f"{title}\nMAE {mae:.1f} years, n={true.size}",
        xlabel="true year",
        ylabel="predicted year",
        xlim=(year_min - 5, year_max + 5),
        ylim=(year_min - 5, year_max + 5),
    )
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def mae_by_decade(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, dict[str, float]]:
    """{"1870": {"mae": 12.3, "count": 4}, ...} keyed by the decade of the TRUE year, in order."""
    true = np.asarray(y_true, dtype=float).ravel()
    pred = np.asarray(y_pred, dtype=float).ravel()
    decades = (np.floor(true / 10) * 10).astype(int)
    out: dict[str, dict[str, float]] = {}
    for decade in sorted(set(decades.tolist())):
        mask = decades == decade
        out[str(decade)] = {"mae": float(np.mean(np.abs(pred[mask] - true[mask]))), "count": int(mask.sum())}
    return out


def error_by_decade(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    *,
    baseline_mae: float | None = None,
    title: str = "Error by decade (out-of-fold)",
) -> Figure:
    """Bar chart of the MAE per decade of the true year, with the number of coins on each bar."""
    table = mae_by_decade(y_true, y_pred)
    fig = Figure(figsize=(max(6.0, 0.35 * len(table) + 2), 4), layout="constrained")
    ax = fig.subplots()
    labels = list(table)
    values = [table[k]["mae"] for k in labels]
    bars = ax.bar(range(len(labels)), values, color="#b87333")
    for bar, key in zip(bars, labels, strict=True):
        ax.annotate(
            str(int(table[key]["count"])),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize="x-small",
        )
    if baseline_mae is not None and np.isfinite(baseline_mae):
        ax.axhline(baseline_mae, color="grey", linestyle="--", linewidth=1, label=f"median baseline {baseline_mae:.1f}")
        ax.legend(fontsize="small")
    ax.set_xticks(range(len(labels)), [f"{k}s" for k in labels], rotation=90, fontsize="small")
    ax.set(title=title, xlabel="decade of the true year (number = coins)", ylabel="MAE (years)")
    ax.grid(axis="y", alpha=0.3)
    if not labels:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
    return fig


def interval_sharpness(
    truth: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    *,
    level: float,
    title: str = "Date reader: interval width and coverage (coins no fold model saw)",
) -> Figure:
    """Histogram of the interval widths, split by whether the true year fell inside, with the coverage: sharp and
    honest intervals are narrow bars that are almost all 'covered'."""
    truth, low, high = (np.asarray(a, dtype=np.float64) for a in (truth, low, high))
    width = high - low + 1
    covered = (low <= truth) & (truth <= high)
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    if len(width):
        bins = np.unique(np.geomspace(1, max(2.0, width.max() + 1), 24).round())
        ax.hist(
            [width[covered], width[~covered]],
            bins=bins,
            stacked=True,
            color=["#4c956c", "#c44536"],
            label=[f"true year inside ({covered.mean():.0%})", "outside"],
        )
        ax.set_xscale("log")
        ax.legend(fontsize="small")
        ax.axvline(np.median(width), color="grey", linestyle="--", linewidth=1)
    else:
        ax.text(0.5, 0.5, "no held-out coins", ha="center", va="center", transform=ax.transAxes)
    ax.set(title=title, xlabel=f"width of the {level:.0%} interval (years, log scale; dashed: median)", ylabel="coins")
    return fig


# -- the owners' monitoring page: figures by week ----------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyPanel:
    """One axes of a weekly figure: a line per series (a model version), None where a week has no value."""

    title: str
    ylabel: str
    lines: Mapping[str, Sequence[float | None]]
    percent: bool = False
    # A dashed line in a series' colour, e.g. its cross-validated MAE beside its live MAE.
    references: Mapping[str, float] = field(default_factory=dict)
    # Grey lines across, with their labels: thresholds such as "notable drift".
    guides: Sequence[tuple[float, str]] = ()


@dataclass(frozen=True)
class ServingBand:
    """A period in which one version served (Production), drawn behind every panel: which version served when."""

    label: str
    start: date | datetime
    end: date | datetime | None  # None: it serves now


def series_colors(labels: Iterable[str]) -> dict[str, str]:
    """One colour per series, the same in every figure of a page (tab10, in the order given)."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
    return {label: palette[index % len(palette)] for index, label in enumerate(dict.fromkeys(labels))}


def weekly_figure(
    weeks: Sequence[date],
    panels: Sequence[WeeklyPanel],
    *,
    serving: Sequence[ServingBand] = (),
    colors: Mapping[str, str] | None = None,
    title: str = "",
) -> Figure:
    """Panels side by side over the same weeks, the serving periods shaded behind the lines in the serving version's
    colour and named at the top. A week's value is drawn in the middle of its week (Thursday noon), so that it falls
    in the band of the version that served then."""
    weeks = list(weeks)
    middles = [_as_datetime(week) + timedelta(days=3, hours=12) for week in weeks]
    labels = [label for panel in panels for label in panel.lines]
    colors = dict(colors or series_colors(labels))
    # Fixed margins, not layout="constrained": the constrained layout measured half of the drawing time (0.3 of
    # 0.6 s for three panels at 80 dpi on the 2-core development machine), and these panels all look alike.
    fig = Figure(figsize=(5.2 * max(len(panels), 1), 3.8))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.84, wspace=0.22)
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    left = _as_datetime(weeks[0]) if weeks else None
    right = _as_datetime(weeks[-1]) + timedelta(days=7) if weeks else None
    for index, (ax, panel) in enumerate(zip(axes, panels, strict=False)):
        if weeks:
            _serving_bands(ax, serving, colors, left, right)
            ax.set_xlim(left, right)
        scale = 100 if panel.percent else 1
        drawn = False
        for label, values in panel.lines.items():
            ys = np.array([np.nan if value is None else value * scale for value in values], dtype=float)
            drawn = drawn or bool(np.isfinite(ys).any())
            ax.plot(middles, ys, marker="o", markersize=4, color=colors.get(label), label=label)
        for label, value in panel.references.items():
            if value is not None and np.isfinite(value):
                ax.axhline(value * scale, color=colors.get(label), linestyle="--", linewidth=1)
        for value, text in panel.guides:
            ax.axhline(value, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                text,
                (1, value),
                xycoords=("axes fraction", "data"),
                xytext=(-2, 2),
                textcoords="offset points",
                ha="right",
                fontsize="x-small",
                color="grey",
            )
        ax.set(title=panel.title, ylabel=panel.ylabel + (" (%)" if panel.percent else ""))
        if panel.percent:
            ax.set_ylim(-3, 103)
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=45, labelsize="x-small")
        if not drawn:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
        if index == 0 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="best")
    if title:
        fig.suptitle(title)
    return fig


def _as_datetime(moment: date | datetime) -> datetime:
    return moment if isinstance(moment, datetime) else datetime(moment.year, moment.month, moment.day)


def _serving_bands(
    ax: Any, serving: Sequence[ServingBand], colors: Mapping[str, str], left: datetime, right: datetime
) -> None:
    """Each serving period as a light band in its version's colour, clipped to the weeks shown, named at the top."""
    for band in serving:
        start = max(_naive(_as_datetime(band.start)), left)
        end = min(_naive(_as_datetime(band.end)) if band.end is not None else right, right)
        if end <= start:
            continue
        ax.axvspan(start, end, color=colors.get(band.label, "#999999"), alpha=0.10, linewidth=0)
        ax.annotate(
            band.label,
            (start, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize="x-small",
            color=colors.get(band.label, "#555555"),
        )


def _naive(moment: datetime) -> datetime:
    """Matplotlib compares the bands with the (naive) week dates: drop the time zone, keeping the local time."""
    return moment.replace(tzinfo=None)
