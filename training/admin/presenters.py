"""Formatting for the training admin: numbers, dates, badges, and the typed metrics of training.schemas turned into
what one template or list column shows. Nothing here queries the database or changes anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from predictions.admin.base import image_url
from predictions.models import Coin
from registry.models import ModelVersion, Promotion
from training.models import TrainingRun
from training.schemas import Comparison, RunMetrics, RunProgress, VersionPair
from training.services.label_check import SuspectLabel

DASH = "—"


def admin_url(model: type[Model] | Model, page: str, *args: Any) -> str:
    """The URL of one admin page of a model ("change", "changelist", "rescore" ...), named from the model's own
    app label so the pages keep their links when a model moves to another app."""
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{page}", args=args)


def admin_url_or_none(model: type[Model] | Model, page: str, *args: Any) -> str | None:
    """admin_url, or None where that admin is not registered (a link is then left out, the page still renders)."""
    try:
        return admin_url(model, page, *args)
    except NoReverseMatch:
        return None


# -- numbers and dates ------------------------------------------------------------------------------------------------


def fmt_number(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:,.{digits}f}"


def fmt_share(value: float | None) -> str:
    """A fraction 0..1 (how every writer stores within_5, within_10 and coverage) as a whole percentage."""
    return DASH if value is None else f"{value * 100:.0f}%"


def fmt_duration(delta: timedelta | None) -> str:
    if delta is None:
        return DASH
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def short_date(moment: datetime | None) -> str:
    """ "Nov 23, 20:07" (this year) or "2025-11-23" in the site's time zone: short enough for a list column; the full
    timestamp is in the tooltip."""
    if moment is None:
        return DASH
    local = timezone.localtime(moment)
    text = local.strftime("%b %d, %H:%M") if local.year == timezone.localtime().year else local.strftime("%Y-%m-%d")
    return format_html('<span class="mt-date" title="{}">{}</span>', local.strftime("%Y-%m-%d %H:%M:%S %Z"), text)


def stacked_date(moment: datetime | None) -> str:
    """ "Nov 23" over a small "20:07" (this year), or "2025-11-23" over the time: half the width of short_date(),
    for a list with many columns (the model versions list at 1280 px); the full timestamp is in the tooltip."""
    if moment is None:
        return DASH
    local = timezone.localtime(moment)
    day = local.strftime("%b %d") if local.year == timezone.localtime().year else local.strftime("%Y-%m-%d")
    return format_html(
        '<span class="mt-date" title="{}">{}<small class="mt-cell-note">{}</small></span>',
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        day,
        local.strftime("%H:%M"),
    )


def badge(text: str, tone: str) -> SafeString:
    return format_html('<span class="mt-badge mt-badge--{}">{}</span>', tone, text)


STATUS_TONES = {
    TrainingRun.Status.QUEUED: "muted",
    TrainingRun.Status.RUNNING: "info",
    TrainingRun.Status.SUCCEEDED: "ok",
    TrainingRun.Status.FAILED: "bad",
    TrainingRun.Status.CANCELLED: "warn",
}
VERDICT_TONES = {"recommended": "ok", "promoted": "prod", "rejected": "bad"}
PROMOTION_TONES = {"rollback": "warn", "auto": "info", "initial": "muted"}


def verdict_badge(verdict: str) -> str:
    if not verdict:
        return DASH
    label = dict(TrainingRun.Verdict.choices).get(verdict, verdict)
    return badge(str(label), VERDICT_TONES.get(verdict, "muted"))


def pretty_json(value: Any) -> str:
    if value in (None, {}, []):
        return DASH
    return format_html('<pre class="mt-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, default=str))


# -- a version's cross-validation -------------------------------------------------------------------------------------


def version_metrics(version: ModelVersion) -> RunMetrics:
    """The version's numbers: its training run's own record first (it has the folds and the interval), the MLflow
    copy on the mirror row for what the run lacks (a version registered by `manage.py train` has no run), and the
    run's configured interval level when the metrics do not say it."""
    run = version.training_run
    metrics = RunMetrics.from_dict(version.metrics)
    if run is not None:
        metrics = RunMetrics.from_dict(run.metrics).or_else(metrics)
        config_level = RunMetrics(interval_level=(run.config or {}).get("interval_level"))
        metrics = metrics.or_else(config_level)
    return metrics


def version_summary(version: ModelVersion) -> dict[str, float | None]:
    """The headline numbers the list columns and the detail page's cards show (mean over folds, spread, baseline)."""
    metrics = version_metrics(version)
    return {
        "mae": metrics.mae,
        "mae_std": metrics.mae_std,
        "mse": metrics.mse,
        "r2": metrics.r2,
        "within_5": metrics.within_5,
        "within_10": metrics.within_10,
        "baseline_mae": metrics.baseline_mae,
        "coverage": metrics.interval_coverage,
        "interval_level": metrics.interval_level,
        "interval_halfwidth": metrics.interval_halfwidth,
        "ratio": metrics.mae_over_baseline,
        "soup_served": metrics.soup_served,
        "soup_holdout_exact": metrics.soup_holdout_exact,
        "ensemble_holdout_exact": metrics.folds_ensemble_holdout_exact,
    }


def version_folds(version: ModelVersion) -> list[dict[str, float | int | None]]:
    """One row per fold ({fold, mae, mse, r2, within_5, within_10}); [] when the run recorded none."""
    return [
        {
            "fold": fold.fold,
            "mae": fold.mae,
            "mse": fold.mse,
            "r2": fold.r2,
            "within_5": fold.within_5,
            "within_10": fold.within_10,
        }
        for fold in version_metrics(version).folds
    ]


# -- candidate against Production -------------------------------------------------------------------------------------

COMPARISON_ROWS = (
    # metric, label, higher is better, formatter
    ("mae", "MAE (years)", False, fmt_number),
    ("mse", "MSE", False, lambda v: fmt_number(v, 0)),
    ("r2", "R²", True, lambda v: fmt_number(v, 3)),
    ("within_5", "within ±5 years", True, fmt_share),
    ("within_10", "within ±10 years", True, fmt_share),
)
SHARE_METRICS = ("within_5", "within_10")


@dataclass
class ComparisonView:
    """A stored Comparison, flattened for templates/admin/training/_comparison.html."""

    rows: list[dict] = field(default_factory=list)
    decades: list[dict] = field(default_factory=list)
    corrected: dict | None = None
    verdict: str = ""
    production_version: int | None = None
    evaluation_count: int | None = None
    margin: float | None = None
    note: str = ""
    decade_max: float | None = None
    # how the two sides are named: a run's candidate against Production, or on the compare page versions B and A
    candidate_label: str = "candidate"
    production_label: str = "Production"
    heading: str = "Against Production"
    show_verdict: bool = True  # two versions compared by hand have no verdict


def _comparison_rows(comparison: Comparison) -> list[dict]:
    rows = []
    for key, label, higher_better, formatter in COMPARISON_ROWS:
        cand = comparison.candidate.metric(key) if comparison.candidate else None
        prod = comparison.production.metric(key) if comparison.production else None
        if cand is None and prod is None:
            continue
        better = None
        if cand is not None and prod is not None and cand != prod:
            better = (cand > prod) == higher_better
        if cand is None or prod is None:
            delta = DASH
        elif key in SHARE_METRICS:
            delta = f"{(cand - prod) * 100:+.0f} pt"
        else:
            delta = ("+" if cand - prod > 0 else "") + formatter(cand - prod)
        rows.append(
            {
                "label": label,
                "candidate": formatter(cand),
                "production": formatter(prod),
                "delta": delta,
                "better": better,
            }
        )
    return rows


def _decade_rows(comparison: Comparison) -> list[dict]:
    """MAE by decade of the true year, both models side by side, with each column's height as a share of the worst."""
    rows: dict[str, dict] = {}
    sides = (("candidate", comparison.candidate), ("production", comparison.production))
    for _, side in sides:  # the candidate's counts first: both sides are scored on the same coins
        for decade, count in (side.decade_counts if side else {}).items():
            rows.setdefault(decade, {}).setdefault("count", count)
    for name, side in sides:
        for decade, mae in (side.mae_by_decade if side else {}).items():
            rows.setdefault(decade, {})[name] = mae
    top = max((v for row in rows.values() for v in (row.get("candidate"), row.get("production")) if v), default=0)
    result = []
    for decade in sorted(rows, key=lambda d: (len(d), d)):
        row = rows[decade]
        candidate, production = row.get("candidate"), row.get("production")
        result.append(
            {
                "decade": f"{decade}s" if decade.isdigit() else decade,
                "count": row.get("count"),
                "candidate": candidate,
                "production": production,
                "candidate_pct": round(100 * (candidate or 0) / top, 1) if top else 0,
                "production_pct": round(100 * (production or 0) / top, 1) if top else 0,
            }
        )
    return result


def comparison_view(
    comparison: Comparison | None, *, verdict: str = "", labels: tuple[str, str, str] | None = None
) -> ComparisonView | None:
    """Candidate against Production on the same evaluation set, or None when the run stored no comparison.
    `labels`: (candidate, production, heading) where the two sides are other versions (the compare page)."""
    if comparison is None:
        return None
    corrected = comparison.corrected
    named = dict(zip(("candidate_label", "production_label", "heading"), labels, strict=True)) if labels else {}
    view = ComparisonView(
        **named,
        verdict=comparison.verdict or verdict or "",
        production_version=comparison.production.version if comparison.production else None,
        evaluation_count=comparison.evaluation_count,
        margin=comparison.margin,
        note=comparison.reason,
        rows=_comparison_rows(comparison),
        decades=_decade_rows(comparison),
    )
    view.decade_max = max(
        (v for row in view.decades for v in (row["candidate"], row["production"]) if v is not None), default=None
    )
    if corrected is not None:
        cand, prod = corrected.candidate_mae, corrected.production_mae
        view.corrected = {
            "candidate": fmt_number(cand),
            "production": fmt_number(prod),
            "count": corrected.count,
            "better": None if cand is None or prod is None else cand < prod,
        }
    if not view.rows and not view.decades and view.corrected is None:
        return None
    return view


def run_comparison_view(run: TrainingRun | None) -> ComparisonView | None:
    """The comparison a run stored, ready for the template (None without a run or a comparison)."""
    if run is None:
        return None
    return comparison_view(Comparison.from_dict(run.comparison), verdict=run.verdict)


# -- training runs ----------------------------------------------------------------------------------------------------


def run_progress(run: TrainingRun) -> dict[str, Any]:
    """Fold x/y and epoch x/y of a run, and how far along it is overall (0-100)."""
    progress = RunProgress.from_dict(run.progress)
    fold, folds, epoch, epochs = progress.fold, progress.folds, progress.epoch, progress.epochs
    percent: float | None = None
    if folds and epochs and progress.epochs_done is not None:  # fold-parallel: the folds train side by side
        percent = 100 * progress.epochs_done / (folds * epochs)
    elif folds and epochs and fold is not None and epoch is not None:
        percent = 100 * ((max(fold, 1) - 1) * epochs + epoch) / (folds * epochs)
    elif epochs and epoch is not None:
        percent = 100 * epoch / epochs
    if run.status == TrainingRun.Status.SUCCEEDED:
        percent = 100
    parts = []
    if folds and progress.folds_done is not None:
        parts.append(f"{progress.folds_done}/{folds} folds done")
        if epochs and progress.epochs_done is not None:
            parts.append(f"{progress.epochs_done}/{folds * epochs} epochs")
    else:
        if folds:
            parts.append(f"fold {fold or 0}/{folds}")
        if epochs:
            parts.append(f"epoch {epoch or 0}/{epochs}")
    details = []
    if progress.stage and progress.stage not in ("training", "done"):
        details.append(progress.stage)
    if progress.val_mae is not None:
        details.append(f"val MAE {progress.val_mae:.1f}")
    return {
        "percent": max(0.0, min(100.0, percent or 0.0)),
        "label": " · ".join(parts),
        "details": " · ".join(details),
        "known": percent is not None,
    }


def run_duration(run: TrainingRun) -> timedelta | None:
    if not run.started_at:
        return None
    return (run.finished_at or timezone.now()) - run.started_at


# -- re-scoring and the promotion history -----------------------------------------------------------------------------


def mover_row(mover: dict[str, Any], *, verified_year: int | None) -> dict[str, Any]:
    """One row of training.services.rescore_movers (coin_id, old_year, new_year, old_version, new_version) for the
    movers page: the signed move (-50 reads differently from +50) and the coin's admin link."""
    coin_id, old, new = mover["coin_id"], mover["old_year"], mover["new_year"]
    return {
        "coin_id": coin_id,
        "coin_url": admin_url_or_none(Coin, "change", coin_id),
        "old_year": old,
        "new_year": new,
        "delta": new - old if old is not None and new is not None else None,
        "old_version": mover["old_version"],
        "new_version": mover["new_version"],
        "verified_year": verified_year,
    }


@dataclass(frozen=True)
class SuspectRow:
    """One row of the suspect labels page: the figures of a SuspectLabel with its links, printable."""

    rank: int
    coin_id: int
    review_url: str
    front_thumb: str
    back_thumb: str
    verified_year: int
    predicted_year: int
    offset: str  # "+40" / "-3": how far (and which way) the held-out answer lies from the label
    p_top: str  # the answer's probability as a percentage, "—" for the regression head
    p_label: str
    margin: str
    threshold: str
    held_out_by: str  # "fold 2" or "all folds" (the calibration holdout)
    tier: str  # "confident" (the answer reaches its own year's threshold), "possible", or "" (regression head)
    verified_by: str
    verified_at: datetime | None
    deleted: bool


def suspect_rows(suspects: list[SuspectLabel]) -> list[SuspectRow]:
    """The suspect labels page's rows, in the service's rank order (most certainly wrong first)."""
    rows = []
    for rank, suspect in enumerate(suspects, start=1):
        coin = suspect.coin
        offset = suspect.predicted_year - suspect.verified_year
        rows.append(
            SuspectRow(
                rank=rank,
                coin_id=coin.pk,
                review_url=reverse("admin:predictions_coin_review", kwargs={"coin_id": coin.pk}),
                front_thumb=image_url(coin, "front", thumb=True),
                back_thumb=image_url(coin, "back", thumb=True),
                verified_year=suspect.verified_year,
                predicted_year=suspect.predicted_year,
                offset=f"{offset:+d}",
                p_top=fmt_share_fine(suspect.p_top),
                p_label=fmt_share_fine(suspect.p_label),
                margin=DASH if suspect.margin is None else f"{suspect.margin:.2f}",
                threshold=fmt_share_fine(suspect.threshold),
                held_out_by="all folds" if suspect.fold is None else f"fold {suspect.fold}",
                tier="" if suspect.p_label is None else "confident" if suspect.confident else "possible",
                verified_by=suspect.verified_by or f"{coin.get_source_display().lower()} label",
                verified_at=suspect.verified_at,
                deleted=coin.deleted_at is not None,
            )
        )
    return rows


def fmt_share_fine(value: float | None) -> str:
    """A probability as a percentage with the small ones kept apart from zero ("0.3%", "<0.1%", "97%")."""
    if value is None:
        return DASH
    if value >= 0.1:
        return f"{value * 100:.0f}%"
    return f"{value * 100:.1f}%" if value >= 0.001 else "<0.1%"


def promotion_timeline(moves: list[Promotion]) -> list[dict[str, Any]]:
    """Serving periods of `moves` (oldest first), each with its share of the whole span (for a bar)."""
    if not moves:
        return []
    now = timezone.now()
    span = max((now - moves[0].created_at).total_seconds(), 1)
    periods = []
    for index, move in enumerate(moves):
        end = moves[index + 1].created_at if index + 1 < len(moves) else now
        seconds = max((end - move.created_at).total_seconds(), 0)
        periods.append(
            {
                "version": move.to_version.version,
                "action": move.action,
                "start": move.created_at,
                "end": end,
                "current": index + 1 == len(moves),
                "width": max(100 * seconds / span, 0.8),
                "duration": fmt_duration(end - move.created_at),
            }
        )
    return periods


def inline_code(text: str) -> str:
    """Plain text whose `backticked` parts (commands, settings) show as <code>; everything else escaped."""
    parts = str(text).split("`")
    return format_html_join(
        "", "{}", ((format_html("<code>{}</code>", part) if index % 2 else part,) for index, part in enumerate(parts))
    )


def version_pair_view(pair: VersionPair) -> dict[str, Any]:
    """Two versions compared (training.services.comparison.model_versions_compare) for the compare page: the same
    comparison table and decade columns as a run's, named "vB" and "vA", and the movers with each one's error."""
    a, b = f"v{pair.base}", f"v{pair.other}"
    view = comparison_view(pair.comparison, labels=(b, a, f"{b} against {a}"))
    if view is not None:
        view.show_verdict = False
    movers = [
        {
            "coin_id": mover.coin_id,
            "url": admin_url_or_none(Coin, "change", mover.coin_id),
            "year": mover.year,
            "base": f"{mover.base:.0f}",  # years: no thousands separator
            "other": f"{mover.other:.0f}",
            "move": f"{mover.move:+.0f}",
            "base_error": fmt_number(abs(mover.base - mover.year), 0),
            "other_error": fmt_number(abs(mover.other - mover.year), 0),
            "better": abs(mover.other - mover.year) < abs(mover.base - mover.year),
        }
        for mover in pair.movers
    ]
    return {"comparison": view, "movers": movers, "a": a, "b": b}
